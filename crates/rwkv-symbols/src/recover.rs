//! C and C++ function definitions the grammar lost.
//!
//! Tree-sitter parses C as written, before the preprocessor: a function body whose `#if`
//! branches each open a brace, or a head with macros the grammar cannot place (`local unsigned
//! f(unsigned FAR *have)`), becomes an error node, and error recovery can swallow every
//! definition after it (zlib's `inflate.c` lost `inflate` and the 13 functions below it). What
//! such a region still shows is the shape C code is written in: a head at column 0 — words,
//! the name, `(` parameters `)` — then `{`, and the body's closing `}` at column 0.
//! [`recover_functions`] reads those heads where the tree has errors and adds the functions
//! the query did not find, dropping what the broken parse took for definitions inside them.

use std::collections::HashSet;

use crate::{Lines, Raw, Symbol, SymbolKind};

/// Most bytes a head's parameter list (and what follows it up to `{`) may take.
const MAX_HEAD_BYTES: usize = 2048;
/// Most lines between a head's `)` and its body's `{` (attributes, a `{` on its own line).
const MAX_GAP_LINES: usize = 3;

/// Words that start a line at column 0 without starting a function head.
const NOT_TYPE: &[&str] = &[
    "typedef",
    "return",
    "else",
    "case",
    "goto",
    "default",
    "do",
    "if",
    "while",
    "for",
    "switch",
    "using",
    "namespace",
    "template",
    "extern",
    "class",
    "public",
    "private",
    "protected",
];
/// Words that are never a function's name.
const NOT_NAME: &[&str] = &[
    "if",
    "while",
    "for",
    "switch",
    "return",
    "sizeof",
    "defined",
    "else",
    "do",
    "case",
    "alignof",
    "decltype",
    "typeof",
    "__attribute__",
    "__declspec",
    "operator",
];

/// Adds to `raw` the column-0 function definitions of C or C++ `text` that it lacks, and drops
/// the definitions inside them (locals that a broken parse put at the top level).
pub(crate) fn recover_functions(text: &str, lines: &Lines, raw: &mut Vec<Raw>) {
    let found: HashSet<(&str, u32)> = raw.iter().map(|r| (r.sym.name.as_str(), r.sym.name_line)).collect();
    let mut recovered: Vec<Raw> = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < lines.count() {
        let (start, _) = lines.range(i);
        let Some(head) = head_at(b, start) else {
            i += 1;
            continue;
        };
        let Some(body_end) = body_end(b, head.open_brace) else {
            i += 1;
            continue;
        };
        let name = &text[head.name.0..head.name.1];
        let name_line = i as u32 + 1;
        if !found.contains(&(name, name_line)) {
            let line_end = lines.line_of(body_end - 1) as u32 + 1;
            recovered.push(Raw {
                sym: Symbol {
                    name: name.to_string(),
                    kind: SymbolKind::Function,
                    scope: None,
                    line_start: name_line,
                    line_end,
                    name_line,
                    byte_start: start,
                    byte_end: body_end,
                },
                qualifier: head.qualifier.map(|(s, e)| text[s..e].replace("::", ".")),
            });
        }
        i = lines.line_of(body_end - 1) + 1;
    }
    if recovered.is_empty() {
        return;
    }
    raw.retain(|r| {
        !recovered
            .iter()
            .any(|f| f.sym.byte_start <= r.sym.byte_start && r.sym.byte_end <= f.sym.byte_end)
    });
    // A function the broken parse ran on past a recovered head ends before it (a namespace or
    // an `extern "C"` block holds such heads; a function body never does).
    for r in raw
        .iter_mut()
        .filter(|r| matches!(r.sym.kind, SymbolKind::Function | SymbolKind::Method))
    {
        let cut = recovered
            .iter()
            .map(|f| f.sym.byte_start)
            .filter(|&s| r.sym.byte_start < s && s < r.sym.byte_end)
            .min();
        if let Some(cut) = cut {
            r.sym.byte_end = cut;
            r.sym.line_end = (lines.line_of(cut - 1) as u32 + 1).max(r.sym.line_start);
            r.sym.name_line = r.sym.name_line.min(r.sym.line_end);
        }
    }
    raw.extend(recovered);
}

/// A function head: the name's byte range, its qualifier's (`Foo::Bar` of `Foo::Bar::get`),
/// and the byte of the body's `{`.
struct Head {
    name: (usize, usize),
    qualifier: Option<(usize, usize)>,
    open_brace: usize,
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The function head starting at byte `at` (a line's start), if the line is one.
fn head_at(b: &[u8], at: usize) -> Option<Head> {
    if !b.get(at).is_some_and(|&c| c.is_ascii_alphabetic() || c == b'_') {
        return None;
    }
    // Words (types, macros, `*`, `&`, `::`, `~`) up to `(`, all on this line.
    let mut i = at;
    let mut words: Vec<(usize, usize)> = Vec::new();
    // Where the qualified name being read started (its first part), for `A::B::name`.
    let mut qualified_from: Option<usize> = None;
    loop {
        let c = *b.get(i)?;
        if is_ident(c) {
            let s = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            words.push((s, i));
        } else if matches!(c, b' ' | b'\t' | b'*' | b'&') {
            qualified_from = None;
            i += 1;
        } else if c == b':' && b.get(i + 1) == Some(&b':') {
            if qualified_from.is_none() {
                qualified_from = words.last().map(|w| w.0);
            }
            i += 2;
        } else if c == b'~' {
            i += 1;
        } else if c == b'(' {
            break;
        } else {
            return None;
        }
        if i - at > 256 {
            return None;
        }
    }
    let &(mut ns, ne) = words.last()?;
    // A destructor (`Foo::~Foo`) is named with its `~`, as the grammar names it.
    if ns > at && b[ns - 1] == b'~' {
        ns -= 1;
    }
    let word = |(s, e): (usize, usize)| std::str::from_utf8(&b[s..e]).unwrap_or("");
    let qualified = qualified_from.filter(|&q| q < ns);
    let qualifier = qualified.map(|q| {
        // `A::B::name`: up to the `::` (and a destructor's `~`) before the name.
        let mut e = ns;
        while e > q && matches!(b[e - 1], b':' | b'~') {
            e -= 1;
        }
        (q, e)
    });
    // A type or macro before the name, or a qualified name (a constructor, `Foo::Foo(…) {`):
    // `foo(x) {` alone is a macro's use.
    let type_words = words.iter().filter(|w| w.0 < qualified.unwrap_or(ns)).count();
    if (type_words == 0 && qualified.is_none())
        || (type_words > 0 && NOT_TYPE.contains(&word(words[0])))
        || NOT_NAME.contains(&word((ns, ne)))
    {
        return None;
    }
    let close = matching_paren(b, i)?;
    let open_brace = brace_after(b, close + 1)?;
    Some(Head {
        name: (ns, ne),
        qualifier,
        open_brace,
    })
}

/// The byte of the `)` that closes the `(` at `open`, skipping comments and literals.
fn matching_paren(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i < b.len() && i - open < MAX_HEAD_BYTES {
        match b[i] {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            b';' | b'{' | b'}' => return None,
            b'/' | b'"' | b'\'' => {
                i = skip_comment_or_literal(b, i)?;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// After a head's `)`: the byte of the body's `{`, when only words (`const`, `noexcept`, a
/// macro), attribute groups, comments and at most [`MAX_GAP_LINES`] line breaks come between.
fn brace_after(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    let mut newlines = 0;
    while i < b.len() && i - from < MAX_HEAD_BYTES {
        match b[i] {
            b'{' => return Some(i),
            b'\n' => {
                newlines += 1;
                if newlines > MAX_GAP_LINES {
                    return None;
                }
            }
            b' ' | b'\t' | b'\r' => {}
            b'/' => {
                i = skip_comment_or_literal(b, i)?;
                continue;
            }
            b'(' => {
                i = matching_paren(b, i)? + 1;
                continue;
            }
            c if is_ident(c) => {}
            // `;` (a declaration), `=`, `,`, `:` (an initializer list) and the rest.
            _ => return None,
        }
        i += 1;
    }
    None
}

/// Past the comment or string/char literal starting at `i` (a lone `/` is one byte).
fn skip_comment_or_literal(b: &[u8], i: usize) -> Option<usize> {
    match (b[i], b.get(i + 1)) {
        (b'/', Some(b'/')) => Some(b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| i + p)),
        (b'/', Some(b'*')) => Some(
            b[i + 2..]
                .windows(2)
                .position(|w| w == b"*/")
                .map_or(b.len(), |p| i + 2 + p + 2),
        ),
        (b'/', _) => Some(i + 1),
        (q, _) => {
            let mut j = i + 1;
            while j < b.len() && b[j] != q {
                if b[j] == b'\n' {
                    return None;
                }
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            (j < b.len()).then_some(j + 1)
        }
    }
}

/// The byte past the `}` that closes the body opened at `open`: where its braces balance, or
/// the first line after it that starts with `}` (how C closes a function, whatever its `#if`
/// branches hold), whichever comes first; `None` when another head at column 0 comes first.
fn body_end(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i < b.len() {
        match b[i] {
            b'{' => depth += 1,
            b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b'\n' => match b.get(i + 1) {
                Some(b'}') => return Some(i + 2),
                Some(&c) if (c.is_ascii_alphabetic() || c == b'_') && head_at(b, i + 1).is_some() => return None,
                _ => {}
            },
            b'/' | b'"' | b'\'' => {
                // An unclosed literal (a `'` in an `#error` line) is one byte.
                i = skip_comment_or_literal(b, i).unwrap_or(i + 1);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<(String, u32, u32)> {
        let lines = Lines::new(text);
        let mut raw = Vec::new();
        recover_functions(text, &lines, &mut raw);
        let mut v: Vec<_> = crate::finish(raw)
            .into_iter()
            .map(|s| (s.qualified_name(), s.line_start, s.line_end))
            .collect();
        v.sort_by_key(|x| x.1);
        v
    }

    #[test]
    fn heads_with_macros_and_bodies_with_uneven_branches() {
        let text = "\
/* comment */
int ZEXPORT inflate(z_streamp strm, int flush) {
#ifdef GUNZIP
    if (a) {
#else
    if (b) {
#endif
        x();
    }
}

local unsigned syncsearch(unsigned FAR *have, const unsigned char FAR *buf,
                          unsigned len)
{
    return 0;
}
int ZEXPORT deflate OF((z_streamp strm, int flush));
static const int table[] = {1, 2};
struct Foo { int a; };
FOREACH(item) {
}
void Table::Rep::Get(const Slice& k) const {
}
";
        assert_eq!(
            names(text),
            vec![
                ("inflate".to_string(), 2, 10),
                ("syncsearch".to_string(), 12, 16),
                ("Table.Rep.Get".to_string(), 22, 23),
            ]
        );
    }

    #[test]
    fn found_definitions_stay_and_what_a_broken_parse_put_inside_goes() {
        let text = "int f(void) {\n    int order = 1;\n}\nint g(void) {\n}\n";
        let lines = Lines::new(text);
        let local = |name: &str, line: u32, bs: usize, be: usize, kind| Raw {
            sym: Symbol {
                name: name.to_string(),
                kind,
                scope: None,
                line_start: line,
                line_end: line,
                name_line: line,
                byte_start: bs,
                byte_end: be,
            },
            qualifier: None,
        };
        let g_at = text.find("int g").unwrap();
        let mut raw = vec![
            local("order", 2, 18, 32, SymbolKind::Constant),
            local("g", 4, g_at, text.len() - 1, SymbolKind::Function),
        ];
        recover_functions(text, &lines, &mut raw);
        let got: Vec<(&str, u32)> = raw.iter().map(|r| (r.sym.name.as_str(), r.sym.name_line)).collect();
        assert_eq!(got, vec![("g", 4), ("f", 1)]);
    }

    #[test]
    fn unclosed_or_odd_text_gives_nothing_and_ends() {
        for text in [
            "int f(int a {\n",
            "int f(\n",
            "int f(void) {\n  return 1;\n",
            "a b(\"unterminated\n) {\n}\n",
            "x y(/* never closed",
            "",
            "(((((",
        ] {
            let _ = names(text);
        }
        assert!(names("int f(int a {\n").is_empty());
    }
}
