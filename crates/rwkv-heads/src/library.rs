//! A store opened for questions: retrieval, restore-and-re-read, answer and summary heads.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::sample::SamplerConfig;
use rwkv_index::Index;
use rwkv_model::StatePrecision;
use rwkv_model::likelihood::log_likelihood;
use rwkv_model::tokenizer::Tokenizer;
use rwkv_model::{Logits, Model, State};
use rwkv_reader::store_identity;
use rwkv_store::{FoldKind, Key, Store, StoreDir, StoreIdentity, TextStore};
use serde::Serialize;

use crate::abstain::Retrieval;
use crate::evidence::Evidence;
use crate::generate::{Template, generate};
use crate::retrieve::Candidate;
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

impl std::str::FromStr for Rank {
    type Err = String;
    /// `bm25`, `model` or `both`, as `--rank` takes them.
    fn from_str(s: &str) -> std::result::Result<Rank, String> {
        match s {
            "bm25" => Ok(Rank::Bm25),
            "model" => Ok(Rank::Model),
            "both" => Ok(Rank::Both),
            _ => Err(format!("unknown ranking {s:?} (expected bm25, model or both)")),
        }
    }
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
    /// Whether to generate an answer after the evidence (off: evidence and sources only).
    pub generate: bool,
    /// How the re-read reaches the best unit from its checkpoint.
    pub reread: Reread,
    /// Most tokens re-read before generating (the gap when folded forward, the best unit, the
    /// other units, the question twice and the prompt): the other units are left out, and the
    /// best unit cut at a line, to stay within it. The re-read is most of the time to the
    /// first token with a large model on a CPU (a 1.5B model reads ~50–100 tokens/s there).
    pub read_tokens: usize,
}

/// Multiply-adds of the blocks the default re-read may cost: about 12 s with a 1.5B model on a
/// 2-core CPU (~700 tokens at ~60 tokens/s), so that the first token comes within 15 s.
pub const READ_BUDGET_MACS: f64 = 8e11;

/// Default [`AskOptions::read_tokens`] for a model: the tokens whose block products cost
/// [`READ_BUDGET_MACS`] (each token costs `n_layer · (4C² + 2C·d_ffn)` multiply-adds), between
/// 256 and 8,192. 1.5B: ~660 tokens; 0.1B: ~8,192; the demo model: 8,192.
pub fn default_read_tokens(info: &rwkv_model::ModelInfo) -> usize {
    let c = info.n_embd as f64;
    let per_token = info.n_layer as f64 * (4.0 * c * c + 2.0 * c * info.d_ffn as f64);
    if per_token <= 0.0 {
        return 8192;
    }
    (READ_BUDGET_MACS / per_token).clamp(256.0, 8192.0) as usize
}

/// Tokens of the gap's end that [`Reread::Auto`] reads when the whole gap does not fit the
/// budget. Chosen with `rwkv-bench reread` on the QA sets (demo model): skipping to the gap's
/// last 128 tokens kept 83–101% of what folding the whole gap gains over a fresh state (in
/// bits/token of the unit), skipping the whole gap −18–74% (docs/benchmarks.md).
pub const DEFAULT_TAIL_TOKENS: usize = 128;

/// How the re-read before generation reaches the best unit from the checkpoint at or before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reread {
    /// Fold the document forward from the checkpoint through the unit: the state an ingest
    /// had at the unit, at the cost of reading the gap.
    Forward,
    /// Read the unit right after the checkpoint's state, skipping the gap.
    Skip,
    /// Skip to the gap's last lines within this many tokens, then fold forward through them
    /// and the unit (the unit's enclosing lines: an `impl` head, a class, imports nearby).
    Tail(usize),
    /// Forward when the whole gap fits [`AskOptions::read_tokens`], else
    /// `Tail(DEFAULT_TAIL_TOKENS)`.
    #[default]
    Auto,
}

impl std::str::FromStr for Reread {
    type Err = String;
    /// `forward`, `skip`, `tail:N` or `auto`, as `--reread` takes them.
    fn from_str(s: &str) -> std::result::Result<Reread, String> {
        match s {
            "forward" => Ok(Reread::Forward),
            "skip" => Ok(Reread::Skip),
            "auto" => Ok(Reread::Auto),
            _ => match s.strip_prefix("tail:").map(str::parse) {
                Some(Ok(n)) => Ok(Reread::Tail(n)),
                _ => Err(format!(
                    "unknown re-read {s:?} (expected forward, skip, tail:N or auto)"
                )),
            },
        }
    }
}

/// A cited source: `path:start-end`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Source {
    /// The document's id in the store.
    pub doc_id: String,
    /// Path or URL.
    pub path: String,
    /// First line.
    pub line_start: u64,
    /// Last line.
    pub line_end: u64,
    /// Checkpoint resumed (the one at or before the unit).
    pub checkpoint: String,
    /// Ranking score.
    pub score: f32,
    /// What the unit is (`function`, `class`, `section`, …, `text`).
    pub kind: String,
    /// The definition's qualified name (empty for text).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Why it was retrieved: `definition`, `reference` or `text`.
    pub matched: &'static str,
    /// Other documents with the same text, shown once here.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub duplicates: Vec<String>,
}

impl Source {
    /// The source a retrieved unit is cited as.
    pub fn of(c: &Candidate) -> Source {
        Source {
            doc_id: c.doc_id.clone(),
            path: c.path.clone(),
            line_start: c.line_start,
            line_end: c.line_end,
            checkpoint: c.checkpoint.clone(),
            score: c.score,
            kind: c.kind.clone(),
            name: c.name.clone(),
            matched: c.matched,
            duplicates: c.duplicates.clone(),
        }
    }
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
    /// Tokens re-read before generation (the gap from the checkpoint when folded forward,
    /// the best unit, the other units, the question twice and the prompt).
    pub read_tokens: usize,
    /// Tokens of the document between the checkpoint and the best unit.
    pub gap_tokens: usize,
    /// How the re-read went over that gap: `forward` (all of it), `tail` (its last lines) or
    /// `skip` (none of it).
    pub reread: &'static str,
    /// Generated tokens per second.
    pub tokens_per_second: f64,
    /// Folding a document that is indexed but not folded (`rwkv-ingest --index-only`) from its
    /// start to the checkpoint before the best unit, in memory (0 when the store had its state).
    pub fold_ms: f64,
    /// Tokens of that fold (the document's preamble included).
    pub folded_tokens: u64,
}

/// An answer with its sources.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    /// The generated text (empty when generation was not asked for).
    pub text: String,
    /// Whether `text` was generated.
    pub generated: bool,
    /// The share of the question's content words the best units hold (0…1).
    pub support: f32,
    /// The lines of the sources that answer the question, best first.
    pub evidence: Vec<Evidence>,
    /// Where it comes from.
    pub sources: Vec<Source>,
    /// Why generation ended.
    pub finish: &'static str,
    /// Timings.
    pub timings: Timings,
}

/// What [`Library::search`] found: the retrieved units with the question's support, and the
/// evidence lines (empty when the store does not answer the question).
#[derive(Debug, Clone)]
pub struct Found {
    /// The units and the support.
    pub retrieval: Retrieval,
    /// The lines that answer, best first.
    pub evidence: Vec<Evidence>,
    /// `retrieve_ms` and `evidence_ms`.
    pub timings: Timings,
}

impl Found {
    /// Whether the store answers the question: its support is high enough and some line of
    /// the units shares a word with it.
    pub fn answers(&self) -> bool {
        self.retrieval.answers() && !self.evidence.is_empty()
    }
}

/// An answer ready to read and generate ([`Library::plan`]).
#[derive(Debug, Clone)]
pub struct Plan {
    /// The share of the question's content words the best units hold (0…1).
    pub support: f32,
    /// The lines that answer, best first.
    pub evidence: Vec<Evidence>,
    /// Where it comes from.
    pub sources: Vec<Source>,
    /// `retrieve_ms`, `evidence_ms`, `restore_ms` and `read_tokens` so far.
    pub timings: Timings,
    /// The best unit's checkpoint, restored (`None` when asked not to restore).
    pub state: Option<State>,
    /// What to fold into `state` before generating.
    pub tokens: Vec<u32>,
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
    fold_progress: Option<FoldProgress>,
    embedder: Option<Arc<rwkv_embed::Embedder>>,
}

/// Told, while a document is folded on demand, its path, the tokens folded so far and the
/// tokens to fold in all.
pub type FoldProgress = Box<dyn Fn(&str, u64, u64) + Send + Sync>;

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
        // A writer killed while committing (an ingest, or an rwkv-ask committing what it
        // folded on demand) leaves the manifest to recover: recover it, then read.
        let open = |ident: StoreIdentity| match Store::open_read_only(dir, ident.clone()) {
            Err(rwkv_store::Error::NeedsRecovery { .. }) => {
                let _ = Store::recover(dir);
                Store::open_read_only(dir, ident)
            }
            r => r,
        };
        let store = match open(ident.clone()) {
            Err(e) => match variant_of_store(model, &e) {
                Some(fingerprint) => open(StoreIdentity {
                    model_fingerprint: fingerprint,
                    ..ident
                })
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
            fold_progress: None,
            embedder: None,
        })
    }

    /// Report the progress of every fold on demand (a document indexed but not folded, read
    /// from its start to the unit a question needs: minutes with a large model) to `f`.
    pub fn with_fold_progress(mut self, f: FoldProgress) -> Self {
        self.fold_progress = Some(f);
        self
    }

    /// Re-rank the best units by meaning with a sentence encoder, and judge whether the store
    /// answers a question with it too ([`crate::retrieve`]); `None`: words and names only.
    pub fn with_embedder(mut self, embedder: Option<Arc<rwkv_embed::Embedder>>) -> Self {
        self.embedder = embedder;
        self
    }

    /// The sentence encoder, if one re-ranks.
    pub fn embedder(&self) -> Option<&rwkv_embed::Embedder> {
        self.embedder.as_deref()
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The model.
    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// The index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Arc<dyn Tokenizer> {
        &self.tokenizer
    }

    /// The `top` best units for `question` and how well the store supports it
    /// ([`crate::retrieve`]); `Rank::Model` and `Rank::Both` re-rank a wider pool by the mean
    /// log-probability of the question after reading each unit from its checkpoint.
    pub fn retrieve(&self, question: &str, top: usize, rank: Rank) -> Result<Retrieval> {
        let _span = tracing::debug_span!(target: "rwkv::retrieve", "retrieve", top, rank = ?rank).entered();
        let pool = match rank {
            Rank::Bm25 => top.max(1),
            Rank::Model | Rank::Both => (top * 4).max(8),
        };
        let mut r = crate::retrieve::retrieve_units(&self.index, self.embedder.as_deref(), question, pool)?;
        for c in &mut r.candidates {
            self.resolve_checkpoint(c)?;
        }
        if matches!(rank, Rank::Model | Rank::Both) && !r.candidates.is_empty() {
            let cands = &mut r.candidates;
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
            cands.truncate(top.max(1));
        }
        Ok(r)
    }

    /// Point `c` at the checkpoint at or before its start as the manifest has it now. The
    /// index records the units once, when a document is indexed (before it is folded), and is
    /// not rewritten when its states arrive: the manifest says which checkpoints exist, so a
    /// fold changes nothing the ranking reads, and a question gets the same evidence before a
    /// document is folded and after.
    fn resolve_checkpoint(&self, c: &mut Candidate) -> Result<()> {
        let cps = self.store.checkpoints_of(&c.doc_id)?;
        let at = cps
            .iter()
            .filter(|cp| cp.byte_offset <= c.byte_start)
            .max_by_key(|cp| (cp.byte_offset, cp.seq));
        match at {
            Some(cp) => {
                c.checkpoint = cp.key.to_hex();
                c.checkpoint_offset = cp.byte_offset;
            }
            None => {
                c.checkpoint = String::new();
                c.checkpoint_offset = 0;
            }
        }
        Ok(())
    }

    /// The state candidate `c` resumes from: its checkpoint (at or before the unit); for a
    /// document indexed but not folded, that checkpoint's state folded on demand.
    fn unit_state(&self, c: &Candidate) -> Result<State> {
        if c.checkpoint.is_empty() {
            Ok(self.fold_on_demand(&c.doc_id, &c.path, c.byte_start as usize)?.state)
        } else {
            self.restore(&c.checkpoint)
        }
    }

    /// Mean log-probability of the question's tokens after reading the unit from its
    /// checkpoint.
    fn question_likelihood(&self, c: &Candidate, question: &str) -> Result<f32> {
        let mut state = self.unit_state(c)?;
        let mut toks = self.tokenizer.encode(&c.text);
        let start = toks.len();
        toks.extend(self.tokenizer.encode(&format!("\n\nQuestion: {question}")));
        let ll = log_likelihood(self.model, &mut state, &toks, start + 1, usize::MAX, |_| {})?;
        Ok(ll.mean_log_prob() as f32)
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

    /// The state saved at checkpoint `hex` (a key as [`Source::checkpoint`] gives it).
    pub fn restore_checkpoint(&self, hex: &str) -> Result<State> {
        self.restore(hex)
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

    /// Retrieval and evidence without generation: what `rwkv-ask` shows before it reads and
    /// generates (and all it shows with a model that cannot answer). With `--rank model|both`
    /// the model scores the evidence lines from the best unit's checkpoint.
    pub fn search(&self, question: &str, opts: &AskOptions) -> Result<Found> {
        let t0 = Instant::now();
        let retrieval = self.retrieve(question, opts.top.max(1), opts.rank)?;
        let mut timings = Timings {
            retrieve_ms: ms(t0),
            ..Default::default()
        };
        if !retrieval.answers() {
            return Ok(Found {
                retrieval,
                evidence: Vec::new(),
                timings,
            });
        }
        let t_ev = Instant::now();
        let state = match opts.rank {
            Rank::Bm25 => None,
            Rank::Model | Rank::Both => Some(self.unit_state(&retrieval.candidates[0])?),
        };
        let evidence = self.evidence(question, &retrieval.candidates, state.as_ref())?;
        timings.evidence_ms = ms(t_ev);
        Ok(Found {
            retrieval,
            evidence,
            timings,
        })
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
        // The evidence is shown as soon as it is found, before any restore or fold.
        let Some(plan) = self.prepare(question, opts, opts.generate, on_evidence)? else {
            return Ok(None);
        };
        let Plan {
            support,
            evidence,
            sources,
            mut timings,
            state,
            tokens,
        } = plan;
        let Some(mut state) = state else {
            return Ok(Some(Answer {
                text: String::new(),
                generated: false,
                support,
                evidence,
                sources,
                finish: "not_generated",
                timings,
            }));
        };
        let t2 = Instant::now();
        let logits = tracing::debug_span!(target: "rwkv::read", "read", tokens = tokens.len())
            .in_scope(|| self.model.forward_seq(&tokens, &mut state, Logits::Last))?;
        timings.read_ms = ms(t2);
        let g = self.generate_timed(&mut state, logits, opts, ms(t0), &mut timings, on_text)?;
        Ok(Some(Answer {
            text: g.text,
            generated: true,
            support,
            evidence,
            sources,
            finish: g.finish,
            timings,
        }))
    }

    /// Everything [`Library::answer`] does before it reads: retrieval, evidence, the restored
    /// checkpoint of the best unit and the tokens to read from it (the unit from the checkpoint
    /// on, the other units with their paths, the question before and after them, the answer
    /// prompt). `None` when the store does not answer the question. A caller that schedules
    /// its own reading and generation (a server decoding many answers together) folds
    /// `tokens` into `state` and generates with `opts.template`'s stop.
    pub fn plan(&self, question: &str, opts: &AskOptions) -> Result<Option<Plan>> {
        self.prepare(question, opts, true, &mut |_| {})
    }

    fn prepare(
        &self,
        question: &str,
        opts: &AskOptions,
        restore: bool,
        on_evidence: &mut dyn FnMut(&[Evidence]),
    ) -> Result<Option<Plan>> {
        let found = self.search(question, opts)?;
        if !found.answers() {
            return Ok(None);
        }
        on_evidence(&found.evidence);
        let Found {
            retrieval,
            evidence,
            mut timings,
        } = found;
        let cands = retrieval.candidates;
        let sources: Vec<Source> = cands.iter().map(Source::of).collect();
        if !restore {
            return Ok(Some(Plan {
                support: retrieval.support,
                evidence,
                sources,
                timings,
                state: None,
                tokens: Vec::new(),
            }));
        }
        let best = &cands[0];
        let t1 = Instant::now();
        let (state, checkpoint_offset) = if best.checkpoint.is_empty() {
            // Indexed, not folded: fold it here as far as the unit's checkpoint.
            let f = self.fold_on_demand(&best.doc_id, &best.path, best.byte_start as usize)?;
            timings.fold_ms = ms(t1);
            timings.folded_tokens = f.tokens;
            (f.state, f.byte_offset as u64)
        } else {
            let state = self.unit_state(best)?;
            timings.restore_ms = ms(t1);
            (state, best.checkpoint_offset)
        };
        let text = self.text_of(&best.doc_id)?;
        let unit = text
            .as_deref()
            .and_then(|t| t.get(best.byte_start as usize..best.byte_end as usize))
            .unwrap_or(&best.text);
        let gap = text
            .as_deref()
            .and_then(|t| t.get((checkpoint_offset as usize).min(best.byte_start as usize)..best.byte_start as usize))
            .unwrap_or("");
        let read = self.read_plan(question, opts, gap, unit, &cands[1..]);
        timings.read_tokens = read.tokens.len();
        timings.gap_tokens = read.gap_tokens;
        timings.reread = read.how;
        let tokens = read.tokens;
        Ok(Some(Plan {
            support: retrieval.support,
            evidence,
            sources,
            timings,
            state: Some(state),
            tokens,
        }))
    }

    /// The tokens re-read before generating: the question, the gap from the checkpoint to the
    /// best unit as [`AskOptions::reread`] says (all, its last lines, or none), the unit (cut
    /// at a line to fit [`AskOptions::read_tokens`]), the other units with their paths while
    /// they fit, and the question again with the answer prompt.
    fn read_plan(&self, question: &str, opts: &AskOptions, gap: &str, unit: &str, others: &[Candidate]) -> ReadPlan {
        let tok = self.tokenizer.as_ref();
        let count = |s: &str| tok.encode(s).len();
        let head = format!("Question: {question}\n\n");
        let tail = format!("\n\n{}", opts.template.prompt(question));
        let fixed = count(&head) + count(&tail);
        let gap_tokens = count(gap);
        let unit_tokens = count(unit);
        let budget = opts.read_tokens.max(fixed + 1);
        // The gap's last lines within `n` tokens.
        let gap_tail = |n: usize| if gap_tokens <= n { gap } else { last_lines(tok, gap, n) };
        let (read_gap, how) = match opts.reread {
            Reread::Forward => (gap, "forward"),
            Reread::Skip => ("", "skip"),
            Reread::Tail(n) => (gap_tail(n), "tail"),
            Reread::Auto if fixed + gap_tokens + unit_tokens <= budget => (gap, "forward"),
            Reread::Auto => (
                gap_tail(DEFAULT_TAIL_TOKENS.min(budget.saturating_sub(fixed + unit_tokens))),
                "tail",
            ),
        };
        let how = if read_gap.len() == gap.len() && !gap.is_empty() {
            "forward"
        } else if read_gap.is_empty() {
            "skip"
        } else {
            how
        };
        let mut context = head;
        let mut used = fixed + count(read_gap);
        context.push_str(read_gap);
        // The unit whole when it fits, else its first lines that do (at least one line).
        let room = budget.saturating_sub(used);
        let unit = if unit_tokens <= room || opts.reread == Reread::Forward {
            unit
        } else {
            let mut end = unit.find('\n').map_or(unit.len(), |i| i + 1);
            for (i, _) in unit.match_indices('\n') {
                if count(&unit[..=i]) > room {
                    break;
                }
                end = i + 1;
            }
            &unit[..end]
        };
        used += count(unit);
        context.push_str(unit);
        for c in others {
            let piece = format!("\n\nFile: {}\n{}", c.path, c.text);
            let n = count(&piece);
            if used + n > budget {
                continue;
            }
            used += n;
            context.push_str(&piece);
        }
        context.push_str(&tail);
        ReadPlan {
            tokens: tok.encode(&context),
            gap_tokens,
            how,
        }
    }

    /// The state an ingest would have stored at the checkpoint at or before byte `until` of a
    /// document that is indexed but not folded (`usize::MAX`: its last checkpoint): the
    /// document is folded from its start state (preamble, parts, and the checkpoint spacing
    /// the store's ingest recorded, else `rwkv-ingest`'s default for the store's state
    /// precision) as far as that, in
    /// memory, and the state is rounded as the store keeps states. So an answer before the fold
    /// equals the answer after it.
    pub(crate) fn fold_on_demand(&self, doc_id: &str, path: &str, until: usize) -> Result<OnDemand> {
        let stale = || Error::Stale(path.to_string());
        let rec = self.store.document(doc_id)?.ok_or_else(stale)?;
        let text = self.texts.get(&rec.content_hash)?.ok_or_else(stale)?;
        let precision = match FoldKind::parse(&self.store.identity().model_fingerprint) {
            Some((_, k)) if !k.state_bf16 => StatePrecision::F32,
            _ => StatePrecision::Bf16,
        };
        let every = StoreDir::new(self.store.dir())
            .checkpoint_every()
            .unwrap_or_else(|| rwkv_reader::default_checkpoint_every(self.model.state_spec().stored_bytes(precision)));
        let reader = rwkv_reader::ReaderBuilder::new(self.model, self.tokenizer.clone())
            .checkpoint_every(every)
            .build();
        let parts: Vec<usize> = rec.parts.iter().map(|p| p.byte_offset as usize).collect();
        let input = rwkv_reader::DocInput {
            id: &rec.id,
            name: &rec.source,
            text: &text,
            parts: &parts,
        };
        let _span = tracing::debug_span!(target: "rwkv::fold", "fold_on_demand", path = %rec.source).entered();
        // Only the pieces that end at or before `until`: their last checkpoint is the one at or
        // before it (the start checkpoint when none does).
        let plan = reader.plan(&input);
        let pieces = plan.iter().take_while(|p| p.bytes.end <= until).count();
        let mut found: Option<OnDemand> = None;
        let mut tokens = 0;
        let total: u64 = plan[..pieces].iter().map(|p| p.tokens.len() as u64).sum();
        let mut on_tokens = |done: u64| {
            if let Some(f) = &self.fold_progress {
                f(&rec.source, done, total);
            }
        };
        reader.fold_planned_with_progress(&input, &plan[..pieces], &mut on_tokens, |cp| {
            tokens = cp.state.tokens;
            found = Some(OnDemand {
                state: cp.state.stored_as(precision),
                byte_offset: cp.byte_offset,
                tokens: 0,
            });
            ControlFlow::Continue(())
        })?;
        let mut f = found.ok_or_else(stale)?;
        f.tokens = tokens;
        Ok(f)
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

/// The last whole lines of `text` that make at most `n` tokens (empty when even its last line
/// is longer). Lines are added from the end until the next would not fit, so the work grows
/// with what is kept, not with `text`.
pub fn last_lines<'t>(tokenizer: &dyn Tokenizer, text: &'t str, n: usize) -> &'t str {
    let mut kept = text.len();
    // Line starts from the end: after each `\n` (the text's final `\n` ends its last line).
    let body = text.strip_suffix('\n').unwrap_or(text);
    for (i, _) in body.rmatch_indices('\n') {
        if tokenizer.encode(&text[i + 1..]).len() > n {
            return &text[kept..];
        }
        kept = i + 1;
    }
    if tokenizer.encode(text).len() <= n {
        text
    } else {
        &text[kept..]
    }
}

/// What the re-read before generation reads.
struct ReadPlan {
    tokens: Vec<u32>,
    gap_tokens: usize,
    how: &'static str,
}

/// A state folded on demand: where its checkpoint is and what the fold read.
pub(crate) struct OnDemand {
    /// The state at the checkpoint.
    pub(crate) state: State,
    /// The checkpoint's byte offset in the document.
    pub(crate) byte_offset: usize,
    /// Document tokens folded.
    pub(crate) tokens: u64,
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rereads_parse() {
        assert_eq!("forward".parse(), Ok(Reread::Forward));
        assert_eq!("skip".parse(), Ok(Reread::Skip));
        assert_eq!("tail:64".parse(), Ok(Reread::Tail(64)));
        assert_eq!("auto".parse(), Ok(Reread::Auto));
        assert!("tail:x".parse::<Reread>().is_err());
    }

    #[test]
    fn the_last_lines_within_a_budget_are_whole_lines() {
        let tok = rwkv_model::tokenizer::BytesTokenizer;
        let text = "fn a() {}\n\nimpl Foo {\n    // x\n";
        // Byte tokens: "    // x\n" is 9, "impl Foo {\n" 11 more.
        assert_eq!(last_lines(&tok, text, 9), "    // x\n");
        assert_eq!(last_lines(&tok, text, 19), "    // x\n");
        assert_eq!(last_lines(&tok, text, 20), "impl Foo {\n    // x\n");
        assert_eq!(last_lines(&tok, text, 21), "\nimpl Foo {\n    // x\n");
        assert_eq!(last_lines(&tok, text, 8), "");
        assert_eq!(last_lines(&tok, text, 1000), text);
    }

    #[test]
    fn the_read_budget_follows_the_model_size() {
        let shape = |n_embd, n_layer, d_ffn| rwkv_model::ModelInfo {
            generation: rwkv_model::Generation::V7,
            arch: "x070",
            vocab: 65536,
            n_embd,
            n_layer,
            n_head: n_embd / 64,
            head_size: 64,
            d_ffn,
            group_norm_eps: None,
        };
        // RWKV-7 G1 1.5B, 0.1B and a tiny model.
        let big = default_read_tokens(&shape(2048, 24, 8192));
        assert!((600..=700).contains(&big), "{big}");
        assert_eq!(default_read_tokens(&shape(768, 12, 3072)), 8192);
        assert_eq!(default_read_tokens(&shape(64, 2, 256)), 8192);
        assert_eq!(default_read_tokens(&shape(8192, 64, 32768)), 256);
    }
}
