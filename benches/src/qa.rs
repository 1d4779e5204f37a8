//! The QA retrieval benchmark's scoring: question files, gold locations, hits, and the grep
//! baseline (every word of the question that some file defines → its first definition).
//!
//! A question file is JSON lines: `{"question": "...", "gold": ["path:line", "path:a-b",
//! "path"], "answerable": true}` or `{"question": "...", "answerable": false}`. Gold paths are
//! relative to the code base's root; a stored path matches when it equals the gold path or ends
//! with `/` + it.

use std::collections::BTreeSet;

use serde::Deserialize;

/// One question of a set.
#[derive(Debug, Clone, Deserialize)]
pub struct QaQuestion {
    /// The question.
    pub question: String,
    /// Where the answer is.
    #[serde(default)]
    pub gold: Vec<String>,
    /// Whether the code base answers it.
    #[serde(default = "yes")]
    pub answerable: bool,
}

fn yes() -> bool {
    true
}

/// Parse a question file (JSON lines; blank lines and `//` comments skipped).
pub fn parse_questions(text: &str) -> Result<Vec<QaQuestion>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with("//") {
            continue;
        }
        let q: QaQuestion = serde_json::from_str(t).map_err(|e| format!("line {}: {e}", i + 1))?;
        if q.answerable && q.gold.is_empty() {
            return Err(format!("line {}: an answerable question needs `gold`", i + 1));
        }
        out.push(q);
    }
    Ok(out)
}

/// A gold location: a path and, optionally, a 1-based inclusive line range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gold {
    /// Path relative to the code base root.
    pub path: String,
    /// Lines, if given.
    pub lines: Option<(u64, u64)>,
}

impl Gold {
    /// `path`, `path:line` or `path:a-b`.
    pub fn parse(s: &str) -> Gold {
        if let Some((p, rest)) = s.rsplit_once(':') {
            let range = match rest.split_once('-') {
                Some((a, b)) => a.parse().ok().zip(b.parse().ok()),
                None => rest.parse().ok().map(|l| (l, l)),
            };
            if let Some(r) = range {
                return Gold {
                    path: p.to_string(),
                    lines: Some(r),
                };
            }
        }
        Gold {
            path: s.to_string(),
            lines: None,
        }
    }

    /// Whether stored `path` is this gold's file.
    pub fn path_matches(&self, path: &str) -> bool {
        let g = self.path.trim_start_matches("./");
        path == g || path.ends_with(&format!("/{g}"))
    }

    /// Whether a quoted line `line` of `path` hits this gold.
    pub fn hits_line(&self, path: &str, line: u64) -> bool {
        self.path_matches(path) && self.lines.is_none_or(|(a, b)| a <= line && line <= b)
    }

    /// Whether a cited range of `path` holds this gold.
    pub fn hits_range(&self, path: &str, start: u64, end: u64) -> bool {
        self.path_matches(path) && self.lines.is_none_or(|(a, b)| start <= b && a <= end)
    }
}

/// A ranked list of quoted lines hits the gold within the first `k`.
pub fn hit_at(golds: &[Gold], lines: &[(String, u64)], k: usize) -> bool {
    lines
        .iter()
        .take(k)
        .any(|(p, l)| golds.iter().any(|g| g.hits_line(p, *l)))
}

/// Whether a question names code as code: backticks, `snake_case`, `camelCase`, `a.b`, `a::b`,
/// `f()` (the rest are written in words only).
pub fn names_code(q: &str) -> bool {
    q.contains('`')
        || q.split(|c: char| c.is_whitespace() || "\"',?;!()".contains(c))
            .any(|w| {
                let w = w.trim_end_matches(['.', ':']);
                let inner_upper = w.chars().skip(1).any(char::is_uppercase) && w.chars().any(char::is_lowercase);
                let dotted = w
                    .split_once('.')
                    .is_some_and(|(a, b)| a.len() > 1 && b.len() > 1 && a.chars().all(char::is_alphanumeric));
                (w.contains('_') && w.chars().any(char::is_alphanumeric)) || inner_upper || dotted || w.contains("::")
            })
        || q.contains("()")
}

/// The words of a question as the grep baseline takes them: runs of letters, digits and `_`.
fn question_words(q: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    q.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| w.len() >= 2)
        .map(str::to_string)
        .filter(|w| seen.insert(w.clone()))
        .collect()
}

/// Keywords that introduce a definition, for the baseline.
const DEFINERS: &[&str] = &[
    "def",
    "class",
    "fn",
    "struct",
    "enum",
    "trait",
    "function",
    "func",
    "interface",
    "type",
    "impl",
];

/// The name a line defines, if it is `[modifiers] DEFINER NAME` (the grep baseline's pattern).
fn defined_name(line: &str) -> Option<&str> {
    let mut line = line.trim_start();
    // `pub(crate)`, `pub(super)`: one modifier.
    if let Some(rest) = line.strip_prefix("pub(") {
        line = rest.split_once(')').map_or(rest, |(_, r)| r);
    }
    // A Go method, `func (c *Command) Name(`: the receiver goes, the name stays.
    if let Some((_, rest)) = line.strip_prefix("func (").and_then(|r| r.split_once(')')) {
        let rest = rest.trim_start();
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        return (end > 0).then_some(&rest[..end]);
    }
    let mut toks = line
        .split(|c: char| c.is_whitespace() || "(<{:;=,".contains(c))
        .filter(|t| !t.is_empty());
    loop {
        let t = toks.next()?;
        if DEFINERS.contains(&t) {
            let name = toks.next()?;
            let end = name
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
                .unwrap_or(name.len());
            return (end > 0).then_some(&name[..end]);
        }
        let modifier = matches!(
            t,
            "pub"
                | "pub(crate)"
                | "export"
                | "async"
                | "static"
                | "public"
                | "private"
                | "protected"
                | "final"
                | "abstract"
                | "default"
                | "unsafe"
                | "const"
                | "extern"
        ) || t.starts_with("pub(");
        if !modifier {
            return None;
        }
    }
}

/// The grep baseline: for every word of the question, in order, that some document defines
/// (`def/class/fn/struct/… WORD`), its first definition (documents in path order). Empty: it
/// abstains.
pub fn grep_baseline(question: &str, docs: &[(String, String)]) -> Vec<(String, u64)> {
    let mut order: Vec<&(String, String)> = docs.iter().collect();
    order.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    for w in question_words(question) {
        'found: for (path, text) in &order {
            for (i, line) in text.lines().enumerate() {
                if defined_name(line) == Some(w.as_str()) {
                    out.push((path.clone(), i as u64 + 1));
                    break 'found;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golds_parse_and_match() {
        let g = Gold::parse("src/click/core.py:812");
        assert_eq!(g.lines, Some((812, 812)));
        assert!(g.hits_line("click/src/click/core.py", 812));
        assert!(!g.hits_line("click/src/click/core.py", 813));
        assert!(!g.hits_line("click/src/click/xcore.py", 812));
        assert!(g.hits_range("click/src/click/core.py", 800, 900));
        let g = Gold::parse("src/a.rs:10-11");
        assert!(g.hits_line("src/a.rs", 11));
        let g = Gold::parse("docs/why.rst");
        assert!(g.lines.is_none() && g.hits_line("x/docs/why.rst", 3));
    }

    #[test]
    fn questions_naming_code_are_told() {
        assert!(names_code("What does `version_option` do?"));
        assert!(names_code("How does get_current_context work?"));
        assert!(names_code("What does Layer.prototype.match do?"));
        assert!(names_code("What does toml_edit::de::from_str return?"));
        assert!(names_code("What does HelpFormatter do?"));
        assert!(!names_code("How is a pager program chosen for showing long output?"));
        assert!(!names_code("What happens when a view raises an exception, e.g. a 404?"));
    }

    #[test]
    fn questions_parse() {
        let qs = parse_questions(
            "{\"question\": \"a?\", \"gold\": [\"x.py:1\"]}\n\n{\"question\": \"b?\", \"answerable\": false}\n",
        )
        .unwrap();
        assert_eq!(qs.len(), 2);
        assert!(qs[0].answerable && !qs[1].answerable);
        assert!(parse_questions("{\"question\": \"a?\"}").is_err());
    }

    #[test]
    fn the_baseline_finds_first_definitions_of_question_words() {
        let docs = vec![
            (
                "b.py".to_string(),
                "x = url_for()\ndef url_for(x):\n    pass\n".to_string(),
            ),
            ("a.rs".to_string(), "pub fn render() {}\nstruct Thing;\n".to_string()),
        ];
        assert_eq!(
            grep_baseline("What does url_for do with a Thing?", &docs),
            [("b.py".to_string(), 2), ("a.rs".to_string(), 2)]
        );
        assert!(grep_baseline("nothing here", &docs).is_empty());
        assert_eq!(defined_name("pub(crate) async fn go(x: u8)"), Some("go"));
        assert_eq!(defined_name("export default function App() {"), Some("App"));
        assert_eq!(defined_name("let x = 1;"), None);
        assert_eq!(
            defined_name("func (c *Command) Traverse(args []string) error {"),
            Some("Traverse")
        );
        assert_eq!(
            defined_name("func ExactArgs(n int) PositionalArgs {"),
            Some("ExactArgs")
        );
        assert_eq!(defined_name("func (c *Command) (x)"), None);
    }
}
