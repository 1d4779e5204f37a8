//! A store opened for questions: retrieval, restore-and-re-read, answer and summary heads.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rwkv_index::{Hit, Index};
use rwkv_model::StatePrecision;
use rwkv_model::sample::{SamplerConfig, log_softmax_at};
use rwkv_model::tokenizer::Tokenizer;
use rwkv_model::{Logits, Model, State};
use rwkv_reader::store_identity;
use rwkv_store::{FoldKind, Key, Store, StoreDir, StoreIdentity, TextStore};
use serde::Serialize;

use crate::evidence::Evidence;
use crate::generate::{Template, generate, read};
use crate::{Error, Result};

/// How candidate segments are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    /// BM25 (plus path and identifier matches).
    Bm25,
    /// The model's log-likelihood of the question from the state after each segment.
    Model,
    /// Reciprocal-rank fusion of both.
    Both,
}

/// Options of the answer and summary heads.
#[derive(Debug, Clone)]
pub struct AskOptions {
    /// Segments to read.
    pub top: usize,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Sampling (greedy by default).
    pub sampler: SamplerConfig,
    /// Prompt template.
    pub template: Template,
    /// Ranking.
    pub rank: Rank,
}

/// A retrieved segment.
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
    /// Hex key of the checkpoint before the segment.
    pub checkpoint: String,
    /// Position in the document.
    pub seq: u64,
    /// Ranking score (higher is better).
    pub score: f32,
    /// The segment text.
    #[serde(skip)]
    pub text: String,
}

/// A cited source: `path:start-end`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Source {
    /// Path or URL.
    pub path: String,
    /// First line.
    pub line_start: u64,
    /// Last line.
    pub line_end: u64,
    /// Checkpoint resumed.
    pub checkpoint: String,
    /// Ranking score.
    pub score: f32,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}-{}", self.path, self.line_start, self.line_end)
    }
}

/// Timings of one head run, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// Retrieval.
    pub retrieve_ms: f64,
    /// Restoring the checkpoint.
    pub restore_ms: f64,
    /// Choosing the lines of evidence.
    pub evidence_ms: f64,
    /// Re-reading the segments and the question.
    pub read_ms: f64,
    /// From the start of the run to the first generated text.
    pub first_token_ms: f64,
    /// Generation.
    pub generate_ms: f64,
    /// Tokens generated.
    pub tokens: usize,
    /// Generated tokens per second.
    pub tokens_per_second: f64,
}

/// An answer with its sources.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    /// The generated text.
    pub text: String,
    /// The lines of the sources that answer the question, best first.
    pub evidence: Vec<Evidence>,
    /// Where it comes from.
    pub sources: Vec<Source>,
    /// Why generation ended.
    pub finish: &'static str,
    /// Timings.
    pub timings: Timings,
}

/// What to summarize.
#[derive(Debug, Clone)]
pub enum SummaryTarget {
    /// A document or a folder: every stored document whose path equals or lies under it.
    Path(String),
    /// Every document in the store.
    All,
}

/// An ingested store opened for questions, with its model.
pub struct Library<'m> {
    model: &'m Model,
    tokenizer: Arc<dyn Tokenizer>,
    store: Store,
    index: Index,
    texts: TextStore,
}

/// An error opening a store's manifest: an I/O or redb failure that is not recognisably damage
/// still names the repair, since a damaged file is its likeliest cause.
fn open_error(dir: &Path, e: rwkv_store::Error) -> Error {
    match e {
        rwkv_store::Error::Io { .. } | rwkv_store::Error::Manifest { .. } => Error::Unreadable {
            dir: dir.to_path_buf(),
            source: e,
        },
        other => other.into(),
    }
}

/// The identity of a store that refused `model` only because its states were folded or stored
/// another way (at the other fold precision, with the weights rounded otherwise, or as f32
/// rather than bf16 blobs): its fingerprint is the model's own, alone or followed by `+…`
/// suffixes (`+weights-…`, `+fold-bf16`, `+state-bf16`). Blobs say their own precision, so
/// restoring reads either kind.
fn variant_of_store(model: &Model, e: &rwkv_store::Error) -> Option<String> {
    match e {
        rwkv_store::Error::FingerprintMismatch { store_fingerprint, .. }
            if FoldKind::parse(store_fingerprint).is_some_and(|(m, _)| m == model.fingerprint()) =>
        {
            Some(store_fingerprint.clone())
        }
        _ => None,
    }
}

impl<'m> Library<'m> {
    /// Open the store in `dir` (read-only) for `model`; the store must have been made with the
    /// same model and tokenizer, and hold at least one document.
    pub fn open(dir: &Path, model: &'m Model, tokenizer: Arc<dyn Tokenizer>) -> Result<Self> {
        let layout = StoreDir::new(dir);
        if !layout.exists() {
            return Err(Error::NoStore(dir.to_path_buf()));
        }
        // Every kind of store of this model serves: states folded in f32 or bf16, with its own
        // or rounded weights, stored as f32 or bf16, resume alike on it.
        let ident = store_identity(
            model,
            model.fold_precision(),
            StatePrecision::default(),
            tokenizer.as_ref(),
        );
        let store = match Store::open_read_only(dir, ident.clone()) {
            Err(e) => match variant_of_store(model, &e) {
                Some(fingerprint) => Store::open_read_only(
                    dir,
                    StoreIdentity {
                        model_fingerprint: fingerprint,
                        ..ident
                    },
                )
                .map_err(|e| open_error(dir, e))?,
                None => return Err(open_error(dir, e)),
            },
            Ok(s) => s,
        };
        if store.stats().map_err(|e| open_error(dir, e))?.documents == 0 {
            return Err(Error::NoStore(dir.to_path_buf()));
        }
        let index = Index::open_read_only(layout.index())?;
        Ok(Library {
            model,
            tokenizer,
            store,
            index,
            texts: layout.text_store(),
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The model.
    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Arc<dyn Tokenizer> {
        &self.tokenizer
    }

    /// The `top` best segments for `question`.
    pub fn retrieve(&self, question: &str, top: usize, rank: Rank) -> Result<Vec<Candidate>> {
        let _span = tracing::debug_span!(target: "rwkv::retrieve", "retrieve", top, rank = ?rank).entered();
        let pool = (top * 4).max(8);
        let mut by_key: BTreeMap<(String, u64), Candidate> = BTreeMap::new();
        let mut add = |h: Hit, bonus: f32| {
            let key = (h.doc_id.clone(), h.seq);
            let e = by_key.entry(key).or_insert_with(|| Candidate {
                doc_id: h.doc_id.clone(),
                path: h.path.clone(),
                line_start: h.line_start,
                line_end: h.line_end,
                checkpoint: h.checkpoint.clone().unwrap_or_default(),
                seq: h.seq,
                score: 0.0,
                text: h.text.clone(),
            });
            e.score += h.score + bonus;
        };
        for h in self.index.search(question, pool)? {
            add(h, 0.0);
        }
        // A question naming a file, module or symbol prefers those paths and definitions.
        for term in identifiers(question) {
            for h in self.index.search_path_or_symbol(&term, pool)? {
                add(h, 5.0);
            }
        }
        let mut cands: Vec<Candidate> = by_key.into_values().collect();
        cands.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.path.cmp(&b.path))
                .then(a.seq.cmp(&b.seq))
        });
        match rank {
            Rank::Bm25 => {}
            Rank::Model | Rank::Both => {
                cands.truncate(pool);
                let ll: Vec<f32> = cands
                    .iter()
                    .map(|c| self.question_likelihood(c, question))
                    .collect::<Result<_>>()?;
                let mut order: Vec<usize> = (0..cands.len()).collect();
                order.sort_by(|&a, &b| ll[b].total_cmp(&ll[a]));
                let mut model_rank = vec![0usize; cands.len()];
                for (r, &i) in order.iter().enumerate() {
                    model_rank[i] = r;
                }
                for (i, c) in cands.iter_mut().enumerate() {
                    c.score = match rank {
                        Rank::Model => ll[i],
                        _ => 1.0 / (60.0 + i as f32) + 1.0 / (60.0 + model_rank[i] as f32),
                    };
                }
                cands.sort_by(|a, b| b.score.total_cmp(&a.score));
            }
        }
        cands.truncate(top);
        Ok(cands)
    }

    /// Mean log-probability of the question's tokens from the state after the segment.
    fn question_likelihood(&self, c: &Candidate, question: &str) -> Result<f32> {
        let cps = self.store.checkpoints_of(&c.doc_id)?;
        let after = cps
            .iter()
            .find(|cp| cp.seq as u64 == c.seq + 1)
            .ok_or_else(|| Error::Stale(c.path.clone()))?;
        let mut state = self.restore_key(&after.key)?;
        let toks = self.tokenizer.encode(&format!("\n\nQuestion: {question}"));
        if toks.len() < 2 {
            return Ok(0.0);
        }
        let logits = self.model.forward_seq(&toks, &mut state, Logits::All)?;
        let v = self.model.config().vocab;
        let total: f32 = (0..toks.len() - 1)
            .map(|i| log_softmax_at(&logits[i * v..(i + 1) * v], toks[i + 1]))
            .sum();
        Ok(total / (toks.len() - 1) as f32)
    }

    pub(crate) fn restore_key(&self, key: &Key) -> Result<State> {
        let _span = tracing::debug_span!(target: "rwkv::restore", "restore", checkpoint = %key).entered();
        let bytes = self.store.read_blob(key)?;
        let (state, _) = State::from_bytes(
            &StoreDir::new(self.store.dir()).blobs(),
            &bytes,
            &self.model.state_spec(),
            Some(self.tokenizer.id()),
        )?;
        Ok(state)
    }

    fn restore(&self, hex: &str) -> Result<State> {
        let key = Key::from_hex(hex).ok_or_else(|| Error::Stale(format!("checkpoint {hex}")))?;
        self.restore_key(&key)
    }

    /// Generate at most `max_tokens` from `state` after `logits` with `opts`' sampler and stop.
    pub(crate) fn generate_from(
        &self,
        state: &mut State,
        logits: Vec<f32>,
        opts: &AskOptions,
        max_tokens: usize,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<crate::generate::Generation> {
        let span =
            tracing::debug_span!(target: "rwkv::generate", "generate", max_tokens, tokens = tracing::field::Empty);
        let _entered = span.enter();
        let g = generate(
            self.model,
            self.tokenizer.as_ref(),
            state,
            logits,
            &opts.sampler,
            max_tokens,
            opts.template.stop(),
            on_text,
        )?;
        span.record("tokens", g.tokens);
        Ok(g)
    }

    /// Generate from `state` and record the generation timings (`elapsed_ms`: time spent
    /// before generation started).
    fn generate_timed(
        &self,
        state: &mut State,
        logits: Vec<f32>,
        opts: &AskOptions,
        elapsed_ms: f64,
        timings: &mut Timings,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<crate::generate::Generation> {
        let g = self.generate_from(state, logits, opts, opts.max_tokens, on_text)?;
        timings.first_token_ms = elapsed_ms + g.first_token_ms;
        timings.generate_ms = g.generate_ms;
        timings.tokens = g.tokens;
        timings.tokens_per_second = g.tokens as f64 / (g.generate_ms / 1e3).max(1e-9);
        Ok(g)
    }

    /// Answer `question` from the store; `None` when nothing matches (no segment, or no line of
    /// evidence in the segments that do). Text is streamed to
    /// `on_text` as it is generated.
    pub fn answer(
        &self,
        question: &str,
        opts: &AskOptions,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Option<Answer>> {
        self.answer_with(question, opts, &mut |_| {}, on_text)
    }

    /// [`Library::answer`], handing the evidence to `on_evidence` before generation starts (so
    /// that it can be shown before the streamed text).
    pub fn answer_with(
        &self,
        question: &str,
        opts: &AskOptions,
        on_evidence: &mut dyn FnMut(&[Evidence]),
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Option<Answer>> {
        let t0 = Instant::now();
        let cands = self.retrieve(question, opts.top.max(1), opts.rank)?;
        let Some(best) = cands.first() else { return Ok(None) };
        let mut timings = Timings {
            retrieve_ms: ms(t0),
            ..Default::default()
        };
        let t1 = Instant::now();
        let mut state = self.restore(&best.checkpoint)?;
        timings.restore_ms = ms(t1);
        let t_ev = Instant::now();
        let evidence = self.evidence(question, &cands, &state)?;
        timings.evidence_ms = ms(t_ev);
        // Segments that match without a single line sharing a word with the question (a
        // question of stop words only) answer nothing.
        if evidence.is_empty() {
            return Ok(None);
        }
        on_evidence(&evidence);
        // Read the question, the segments (the best one first: it continues its own state),
        // and the question again, then the answer prompt.
        let t2 = Instant::now();
        let mut context = format!("Question: {question}\n\n");
        for c in &cands {
            if c.doc_id != best.doc_id || c.seq != best.seq {
                context.push_str(&format!("\n\nFile: {}\n", c.path));
            }
            context.push_str(&c.text);
        }
        context.push_str(&format!("\n\n{}", opts.template.prompt(question)));
        let logits = tracing::debug_span!(target: "rwkv::read", "read", bytes = context.len())
            .in_scope(|| read(self.model, self.tokenizer.as_ref(), &mut state, &context))?;
        timings.read_ms = ms(t2);
        let g = self.generate_timed(&mut state, logits, opts, ms(t0), &mut timings, on_text)?;
        let sources = cands
            .iter()
            .map(|c| Source {
                path: c.path.clone(),
                line_start: c.line_start,
                line_end: c.line_end,
                checkpoint: c.checkpoint.clone(),
                score: c.score,
            })
            .collect();
        Ok(Some(Answer {
            text: g.text,
            evidence,
            sources,
            finish: g.finish,
            timings,
        }))
    }

    /// Stored texts by document id (for tests and the self-test's filler).
    pub fn text_of(&self, doc_id: &str) -> Result<Option<String>> {
        match self.store.document(doc_id)? {
            Some(d) => Ok(self.texts.get(&d.content_hash)?),
            None => Ok(None),
        }
    }

    /// Where the store is.
    pub fn dir(&self) -> PathBuf {
        self.store.dir().to_path_buf()
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Words of a question that look like paths or identifiers: containing `_`, `::`, `/`, `.`
/// between letters, or an inner capital (camelCase).
fn identifiers(q: &str) -> Vec<String> {
    q.split(|c: char| c.is_whitespace() || "`'\"(),?;!".contains(c))
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '_'))
        .filter(|w| w.len() >= 3)
        .filter(|w| {
            w.contains('_')
                || w.contains("::")
                || w.contains('/')
                || (w.contains('.') && !w.ends_with('.'))
                || w.chars().skip(1).any(|c| c.is_uppercase()) && w.chars().any(|c| c.is_lowercase())
        })
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn identifiers_are_found_in_questions() {
        let ids = super::identifiers("what does `fold_document` in src/reader.rs do? And FoldSummary, store::open.");
        assert_eq!(ids, ["fold_document", "src/reader.rs", "FoldSummary", "store::open"]);
        assert!(super::identifiers("what does the reader do?").is_empty());
    }
}
