//! The ingest run: sources stream documents on tokio, a bounded channel feeds the fold workers
//! (one model shared by all), each document's checkpoints become durable blobs, then one
//! manifest commit, then its index units.
//!
//! Order per document (what makes a run resumable after a crash at any point): text and blobs
//! fsynced → manifest commit → index. A document whose commit did not happen is simply folded
//! again by the next run; blobs are content-addressed and their bytes deterministic, so the
//! rerun writes the same files.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use futures::StreamExt;
use rwkv_index::{Index, Unit};
use rwkv_model::tokenizer::Tokenizer;
use rwkv_model::{Model, State, StatePrecision};
use rwkv_reader::{DocInput, Reader, ReaderBuilder, store_identity};
use rwkv_sources::{DocId, DocKind, Document, Input, Sources};
use rwkv_store::{
    CheckpointRecord, Compression, DocumentRecord, Key, ShardRecord, Store, StoreDir, StoreIdentity, TextStore,
    checkpoint_key,
};
use serde::Serialize;

mod asked;
mod maintain;
mod units;
mod workers;

use asked::fold_asked;
pub use asked::fold_stored;
pub use maintain::{gc, merge, repair};
use units::units_of;
pub use units::{UNIT_MAX_BYTES, UNIT_MAX_LINES, reindex_all, units_from};
use workers::run_pass;

use crate::error::{Error, Result};

/// Settings of one ingest run (from CLI flags or a job file).
#[derive(Debug, Clone, Default)]
pub struct IngestConfig {
    /// Inputs: directories, files, WARC files, URLs.
    pub inputs: Vec<String>,
    /// Store directory.
    pub store_dir: PathBuf,
    /// Tokens between checkpoints inside a part; `None`: the state-size-aware default,
    /// [`rwkv_reader::default_checkpoint_every`] of the stored state's bytes.
    pub checkpoint_every: Option<usize>,
    /// How checkpoint blobs store the state: `f32` (exact resume) or `bf16` (half the bytes);
    /// a store holds blobs of one precision (its fingerprint says which).
    pub state_precision: StatePrecision,
    /// Fold workers (each folds its documents one at a time, or `lanes` at a time).
    pub jobs: usize,
    /// Documents each fold worker folds at once in lockstep lanes ([`Reader::fold_lanes`]): one
    /// set of matrix products per step over every lane's rows, which is what a GPU wants. 1 (the
    /// default) folds one document at a time. The store is the same whatever the lanes (on the
    /// CPU bit for bit).
    pub lanes: usize,
    /// Source options (walk, caps, extraction jobs).
    pub sources: rwkv_sources::Options,
    /// Keep only documents whose id falls in shard `i` of `n` (`(i, n)`, 0-based).
    pub shard: Option<(u64, u64)>,
    /// Also fold every document, in order, into one corpus state.
    pub corpus_state: bool,
    /// Verify the checksum of every stored blob of unchanged documents (refold on damage).
    pub verify: bool,
    /// Compress blobs with zstd.
    pub compress: bool,
    /// Index only: extract, tokenize, store the text and index every document (symbols and full
    /// text) without folding it. The documents are in the store without states
    /// (`DocumentRecord::is_folded` is false); `rwkv-ask` answers from them at once (evidence;
    /// generation re-reads from the start state), and a later run without this flag folds them.
    pub index_only: bool,
}

/// Callbacks for progress display; every method has a no-op default.
pub trait Progress: Sync {
    /// A document starts folding with this many tokens.
    fn start(&self, _name: &str, _tokens: u64) {}
    /// Tokens were folded.
    fn tokens(&self, _n: u64) {}
    /// A document is finished (`folded`, `unchanged`, `failed`, `removed`, `reindexed`).
    fn done(&self, _name: &str, _outcome: &str) {}
    /// An input was skipped or failed before folding.
    fn skipped(&self, _input: &str, _reason: &str) {}
    /// The store's index could not be used as it was (`reason`: damaged, or its units of
    /// another version): it was recreated and is filled again from the stored texts, before
    /// anything else. Nothing is refolded.
    fn index_rebuilt(&self, _reason: &str) {}
    /// The index phase is committed: `documents` documents (of which `new` were indexed for
    /// the first time or changed) are searchable, in `seconds`; folding starts (unless
    /// `--index-only`) and will read `to_fold` tokens (every unfolded document's; [`start`]
    /// announces each again). The index phase itself reports nothing else.
    ///
    /// [`start`]: Progress::start
    fn indexed(&self, _documents: u64, _new: u64, _seconds: f64, _to_fold: u64) {}
    /// Whether the run should stop: checked between documents. A cancelled run commits what it
    /// folded, removes nothing and ends with [`Error::Cancelled`].
    fn cancelled(&self) -> bool {
        false
    }
}

/// Progress that shows nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// An input that produced no document, with its reason.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Skip {
    /// The input (path, URL, record).
    pub input: String,
    /// Stable reason code (`binary`, `too_large`, `malformed`, `fold`, …).
    pub reason: String,
    /// Human message.
    pub message: String,
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Documents seen.
    pub documents: u64,
    /// Documents folded (new, changed, or refolded after damage).
    pub folded: u64,
    /// Documents unchanged since the last run (nothing folded).
    pub unchanged: u64,
    /// Unchanged documents whose stored blobs failed their checksum and were refolded.
    pub refolded_corrupt: u64,
    /// Documents whose index entries were restored from the store.
    pub reindexed: u64,
    /// Documents indexed without folding (`--index-only`): in the store without states.
    pub indexed: u64,
    /// Documents removed because their input is gone.
    pub removed: u64,
    /// Inputs skipped by policy (binary, too large, …).
    pub skipped: u64,
    /// Inputs or documents that failed.
    pub failed: u64,
    /// Every skip and failure with its reason.
    pub skips: Vec<Skip>,
    /// Tokens folded (preambles included).
    pub tokens: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// Documents and checkpoints in the store after the run.
    pub store_documents: u64,
    /// Of those, documents indexed but not folded (no states yet).
    pub store_unfolded: u64,
    /// Tokens of the store's documents (folded or not): what a full fold reads.
    pub store_tokens: u64,
    /// Checkpoints in the store after the run.
    pub store_checkpoints: u64,
    /// Bytes of state blobs in the store.
    pub store_bytes: u64,
    /// Wall time in seconds.
    pub wall_seconds: f64,
    /// Tokens folded per second of wall time.
    pub tokens_per_second: f64,
    /// Tokens between checkpoints inside a part (given, or the default for this state size).
    pub checkpoint_every: usize,
    /// Documents each fold worker folded at once.
    pub lanes: usize,
    /// How the blobs store the state (`f32` or `bf16`).
    pub state_precision: StatePrecision,
    /// Bytes of state data in each checkpoint blob (header not counted).
    pub state_bytes_per_checkpoint: u64,
    /// Path of the corpus state, when one was made.
    pub corpus_state: Option<String>,
}

/// The tokens between checkpoints a run uses: `cfg`'s, else what the store's last ingest
/// recorded ([`StoreDir::checkpoint_every`]: a store keeps its spacing from run to run), else
/// the default for the bytes one checkpoint of `model`'s state takes at `cfg`'s state precision.
pub fn checkpoint_every(cfg: &IngestConfig, model: &Model) -> usize {
    cfg.checkpoint_every
        .or_else(|| StoreDir::new(&cfg.store_dir).checkpoint_every())
        .unwrap_or_else(|| rwkv_reader::default_checkpoint_every(model.state_spec().stored_bytes(cfg.state_precision)))
}

/// The settings a shard store records beside its identity: shards merge only when they agree,
/// because they change which checkpoints (and which blob bytes) a document gets.
fn shard_settings(every: usize, compression: Compression) -> BTreeMap<String, String> {
    let compression = match compression {
        Compression::None => "none".to_string(),
        Compression::Zstd(level) => format!("zstd-{level}"),
    };
    BTreeMap::from([
        ("checkpoint_every".to_string(), every.to_string()),
        ("compression".to_string(), compression),
    ])
}

/// Whether `id` belongs to shard `i` of `n`.
pub fn in_shard(id: &str, shard: Option<(u64, u64)>) -> bool {
    match shard {
        None => true,
        Some((i, n)) => {
            let h = blake3::hash(id.as_bytes());
            let v = u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or([0; 8]));
            v % n.max(1) == i
        }
    }
}

struct Shared<'a> {
    cfg: &'a IngestConfig,
    model: &'a Model,
    reader: Reader<'a>,
    store: Store,
    texts: TextStore,
    index: Mutex<Index>,
    indexed: BTreeSet<String>,
    /// The index phase: documents are indexed, not folded (the whole run with
    /// `--index-only`, else its first pass).
    index_phase: AtomicBool,
    /// Where the next read of the asked queue starts ([`StoreDir::read_asked`]); held while
    /// the documents read from it fold.
    asked_from: Mutex<u64>,
    /// Documents folded ahead of the sources because they were asked about.
    folded_early: Mutex<BTreeSet<String>>,
    progress: &'a dyn Progress,
    seen: Mutex<Vec<String>>,
    skips: Mutex<Vec<Skip>>,
    counts: Counts,
}

#[derive(Default)]
struct Counts {
    documents: AtomicU64,
    folded: AtomicU64,
    unchanged: AtomicU64,
    refolded_corrupt: AtomicU64,
    reindexed: AtomicU64,
    indexed: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
    tokens: AtomicU64,
    checkpoints: AtomicU64,
}

impl Counts {
    /// Every count back to 0 (between the index phase and the fold).
    fn reset(&self) {
        self.documents.store(0, Ordering::Relaxed);
        self.folded.store(0, Ordering::Relaxed);
        self.unchanged.store(0, Ordering::Relaxed);
        self.refolded_corrupt.store(0, Ordering::Relaxed);
        self.reindexed.store(0, Ordering::Relaxed);
        self.indexed.store(0, Ordering::Relaxed);
        self.skipped.store(0, Ordering::Relaxed);
        self.failed.store(0, Ordering::Relaxed);
        self.tokens.store(0, Ordering::Relaxed);
        self.checkpoints.store(0, Ordering::Relaxed);
    }
}

/// Run an ingest.
pub fn ingest(
    cfg: &IngestConfig,
    model: &Model,
    tokenizer: Arc<dyn Tokenizer>,
    progress: &dyn Progress,
) -> Result<Summary> {
    let started = Instant::now();
    let ident = store_identity(model, model.fold_precision(), cfg.state_precision, tokenizer.as_ref());
    let every = checkpoint_every(cfg, model);
    let recorded = ShardRecord::read(&cfg.store_dir)?;
    ShardRecord::check_run(&cfg.store_dir, recorded.as_ref(), cfg.shard)?;
    if cfg.shard.is_some() && cfg.corpus_state {
        return Err(Error::Usage(
            "a corpus state reads every document in order: a shard cannot make it (ingest the merged store with --corpus-state)"
                .into(),
        ));
    }
    // An input path that is not there is the run's error, before anything is written: read as
    // an empty input, it would remove its documents from the store.
    for input in &cfg.inputs {
        if let Input::Path(p) = Input::parse(input)
            && let Err(e) = std::fs::symlink_metadata(&p)
        {
            return Err(Error::Usage(format!("input {}: {e}", p.display())));
        }
    }
    let mut store = Store::open(&cfg.store_dir, ident.clone())?;
    // Folds on demand (`rwkv-ask` before this run reaches a document) follow the spacing.
    StoreDir::new(&cfg.store_dir).record_checkpoint_every(every)?;
    if cfg.compress && store.compression() == Compression::None {
        store.set_compression(Compression::Zstd(3))?;
    }
    // A shard store says which shard it holds, incomplete until this run reaches its end.
    let mut shard_record = match cfg.shard {
        Some((i, n)) => {
            let r = ShardRecord::new(i, n, &ident, shard_settings(every, store.compression()));
            match &recorded {
                Some(old) if old.settings != r.settings => {
                    return Err(Error::Usage(format!(
                        "{}: this shard was folded with settings {:?}, this run uses {:?}; use the same settings for every run of a sharded job",
                        cfg.store_dir.display(),
                        old.settings,
                        r.settings
                    )));
                }
                _ => {}
            }
            r.write(&cfg.store_dir)?;
            Some(r)
        }
        None => None,
    };
    let texts = TextStore::new(&cfg.store_dir);
    let (mut index, outcome) = Index::open_or_create(StoreDir::new(&cfg.store_dir).index())?;
    if let rwkv_index::OpenOutcome::Rebuilt { reason } = &outcome {
        progress.index_rebuilt(reason);
    }
    if outcome.needs_rebuild() {
        reindex_all(&store, &texts, &mut index)?;
    }
    let indexed = index.document_ids()?;
    let reader = ReaderBuilder::new(model, tokenizer.clone())
        .checkpoint_every(every)
        .build();
    let shared = Shared {
        cfg,
        model,
        reader,
        store,
        texts,
        index: Mutex::new(index),
        indexed,
        index_phase: AtomicBool::new(true),
        asked_from: Mutex::new(0),
        folded_early: Mutex::new(BTreeSet::new()),
        progress,
        seen: Mutex::new(Vec::new()),
        skips: Mutex::new(Vec::new()),
        counts: Counts::default(),
    };

    // First the index phase: every document extracted, tokenized and indexed, and that
    // committed, so questions find everything at once; then (unless --index-only) the fold,
    // which finds those documents indexed and not folded.
    let index_started = Instant::now();
    // A cancelled pass removes nothing: the index of what was done is committed and the run
    // stops.
    let cancelled = || -> Result<()> {
        if progress.cancelled() {
            commit_index(&shared)?;
            return Err(Error::Cancelled);
        }
        Ok(())
    };
    run_pass(&shared)?;
    cancelled()?;
    commit_index(&shared)?;
    let to_fold = shared
        .store
        .documents()?
        .iter()
        .filter(|d| !d.is_folded())
        .map(|d| d.token_count)
        .sum();
    progress.indexed(
        shared.counts.documents.load(Ordering::Relaxed),
        shared.counts.indexed.load(Ordering::Relaxed),
        index_started.elapsed().as_secs_f64(),
        if cfg.index_only { 0 } else { to_fold },
    );
    if !cfg.index_only {
        shared.counts.reset();
        shared.seen.lock().map_err(|_| poisoned())?.clear();
        shared.skips.lock().map_err(|_| poisoned())?.clear();
        shared.index_phase.store(false, Ordering::Relaxed);
        fold_asked(&shared)?;
        run_pass(&shared)?;
        cancelled()?;
        // Everything asked about is folded now.
        let asked = StoreDir::new(&cfg.store_dir).asked();
        if asked.exists() {
            std::fs::remove_file(&asked).map_err(|e| Error::Io { path: asked, source: e })?;
        }
    }

    let removed = remove_deleted(&shared)?;
    commit_index(&shared)?;

    let corpus_state = if cfg.corpus_state {
        Some(fold_corpus(&shared, tokenizer.as_ref())?)
    } else {
        None
    };

    if let Some(r) = &mut shard_record {
        r.complete = true;
        r.write(&cfg.store_dir)?;
    }
    let stats = shared.store.stats()?;
    let docs = shared.store.documents()?;
    let c = &shared.counts;
    let wall = started.elapsed().as_secs_f64();
    let tokens = c.tokens.load(Ordering::Relaxed);
    let mut skips = shared.skips.into_inner().map_err(|_| poisoned())?;
    skips.sort_by(|a, b| a.input.cmp(&b.input));
    Ok(Summary {
        documents: c.documents.load(Ordering::Relaxed),
        folded: c.folded.load(Ordering::Relaxed),
        unchanged: c.unchanged.load(Ordering::Relaxed),
        refolded_corrupt: c.refolded_corrupt.load(Ordering::Relaxed),
        reindexed: c.reindexed.load(Ordering::Relaxed),
        indexed: c.indexed.load(Ordering::Relaxed),
        removed,
        skipped: c.skipped.load(Ordering::Relaxed),
        failed: c.failed.load(Ordering::Relaxed),
        skips,
        tokens,
        checkpoints: c.checkpoints.load(Ordering::Relaxed),
        store_documents: stats.documents,
        store_unfolded: docs.iter().filter(|d| !d.is_folded()).count() as u64,
        store_tokens: docs.iter().map(|d| d.token_count).sum(),
        store_checkpoints: stats.checkpoints,
        store_bytes: stats.blob_bytes,
        wall_seconds: wall,
        tokens_per_second: tokens as f64 / wall.max(1e-9),
        checkpoint_every: every,
        lanes: cfg.lanes.max(1),
        state_precision: cfg.state_precision,
        state_bytes_per_checkpoint: model.state_spec().stored_bytes(cfg.state_precision) as u64,
        corpus_state: corpus_state.map(|p| p.display().to_string()),
    })
}

/// Makes what the index was given visible to readers.
fn commit_index(shared: &Shared<'_>) -> Result<()> {
    let _span = tracing::debug_span!(target: "rwkv::index", "index_commit").entered();
    shared.index.lock().map_err(|_| poisoned())?.commit()?;
    Ok(())
}

fn poisoned() -> Error {
    Error::Usage("a worker thread panicked".into())
}

/// The documents on their way to the fold workers; `None` once a worker has closed it.
type Queue = Mutex<Option<mpsc::Receiver<Document>>>;

/// Fold (or skip, or reindex) one document.
fn process(shared: &Shared<'_>, doc: &Document) -> Result<&'static str> {
    if let Some(outcome) = triage(shared, doc)? {
        return Ok(outcome);
    }
    fold_document(shared, doc)?;
    shared.counts.folded.fetch_add(1, Ordering::Relaxed);
    Ok("folded")
}

/// What a document needs: `Some(outcome)` when it is done without folding (`unchanged`, or
/// `reindexed` from the store), `None` when it must be folded (new, changed, or damaged).
fn triage(shared: &Shared<'_>, doc: &Document) -> Result<Option<&'static str>> {
    let id = doc.id.to_string();
    let hash = doc.hash.to_string();
    if let Some(rec) = shared.store.document(&id)?
        && rec.content_hash == hash
        && (rec.is_folded() || shared.index_phase.load(Ordering::Relaxed))
    {
        // Indexed and not folded: with --index-only that is all there is to do; otherwise it
        // is folded now (below: `None`).
        let index_phase = shared.index_phase.load(Ordering::Relaxed);
        if !index_phase && shared.folded_early.lock().map_err(|_| poisoned())?.contains(&id) {
            shared.counts.folded.fetch_add(1, Ordering::Relaxed);
            return Ok(Some("folded"));
        }
        let intact = !rec.is_folded() || index_phase || !shared.cfg.verify || blobs_intact(&shared.store, &id)?;
        if intact {
            shared.counts.unchanged.fetch_add(1, Ordering::Relaxed);
            if !shared.indexed.contains(&id) {
                shared.texts.put(&hash, &doc.text)?;
                let units = units_of(&shared.store, &rec, &doc.text)?;
                let mut index = shared.index.lock().map_err(|_| poisoned())?;
                index.add_document_units(&id, units)?;
                shared.counts.reindexed.fetch_add(1, Ordering::Relaxed);
                return Ok(Some("reindexed"));
            }
            return Ok(Some("unchanged"));
        }
        shared.counts.refolded_corrupt.fetch_add(1, Ordering::Relaxed);
    }
    if shared.index_phase.load(Ordering::Relaxed) {
        index_document(shared, doc)?;
        shared.counts.indexed.fetch_add(1, Ordering::Relaxed);
        return Ok(Some("indexed"));
    }
    Ok(None)
}

/// `--index-only`: the document's text, record (without checkpoints) and retrieval units
/// (resuming from the start state) go into the store; nothing is folded.
fn index_document(shared: &Shared<'_>, doc: &Document) -> Result<()> {
    let (record, _plan) = document_record(shared, doc);
    shared.texts.put(&record.content_hash, &doc.text)?;
    shared.store.commit_document(record.clone(), Vec::new())?;
    let units = {
        let _span = tracing::debug_span!(target: "rwkv::index", "symbols", path = %record.source).entered();
        units_from(&record, &[], &doc.text)
    };
    let _span =
        tracing::debug_span!(target: "rwkv::index", "index", path = %record.source, units = units.len()).entered();
    let mut index = shared.index.lock().map_err(|_| poisoned())?;
    index.add_document_units(&record.id, units)?;
    Ok(())
}

/// A document's tokens (its fold plan) and its record, without checkpoints.
fn document_record(shared: &Shared<'_>, doc: &Document) -> (DocumentRecord, Vec<rwkv_reader::Piece>) {
    let id = doc.id.to_string();
    let name = doc.location();
    let parts: Vec<usize> = doc.parts.iter().map(|p| p.start).collect();
    let input = DocInput {
        id: &id,
        name: &name,
        text: &doc.text,
        parts: &parts,
    };
    let plan = tracing::debug_span!(target: "rwkv::tokenize", "tokenize", path = %name, bytes = doc.bytes())
        .in_scope(|| shared.reader.plan(&input));
    let doc_tokens: u64 = plan.iter().map(|p| p.tokens.len() as u64).sum();
    let record = DocumentRecord {
        id,
        source: name,
        kind: doc.kind.as_str().to_string(),
        title: doc.title.clone(),
        content_hash: doc.hash.to_string(),
        byte_len: doc.bytes() as u64,
        line_count: doc.lines() as u64,
        token_count: doc_tokens,
        parts: doc
            .parts
            .iter()
            .map(|p| rwkv_store::Part {
                title: p.title.clone(),
                byte_offset: p.start as u64,
                line: doc.line_of(p.start) as u64,
            })
            .collect(),
        ..Default::default()
    };
    (record, plan)
}

fn blobs_intact(store: &Store, id: &str) -> Result<bool> {
    for cp in store.checkpoints_of(id)? {
        match store.read_blob(&cp.key) {
            Ok(_) => {}
            Err(e) if e.needs_refold() => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

fn fold_document(shared: &Shared<'_>, doc: &Document) -> Result<()> {
    let mut job = FoldJob::new(shared, doc)?;
    let fold_span =
        tracing::debug_span!(target: "rwkv::fold", "fold", path = %job.name, tokens = job.record.token_count);
    let fold_guard = fold_span.enter();
    // The sink borrows the job mutably: the fold reads the plan and names apart from it.
    let plan = std::mem::take(&mut job.plan);
    let (id, name, parts) = (job.id.clone(), job.name.clone(), job.parts.clone());
    let input = DocInput {
        id: &id,
        name: &name,
        text: &doc.text,
        parts: &parts,
    };
    let summary = shared
        .reader
        .fold_planned(&input, &plan, |cp| job.checkpoint(shared, cp))?;
    drop(fold_guard);
    job.finish(shared, &summary)
}

/// One document being folded: its plan and record, and the checkpoints written so far. The
/// one-document path ([`fold_document`]) and the lanes ([`work_lanes`]) share it.
struct FoldJob<D> {
    /// The document, borrowed (one-document path) or owned (lanes).
    doc: D,
    id: String,
    name: String,
    parts: Vec<usize>,
    plan: Vec<rwkv_reader::Piece>,
    record: DocumentRecord,
    /// Set when the store's fingerprint is not the model's own (a bf16 fold, bf16 blobs):
    /// blobs name it, so that a manifest rebuilt from them keeps to the store's identity.
    store_model: Option<String>,
    fingerprint: String,
    records: Vec<CheckpointRecord>,
    parent: Option<Key>,
    failure: Option<Error>,
    last_tokens: u64,
}

impl<D: Borrow<Document>> FoldJob<D> {
    /// Tokenizes the document, makes its record, stores its text and announces it.
    fn new(shared: &Shared<'_>, owned: D) -> Result<Self> {
        let doc = owned.borrow();
        let (record, plan) = document_record(shared, doc);
        let (id, name, doc_tokens) = (record.id.clone(), record.source.clone(), record.token_count);
        let parts: Vec<usize> = doc.parts.iter().map(|p| p.start).collect();
        shared.progress.start(&name, doc_tokens);
        shared.texts.put(&record.content_hash, &doc.text)?;
        let fingerprint = shared.store.identity().model_fingerprint.clone();
        let store_model = (fingerprint != shared.model.fingerprint()).then(|| fingerprint.clone());
        Ok(FoldJob {
            doc: owned,
            id,
            name,
            parts,
            plan,
            record,
            store_model,
            fingerprint,
            records: Vec::new(),
            parent: None,
            failure: None,
            last_tokens: 0,
        })
    }

    fn input(&self) -> DocInput<'_> {
        DocInput {
            id: &self.id,
            name: &self.name,
            text: &self.doc.borrow().text,
            parts: &self.parts,
        }
    }

    /// Writes one checkpoint's blob; a failed write stops the document (kept in `failure`).
    fn checkpoint(&mut self, shared: &Shared<'_>, cp: rwkv_reader::Checkpoint) -> ControlFlow<()> {
        let _span =
            tracing::debug_span!(target: "rwkv::checkpoint", "checkpoint", seq = cp.seq, tokens = cp.token_offset)
                .entered();
        let key = checkpoint_key(&self.fingerprint, self.parent.as_ref(), &cp.span_hash);
        let mut rec = CheckpointRecord {
            key,
            doc_id: self.id.clone(),
            seq: cp.seq,
            token_offset: cp.token_offset,
            byte_offset: cp.byte_offset as u64,
            line: cp.line as u64,
            parent: self.parent,
            is_final: cp.is_last,
            blob: Default::default(),
        };
        let mut meta = rwkv_store::blob_metadata(&rec, &self.record);
        if let Some(m) = &self.store_model {
            meta.insert(rwkv_store::meta_keys::STORE_MODEL.to_string(), m.clone());
        }
        let extra: Vec<(String, String)> = meta.into_iter().collect();
        // The fold goes on from the exact state; only the stored copy is rounded.
        let spec = shared.model.state_spec();
        let tokenizer_id = shared.reader.tokenizer().id();
        let bytes = cp
            .state
            .to_bytes_as(&spec, tokenizer_id, &extra, shared.cfg.state_precision);
        match shared.store.put_blob(&key, &bytes) {
            Ok(info) => rec.blob = info,
            Err(e) => {
                self.failure = Some(e.into());
                return ControlFlow::Break(());
            }
        }
        shared.progress.tokens(cp.state.tokens - self.last_tokens);
        self.last_tokens = cp.state.tokens;
        self.records.push(rec);
        self.parent = Some(key);
        ControlFlow::Continue(())
    }

    /// Commits the document's checkpoints to the manifest, then indexes it.
    fn finish(self, shared: &Shared<'_>, summary: &rwkv_reader::FoldSummary) -> Result<()> {
        if let Some(e) = self.failure {
            return Err(e);
        }
        shared
            .counts
            .tokens
            .fetch_add(summary.tokens + summary.preamble_tokens, Ordering::Relaxed);
        shared
            .counts
            .checkpoints
            .fetch_add(self.records.len() as u64, Ordering::Relaxed);
        let committed = self.records.clone();
        let name = &self.name;
        tracing::debug_span!(target: "rwkv::checkpoint", "commit", path = %name, checkpoints = committed.len())
            .in_scope(|| shared.store.commit_document(self.record.clone(), self.records))?;
        // A document indexed before it was folded (the index phase, `--index-only`) keeps its
        // units as they are: readers take checkpoints from the manifest, and rewriting the
        // units would change the index's statistics, and so the ranking, for every question.
        let mut index = shared.index.lock().map_err(|_| poisoned())?;
        if index.holds_document(&self.id)? {
            return Ok(());
        }
        let units = {
            let _span = tracing::debug_span!(target: "rwkv::index", "symbols", path = %name).entered();
            units_from(&self.record, &committed, &self.doc.borrow().text)
        };
        let _span = tracing::debug_span!(target: "rwkv::index", "index", path = %name, units = units.len()).entered();
        index.add_document_units(&self.id, units)?;
        Ok(())
    }
}

impl<D: Borrow<Document>> rwkv_reader::LaneDoc for FoldJob<D> {
    fn input(&self) -> DocInput<'_> {
        FoldJob::input(self)
    }
    fn plan(&self) -> &[rwkv_reader::Piece] {
        &self.plan
    }
}

/// Remove stored documents under this run's inputs whose files are gone.
fn remove_deleted(shared: &Shared<'_>) -> Result<u64> {
    let seen: BTreeSet<String> = shared.seen.lock().map_err(|_| poisoned())?.iter().cloned().collect();
    let failed: BTreeSet<String> = shared
        .skips
        .lock()
        .map_err(|_| poisoned())?
        .iter()
        .map(|s| s.input.clone())
        .collect();
    let roots: Vec<String> = shared
        .cfg
        .inputs
        .iter()
        .filter(|i| !i.starts_with("http://") && !i.starts_with("https://"))
        .map(|i| display_root(i))
        .collect();
    let mut removed = 0;
    for rec in shared.store.documents()? {
        if seen.contains(&rec.id) || failed.contains(&rec.source) || !in_shard(&rec.id, shared.cfg.shard) {
            continue;
        }
        let under = roots
            .iter()
            .any(|r| rec.source == *r || rec.source.starts_with(&format!("{}/", r.trim_end_matches('/'))));
        if under && !Path::new(&rec.source).exists() {
            shared.store.remove_document(&rec.id)?;
            shared.index.lock().map_err(|_| poisoned())?.remove_document(&rec.id)?;
            shared.progress.done(&rec.source, "removed");
            removed += 1;
        }
    }
    Ok(removed)
}

fn display_root(input: &str) -> String {
    let p = input.trim_start_matches("./");
    if p.is_empty() { ".".into() } else { p.to_string() }
}

/// Fold every document of this run, in input order, into one state saved as
/// `<store>/corpus.state.safetensors`.
fn fold_corpus(shared: &Shared<'_>, tokenizer: &dyn Tokenizer) -> Result<PathBuf> {
    let ids = shared.seen.lock().map_err(|_| poisoned())?.clone();
    let mut state: State = shared.model.new_state();
    for id in ids {
        let Some(rec) = shared.store.document(&id)? else {
            continue;
        };
        let Some(text) = shared.texts.get(&rec.content_hash)? else {
            continue;
        };
        let parts: Vec<usize> = rec.parts.iter().map(|p| p.byte_offset as usize).collect();
        let input = DocInput {
            id: &id,
            name: &rec.source,
            text: &text,
            parts: &parts,
        };
        let n = shared.reader.fold_into(&input, &mut state)?;
        shared.counts.tokens.fetch_add(n, Ordering::Relaxed);
        shared.progress.tokens(n);
    }
    let path = shared.cfg.store_dir.join("corpus.state.safetensors");
    state.save(&path, &shared.model.state_spec(), tokenizer.id())?;
    Ok(path)
}
