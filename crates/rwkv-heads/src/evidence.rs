//! Evidence: the few lines of the retrieved segments that answer a question, quoted exactly
//! from the stored documents with their 1-based line numbers.
//!
//! Lines are scored in two steps. First by the words they share with the question: an
//! identifier or path named in the question counts most, a line that *defines* such a name
//! (`fn X`, `struct X`, `class X`, `def X`, `X = …`, a heading) counts more, and question words
//! count by how rare they are among the candidate lines. Then the best few are scored by the
//! model from the saved state: how much reading the line raises the log-likelihood of the
//! question (nats per question token), which favours the lines the model itself connects to
//! the question.

use std::collections::{BTreeMap, BTreeSet};

use rwkv_model::sample::log_softmax_at;
use rwkv_model::{Logits, State};
use serde::Serialize;

use crate::Result;
use crate::library::{Candidate, Library};

/// One line that answers the question.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Evidence {
    /// Path or URL of the document.
    pub path: String,
    /// 1-based line number in the stored document.
    pub line: u64,
    /// That line of the stored document, exactly (no line terminator).
    pub text: String,
    /// How well it answers (higher is better): word score plus the model's gain.
    pub score: f32,
    /// The lines just before it (`line - before.len()` …), for a block like `rg -C`.
    #[serde(skip)]
    pub before: Vec<String>,
    /// The lines just after it.
    #[serde(skip)]
    pub after: Vec<String>,
}

/// Lines of evidence returned.
pub const EVIDENCE_LINES: usize = 3;
/// Lines scored by the model after the word score.
const MODEL_SCORED: usize = 8;
/// Lines of context on each side of a line of evidence.
const CONTEXT: usize = 1;
/// Longest line considered (bytes): minified code and data lines are no evidence.
const MAX_LINE: usize = 400;

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how", "i", "in", "is", "it",
    "its", "of", "on", "or", "that", "the", "this", "to", "used", "use", "uses", "using", "was", "what", "when",
    "where", "which", "who", "why", "with", "work", "works", "you", "me", "tell", "about", "there", "here",
];

/// Keywords that introduce a definition in common languages.
const DEFINERS: &[&str] = &[
    "fn",
    "struct",
    "enum",
    "trait",
    "type",
    "impl",
    "mod",
    "const",
    "static",
    "let",
    "class",
    "def",
    "function",
    "interface",
    "module",
    "func",
    "var",
    "val",
    "macro_rules!",
    "#define",
    "package",
    "record",
    "union",
];

/// Words of `s`: runs of alphanumerics and `_`.
fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

/// The parts of an identifier: split at `_` and at lower→upper case changes, lowercased.
fn parts(w: &str) -> Vec<String> {
    let mut out = Vec::new();
    for piece in w.split('_').filter(|p| !p.is_empty()) {
        let mut cur = String::new();
        let mut prev_lower = false;
        for c in piece.chars() {
            if c.is_uppercase() && prev_lower && !cur.is_empty() {
                out.push(std::mem::take(&mut cur).to_lowercase());
            }
            prev_lower = c.is_lowercase() || c.is_ascii_digit();
            cur.push(c);
        }
        if !cur.is_empty() {
            out.push(cur.to_lowercase());
        }
    }
    out
}

/// What the question asks about: names (identifiers as written, lowercased) and plain words.
struct Query {
    /// Identifiers and paths' last components the question names, lowercased.
    names: BTreeSet<String>,
    /// Content words (and identifier parts), lowercased.
    terms: BTreeSet<String>,
}

impl Query {
    fn new(question: &str) -> Query {
        let mut names = BTreeSet::new();
        let mut terms = BTreeSet::new();
        for w in words(question) {
            let lower = w.to_lowercase();
            let is_name = w.contains('_')
                || w.chars().skip(1).any(char::is_uppercase) && w.chars().any(char::is_lowercase)
                || w.chars().all(|c| c.is_uppercase() || c == '_') && w.len() > 1
                || w.chars().next().is_some_and(char::is_uppercase) && w.len() >= 2 && !is_first_word(question, w);
            if is_name {
                names.insert(lower.clone());
            }
            if !STOP_WORDS.contains(&lower.as_str()) && lower.len() > 1 {
                terms.insert(lower);
            }
            for p in parts(w) {
                if !STOP_WORDS.contains(&p.as_str()) && p.len() > 1 {
                    terms.insert(p);
                }
            }
        }
        // `backticked` words are names whatever their case.
        for (i, seg) in question.split('`').enumerate() {
            if i % 2 == 1 {
                for w in words(seg) {
                    names.insert(w.to_lowercase());
                }
            }
        }
        Query { names, terms }
    }
}

/// Whether `w` is the question's first word (capitalised as a sentence start, not a name).
fn is_first_word(question: &str, w: &str) -> bool {
    words(question).next() == Some(w)
}

/// How strongly `line` defines one of `names` (0 when it does not): a definer keyword followed
/// by the name (an `impl` block counts less than the type's own definition), `name =` or
/// `name:` at the start of the line, or a heading that contains it.
fn definition(line: &str, names: &BTreeSet<String>) -> f32 {
    let t = line.trim_start();
    if t.starts_with('#') && !t.starts_with("#[") && !t.starts_with("#!") && !t.starts_with("#define") {
        return if words(t).any(|w| names.contains(&w.to_lowercase())) {
            4.0
        } else {
            0.0
        };
    }
    let toks: Vec<&str> = t
        .split(|c: char| c.is_whitespace() || "(<{:;=,".contains(c))
        .filter(|s| !s.is_empty())
        .collect();
    for (i, tok) in toks.iter().enumerate() {
        let bare = tok.trim_matches(|c: char| !(c.is_alphanumeric() || c == '_' || c == '!' || c == '#'));
        if DEFINERS.contains(&bare)
            && let Some(next) = toks.get(i + 1)
        {
            let name = next.trim_matches(|c: char| !(c.is_alphanumeric() || c == '_'));
            if names.contains(&name.to_lowercase()) {
                return if bare == "impl" { 3.0 } else { 6.0 };
            }
        }
    }
    // `NAME = …` / `NAME: …` at the start of the line (assignments, keys, fields).
    let first: String = t.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    let rest = t[first.len()..].trim_start();
    let assigns = !first.is_empty()
        && names.contains(&first.to_lowercase())
        && (rest.starts_with('=') && !rest.starts_with("==") || rest.starts_with(':') && !rest.starts_with("::"));
    if assigns { 4.0 } else { 0.0 }
}

/// Whether `line` defines one of `names`.
#[cfg(test)]
fn defines(line: &str, names: &BTreeSet<String>) -> bool {
    definition(line, names) > 0.0
}

/// A line of a candidate segment, with its word score.
struct Scored {
    doc: usize,
    line: usize,
    score: f32,
}

impl Library<'_> {
    /// The lines of `cands` (their stored documents) that best answer `question`, best first;
    /// `state` is the state the answer resumes (the model's scores are taken from it).
    pub fn evidence(&self, question: &str, cands: &[Candidate], state: &State) -> Result<Vec<Evidence>> {
        let q = Query::new(question);
        if q.terms.is_empty() && q.names.is_empty() {
            return Ok(Vec::new());
        }
        // The stored text of each candidate's document, once.
        let mut docs: Vec<(String, Vec<String>)> = Vec::new();
        let mut doc_of: BTreeMap<&str, usize> = BTreeMap::new();
        let mut ranges: Vec<(usize, u64, u64)> = Vec::new();
        for c in cands {
            let d = match doc_of.get(c.doc_id.as_str()) {
                Some(&d) => d,
                None => {
                    let Some(text) = self.text_of(&c.doc_id)? else { continue };
                    let lines = text.lines().map(str::to_string).collect();
                    docs.push((c.path.clone(), lines));
                    doc_of.insert(c.doc_id.as_str(), docs.len() - 1);
                    docs.len() - 1
                }
            };
            ranges.push((d, c.line_start.max(1), c.line_end.max(c.line_start.max(1))));
        }
        // Each line once, even when segments overlap.
        let mut seen = BTreeSet::new();
        let mut lines: Vec<(usize, usize)> = Vec::new();
        for &(d, a, b) in &ranges {
            let n = docs[d].1.len() as u64;
            for l in a..=b.min(n) {
                if seen.insert((d, l)) {
                    lines.push((d, l as usize));
                }
            }
        }
        // A definition of a name the question asks about counts wherever it lies in a
        // retrieved document, also outside the retrieved segments.
        let def_names = if q.names.is_empty() { &q.terms } else { &q.names };
        for (d, (_, text)) in docs.iter().enumerate() {
            for (i, line) in text.iter().enumerate() {
                if line.len() <= MAX_LINE && definition(line, def_names) > 0.0 && seen.insert((d, i as u64 + 1)) {
                    lines.push((d, i + 1));
                }
            }
        }
        // Rarer question words weigh more: document frequency over the candidate lines.
        let mut df: BTreeMap<&str, usize> = BTreeMap::new();
        let line_words: Vec<BTreeSet<String>> = lines
            .iter()
            .map(|&(d, l)| {
                let text = &docs[d].1[l - 1];
                let mut set: BTreeSet<String> = words(text).map(str::to_lowercase).collect();
                for w in words(text) {
                    set.extend(parts(w));
                }
                set
            })
            .collect();
        for set in &line_words {
            for t in q.terms.iter().chain(&q.names) {
                if set.contains(t) {
                    *df.entry(t.as_str()).or_default() += 1;
                }
            }
        }
        let n = lines.len().max(1) as f32;
        let mut scored: Vec<Scored> = Vec::new();
        for (i, &(d, l)) in lines.iter().enumerate() {
            let text = &docs[d].1[l - 1];
            let trimmed = text.trim();
            if trimmed.is_empty() || text.len() > MAX_LINE {
                continue;
            }
            let set = &line_words[i];
            let idf = |t: &str| (1.0 + n / (1 + df.get(t).copied().unwrap_or(0)) as f32).ln();
            let mut score = 0.0;
            for t in &q.terms {
                if set.contains(t) {
                    score += idf(t);
                }
            }
            for name in &q.names {
                if set.contains(name) {
                    score += 2.0 * idf(name);
                }
            }
            if score == 0.0 {
                continue;
            }
            // A definition of a name the question asks about; with no identifier in the
            // question (`what does evaluate do?`), of one of its content words.
            score += if q.names.is_empty() {
                definition(text, &q.terms) * 0.7
            } else {
                definition(text, &q.names)
            };
            // Documentation says what things are for.
            if ["///", "//!", "/**", "* ", "#", "\"\"\"", "--", ";;"]
                .iter()
                .any(|p| trimmed.starts_with(p))
            {
                score += 0.5;
            }
            scored.push(Scored { doc: d, line: l, score });
        }
        scored.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.doc.cmp(&b.doc))
                .then(a.line.cmp(&b.line))
        });
        scored.truncate(MODEL_SCORED);
        // The model's part: log-likelihood gain of the question after reading the line.
        let toks = self.tokenizer().encode(&format!("\n\nQuestion: {question}"));
        if toks.len() >= 2 {
            let base = self.question_logprob(state, "", &toks)?;
            for s in &mut scored {
                let line = &docs[s.doc].1[s.line - 1];
                let gain = self.question_logprob(state, &format!("\n{}", line.trim()), &toks)? - base;
                s.score += gain.clamp(-2.0, 2.0);
            }
        }
        scored.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.doc.cmp(&b.doc))
                .then(a.line.cmp(&b.line))
        });
        scored.truncate(EVIDENCE_LINES);
        Ok(scored
            .into_iter()
            .map(|s| {
                let lines = &docs[s.doc].1;
                let i = s.line - 1;
                Evidence {
                    path: docs[s.doc].0.clone(),
                    line: s.line as u64,
                    text: lines[i].clone(),
                    score: s.score,
                    before: lines[i.saturating_sub(CONTEXT)..i].to_vec(),
                    after: lines[i + 1..(i + 1 + CONTEXT).min(lines.len())].to_vec(),
                }
            })
            .collect())
    }

    /// Mean log-probability of `toks` (after their first) from `state` once `prefix` is read.
    fn question_logprob(&self, state: &State, prefix: &str, toks: &[u32]) -> Result<f32> {
        let mut st = state.clone();
        let mut all = self.tokenizer().encode(prefix);
        let start = all.len();
        all.extend_from_slice(toks);
        let logits = self.model().forward_seq(&all, &mut st, Logits::All)?;
        let v = self.model().config().vocab;
        let total: f32 = (start..all.len() - 1)
            .map(|i| log_softmax_at(&logits[i * v..(i + 1) * v], all[i + 1]))
            .sum();
        Ok(total / (all.len() - 1 - start) as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(q: &str) -> BTreeSet<String> {
        Query::new(q).names
    }

    #[test]
    fn the_question_names_identifiers_and_content_words() {
        let q = Query::new("What is fold_planned used for in the ShardRecord?");
        assert!(q.names.contains("fold_planned") && q.names.contains("shardrecord"));
        assert!(q.terms.contains("planned") && q.terms.contains("shard") && q.terms.contains("record"));
        assert!(!q.terms.contains("what") && !q.terms.contains("used"));
        assert!(names("What does `tokenize` do?").contains("tokenize"));
        assert!(!names("What does the reader do?").contains("what"));
    }

    #[test]
    fn definitions_are_told_from_uses() {
        let n = names("What is `Comparator` for? and `parse_op`, MAX_LEN");
        for line in [
            "pub struct Comparator {",
            "    fn parse_op(s: &str) -> Op {",
            "class Comparator(Base):",
            "def parse_op(x):",
            "const MAX_LEN: usize = 4;",
            "MAX_LEN = 4",
            "## Comparator",
        ] {
            assert!(defines(line, &n), "{line}");
        }
        for line in [
            "let c = Comparator::new();",
            "    parse_op(x)?;",
            "if MAX_LEN == 3 {",
            "#[derive(Comparator)]",
        ] {
            assert!(!defines(line, &n), "{line}");
        }
    }

    #[test]
    fn identifiers_split_into_parts() {
        assert_eq!(parts("foldPlanned_now"), ["fold", "planned", "now"]);
        assert_eq!(parts("HTTPServer"), ["httpserver"]);
    }
}
