//! Headings of documents as `Section` symbols.

use crate::{Lines, Symbol, SymbolKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// ATX (`## Title`) and setext (underlined) headings, outside code fences.
    Markdown,
    /// Titles underlined (and optionally overlined) by punctuation.
    Rst,
    /// `== Title` headings, plus Markdown ones.
    AsciiDoc,
}

struct Heading {
    /// 0-based first line (the overline of an RST title, else the title line).
    first: usize,
    /// 0-based line of the title text.
    title_line: usize,
    level: usize,
    title: String,
    /// The name and scope of a reference entry ([`api_entry`]): `lru_cache` in `functools`;
    /// `None` for a heading, named by its title inside the headings above it.
    entry: Option<(String, Option<String>)>,
}

/// The level of a reference entry at nesting depth 0: below every heading.
const ENTRY_LEVEL: usize = 7;

/// Keywords before the name in a reference entry's signature.
const ENTRY_KEYWORDS: &[&str] = &[
    "class ",
    "exception ",
    "async ",
    "await ",
    "abstractmethod ",
    "classmethod ",
    "staticmethod ",
    "coroutinefunction ",
    "coroutinemethod ",
    "coroutine ",
    "property ",
    "data ",
    "attribute ",
    "method ",
    "function ",
];

/// A reference entry of a Sphinx page rendered from HTML: its signature line ends with the
/// permalink sign, at the left (`functools.reduce(function, iterable[, initializer])¶`,
/// `class subprocess.Popen(args, ...)¶`, `@functools.lru_cache(user_function)¶`) or indented
/// under its class (`  Popen.poll()¶`, `  > body(master)¶`). The nesting depth and the dotted
/// name.
fn api_entry(line: &str) -> Option<(usize, &str)> {
    let body = line.strip_suffix('¶')?;
    let sig = body.trim_start_matches([' ', '>']);
    // Two spaces a level; a `>` (a quoted block of members) is no level of its own.
    let depth = body[..body.len() - sig.len()].matches(' ').count() / 2;
    let mut rest = sig.trim_start_matches('@');
    while let Some(r) = ENTRY_KEYWORDS.iter().find_map(|k| rest.strip_prefix(k)) {
        rest = r;
    }
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(rest.len());
    let (name, after) = rest.split_at(end);
    let well_formed =
        name.starts_with(|c: char| c.is_alphabetic() || c == '_') && !name.ends_with('.') && !name.contains("..");
    // What may follow the name: its parameters, a type, a value, nothing (a constant, an
    // attribute) where the name is a code name (`subprocess.PIPE`, `max_size`) or a member.
    let code_like = name.contains(['.', '_']) || name.chars().skip(1).any(char::is_uppercase) || depth > 0;
    let follows = after.starts_with(['(', '[', ':'])
        || after.starts_with(" = ")
        || after.starts_with(" -> ")
        || (after.is_empty() && code_like);
    (well_formed && follows).then_some((depth, name))
}

fn line_text<'t>(text: &'t str, lines: &Lines, i: usize) -> &'t str {
    let (s, e) = lines.range(i);
    text[s..e].trim_end_matches(['\n', '\r'])
}

/// `## Title ##` → (2, "Title").
fn atx(line: &str, marker: char) -> Option<(usize, String)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let l = &line[indent..];
    let level = l.len() - l.trim_start_matches(marker).len();
    if level == 0 || level > 6 {
        return None;
    }
    let rest = &l[level..];
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let mut title = rest.trim();
    let stripped = title.trim_end_matches(marker);
    if stripped.is_empty() || stripped.ends_with([' ', '\t']) {
        title = stripped.trim_end();
    }
    if title.is_empty() {
        return None;
    }
    Some((level, inline_text(title)))
}

/// The longest title whose marks [`inline_text`] and [`rst_text`] read.
const MAX_TITLE_BYTES: usize = 1000;

/// The words of a Markdown title as a reader sees them: images (badges) and HTML tags dropped,
/// a link's text kept and its target dropped, entities (`&emsp;`) as spaces, code spans and
/// emphasis without their marks. A title that is nothing but images keeps their alt texts; one
/// with no words at all stays as written.
fn inline_text(title: &str) -> String {
    // A title longer than any heading (a generated line of brackets) stays as written: reading
    // its links nests as deep as its brackets.
    if title.len() > MAX_TITLE_BYTES {
        return title.to_string();
    }
    for keep_images in [false, true] {
        let text = plain(title, keep_images);
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.chars().any(char::is_alphanumeric) {
            return text;
        }
    }
    title.to_string()
}

/// [`inline_text`] before its fallbacks: images as their alt text or as nothing.
fn plain(title: &str, keep_images: bool) -> String {
    let mut out = String::with_capacity(title.len());
    let mut rest = title;
    while let Some(c) = rest.chars().next() {
        let after_word = out.chars().next_back().is_some_and(char::is_alphanumeric);
        if c == '`'
            && let Some(end) = rest[1..].find('`')
        {
            // A code span as written, marks dropped.
            out.push_str(&rest[1..end + 1]);
            rest = &rest[end + 2..];
        } else if c == '!'
            && rest[1..].starts_with('[')
            && let Some((alt, after)) = link(&rest[1..])
        {
            if keep_images {
                out.push_str(&plain(&alt, keep_images));
            }
            out.push(' ');
            rest = after;
        } else if c == '['
            && let Some((text, after)) = link(rest)
        {
            out.push_str(&plain(&text, keep_images));
            rest = after;
        } else if c == '<'
            && !after_word
            && let Some(end) = rest.find('>')
            && rest[1..].starts_with(|x: char| x.is_ascii_alphabetic() || x == '/' || x == '!')
        {
            out.push(' ');
            rest = &rest[end + 1..];
        } else if c == '&'
            && let Some(end) = rest[1..].find(';').map(|e| e + 1)
            && end > 1
            && rest[1..end].chars().all(|x| x.is_ascii_alphanumeric() || x == '#')
        {
            out.push(' ');
            rest = &rest[end + 1..];
        } else {
            if !matches!(c, '`' | '*') {
                out.push(c);
            }
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The words of a reStructuredText title: roles (`:func:`), backquotes and escapes dropped
/// (``` ``attr`` ``` → `attr`, `\$ click\_` → `$ click_`).
fn rst_text(title: &str) -> String {
    if title.len() > MAX_TITLE_BYTES {
        return title.to_string();
    }
    let mut out = String::with_capacity(title.len());
    let mut chars = title.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' => {}
            '\\' => out.extend(chars.next()),
            ':' if chars.peek().is_some_and(char::is_ascii_alphabetic) => {
                // A role `:name:` right before a backquote is dropped; any other colon stays.
                let rest: String = chars.clone().collect();
                match rest.find(':') {
                    Some(end)
                        if rest[..end].chars().all(|x| x.is_ascii_alphanumeric() || x == '-')
                            && rest[end + 1..].starts_with('`') =>
                    {
                        for _ in 0..=end {
                            chars.next();
                        }
                    }
                    _ => out.push(c),
                }
            }
            _ => out.push(c),
        }
    }
    let text = out.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() { title.to_string() } else { text }
}

/// `[text](target)`, `[text][ref]` or `[text]` at the start of `s` → (text, what follows).
fn link(s: &str) -> Option<(String, &str)> {
    let mut depth = 0;
    let mut close = None;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let close = close?;
    let text = s[1..close].to_string();
    let after = &s[close + 1..];
    let target_end = |open: char, shut: char| after.strip_prefix(open).and_then(|t| t.find(shut).map(|e| &t[e + 1..]));
    let after = target_end('(', ')').or_else(|| target_end('[', ']')).unwrap_or(after);
    Some((text, after))
}

/// A code fence opener/closer: (char, run length).
fn fence(line: &str) -> Option<(char, usize)> {
    let l = line.trim_start();
    if line.len() - l.len() > 3 {
        return None;
    }
    for c in ['`', '~'] {
        let n = l.len() - l.trim_start_matches(c).len();
        if n >= 3 {
            return Some((c, n));
        }
    }
    None
}

fn underline(line: &str, c: char) -> bool {
    let l = line.trim_end();
    l.len() >= 2 && l.chars().all(|x| x == c)
}

fn markdown(text: &str, lines: &Lines, adoc: bool) -> Vec<Heading> {
    let mut out = Vec::new();
    let mut open: Option<(char, usize)> = None;
    let mut prev_text: Option<usize> = None; // previous line if it can be a setext title
    for i in 0..lines.count() {
        let line = line_text(text, lines, i);
        if let Some((c, n)) = open {
            if let Some((c2, n2)) = fence(line)
                && c2 == c
                && n2 >= n
                && line.trim().chars().all(|x| x == c)
            {
                open = None;
            }
            prev_text = None;
            continue;
        }
        if let Some(f) = fence(line) {
            open = Some(f);
            prev_text = None;
            continue;
        }
        if adoc && line.trim() == "----" {
            // AsciiDoc listing block delimiter: treat like a fence.
            open = Some(('-', 4));
            prev_text = None;
            continue;
        }
        let heading = atx(line, '#').or_else(|| if adoc { atx(line, '=') } else { None });
        if let Some((level, title)) = heading {
            out.push(Heading {
                first: i,
                title_line: i,
                level,
                title,
                entry: None,
            });
            prev_text = None;
            continue;
        }
        if let Some((depth, dotted)) = api_entry(line) {
            let (scope, name) = match dotted.rsplit_once('.') {
                Some((scope, name)) => (Some(scope.to_string()), name),
                None => (None, dotted),
            };
            out.push(Heading {
                first: i,
                title_line: i,
                level: ENTRY_LEVEL + depth,
                title: dotted.to_string(),
                entry: Some((name.to_string(), scope)),
            });
            prev_text = None;
            continue;
        }
        if let Some(p) = prev_text {
            let level = if underline(line, '=') {
                1
            } else if underline(line, '-') {
                2
            } else {
                0
            };
            if level > 0 {
                let title = inline_text(line_text(text, lines, p).trim());
                out.push(Heading {
                    first: p,
                    title_line: p,
                    level,
                    title,
                    entry: None,
                });
                prev_text = None;
                continue;
            }
        }
        let t = line.trim();
        let indent = line.len() - line.trim_start().len();
        prev_text = (!t.is_empty()
            && indent < 4
            && !t.starts_with(['-', '*', '+', '>', '|', '<'])
            && (prev_text.is_none() || i == 0 || line_text(text, lines, i - 1).trim().is_empty()))
        .then_some(i);
    }
    out
}

const RST_CHARS: &str = "=-~^\"'`#*+:._!$%&(),/;<>?@[\\]{|}";

fn rst_rule(line: &str) -> Option<char> {
    let l = line.trim_end();
    let c = l.chars().next()?;
    (RST_CHARS.contains(c) && l.chars().count() >= 2 && l.chars().all(|x| x == c)).then_some(c)
}

fn rst(text: &str, lines: &Lines) -> Vec<Heading> {
    let mut out = Vec::new();
    let mut styles: Vec<(char, bool)> = Vec::new();
    let n = lines.count();
    let mut i = 0;
    while i + 1 < n {
        let title = line_text(text, lines, i);
        let under = line_text(text, lines, i + 1);
        let tlen = title.trim_end().chars().count();
        let ok_title = !title.trim().is_empty() && !title.starts_with([' ', '\t']) && rst_rule(title).is_none();
        if ok_title
            && let Some(c) = rst_rule(under)
            && under.trim_end().chars().count() >= tlen
        {
            let over = i > 0
                && rst_rule(line_text(text, lines, i - 1)) == Some(c)
                && line_text(text, lines, i - 1).trim_end().chars().count() >= tlen;
            let before_ok = i == 0 || over || line_text(text, lines, i - 1).trim().is_empty();
            if before_ok {
                let style = (c, over);
                let level = match styles.iter().position(|&s| s == style) {
                    Some(p) => p + 1,
                    None => {
                        styles.push(style);
                        styles.len()
                    }
                };
                let first = if over { i - 1 } else { i };
                out.push(Heading {
                    first,
                    title_line: i,
                    level,
                    title: rst_text(title.trim()),
                    entry: None,
                });
                i += 2;
                continue;
            }
        }
        i += 1;
    }
    out
}

pub(crate) fn headings(text: &str, style: Style) -> Vec<Symbol> {
    let lines = Lines::new(text);
    let hs = match style {
        Style::Markdown => markdown(text, &lines, false),
        Style::AsciiDoc => markdown(text, &lines, true),
        Style::Rst => rst(text, &lines),
    };
    let mut out = Vec::with_capacity(hs.len());
    // Stack of (level, title).
    let mut stack: Vec<(usize, String)> = Vec::new();
    for (k, h) in hs.iter().enumerate() {
        let end_line = hs[k + 1..]
            .iter()
            .find(|n| n.level <= h.level)
            .map(|n| n.first)
            .unwrap_or(lines.count());
        // Runs until the line before the next heading of the same or higher level.
        let last = end_line.saturating_sub(1).max(h.title_line);
        while stack.last().is_some_and(|(l, _)| *l >= h.level) {
            stack.pop();
        }
        let (byte_start, _) = lines.range(h.first);
        let (_, byte_end) = lines.range(last);
        let (name, scope) = match &h.entry {
            Some((name, scope)) => (
                name.clone(),
                scope.clone().or_else(|| stack.last().map(|(_, t)| t.clone())),
            ),
            None => (h.title.clone(), stack.last().map(|(_, t)| t.clone())),
        };
        out.push(Symbol {
            name,
            kind: SymbolKind::Section,
            scope,
            line_start: h.first as u32 + 1,
            line_end: last as u32 + 1,
            name_line: h.title_line as u32 + 1,
            byte_start,
            byte_end,
        });
        stack.push((h.level, h.title.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sphinx_pages_reference_entries_are_sections_named_by_their_code_names() {
        let page = "# functools — Higher-order functions¶\n\nThe module.\n\n\
                    @functools.lru_cache(user_function)¶\n\n  Decorator to wrap a function.\n\n\
                    class functools.partialmethod(func, /, *args)¶\n\n  A descriptor.\n\n\
                    \x20 partialmethod.func¶\n\n  The function.\n\n\
                    \x20 > body(master)¶\n\n  Nested.\n\n\
                    subprocess.PIPE¶\n\n  A constant.\n\n\
                    Table 1 Built-in names¶\n\n\
                    ```\nfake.entry(x)¶\n```\n\n\
                    ## Examples¶\n\nText.\n";
        let got: Vec<(String, Option<String>, u32, u32)> = headings(page, Style::Markdown)
            .into_iter()
            .map(|s| (s.name, s.scope, s.line_start, s.line_end))
            .collect();
        let f = "functools".to_string();
        assert_eq!(
            got,
            [
                ("functools — Higher-order functions¶".to_string(), None, 1, 33),
                ("lru_cache".to_string(), Some(f.clone()), 5, 8),
                ("partialmethod".to_string(), Some(f.clone()), 9, 20),
                ("func".to_string(), Some("partialmethod".to_string()), 13, 16),
                ("body".to_string(), Some("functools.partialmethod".to_string()), 17, 20),
                // To the next heading: the caption and the fenced line are no entries.
                ("PIPE".to_string(), Some("subprocess".to_string()), 21, 30),
                (
                    "Examples¶".to_string(),
                    Some("functools — Higher-order functions¶".to_string()),
                    31,
                    33
                ),
            ]
        );
        assert_eq!(api_entry("plain prose sentence¶"), None);
        assert_eq!(api_entry("Listing¶"), None);
        assert_eq!(
            api_entry("exception subprocess.CalledProcessError¶"),
            Some((0, "subprocess.CalledProcessError"))
        );
    }

    #[test]
    fn titles_are_the_words_a_reader_sees() {
        let t = |s: &str| atx(s, '#').unwrap().1;
        assert_eq!(
            t("# Serde JSON &emsp; [![Build Status]][actions] [![Latest Version]][crates.io]"),
            "Serde JSON"
        );
        assert_eq!(
            t(r#"# <img src="logo.png" alt="RxJS Logo" width="86"> RxJS: Reactive Extensions"#),
            "RxJS: Reactive Extensions"
        );
        assert_eq!(
            t("## [7.8.1](https://github.com/reactivex/rxjs/compare/7.8.0...7.8.1) (2023-04-26)"),
            "7.8.1 (2023-04-26)"
        );
        assert_eq!(
            t("### Use `url_for` with **care** [here][ref]"),
            "Use url_for with care here"
        );
        assert_eq!(t("## Tom & Jerry"), "Tom & Jerry");
        assert_eq!(t("## `Vec<T>` and Option<U>, `*ptr`"), "Vec<T> and Option<U>, *ptr");
        assert_eq!(t("## a < b and c > d"), "a < b and c > d");
        // Nothing but an image: its alt text; nothing readable at all: as written.
        assert_eq!(t("# ![Project logo](logo.svg)"), "Project logo");
        assert_eq!(t("# [![](x.svg)](y)"), "[![](x.svg)](y)");
        assert_eq!(t("## [unclosed link"), "[unclosed link");
        // A generated line of brackets is no title to read: as written, at once.
        let deep = format!("# {}x{}", "[".repeat(200_000), "]".repeat(200_000));
        assert_eq!(t(&deep), deep[2..]);
        let colons = ":a".repeat(100_000);
        assert_eq!(rst_text(&colons), colons);
    }

    #[test]
    fn rst_titles_lose_their_marks() {
        assert_eq!(
            rst_text("API Reference for the ``attr`` Namespace"),
            "API Reference for the attr Namespace"
        );
        assert_eq!(rst_text("\\$ click\\_"), "$ click_");
        assert_eq!(
            rst_text("Using :func:`attr.s` well: a note"),
            "Using attr.s well: a note"
        );
        assert_eq!(rst_text("``"), "``");
    }
}
