//! Wrappers: a definition whose body only hands on to another (`gzopen` → `gz_open`,
//! `crc32_combine` → `crc32_combine64`, `Router.Walk` → `Router.walk`). A question that names the
//! wrapper as code asks about what it does, and the one it calls is where that is done.

use crate::retrieve::{Candidate, UnitKey, by_score};

/// A wrapper the question names as code and the definitions of what it calls.
pub(crate) struct Wrapped {
    /// The wrapper's unit.
    pub wrapper: UnitKey,
    /// The units of the definitions it calls (one name may be defined in several files).
    pub callees: Vec<UnitKey>,
}

/// Puts what each wrapper calls right before the wrapper where it ranked below it (`cands` best
/// first, rank scores final): the wrapper's body says nothing but the call, so what a question
/// asks about it is read in the callee (`gzopen` → `gz_open`, `get_u32` → `buf_get_impl!`).
pub(crate) fn callees_first(wrapped: &[Wrapped], cands: &mut [Candidate]) {
    let mut moved = false;
    for w in wrapped {
        let Some(score) = cands
            .iter()
            .find(|c| c.doc_id == w.wrapper.0 && c.seq == w.wrapper.1)
            .map(|c| c.score)
        else {
            continue;
        };
        for c in cands.iter_mut() {
            if c.score < score && w.callees.iter().any(|(d, s)| *d == c.doc_id && *s == c.seq) {
                c.score = score + CALLEE_AHEAD;
                moved = true;
            }
        }
    }
    if moved {
        cands.sort_by(by_score);
    }
}

/// How far ahead of its wrapper a callee is put.
const CALLEE_AHEAD: f32 = 0.01;

/// Most lines of code (not comments, not the head, not a lone closing brace) a wrapper's body
/// has.
const MAX_BODY_LINES: usize = 2;

/// Words before `(` that are not calls.
const NOT_CALLS: &[&str] = &[
    "if", "for", "while", "switch", "return", "sizeof", "catch", "match", "await", "new", "typeof", "assert", "not",
    "and", "or", "in", "print", "super", "func", "function", "fn", "def", "lambda", "elif", "defined", "yield",
];

/// The one function a definition's unit `text` calls, when its body is no more than
/// [`MAX_BODY_LINES`] lines with one distinct call in them and that call is not `own` (the
/// definition's own name; a call to itself is recursion, not a wrapper).
pub(crate) fn wrapped_call<'t>(text: &'t str, own: &str) -> Option<&'t str> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    // The head: up to the line that opens the body (`{`, or `:` for Python), or that holds the
    // whole definition (`fn f() { g() }`, `def f(): return g()`).
    let mut body: Vec<&str> = Vec::new();
    let mut in_head = true;
    let mut in_block_comment = false;
    let mut in_docstring: Option<&str> = None;
    for l in lines.by_ref() {
        if in_head {
            if let Some((_, rest)) = split_head(l) {
                in_head = false;
                if !rest.is_empty() {
                    body.push(rest);
                }
            }
            continue;
        }
        if let Some(q) = in_docstring {
            if l.contains(q) {
                in_docstring = None;
            }
            continue;
        }
        if in_block_comment {
            if l.contains("*/") {
                in_block_comment = false;
            }
            continue;
        }
        if l.starts_with("/*") {
            in_block_comment = !l.contains("*/");
            continue;
        }
        if let Some(q) = ["\"\"\"", "'''"].into_iter().find(|q| l.starts_with(q)) {
            if l.len() < 6 || !l[3..].contains(q) {
                in_docstring = Some(q);
            }
            continue;
        }
        if l.starts_with("//") || l.starts_with('#') || l.starts_with('*') || l.chars().all(|c| "{}();".contains(c)) {
            continue;
        }
        body.push(l);
        if body.len() > MAX_BODY_LINES {
            return None;
        }
    }
    if in_head || body.is_empty() {
        return None;
    }
    let mut callee: Option<&str> = None;
    for l in body {
        for name in calls(l) {
            if name == own || NOT_CALLS.contains(&name) {
                continue;
            }
            match callee {
                Some(c) if c != name => return None,
                _ => callee = Some(name),
            }
        }
    }
    callee
}

/// A definition's head line split at what opens its body: `(head, rest of the line)`.
fn split_head(line: &str) -> Option<(&str, &str)> {
    if let Some(i) = line.find('{') {
        return Some((&line[..i], line[i + 1..].trim()));
    }
    // Python: `def f(x):`, `def f(x) -> int:` (a `:` after the last `)`).
    if line.starts_with("def ") || line.starts_with("async def ") {
        let close = line.rfind(')')?;
        let colon = close + line[close..].find(':')?;
        return Some((&line[..colon], line[colon + 1..].trim()));
    }
    None
}

/// The names `line` calls: an identifier right before `(` (or a macro's `!(`), after a
/// separator, `.` or `::`, and not a cast's type (`(z_off64_t)len`).
fn calls(line: &str) -> Vec<&str> {
    let b = line.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$';
    let mut out = Vec::new();
    for (i, &c) in b.iter().enumerate() {
        if c != b'(' {
            continue;
        }
        let mut end = i;
        if end > 0 && b[end - 1] == b'!' {
            end -= 1;
        }
        let mut start = end;
        while start > 0 && ident(b[start - 1]) {
            start -= 1;
        }
        if start == end || b[start].is_ascii_digit() {
            continue;
        }
        out.push(&line[start..end]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_call_in_a_short_body_is_a_wrapper() {
        let c = "uLong ZEXPORT crc32_combine(uLong crc1, uLong crc2, z_off_t len2) {\n    return crc32_combine64(crc1, crc2, (z_off64_t)len2);\n}";
        assert_eq!(wrapped_call(c, "crc32_combine"), Some("crc32_combine64"));
        let go = "func (r *Router) Walk(walkFn WalkFunc) error {\n\treturn r.walk(walkFn, []*Route{})\n}";
        assert_eq!(wrapped_call(go, "Walk"), Some("walk"));
        let rust = "    fn get_u32(&mut self) -> u32 {\n        buf_get_impl!(self, u32::from_be_bytes);\n    }";
        assert_eq!(wrapped_call(rust, "get_u32"), Some("buf_get_impl"));
        let py = "def url_for(endpoint, **values):\n    \"\"\"Generate a URL.\n\n    More.\n    \"\"\"\n    return current_app.url_for(endpoint, **values)\n";
        // A method of the same name elsewhere (`current_app.url_for`) is not told from recursion.
        assert_eq!(wrapped_call(py, "url_for"), None);
        let py = "def walk(top):\n    \"\"\"Walk a tree.\"\"\"\n    return _walk(top, True)\n";
        assert_eq!(wrapped_call(py, "walk"), Some("_walk"));
        let js = "Router.prototype.use = function use(fn) {\n  // hand on\n  return this.handle(fn);\n};";
        assert_eq!(wrapped_call(js, "use"), Some("handle"));
    }

    #[test]
    fn what_a_wrapper_calls_comes_right_before_it() {
        use crate::retrieve::tests::unit;
        let mut cands = vec![
            unit(
                "gzopen",
                "gzFile ZEXPORT gzopen(const char *path, const char *mode) {\n    return gz_open(path, -1, mode);\n}",
                25.0,
            ),
            unit(
                "gzread",
                "int ZEXPORT gzread(gzFile file, voidp buf, unsigned len) {\n    ...\n}",
                22.0,
            ),
            unit(
                "gz_open",
                "local gzFile gz_open(const void *path, int fd, const char *mode) {\n    ...\n}",
                19.0,
            ),
            unit("gz_init", "local int gz_init(gz_statep state) {\n    ...\n}", 18.0),
        ];
        let key = |c: &Candidate| (c.doc_id.clone(), c.seq);
        let wrapped = vec![Wrapped {
            wrapper: key(&cands[0]),
            callees: vec![key(&cands[2])],
        }];
        callees_first(&wrapped, &mut cands);
        let order: Vec<&str> = cands.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(order, ["gz_open", "gzopen", "gzread", "gz_init"]);
        // A callee already ahead stays where it is; a wrapper no longer among the units moves
        // nothing.
        let before: Vec<f32> = cands.iter().map(|c| c.score).collect();
        callees_first(&wrapped, &mut cands);
        let gone = vec![Wrapped {
            wrapper: ("elsewhere".into(), 0),
            callees: vec![key(&cands[3])],
        }];
        callees_first(&gone, &mut cands);
        assert_eq!(cands.iter().map(|c| c.score).collect::<Vec<_>>(), before);
    }

    #[test]
    fn bodies_that_do_more_are_not() {
        // Two different calls.
        let c = "int f(int a) {\n    g(a);\n    return h(a);\n}";
        assert_eq!(wrapped_call(c, "f"), None);
        // Too long.
        let long = "int f(int a) {\n    a += 1;\n    a *= 2;\n    return g(a);\n}";
        assert_eq!(wrapped_call(long, "f"), None);
        // No call; a call to itself; no head.
        assert_eq!(wrapped_call("int f(int a) {\n    return a + 1;\n}", "f"), None);
        assert_eq!(wrapped_call("int f(int a) {\n    return f(a - 1);\n}", "f"), None);
        assert_eq!(wrapped_call("x = g(1)", "x"), None);
        assert_eq!(wrapped_call("", "f"), None);
    }
}
