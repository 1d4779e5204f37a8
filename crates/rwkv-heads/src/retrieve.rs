//! Retrieval: which units of the store answer a question.
//!
//! A question meets the index in three ways, scored together per unit:
//! - **Names.** A name the question mentions — written as code (`url_for`, `UrlFor`,
//!   `Router.handle`, `de::from_str`), as consecutive words ("url for", "parse args"), or as words
//!   whose canonical forms ([`rwkv_index::terms::canon`]) cover a definition's name parts ("how is
//!   a dotenv file loaded" → `load_dotenv`; "application context pushed" → `AppContext.push`) —
//!   brings the units that *define* it, from anywhere in the store: a name written as code scores
//!   10–14 (so does a type named in prose beside its kind, "the Decor struct"), one spelled in
//!   words by how rare its covered parts are among all definitions. A wrapper written as code
//!   (its body one call, `gzopen` → `gz_open`) lends its name, one point less, to what it calls,
//!   and what it calls comes right before it in the end (`wrapper.rs`).
//!   Units that *refer* to a named definition come next.
//! - **Words.** BM25 over the units' text, comments, names, scope, title and path by canonical
//!   terms, and the idf-weighted share of the question's words each unit holds — by field (name
//!   ×3, path or comments ×1.5, body ×1), in its comments alone, and as pairs of question words
//!   standing side by side ("progress bar"); a related word ([`rwkv_index::terms::related`]:
//!   "written out" / `encode`, "float" / `f64`) counts half. A definition whose bodiless
//!   declaration elsewhere has a comment with the question's words (a C++ header's comment, the
//!   method defined in a `.cc` file) holds those words as its own.
//! - **Rank.** Each unit's parts ([`FEATURES`](crate::FEATURES): the two name scores,
//!   BM25, coverage, the most of the question inside one window of 24 positions, pairs, fields,
//!   references, length, and whether it is a test, a prose section, a type stub, a container, a
//!   definition's head, a caller of one of the best units, a definition nothing in the store
//!   uses, or of the spellings of a name written as code — `copytree`, `_copytree`,
//!   `copy_tree` — the one written; `rank.rs`) are weighed by [`WEIGHTS`], learned on five of
//!   `benches/qa`'s sets (code bases no one here wrote, three languages; the sixth to eighth,
//!   in Go, C and Java, were written after; `rwkv-bench qa --features` writes the parts,
//!   `benches/qa/fit.py` learns the weights and checks them leaving each code base out). In the
//!   final order a test comes after every other unit unless the question is about tests.
//! - **Support.** How much of the question (its content words, weighted by rarity) the best
//!   units hold, moved a little by the best unit's rank score and the encoder's nearest unit:
//!   below a bar ([`ABSTAIN_BELOW`](crate::ABSTAIN_BELOW); `abstain.rs`) the store does not
//!   answer the question.
//!
//! Identical units in several documents (a book's one-page print beside its chapters, vendored
//! copies) and near copies (a bundle's copy of a module's function, a chapter's section in the
//! print page under a heading one level deeper) are kept once, from the smallest document;
//! pages of one template (the same notice under each chapter's title) are dropped (`copies.rs`). `rwkv-bench qa` prints the figures beside the grep baseline.

use std::collections::{BTreeMap, BTreeSet};

use rwkv_index::{Hit, Index, name_key, terms};
use serde::Serialize;

use crate::Result;
use crate::abstain::{Retrieval, support};
use crate::copies::{alias_near_copies, distinct, drop_templates};
use crate::declared;
use crate::meaning;
use crate::question::{Question, name_parts};
use crate::rank::{
    CALLS, FEATURE_COUNT, SHORTER, UNUSED, WEIGHTS, flag, learned_score, mark_exact, mark_unused, tests_last,
};
use crate::unit_kind::{has_no_body, is_named_test, is_preprocessor_only, is_stub_path, is_test_unit};
use crate::wrapper;

// The weights of the hand-set score (what support is judged on; the rank is [`WEIGHTS`] over
// [`FEATURES`]), set on `benches/qa`: a name written as code scores 10–14, a name spelled in
// words a few points.
/// Weight of BM25 (normalised to the best hit, halved) plus the idf-weighted share of the
/// question's words anywhere in the unit.
const TEXT_WEIGHT: f32 = 6.0;
/// Weight of the share of the question's words in the unit's comments and docstrings.
const PROSE_WEIGHT: f32 = 3.0;
/// Weight of the pairs of question words that stand side by side in the unit.
const PAIR_WEIGHT: f32 = 3.0;
/// Weight of where the question's words are: name ×3, path or comments ×1.5, body ×1.
const FIELD_WEIGHT: f32 = 12.0;
/// The name score of the units of a file the question names (a little below a name written
/// as code).
const PATH_SCORE: f32 = 9.0;
/// Factor on units of one or two lines not named as code.
const TINY_FACTOR: f32 = 0.8;
/// How much a name spelled in the question's words (not written as code) counts.
const NAME_WORDS_WEIGHT: f32 = 0.4;

/// The name score of a definition whose name the question writes as code.
pub(crate) const CODE_SCORE: f32 = 10.0;
/// ... with its scope or module (`Scope.name`, `module::name`).
const QUALIFIED_SCORE: f32 = 14.0;

/// How much less than a wrapper written as code the one it calls is named.
const WRAPPED_LESS: f32 = 1.0;
/// Most definitions of the name a wrapper calls that join (one name defined in many files).
const WRAPPED_MOST: usize = 3;

/// Units fetched from each query before they are merged and scored.
const POOL: usize = 60;

/// A retrieved unit.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// Document id.
    pub doc_id: String,
    /// Path or URL.
    pub path: String,
    /// First line.
    pub line_start: u64,
    /// Last line.
    pub line_end: u64,
    /// Byte offset of the unit in its document.
    #[serde(skip)]
    pub byte_start: u64,
    /// Byte offset past the unit.
    #[serde(skip)]
    pub byte_end: u64,
    /// Hex key of the checkpoint at or before the unit (empty: none).
    pub checkpoint: String,
    /// Byte offset of that checkpoint.
    #[serde(skip)]
    pub checkpoint_offset: u64,
    /// Position of the unit in its document.
    pub seq: u64,
    /// `function`, `class`, `section`, …, or `text`.
    pub kind: String,
    /// The definition's qualified name (`AppContext.push`); empty for text.
    pub name: String,
    /// 1-based line of the definition's name (0: none).
    #[serde(skip)]
    pub name_line: u64,
    /// Whether the unit holds the definition's name line.
    #[serde(skip)]
    pub head: bool,
    /// Why it was retrieved: `definition` (a name of the question), `reference` (uses one) or
    /// `text` (words).
    pub matched: &'static str,
    /// Ranking score (higher is better).
    pub score: f32,
    /// Other documents holding the same text (shown once, here).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub duplicates: Vec<String>,
    /// The unit text.
    #[serde(skip)]
    pub text: String,
    #[serde(skip)]
    pub(crate) doc_bytes: u64,
    #[serde(skip)]
    pub(crate) text_hash: String,
    /// The hand-set score of the parts (what support is taken on).
    #[serde(skip)]
    pub(crate) raw_score: f32,
    /// The parts of the rank score, named by [`FEATURES`](crate::FEATURES) (for benchmarks that weigh them).
    #[serde(skip)]
    pub features: [f32; FEATURE_COUNT],
    /// Comments of the unit's declaration elsewhere (a C++ header's), scored as its own.
    #[serde(skip)]
    pub(crate) lent: String,
    /// How near in meaning the unit is to the question (cosine similarity), when the sentence
    /// encoder re-ranked it (for benchmarks that weigh it).
    #[serde(skip)]
    pub meaning: Option<f32>,
}

impl Candidate {
    pub(crate) fn from_hit(h: &Hit) -> Candidate {
        Candidate {
            doc_id: h.doc_id.clone(),
            path: h.path.clone(),
            line_start: h.line_start,
            line_end: h.line_end,
            byte_start: h.byte_start,
            byte_end: h.byte_end,
            checkpoint: h.checkpoint.clone().unwrap_or_default(),
            checkpoint_offset: h.checkpoint_offset,
            seq: h.seq,
            kind: h.kind.clone(),
            name: h.qualified_name(),
            name_line: h.name_line,
            head: h.head,
            matched: "text",
            score: 0.0,
            duplicates: Vec::new(),
            text: h.text.clone(),
            doc_bytes: h.doc_bytes,
            text_hash: h.text_hash.clone(),
            raw_score: 0.0,
            features: [0.0; FEATURE_COUNT],
            lent: String::new(),
            meaning: None,
        }
    }
}

/// Scores of the ways a question meets the store.
struct Scorer<'a> {
    index: &'a Index,
    q: &'a Question,
    name_idf: BTreeMap<String, f32>,
}

impl Scorer<'_> {
    /// How rare a name part is among all definitions.
    fn name_idf(&mut self, part: &str) -> Result<f32> {
        if let Some(&v) = self.name_idf.get(part) {
            return Ok(v);
        }
        let (df, n) = self.index.name_doc_freq(part)?;
        let v = (1.0 + (n as f32 - df as f32 + 0.5) / (df as f32 + 0.5)).ln().max(0.1);
        self.name_idf.insert(part.to_string(), v);
        Ok(v)
    }

    /// How strongly the question names the definition of head unit `h` (0 when it does not),
    /// and whether it names it outright: written as code, as consecutive words, or every part
    /// of the name among the question's words.
    fn name_score(&mut self, h: &Hit) -> Result<(f32, bool, f32)> {
        if !h.head || h.name.is_empty() {
            return Ok((0.0, false, 0.0));
        }
        let key = name_key(&h.name);
        let scope_last = h.scope.rsplit(['.', ':']).next().unwrap_or("");
        let qualified = format!("{}.{}", name_key(scope_last), key);
        let mut score = 0.0;
        let mut member_of_named = false;
        // Written as code: `Scope.name`, `module::name` (the file's folders and stem stand for
        // its module), or the name alone.
        let module = module_of(&h.path);
        let in_module = self
            .q
            .code_keys
            .iter()
            .any(|k| k.split_once('.').is_some_and(|(m, n)| n == key && m == module))
            && h.scope.is_empty();
        if self.q.code_keys.contains(&qualified) || in_module {
            score += QUALIFIED_SCORE;
        } else if self.q.code_keys.contains(&key) {
            score += CODE_SCORE;
        } else if !scope_last.is_empty()
            && self.q.code_keys.contains(&name_key(scope_last))
            && name_parts(&h.name).iter().all(|p| self.q.all.contains(p))
        {
            // "the convert method of `Path`": the scope written as code, the name in words (a
            // little less than the scope itself).
            score += 8.0;
            member_of_named = true;
        }
        // A type named in prose beside its kind ("the Decor struct"): as if written as code.
        if score == 0.0
            && self
                .q
                .typed
                .iter()
                .any(|(k, kinds)| *k == key && kinds.contains(&h.kind.as_str()))
        {
            score += 10.0;
        }
        // Spelled as consecutive words.
        if self.q.word_keys.contains(&key) {
            score += 6.0;
        }
        // Name parts covered by the question's words. Dunder names (`__str__`) are only found
        // when written as code; a one-part name counts half (a common word names many things).
        let dunder = h.name.starts_with("__") && h.name.ends_with("__");
        let mut parts = if dunder { Vec::new() } else { name_parts(&h.name) };
        // `get`, `is`, `to`, `from` say little: only the name's other parts must be covered.
        if parts.iter().any(|p| !terms::is_stop_word(p)) {
            parts.retain(|p| !terms::is_stop_word(p));
        }
        let mut covered = 0.0;
        let mut missing = 0.0;
        for p in &parts {
            let idf = self.name_idf(p)?;
            if self.q.all.contains(p) {
                covered += idf;
            } else if self.q.related_all.contains(p) {
                covered += RELATED_CREDIT * idf;
            } else {
                missing += idf;
            }
        }
        // Every part covered counts in full and more; a part the question does not have
        // takes half its weight off.
        let mut words = if missing == 0.0 {
            1.25 * covered
        } else {
            (covered - 0.5 * missing).max(0.0)
        };
        words *= NAME_WORDS_WEIGHT;
        if parts.len() == 1 {
            words *= 0.5;
        }
        // The scope's parts (`AppContext` of `AppContext.push`) add to a covered name.
        let mut scope_bonus = 0.0;
        if covered > 0.0 && !scope_last.is_empty() && !member_of_named {
            for p in name_parts(scope_last) {
                if self.q.all.contains(&p) {
                    scope_bonus += 0.6 * self.name_idf(&p)?;
                }
            }
        }
        // A container's head (class, struct, impl, module) is the answer less often than one of
        // its members when the question is spelled in words.
        if matches!(
            h.kind.as_str(),
            "class" | "struct" | "interface" | "impl" | "module" | "enum"
        ) {
            words *= 0.7;
        }
        let outright = score > 0.0 || (missing == 0.0 && covered > 0.0);
        Ok((score + words + scope_bonus, outright, score))
    }
}

/// The indexed forms (words, identifier parts, canonical forms) of `text`.
pub(crate) fn word_set(text: &str) -> BTreeSet<String> {
    rwkv_index::tokenizer::tokenize_indexed(text)
        .into_iter()
        .map(|t| t.text)
        .collect()
}

/// How much a related word stands for the question's word.
const RELATED_CREDIT: f32 = 0.5;

/// How far `have` holds the question's content term `i`: 1 for the term, [`RELATED_CREDIT`]
/// for a related word, else 0.
fn held(q: &Question, i: usize, have: &BTreeSet<&str>) -> f32 {
    if have.contains(q.content[i].as_str()) {
        1.0
    } else if q.related[i].iter().any(|r| have.contains(r.as_str())) {
        RELATED_CREDIT
    } else {
        0.0
    }
}

/// The share of the question's content terms (weighted by `idf`, out of `total`) that `have`
/// holds.
pub(crate) fn weighted_share(q: &Question, idf: &[f32], total: f32, have: &BTreeSet<&str>) -> f32 {
    (0..q.content.len()).map(|i| held(q, i, have) * idf[i]).sum::<f32>() / total
}

/// Canonical terms at consecutive positions of a token stream (either form of each word).
fn adjacent_pairs(toks: &[rwkv_index::tokenizer::Token]) -> BTreeSet<(&str, &str)> {
    let mut by_pos: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for t in toks {
        by_pos.entry(t.position).or_default().push(t.text.as_str());
    }
    let mut pairs = BTreeSet::new();
    for (p, a) in &by_pos {
        if let Some(b) = by_pos.get(&(p + 1)) {
            for x in a {
                for y in b {
                    pairs.insert((*x, *y));
                }
            }
        }
    }
    pairs
}

/// The module a file stands for, as a name key: its stem, or its folder's name for `mod.rs`,
/// `index.js`, `__init__.py`, `lib.rs`, `main.rs` (`src/de/mod.rs` → `de`).
fn module_of(path: &str) -> String {
    let mut comps = path.rsplit(['/', '\\']);
    let file = comps.next().unwrap_or(path);
    let stem = file.split('.').next().unwrap_or(file);
    if matches!(stem, "mod" | "index" | "__init__" | "lib" | "main") {
        comps.next().map(name_key).unwrap_or_default()
    } else {
        name_key(stem)
    }
}

/// A unit's key in the pool: its document and its position there.
pub(crate) type UnitKey = (String, u64);

/// A pooled unit and its name score, normalised BM25, reference score and the part of the name
/// score for a name written as code.
pub(crate) type Pooled = (Candidate, f32, f32, f32, f32);

/// The `top` best units of `index` for `question`, with the support of the question.
pub(crate) fn retrieve_units(
    index: &Index,
    embedder: Option<&rwkv_embed::Embedder>,
    question: &str,
    top: usize,
) -> Result<Retrieval> {
    let q = Question::new(question);
    let mut by_key: BTreeMap<UnitKey, Pooled> = BTreeMap::new();
    if q.content.is_empty() && q.code_keys.is_empty() {
        return Ok(Retrieval {
            candidates: Vec::new(),
            support: 0.0,
            named: false,
            best_score: 0.0,
            meaning: None,
            terms: 0,
            asks_whether: q.asks_whether,
        });
    }
    let mut scorer = Scorer {
        index,
        q: &q,
        name_idf: BTreeMap::new(),
    };
    // 1. Definitions of names the question mentions.
    let mut keys: Vec<String> = q.code_keys.clone();
    keys.extend(q.word_keys.iter().cloned());
    keys.extend(q.content.iter().map(|t| name_key(t)));
    let mut name_hits = index.definitions(&keys, POOL * 2)?;
    let mut name_terms: Vec<String> = q.content.clone();
    name_terms.extend(q.related_all.iter().cloned());
    name_hits.extend(index.search_names(&name_terms, POOL * 2)?);
    let mut strong: Vec<(String, f32)> = Vec::new();
    let mut named = false;
    let mut outright: BTreeSet<(String, u64)> = BTreeSet::new();
    for hit in &name_hits {
        // The unit's own definition, or another whole one inside it (a run of constants).
        let mut best: Option<(f32, bool, f32, Hit)> = None;
        let variants = std::iter::once(hit.clone()).chain(hit.also.iter().map(|(name, line)| Hit {
            name: name.clone(),
            name_line: *line,
            head: true,
            also: Vec::new(),
            ..hit.clone()
        }));
        // A function's head unit holds its local helpers whole: one of them is what the unit
        // quotes only when the question names it as code; by words, the function answers.
        let callable_head = hit.head && matches!(hit.kind.as_str(), "function" | "method");
        for (i, v) in variants.enumerate() {
            let (mut s, o, code) = scorer.name_score(&v)?;
            if i > 0 && callable_head && code == 0.0 {
                s = 0.0;
            }
            if best.as_ref().is_none_or(|b| s > b.0) {
                best = Some((s, o, code, v));
            }
        }
        let Some((s, named_outright, code, h)) = best else {
            continue;
        };
        let h = &h;
        if s <= 0.0 {
            continue;
        }
        if named_outright {
            outright.insert((h.doc_id.clone(), h.seq));
        }
        let e = by_key
            .entry((h.doc_id.clone(), h.seq))
            .or_insert_with(|| (Candidate::from_hit(h), 0.0, 0.0, 0.0, 0.0));
        if s > e.1 {
            // Quote the definition that was named.
            e.0.name = h.qualified_name();
            e.0.name_line = h.name_line;
            e.0.head = true;
        }
        e.1 = e.1.max(s);
        e.4 = e.4.max(code);
        if s >= 4.0 || named_outright {
            strong.push((name_key(&h.name), s));
        }
        if s >= 10.0 {
            named = true;
        }
    }
    // A wrapper written as code (its body one call: `gzopen` → `gz_open`) lends its name to what
    // it calls, a little less, and what it calls comes right before it once the units are ranked:
    // what the question asks about it is done there.
    let wrappers: Vec<(UnitKey, String, String, f32, f32)> = by_key
        .iter()
        .filter(|(_, e)| e.4 >= CODE_SCORE && e.0.head)
        .filter_map(|(key, e)| {
            let callee = wrapper::wrapped_call(&e.0.text, last_name(&e.0.name))?;
            Some((key.clone(), callee.to_string(), e.0.path.clone(), e.1, e.4))
        })
        .collect();
    let mut wrapped: Vec<wrapper::Wrapped> = Vec::new();
    for (wrapper_key, callee, path, s, code) in wrappers {
        let hits = index.definitions(&[name_key(&callee)], POOL)?;
        let spelled: Vec<&Hit> = hits.iter().filter(|h| h.head && last_name(&h.name) == callee).collect();
        // The one in the wrapper's file if there is one (a name defined in many places).
        let same_file: Vec<&Hit> = spelled.iter().copied().filter(|h| h.path == path).collect();
        let chosen = if same_file.is_empty() { spelled } else { same_file };
        let mut callees = Vec::new();
        for h in chosen.into_iter().take(WRAPPED_MOST) {
            let e = by_key
                .entry((h.doc_id.clone(), h.seq))
                .or_insert_with(|| (Candidate::from_hit(h), 0.0, 0.0, 0.0, 0.0));
            e.1 = e.1.max(s - WRAPPED_LESS);
            e.4 = e.4.max(code - WRAPPED_LESS);
            outright.insert((h.doc_id.clone(), h.seq));
            callees.push((h.doc_id.clone(), h.seq));
        }
        wrapped.push(wrapper::Wrapped {
            wrapper: wrapper_key,
            callees,
        });
    }
    // A file the question names: its units join, as if named.
    for p in &q.paths {
        for h in index.search_path_or_symbol(p, POOL)? {
            if h.path == *p || h.path.ends_with(&format!("/{p}")) {
                let e = by_key
                    .entry((h.doc_id.clone(), h.seq))
                    .or_insert_with(|| (Candidate::from_hit(&h), 0.0, 0.0, 0.0, 0.0));
                // The file's first units first: its head (imports, module docs, first definition).
                e.1 = e.1.max(PATH_SCORE - 0.01 * h.seq as f32);
                e.4 = e.4.max(PATH_SCORE - 0.01 * h.seq as f32);
                named = true;
            }
        }
    }
    // 2. Words.
    let mut search: Vec<String> = q.content.clone();
    search.extend(q.related_all.iter().cloned());
    let text_hits = index.search_terms(&search, POOL * 2)?;
    let top_bm25 = text_hits.iter().map(|h| h.score).fold(0.0f32, f32::max).max(1e-6);
    for h in &text_hits {
        let e = by_key
            .entry((h.doc_id.clone(), h.seq))
            .or_insert_with(|| (Candidate::from_hit(h), 0.0, 0.0, 0.0, 0.0));
        e.2 = h.score / top_bm25;
    }
    // 3. References to the strongly named definitions.
    strong.sort_by(|a, b| b.1.total_cmp(&a.1));
    strong.dedup_by(|a, b| a.0 == b.0);
    for (key, s) in strong.iter().take(3) {
        for h in index.references(key, 20)? {
            let e = by_key
                .entry((h.doc_id.clone(), h.seq))
                .or_insert_with(|| (Candidate::from_hit(&h), 0.0, 0.0, 0.0, 0.0));
            e.3 = e.3.max(0.25 * s);
        }
    }
    let idf_in_store: Vec<(f32, bool)> = q
        .content
        .iter()
        .map(|t| index.idf_in_store(t))
        .collect::<std::result::Result<_, _>>()?;
    let idf: Vec<f32> = idf_in_store.iter().map(|&(w, _)| w).collect();
    let idf_total: f32 = idf.iter().sum::<f32>().max(1e-6);
    // 4. Definitions whose declaration elsewhere (a C++ header) has a comment with the
    // question's words: they join, holding those words as their own.
    let lent = declared::lend_declared_words(index, &q, &idf, idf_total, &mut by_key)?;
    // Coverage: the share of the question's content words (by idf) the unit holds anywhere,
    // without BM25's length normalisation, so a long body that mentions every part of the
    // question meets a short unit that repeats one of them.
    let mut cands: Vec<Candidate> = by_key
        .into_iter()
        .map(|((doc_id, seq), (mut c, name, words, refs, name_code))| {
            let lent = lent.get(&(doc_id.clone(), seq)).map_or("", String::as_str);
            let toks = rwkv_index::tokenizer::tokenize_indexed(&format!("{} {} {}\n{}", c.name, c.path, lent, c.text));
            let have: BTreeSet<&str> = toks.iter().map(|t| t.text.as_str()).collect();
            let coverage = weighted_share(&q, &idf, idf_total, &have);
            // The unit's comments and docstrings say in words what it does (a prose section
            // is all prose: it gets no extra credit for it).
            let prose_words = if c.kind == "section" {
                BTreeSet::new()
            } else {
                word_set(&format!("{lent}\n{}", rwkv_symbols::comments(&c.text)))
            };
            let prose_words: BTreeSet<&str> = prose_words.iter().map(String::as_str).collect();
            let doc_coverage = weighted_share(&q, &idf, idf_total, &prose_words);
            // Where the unit holds each question word: in its name (weight 3), its path or
            // comments (1.5), its body (1).
            // A test's name says what it checks ("handles commas in selector"), not what
            // answers: its words count as body words unless the question is about tests.
            let in_test = is_test_unit(&c.path, &c.name);
            let name_words = if is_named_test(&c.path, &c.name) && !q.about_tests {
                BTreeSet::new()
            } else {
                word_set(&c.name)
            };
            let path_words = word_set(&c.path);
            let name_words: BTreeSet<&str> = name_words.iter().map(String::as_str).collect();
            let path_words: BTreeSet<&str> = path_words.iter().map(String::as_str).collect();
            let mut fielded = 0.0;
            for (i, w) in idf.iter().enumerate() {
                let f = (3.0 * held(&q, i, &name_words))
                    .max(1.5 * held(&q, i, &path_words))
                    .max(1.5 * held(&q, i, &prose_words))
                    .max(held(&q, i, &have));
                fielded += f * w;
            }
            let fielded = fielded / (3.0 * idf_total);
            // The most of the question that stands close together: one sentence of a comment,
            // one statement.
            let window = best_window(&q, &idf, idf_total, &toks);
            // Pairs of question words side by side in the unit ("progress bar", "query string").
            let pairs = adjacent_pairs(&toks);
            let mut bigrams = 0.0;
            for (i, w) in q.content.windows(2).enumerate() {
                if pairs.contains(&(w[0].as_str(), w[1].as_str())) || pairs.contains(&(w[1].as_str(), w[0].as_str())) {
                    bigrams += 0.5 * (idf[i] + idf[i + 1]) / idf_total;
                }
            }
            let mut score = name
                + TEXT_WEIGHT * (0.5 * words + coverage)
                + PROSE_WEIGHT * doc_coverage
                + PAIR_WEIGHT * bigrams
                + FIELD_WEIGHT * fielded
                + refs;
            c.matched = if outright.contains(&(doc_id, seq)) {
                "definition"
            } else if refs > 0.0 && refs >= name {
                "reference"
            } else {
                "text"
            };
            if !q.about_tests && in_test {
                score *= 0.7;
            }
            // A unit of one or two lines (a constant, an associated type) answers when the
            // question names it, seldom by its words.
            let lines = c.text.lines().filter(|l| !l.trim().is_empty()).count();
            if name < 10.0 && lines <= 2 {
                score *= TINY_FACTOR;
            }
            c.raw_score = score;
            c.lent = lent.to_string();
            c.features = [
                name_code,
                name - name_code,
                words,
                coverage,
                doc_coverage,
                bigrams,
                fielded,
                refs,
                (1.0 + lines as f32).ln(),
                flag(!q.about_tests && in_test),
                flag(name < 10.0 && lines <= 2),
                flag(c.kind == "section"),
                0.0,
                flag(matches!(
                    c.kind.as_str(),
                    "class" | "struct" | "interface" | "impl" | "module" | "enum"
                )),
                flag(c.head && !c.name.is_empty()),
                flag(c.matched == "definition"),
                flag(is_stub_path(&c.path)),
                window,
                0.0,
                0.0,
                0.0,
            ];
            c
        })
        .collect();
    // One name declared several times in one file and scope (Python's `@overload` stubs before
    // the implementation, C declarations before the definition): the longest is the one that
    // answers. Overloads with bodies (Java's getter and setter `title()`, `title(String)`) are
    // each an answer.
    let mut longest: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for c in cands.iter().filter(|c| c.head && !c.name.is_empty()) {
        let n = longest.entry((c.path.as_str(), c.name.as_str())).or_default();
        *n = (*n).max(c.line_end - c.line_start);
    }
    // A name declared without a body in one file (a C header's prototype, a run of `#define`
    // aliases) and defined with one in another: the definition answers. (A piece of a long
    // body split into units may end in `;` too; a declaration holds no `{`.)
    let declares_only =
        |c: &Candidate| (has_no_body(&c.text) && !c.text.contains('{')) || is_preprocessor_only(&c.text);
    let mut with_body: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for c in cands
        .iter()
        .filter(|c| c.head && !c.name.is_empty() && !declares_only(c))
    {
        with_body.entry(last_name(&c.name)).or_default().insert(c.path.as_str());
    }
    let shorter: Vec<bool> = cands
        .iter()
        .map(|c| {
            let same_file = has_no_body(&c.text)
                && longest
                    .get(&(c.path.as_str(), c.name.as_str()))
                    .is_some_and(|&n| n > c.line_end - c.line_start);
            let other_file = declares_only(c)
                && with_body
                    .get(last_name(&c.name))
                    .is_some_and(|paths| paths.iter().any(|p| *p != c.path));
            c.head && !c.name.is_empty() && (same_file || other_file)
        })
        .collect();
    for (c, shorter) in cands.iter_mut().zip(shorter) {
        if shorter {
            c.features[SHORTER] = 1.0;
        }
    }
    // A unit that calls one of the best units by the hand-set score (the caller that puts a
    // helper to the use the question asks about).
    let mut by_raw: Vec<usize> = (0..cands.len()).collect();
    by_raw.sort_by(|&a, &b| cands[b].raw_score.total_cmp(&cands[a].raw_score));
    by_raw.truncate(CALL_UNITS);
    let calls: Vec<bool> = cands
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let own = last_name(&c.name);
            by_raw.iter().filter(|&&t| t != i).any(|&t| {
                let theirs = last_name(&cands[t].name);
                !theirs.is_empty() && theirs != own && names_in(&c.text, theirs)
            })
        })
        .collect();
    for (c, calls) in cands.iter_mut().zip(calls) {
        c.features[CALLS] = flag(calls);
    }
    mark_unused(index, &mut cands)?;
    mark_exact(&q, &mut cands);
    for c in &mut cands {
        c.score = learned_score(&c.features);
    }
    // How well the store supports the question is judged on the best units by the hand-set
    // score.
    cands.sort_by(|a, b| {
        b.raw_score
            .total_cmp(&a.raw_score)
            .then(a.path.cmp(&b.path))
            .then(a.seq.cmp(&b.seq))
    });
    let support = support(&q, &idf_in_store, &cands);
    cands.sort_by(by_score);
    drop_templates(&mut cands);
    alias_near_copies(&mut cands);
    // Abstention reads the best unit's score without the tie-breaker between siblings.
    let best_score = cands
        .first()
        .map_or(0.0, |c| c.score - WEIGHTS[UNUSED] * c.features[UNUSED]);
    let meaning = embedder.map(|e| meaning::rerank(e, question, &mut cands));
    wrapper::callees_first(&wrapped, &mut cands);
    tests_last(&mut cands);
    let kept = distinct(cands, top);
    Ok(Retrieval {
        candidates: kept,
        support,
        named,
        best_score,
        meaning,
        terms: q.content.len(),
        asks_whether: q.asks_whether,
    })
}

/// Best rank score first; ties in path and position order.
pub(crate) fn by_score(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.score
        .total_cmp(&a.score)
        .then(a.path.cmp(&b.path))
        .then(a.seq.cmp(&b.seq))
}

/// The best units (by the hand-set score) whose callers count.
const CALL_UNITS: usize = 3;
/// Positions a window of [`best_window`] spans.
const WINDOW: usize = 24;

/// The last part of a qualified name (`Command._excessArguments` → `_excessArguments`).
pub(crate) fn last_name(name: &str) -> &str {
    name.rsplit(['.', ':']).next().unwrap_or("")
}

/// Whether `text` holds `name` as a whole identifier.
fn names_in(text: &str, name: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    text.match_indices(name).any(|(at, _)| {
        !text[..at].chars().next_back().is_some_and(ident) && !text[at + name.len()..].chars().next().is_some_and(ident)
    })
}

/// The largest idf-weighted share of the question's content terms (out of `total`) that one
/// stretch of [`WINDOW`] consecutive positions of `toks` holds.
fn best_window(q: &Question, idf: &[f32], total: f32, toks: &[rwkv_index::tokenizer::Token]) -> f32 {
    // (position, term, credit) for every token that is a question term or a related word.
    let mut hits: Vec<(usize, usize, f32)> = Vec::new();
    for t in toks {
        for (i, c) in q.content.iter().enumerate() {
            if *c == t.text {
                hits.push((t.position, i, 1.0));
            } else if q.related[i].contains(&t.text) {
                hits.push((t.position, i, RELATED_CREDIT));
            }
        }
    }
    hits.sort_by_key(|h| h.0);
    let mut best = 0.0f32;
    let mut lo = 0;
    let mut got = vec![0f32; q.content.len()];
    for hi in 0..hits.len() {
        while hits[hi].0 - hits[lo].0 >= WINDOW {
            lo += 1;
        }
        got.fill(0.0);
        for &(_, i, credit) in &hits[lo..=hi] {
            got[i] = got[i].max(credit);
        }
        best = best.max(got.iter().zip(idf).map(|(g, w)| g * w).sum::<f32>() / total);
    }
    best
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn files_stand_for_modules() {
        assert_eq!(module_of("src/de/mod.rs"), "de");
        assert_eq!(module_of("src/de/value.rs"), "value");
        assert_eq!(module_of("lib/router/index.js"), "router");
        assert_eq!(module_of("src/click/__init__.py"), "click");
        assert_eq!(module_of("helpers.py"), "helpers");
    }

    #[test]
    fn calls_are_whole_identifiers() {
        assert!(names_in("const d = editDistance(word, c);", "editDistance"));
        assert!(names_in("x.suggest()", "suggest"));
        assert!(!names_in("suggestSimilar(word)", "suggest"));
        assert!(!names_in("my_suggest(word)", "suggest"));
        assert!(!names_in("$suggest", "suggest"));
        assert!(!names_in("", "suggest"));
        assert_eq!(last_name("Command._excessArguments"), "_excessArguments");
        assert_eq!(last_name("de::from_str"), "from_str");
        assert_eq!(last_name("url_for"), "url_for");
    }

    pub(crate) fn unit(name: &str, text: &str, score: f32) -> Candidate {
        Candidate {
            doc_id: name.into(),
            path: format!("lib/{name}.js"),
            line_start: 1,
            line_end: 3,
            byte_start: 0,
            byte_end: text.len() as u64,
            checkpoint: String::new(),
            checkpoint_offset: 0,
            seq: 0,
            kind: "function".into(),
            name: name.into(),
            name_line: 1,
            head: true,
            matched: "text",
            score,
            duplicates: Vec::new(),
            text: text.into(),
            doc_bytes: 100,
            text_hash: name.into(),
            raw_score: score,
            features: [0.0; FEATURE_COUNT],
            lent: String::new(),
            meaning: None,
        }
    }

    #[test]
    fn the_best_window_holds_the_words_that_stand_together() {
        let q = Question::new("How many arguments are expected?");
        let idf = vec![1.0; q.content.len()];
        let total = q.content.len() as f32;
        let near = rwkv_index::tokenizer::tokenize_indexed("// too many arguments: more than expected");
        assert_eq!(best_window(&q, &idf, total, &near), 1.0);
        // The same words, further apart than a window: at most two of the three together.
        let filler = "word ".repeat(WINDOW);
        let far = rwkv_index::tokenizer::tokenize_indexed(&format!("many {filler} arguments {filler} expected"));
        let got = best_window(&q, &idf, total, &far);
        assert!((got - 1.0 / total).abs() < 1e-6, "{got} of {total}");
        assert_eq!(best_window(&q, &idf, total, &[]), 0.0);
    }
}
