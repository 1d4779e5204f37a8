//! Line patterns: a definer keyword (after modifiers) followed by a name.

use crate::{Lines, Raw, Symbol, SymbolKind};

const MODIFIERS: &[&str] = &[
    "pub",
    "export",
    "default",
    "async",
    "public",
    "private",
    "protected",
    "static",
    "final",
    "abstract",
    "override",
    "virtual",
    "inline",
    "extern",
    "unsafe",
    "local",
    "fun",
    "internal",
    "open",
    "sealed",
    "data",
    "const",
    "declare",
    "partial",
];

/// Keywords that define something, with the kind they define.
fn definer(word: &str) -> Option<SymbolKind> {
    Some(match word {
        "fn" | "def" | "function" | "func" | "fun" | "sub" | "proc" => SymbolKind::Function,
        "struct" | "record" | "union" => SymbolKind::Struct,
        "enum" => SymbolKind::Enum,
        "trait" | "interface" | "protocol" => SymbolKind::Interface,
        "type" => SymbolKind::Type,
        "impl" | "extension" => SymbolKind::Impl,
        "mod" | "module" | "package" | "namespace" => SymbolKind::Module,
        "const" | "static" | "val" => SymbolKind::Constant,
        "var" | "let" => SymbolKind::Variable,
        "class" | "object" => SymbolKind::Class,
        "macro_rules!" | "macro" => SymbolKind::Macro,
        _ => return None,
    })
}

fn is_name_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// The next word (letters, digits, `_`, `$`, `!`) of `s` and the rest.
fn word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    let end = s
        .char_indices()
        .find(|&(_, c)| !(is_name_char(c) || c == '!'))
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    (&s[..end], &s[end..])
}

/// A dotted/qualified name (`M.foo`, `self.bar`, `Foo::baz`, `obj:meth`): its last part.
fn name(s: &str) -> Option<String> {
    let s = s.trim_start();
    let mut end = 0;
    let mut chars = s.char_indices().peekable();
    let first = chars.peek()?.1;
    if !is_name_start(first) {
        return None;
    }
    while let Some((i, c)) = chars.next() {
        if is_name_char(c) {
            end = i + c.len_utf8();
        } else if matches!(c, '.' | ':') && chars.peek().is_some_and(|&(_, n)| is_name_start(n) || n == ':') {
            continue;
        } else {
            break;
        }
    }
    let full = &s[..end];
    let last = full.rsplit(['.', ':']).next().unwrap_or(full);
    (!last.is_empty()).then(|| last.to_string())
}

/// The kind and name defined on this line, if any.
fn parse_line(line: &str, indent: usize) -> Option<(SymbolKind, String)> {
    let t = line.trim();
    if let Some(rest) = t.strip_prefix('#') {
        let rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("define")
            && r.starts_with([' ', '\t'])
        {
            return Some((SymbolKind::Macro, name(r)?));
        }
        return None;
    }
    let mut rest = t;
    loop {
        let (w, after) = word(rest);
        if w.is_empty() {
            return None;
        }
        // `pub(crate)` and friends.
        let after = if w == "pub" && after.starts_with('(') {
            after.split_once(')').map(|x| x.1).unwrap_or(after)
        } else {
            after
        };
        if let Some(kind) = definer(w) {
            let (next, _) = word(after);
            if definer(next).is_some() || MODIFIERS.contains(&next) {
                rest = after;
                continue;
            }
            // A definer must be followed by whitespace, then the name.
            if !after.starts_with([' ', '\t']) {
                return None;
            }
            if matches!(kind, SymbolKind::Constant | SymbolKind::Variable) && indent > 0 {
                return None;
            }
            let after = after.trim_start();
            // `impl<T> Foo<T>` / `impl Trait for Foo`.
            let after = if kind == SymbolKind::Impl {
                let a = after.strip_prefix('<').map(skip_generics).unwrap_or(after);
                match a.split_once(" for ") {
                    Some((_, ty)) => ty,
                    None => a,
                }
            } else {
                after.trim_start_matches('*').trim_start_matches('&')
            };
            let n = name(after)?;
            if matches!(kind, SymbolKind::Constant | SymbolKind::Variable) {
                // `static int x`: a type, not a name, follows the keyword.
                let a = after.trim_start();
                let t = &a[a.find(|c: char| !is_name_char(c)).unwrap_or(a.len())..];
                if t.starts_with([' ', '\t']) && t.trim_start().starts_with(is_name_start) {
                    return None;
                }
            }
            if definer(&n).is_some() || MODIFIERS.contains(&n.as_str()) {
                return None;
            }
            return Some((kind, n));
        }
        if MODIFIERS.contains(&w) {
            rest = after;
            continue;
        }
        return None;
    }
}

fn skip_generics(s: &str) -> &str {
    let mut depth = 1;
    for (i, c) in s.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth == 0 {
                    return &s[i + 1..];
                }
            }
            _ => {}
        }
    }
    s
}

fn indent_of(line: &str) -> usize {
    let mut n = 0;
    for c in line.chars() {
        match c {
            ' ' => n += 1,
            '\t' => n += 4,
            _ => break,
        }
    }
    n
}

pub(crate) fn definitions(text: &str) -> Vec<Symbol> {
    let lines = Lines::new(text);
    let n = lines.count();
    let line = |i: usize| {
        let (s, e) = lines.range(i);
        text[s..e].trim_end_matches(['\n', '\r'])
    };
    let blank = |i: usize| line(i).trim().is_empty();
    // (line, indent, kind, name)
    let mut found = Vec::new();
    for i in 0..n {
        let l = line(i);
        if l.len() > 2000 {
            continue;
        }
        let ind = indent_of(l);
        if let Some((kind, name)) = parse_line(l, ind) {
            found.push((i, ind, kind, name));
        }
    }
    let mut raw = Vec::with_capacity(found.len());
    let mut scopes: Vec<(usize, String, SymbolKind)> = Vec::new(); // (indent, qualified name, kind)
    for (k, (i, ind, kind, name)) in found.iter().enumerate() {
        // Ends before the next definition at the same or lower indentation, or before a
        // non-blank line indented less than this one.
        let next_def = found[k + 1..].iter().find(|d| d.1 <= *ind).map(|d| d.0).unwrap_or(n);
        let mut end = *i;
        for j in i + 1..next_def {
            if !blank(j) && indent_of(line(j)) < *ind {
                // A closing line (`}`, `end`) of this definition's own block belongs to it
                // only when indented like the definition; lower means the parent's.
                break;
            }
            end = j;
        }
        while end > *i && blank(end) {
            end -= 1;
        }
        while scopes.last().is_some_and(|(d, _, _)| d >= ind) {
            scopes.pop();
        }
        let scope = scopes.last().map(|s| s.1.clone());
        let mut kind = *kind;
        if kind == SymbolKind::Function && scopes.last().is_some_and(|p| p.2.holds_methods()) {
            kind = SymbolKind::Method;
        }
        let qual = match &scope {
            Some(s) => format!("{s}.{name}"),
            None => name.clone(),
        };
        scopes.push((*ind, qual, kind));
        let (byte_start, _) = lines.range(*i);
        let (_, byte_end) = lines.range(end);
        raw.push(Raw {
            sym: Symbol {
                name: name.clone(),
                kind,
                scope,
                line_start: *i as u32 + 1,
                line_end: end as u32 + 1,
                name_line: *i as u32 + 1,
                byte_start,
                byte_end,
            },
            qualifier: None,
        });
    }
    raw.sort_by(|a, b| {
        (a.sym.byte_start, std::cmp::Reverse(a.sym.byte_end))
            .cmp(&(b.sym.byte_start, std::cmp::Reverse(b.sym.byte_end)))
    });
    raw.into_iter().map(|r| r.sym).collect()
}
