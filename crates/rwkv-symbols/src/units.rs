//! Retrieval units: the text tiled along definitions.

use crate::{FileSymbols, Lines, SymbolKind};

/// A piece of a file for retrieval: whole lines, owned by at most one definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// 1-based first line.
    pub line_start: u32,
    /// 1-based last line, inclusive.
    pub line_end: u32,
    /// Byte offset of the start of `line_start`.
    pub byte_start: usize,
    /// Byte offset just past `line_end` (and its newline, if any).
    pub byte_end: usize,
    /// Index into [`FileSymbols::definitions`] of the innermost definition these lines
    /// belong to; `None` for module-level text.
    pub symbol: Option<usize>,
    /// Whether this unit holds the definition's `name_line` (its first piece).
    pub head: bool,
}

/// Whether a line is a comment, attribute or decorator that belongs to the definition
/// right below it.
pub(crate) fn leading_line(line: &str) -> bool {
    let t = line.trim_start();
    const PREFIXES: &[&str] = &["//", "/*", "*", "#[", "#![", "@", "--", ";;", "'''", "\"\"\""];
    if PREFIXES.iter().any(|p| t.starts_with(p)) {
        return true;
    }
    // `# comment`, but not `#include`/`#define`.
    t.starts_with('#') && !t[1..].starts_with(|c: char| c.is_alphabetic())
}

/// Kinds whose one-line definitions in a row are kept together in one unit.
fn small_kind(k: SymbolKind) -> bool {
    matches!(
        k,
        SymbolKind::Constant | SymbolKind::Variable | SymbolKind::Macro | SymbolKind::Type | SymbolKind::Field
    )
}

/// Tile the text into retrieval units: every line belongs to exactly one unit (except
/// runs of only blank lines, which are dropped), units in order, non-overlapping.
///
/// Each line goes to the innermost definition containing it, except that a definition
/// nested in a function of at most `2 * max_lines` lines stays that function's (see
/// [`local_definitions`]); comment, attribute and
/// decorator lines directly above a definition go to it. Runs of lines with the same
/// owner become units, split at blank lines where possible so that no unit exceeds
/// `max_lines` lines or `max_bytes` bytes unless one line does. Runs of one- or
/// two-line constants, variables, macros or type aliases are kept together (the unit
/// names the first), a module-level run of at most two non-blank lines joins a
/// following module-level unit, and a container's closing lines (`}`, `end`) join the
/// unit before them.
pub fn units(text: &str, syms: &FileSymbols, max_lines: usize, max_bytes: usize) -> Vec<Unit> {
    let max_lines = max_lines.max(1);
    let max_bytes = max_bytes.max(1);
    let lines = Lines::new(text);
    let n = lines.count();
    if n == 0 {
        return Vec::new();
    }
    let line = |i: usize| {
        let (s, e) = lines.range(i);
        &text[s..e]
    };
    let blank = |i: usize| line(i).trim().is_empty();
    let defs = &syms.definitions;
    // 0-based inclusive line range of each definition, clamped to the text.
    let span = |d: usize| {
        let s = (defs[d].line_start.max(1) as usize - 1).min(n - 1);
        let e = (defs[d].line_end.max(1) as usize - 1).clamp(s, n - 1);
        (s, e)
    };
    let mut order: Vec<usize> = (0..defs.len()).collect();
    order.sort_by_key(|&d| {
        let (s, e) = span(d);
        (s, std::cmp::Reverse(e), d)
    });
    let local = local_definitions(defs, &order, &span, max_lines);
    let mut owner: Vec<Option<usize>> = vec![None; n];
    for &d in order.iter().filter(|&&d| !local[d]) {
        let (s, e) = span(d);
        owner[s..=e].fill(Some(d));
    }
    // Comments, attributes and decorators directly above a definition join it.
    for &d in order.iter().filter(|&&d| !local[d]) {
        let (s, _) = span(d);
        let mut k = s;
        while k > 0 {
            let prev = k - 1;
            let contains = match owner[prev] {
                None => true,
                Some(o) => {
                    o != d && {
                        let (os, oe) = span(o);
                        os <= s && s <= oe && os < s
                    }
                }
            };
            // A doc block closed by `*/` one blank line above (JSDoc, Javadoc) is the
            // definition's too.
            let doc_block_above = k == s
                && blank(prev)
                && prev > 0
                && owner[prev - 1].is_none_or(|o| o != d)
                && line(prev - 1).trim_end().ends_with("*/");
            if contains && doc_block_above {
                owner[prev] = Some(d);
                k = prev;
                continue;
            }
            if !contains || blank(prev) || !leading_line(line(prev)) {
                break;
            }
            owner[prev] = Some(d);
            k = prev;
        }
    }
    // Runs of the same owner, split to the limits.
    let mut out: Vec<Unit> = Vec::new();
    let mut a = 0;
    while a < n {
        let mut b = a;
        while b + 1 < n && owner[b + 1] == owner[a] {
            b += 1;
        }
        split(a, b, &|i| line(i).len(), &blank, max_lines, max_bytes, &mut |s, e| {
            // Trim blank edges; drop blank-only pieces.
            let (mut s, mut e) = (s, e);
            while s <= e && blank(s) {
                s += 1;
            }
            while e > s && blank(e) {
                e -= 1;
            }
            if s > e || blank(s) {
                return;
            }
            let sym = owner[a];
            let head = sym.is_some_and(|d| {
                let nl = defs[d].name_line as usize;
                nl > s && nl <= e + 1
            });
            out.push(Unit {
                line_start: s as u32 + 1,
                line_end: e as u32 + 1,
                byte_start: lines.range(s).0,
                byte_end: lines.range(e).1,
                symbol: sym,
                head,
            });
        });
        a = b + 1;
    }
    merge(out, text, defs, max_lines, max_bytes)
}

/// Which definitions stay inside the function that encloses them instead of owning their own
/// lines: everything nested in a function or method of at most twice `max_lines` lines (a
/// closure, a local helper, a decorator's wrapper). Such a function is read whole, as the
/// question about it needs: cut at its local helper, its head piece would be its signature
/// alone and the rest of its body a piece without its name. Longer functions (a module wrapped
/// in one, a dispatcher with a long inner loop) keep their nested definitions as units.
/// `order` is by start line, enclosing definitions first.
fn local_definitions(
    defs: &[crate::Symbol],
    order: &[usize],
    span: &dyn Fn(usize) -> (usize, usize),
    max_lines: usize,
) -> Vec<bool> {
    let mut local = vec![false; defs.len()];
    // The definitions enclosing the current one, innermost last.
    let mut open: Vec<usize> = Vec::new();
    for &d in order {
        let (s, e) = span(d);
        while open.last().is_some_and(|&o| span(o).1 < s) {
            open.pop();
        }
        if let Some(&p) = open.last() {
            let (ps, pe) = span(p);
            let encloses = ps <= s && e <= pe;
            let callable = matches!(defs[p].kind, SymbolKind::Function | SymbolKind::Method);
            if encloses && (local[p] || (callable && pe - ps < 2 * max_lines)) {
                local[d] = true;
            }
        }
        open.push(d);
    }
    local
}

/// Cut lines `a..=b` into pieces within the limits, preferably after a blank line.
fn split(
    a: usize,
    b: usize,
    len: &dyn Fn(usize) -> usize,
    blank: &dyn Fn(usize) -> bool,
    max_lines: usize,
    max_bytes: usize,
    emit: &mut dyn FnMut(usize, usize),
) {
    let mut s = a;
    while s <= b {
        let mut e = s;
        let mut bytes = len(s);
        while e < b && e + 2 - s <= max_lines && bytes + len(e + 1) <= max_bytes {
            e += 1;
            bytes += len(e);
        }
        if e < b {
            // Cut at the last blank line in the latter two thirds of the piece.
            let floor = s + (e - s) / 3;
            if let Some(k) = (floor + 1..=e).rev().find(|&k| blank(k)) {
                e = k;
            }
        }
        emit(s, e);
        s = e + 1;
    }
}

/// Lines of only closing brackets or `end` (the tail of a container after its last member).
fn only_closers(text: &str) -> bool {
    text.lines().count() <= 3
        && text.lines().all(|l| {
            let t = l.trim();
            t.is_empty() || t == "end" || t.chars().all(|c| matches!(c, '}' | ')' | ']' | ';' | ','))
        })
}

fn nonblank_lines(text: &str) -> usize {
    text.lines().filter(|l| !l.trim().is_empty()).count()
}

fn merge(units: Vec<Unit>, text: &str, defs: &[crate::Symbol], max_lines: usize, max_bytes: usize) -> Vec<Unit> {
    let fits = |a: &Unit, b: &Unit| {
        (b.line_end - a.line_start + 1) as usize <= max_lines && b.byte_end - a.byte_start <= max_bytes
    };
    // A whole one- or two-line small definition.
    let small = |u: &Unit| {
        u.symbol.is_some_and(|d| {
            let s = &defs[d];
            u.head
                && small_kind(s.kind)
                && s.line_end - s.line_start < 2
                && u.line_start <= s.line_start
                && u.line_end >= s.line_end
        })
    };
    // Units, each with whether it holds only whole small definitions.
    let mut out: Vec<(Unit, bool)> = Vec::with_capacity(units.len());
    for u in units {
        let u_small = small(&u);
        if let Some((last, last_small)) = out.last_mut() {
            let adjacent = u.line_start == last.line_end + 1;
            let tiny_module = last.symbol.is_none()
                && u.symbol.is_none()
                && nonblank_lines(&text[last.byte_start..last.byte_end]) <= 2;
            let same_scope = match (last.symbol, u.symbol) {
                (Some(x), Some(y)) => defs[x].scope == defs[y].scope,
                _ => false,
            };
            let small_run = adjacent && same_scope && u_small && *last_small;
            let closing = adjacent && !u.head && only_closers(&text[u.byte_start..u.byte_end]);
            if (tiny_module || small_run || closing) && fits(last, &u) {
                last.line_end = u.line_end;
                last.byte_end = u.byte_end;
                continue;
            }
        }
        out.push((u, u_small));
    }
    out.into_iter().map(|(u, _)| u).collect()
}
