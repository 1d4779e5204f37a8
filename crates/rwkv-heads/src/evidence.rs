//! Evidence: the few lines of the retrieved units that answer a question, quoted exactly
//! from the stored documents with their 1-based line numbers.
//!
//! One line per unit, in the units' rank order: the name line of the definition the unit
//! belongs to (so a question about `url_for` quotes `def url_for(`), else the unit's line that
//! shares the most and rarest words with the question (an identifier named in the question
//! counts double, a line that *defines* such a name counts more). With a state to score from,
//! the model adjusts near ties: how much reading the line raises the log-likelihood of the
//! question.

use std::collections::{BTreeMap, BTreeSet};

use rwkv_model::likelihood::log_likelihood_lanes;
use rwkv_model::{Lane, State};
use serde::Serialize;

use crate::Result;
use crate::library::Library;
use crate::retrieve::Candidate;

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
/// Lines of context on each side of a line of evidence.
const CONTEXT: usize = 1;
/// Lines the context after a line of evidence may span to reach a line that is not blank (a
/// page's heading is set off by blank lines from the paragraph under it, which says what the
/// section holds).
const CONTEXT_REACH: usize = 3;

/// Where the context after line `i` (0-based) of `lines` ends (exclusive): [`CONTEXT`] lines
/// on, or further over blank lines to the nearest line with text, within [`CONTEXT_REACH`].
/// (The context before stays [`CONTEXT`] lines: over blank lines it would be the end of the
/// section or definition before.)
fn context_end(lines: &[String], i: usize) -> usize {
    let last = (i + 1 + CONTEXT).min(lines.len());
    let nearest = (i + 1..(i + 1 + CONTEXT_REACH).min(lines.len())).find(|&k| !lines[k].trim().is_empty());
    nearest.map_or(last, |k| (k + 1).max(last))
}

/// Longest line considered (bytes): minified code and data lines are no evidence.
const MAX_LINE: usize = 400;
/// Tokens of a line the model reads before the question when it scores evidence (a line's
/// start names what it defines or does; a long line would cost a second at 1.5B).
const SCORED_LINE_TOKENS: usize = 10;
/// Tokens of `\n\nQuestion: …` the model scores after each line (a long question's start).
/// With [`SCORED_LINE_TOKENS`], scoring the evidence reads at most 3 × 24 tokens: under 1 s at
/// 1.5B with the int8 fold on a 2-core CPU (~90 tokens/s).
const SCORED_QUESTION_TOKENS: usize = 14;

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

/// A line of a candidate unit, with its score.
#[derive(Clone)]
struct Scored {
    doc: usize,
    line: usize,
    score: f32,
    /// The line holds a name the question writes as code.
    names_code: bool,
}

impl Library<'_> {
    /// The lines of the retrieved units `cands` that best answer `question`, best first: for a
    /// unit of a definition (or a piece of one), its name line; otherwise the unit's line sharing the
    /// most (and rarest) words with the question. With `state` (the state the answer resumes),
    /// the lines are re-scored by the model: the gain in likelihood of the question after
    /// reading the line, which reorders lines within ties of the word score.
    pub fn evidence(&self, question: &str, cands: &[Candidate], state: Option<&State>) -> Result<Vec<Evidence>> {
        let q = Query::new(question);
        if q.terms.is_empty() && q.names.is_empty() {
            return Ok(Vec::new());
        }
        // The stored text of each candidate's document, once.
        let mut docs: Vec<(String, Vec<String>)> = Vec::new();
        let mut doc_of: BTreeMap<&str, usize> = BTreeMap::new();
        let mut units: Vec<(usize, &Candidate)> = Vec::new();
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
            units.push((d, c));
        }
        // Rarer question words weigh more: document frequency over the candidate lines.
        let mut all_lines: Vec<(usize, usize, usize)> = Vec::new(); // (unit, doc, line)
        for (u, &(d, c)) in units.iter().enumerate() {
            let n = docs[d].1.len() as u64;
            for l in c.line_start.max(1)..=c.line_end.min(n) {
                all_lines.push((u, d, l as usize));
            }
        }
        let line_words: Vec<BTreeSet<String>> = all_lines
            .iter()
            .map(|&(_, d, l)| {
                let text = &docs[d].1[l - 1];
                let mut set: BTreeSet<String> = words(text).map(str::to_lowercase).collect();
                for w in words(text) {
                    set.extend(parts(w));
                }
                set
            })
            .collect();
        let mut df: BTreeMap<&str, usize> = BTreeMap::new();
        for set in &line_words {
            for t in q.terms.iter().chain(&q.names) {
                if set.contains(t) {
                    *df.entry(t.as_str()).or_default() += 1;
                }
            }
        }
        let n = all_lines.len().max(1) as f32;
        let idf = |t: &str| (1.0 + n / (1 + df.get(t).copied().unwrap_or(0)) as f32).ln();
        // Each unit's lines by word score.
        let mut per_unit: Vec<Vec<Scored>> = vec![Vec::new(); units.len()];
        for (i, &(u, d, l)) in all_lines.iter().enumerate() {
            let text = &docs[d].1[l - 1];
            let trimmed = text.trim();
            if trimmed.is_empty() || text.len() > MAX_LINE {
                continue;
            }
            let set = &line_words[i];
            let mut score = 0.0;
            for t in &q.terms {
                if set.contains(t) {
                    score += idf(t);
                }
            }
            let mut names_code = false;
            for name in &q.names {
                if set.contains(name) {
                    score += 2.0 * idf(name);
                    names_code = true;
                }
            }
            score += if q.names.is_empty() {
                definition(text, &q.terms) * 0.7
            } else {
                definition(text, &q.names)
            };
            if score == 0.0 {
                continue;
            }
            // Documentation says what things are for.
            if ["///", "//!", "/**", "* ", "#", "\"\"\"", "--", ";;"]
                .iter()
                .any(|p| trimmed.starts_with(p))
            {
                score += 0.5;
            }
            per_unit[u].push(Scored {
                doc: d,
                line: l,
                score,
                names_code,
            });
        }
        for lines in &mut per_unit {
            lines.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.line.cmp(&b.line)));
        }
        // One line per unit in rank order (the definition's own line where the unit has it),
        // then second lines of the best units if there are fewer units than lines.
        let mut chosen: Vec<Scored> = Vec::new();
        for (u, &(d, c)) in units.iter().enumerate() {
            let n = docs[d].1.len() as u64;
            // A piece of a long definition (its doc block, a later part of its body) quotes the
            // definition's name line too: the definition is what answers. Prose is read, not
            // called: a later piece of a long section quotes its own best line (a reference
            // page's entry for the function asked about, under the page's title), and so does a
            // section whose line naming what the question writes as code is not its heading.
            let prose = c.kind == "section";
            let own_names_code = per_unit[u]
                .first()
                .is_some_and(|s| s.names_code && s.line as u64 != c.name_line);
            let name_line = (c.name_line >= 1 && c.name_line <= n)
                .then_some(c.name_line as usize)
                .filter(|&l| docs[d].1[l - 1].len() <= MAX_LINE)
                .filter(|_| !prose || (c.head && !own_names_code));
            let pick = match name_line {
                Some(l) => Some(Scored {
                    doc: d,
                    line: l,
                    score: c.score,
                    names_code: false,
                }),
                None => per_unit[u].first().map(|s| Scored {
                    doc: d,
                    line: s.line,
                    score: c.score,
                    names_code: s.names_code,
                }),
            };
            if let Some(p) = pick
                && !chosen.iter().any(|x| x.doc == p.doc && x.line == p.line)
            {
                chosen.push(p);
            }
            if chosen.len() >= EVIDENCE_LINES {
                break;
            }
        }
        'more: for (u, _) in units.iter().enumerate() {
            for s in per_unit[u].iter().skip(1) {
                if chosen.len() >= EVIDENCE_LINES {
                    break 'more;
                }
                if !chosen.iter().any(|x| x.doc == s.doc && x.line == s.line) {
                    chosen.push(Scored {
                        score: s.score.min(chosen.last().map_or(s.score, |l| l.score)),
                        ..s.clone()
                    });
                }
            }
        }
        // The model's part: how much more likely the question is after reading each line than
        // after the chosen lines on average, as a small adjustment (within ±0.5) that only
        // reorders near ties. Against the mean rather than against no line at all: the
        // differences between lines are the same (only the ±2 clamp sits elsewhere), and the
        // question is read once less (up to SCORED_QUESTION_TOKENS tokens fewer to fold).
        if let Some(state) = state
            && chosen.len() >= 2
        {
            let mut toks = self.tokenizer().encode(&format!("\n\nQuestion: {question}"));
            toks.truncate(SCORED_QUESTION_TOKENS);
            if toks.len() >= 2 {
                // Each line (its start) then the question, all lines in one pass over the
                // weights; the question's tokens after its first are scored.
                let seqs: Vec<(Vec<u32>, usize)> = chosen
                    .iter()
                    .map(|s| {
                        let line = &docs[s.doc].1[s.line - 1];
                        let mut seq = self.tokenizer().encode(&format!("\n{}", line.trim()));
                        seq.truncate(SCORED_LINE_TOKENS);
                        let first = seq.len() + 1;
                        seq.extend_from_slice(&toks);
                        (seq, first)
                    })
                    .collect();
                let mut states: Vec<State> = vec![state.clone(); seqs.len()];
                let mut lanes: Vec<Lane<'_>> = seqs
                    .iter()
                    .zip(states.iter_mut())
                    .map(|((seq, _), st)| Lane { tokens: seq, state: st })
                    .collect();
                let firsts: Vec<usize> = seqs.iter().map(|(_, f)| *f).collect();
                let lp: Vec<f32> = log_likelihood_lanes(self.model(), &mut lanes, &firsts)?
                    .iter()
                    .map(|ll| ll.mean_log_prob() as f32)
                    .collect();
                let mean = lp.iter().sum::<f32>() / lp.len() as f32;
                for (s, lp) in chosen.iter_mut().zip(&lp) {
                    s.score += 0.25 * (lp - mean).clamp(-2.0, 2.0);
                }
                chosen.sort_by(|a, b| b.score.total_cmp(&a.score));
            }
        }
        Ok(chosen
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
                    after: lines[i + 1..context_end(lines, i)].to_vec(),
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_after_reaches_over_blank_lines_to_text() {
        let lines: Vec<String> = [
            "intro",
            "",
            "",
            "### Receiving Input",
            "",
            "We read a line.",
            "more",
            "",
            "",
            "",
            "far",
        ]
        .map(String::from)
        .to_vec();
        // A heading set off by a blank line: the context reaches the paragraph under it.
        assert_eq!(context_end(&lines, 3), 6);
        // The next line has text: one line, as `rg -C1`.
        assert_eq!(context_end(&lines, 5), 7);
        // Two blank lines, then text within reach.
        assert_eq!(context_end(&lines, 0), 4);
        // Nothing but blank lines within reach: one line, blank.
        assert_eq!(context_end(&lines, 6), 8);
        // The end of the text.
        assert_eq!(context_end(&lines, 10), 11);
    }

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
