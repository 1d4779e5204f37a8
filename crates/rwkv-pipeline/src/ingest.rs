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

/// The tokens between checkpoints a run uses: `cfg`'s, or the default for the bytes one
/// checkpoint of `model`'s state takes at `cfg`'s state precision.
pub fn checkpoint_every(cfg: &IngestConfig, model: &Model) -> usize {
    cfg.checkpoint_every
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

/// One pass over the sources: a producer feeding the workers, in the index phase or the fold.
fn run_pass(shared: &Shared<'_>) -> Result<()> {
    // Sources on a tokio runtime, feeding a bounded channel; fold workers drain it. A worker
    // that fails or panics closes the channel, so the producer's next send fails and the run
    // ends (it never waits on a channel no one reads).
    let cfg = shared.cfg;
    let jobs = cfg.jobs.max(1);
    let (tx, rx) = mpsc::sync_channel::<Document>(jobs * 2);
    let rx: Queue = Mutex::new(Some(rx));
    let mut source_error = None;
    std::thread::scope(|scope| {
        let producer = scope.spawn(|| produce(shared, tx));
        // The index phase folds nothing: one document at a time per worker.
        let lanes = if shared.index_phase.load(Ordering::Relaxed) {
            1
        } else {
            cfg.lanes.max(1)
        };
        let rx = &rx;
        let workers: Vec<_> = (0..jobs)
            .map(|_| scope.spawn(move || run_worker(shared, rx, lanes)))
            .collect();
        let mut first = |r: std::thread::Result<Result<()>>| {
            let e = match r {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e,
                Err(payload) => Error::Panicked {
                    documents: Vec::new(),
                    message: panic_message(payload.as_ref()),
                },
            };
            source_error.get_or_insert(e);
        };
        // The workers first: their error is the cause when the producer stops because of it.
        let done: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
        done.into_iter().for_each(&mut first);
        first(producer.join());
    });
    source_error.map_or(Ok(()), Err)
}

/// Folds documents a store holds indexed but not folded (`rwkv-ingest --index-only`) from
/// their stored texts, exactly as an ingest folds them (same plan, spacing for the store's
/// state precision, blobs and records), and commits them and their units: what `rwkv-ask` does
/// after answering from a document it folded on demand, so the next question on it resumes a
/// checkpoint. `store` is the identity the store was made with. Documents already folded,
/// unknown, or whose text is not stored are left alone. Returns how many were folded. Fails
/// with the store's or the index's lock error while another process (an ingest) writes it.
pub fn fold_stored(
    store_dir: &Path,
    store: StoreIdentity,
    model: &Model,
    tokenizer: Arc<dyn Tokenizer>,
    doc_ids: &[String],
) -> Result<u64> {
    let state_precision = match rwkv_store::FoldKind::parse(&store.model_fingerprint) {
        Some((_, k)) if !k.state_bf16 => StatePrecision::F32,
        _ => StatePrecision::Bf16,
    };
    let cfg = IngestConfig {
        store_dir: store_dir.to_path_buf(),
        state_precision,
        jobs: 1,
        lanes: 1,
        ..IngestConfig::default()
    };
    let opened = Store::open(store_dir, store)?;
    let (index, _) = Index::open_or_create(StoreDir::new(store_dir).index())?;
    let shared = Shared {
        cfg: &cfg,
        model,
        reader: ReaderBuilder::new(model, tokenizer)
            .checkpoint_every(checkpoint_every(&cfg, model))
            .build(),
        store: opened,
        texts: TextStore::new(store_dir),
        index: Mutex::new(index),
        indexed: BTreeSet::new(),
        index_phase: AtomicBool::new(false),
        asked_from: Mutex::new(0),
        folded_early: Mutex::new(BTreeSet::new()),
        progress: &NoProgress,
        seen: Mutex::new(Vec::new()),
        skips: Mutex::new(Vec::new()),
        counts: Counts::default(),
    };
    let folded = fold_ids(&shared, doc_ids)?;
    commit_index(&shared)?;
    Ok(folded)
}

/// Folds the documents `ids` names that the store holds indexed but not folded, from their
/// stored texts, as the fold pass would; returns how many.
fn fold_ids(shared: &Shared<'_>, doc_ids: &[String]) -> Result<u64> {
    let mut folded = 0;
    for id in doc_ids {
        let Some(rec) = shared.store.document(id)? else {
            continue;
        };
        if rec.is_folded() {
            continue;
        }
        let Some(text) = shared.texts.get(&rec.content_hash)? else {
            continue;
        };
        let (Some(doc_id), Some(kind)) = (DocId::from_hex(&rec.id), DocKind::parse(&rec.kind)) else {
            continue;
        };
        let parts = rec
            .parts
            .iter()
            .map(|p| (p.title.clone(), p.byte_offset as usize))
            .collect();
        let Some(doc) = Document::from_stored(doc_id, kind, &rec.source, &rec.title, text, parts) else {
            continue;
        };
        if doc.hash.to_string() != rec.content_hash || doc.location() != rec.source {
            continue;
        }
        fold_document(shared, &doc)?;
        folded += 1;
    }
    Ok(folded)
}

/// Folds what `rwkv-ask` queued while this run held the store ([`StoreDir::push_asked`])
/// ahead of the sources' order (no-op in the index phase).
fn fold_asked(shared: &Shared<'_>) -> Result<()> {
    if shared.index_phase.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut from = shared.asked_from.lock().map_err(|_| poisoned())?;
    let dir = StoreDir::new(&shared.cfg.store_dir);
    let (ids, end) = dir.read_asked(*from).map_err(|e| Error::Io {
        path: dir.asked(),
        source: e,
    })?;
    *from = end;
    if ids.is_empty() {
        return Ok(());
    }
    let unfolded: Vec<String> = ids
        .into_iter()
        .filter(|id| matches!(shared.store.document(id), Ok(Some(r)) if !r.is_folded()))
        .collect();
    fold_ids(shared, &unfolded)?;
    shared.folded_early.lock().map_err(|_| poisoned())?.extend(unfolded);
    Ok(())
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

/// Drive the sources stream, sending documents of this shard to the workers.
fn produce(shared: &Shared<'_>, tx: mpsc::SyncSender<Document>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Error::Io {
            path: PathBuf::from("<tokio runtime>"),
            source: e,
        })?;
    let sources = Sources::new(shared.cfg.sources.clone())?.inputs(shared.cfg.inputs.iter().map(|s| Input::parse(s)));
    let res = rt.block_on(async {
        let mut stream = std::pin::pin!(sources.stream());
        while let Some(item) = stream.next().await {
            if shared.progress.cancelled() {
                break;
            }
            match item {
                Ok(doc) => {
                    let id = doc.id.to_string();
                    if !in_shard(&id, shared.cfg.shard) {
                        continue;
                    }
                    shared.seen.lock().map_err(|_| poisoned())?.push(id);
                    shared.counts.documents.fetch_add(1, Ordering::Relaxed);
                    // Blocking send on a bounded channel: memory is bounded by the workers.
                    let tx = tx.clone();
                    if tokio::task::block_in_place(move || tx.send(doc).is_err()) {
                        break;
                    }
                }
                Err(e) => {
                    let counter = if e.is_policy_skip() {
                        &shared.counts.skipped
                    } else {
                        &shared.counts.failed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    if !shared.index_phase.load(Ordering::Relaxed) {
                        shared.progress.skipped(e.at(), e.reason());
                    }
                    shared.skips.lock().map_err(|_| poisoned())?.push(Skip {
                        input: e.at().to_string(),
                        reason: e.reason().to_string(),
                        message: e.to_string(),
                    });
                }
            }
        }
        Ok::<(), Error>(())
    });
    drop(tx);
    rt.shutdown_background();
    res
}

/// The documents on their way to the fold workers; `None` once a worker has closed it.
type Queue = Mutex<Option<mpsc::Receiver<Document>>>;

/// One fold worker: documents until the queue is done. A worker that fails or panics closes
/// the queue (the producer then stops, and so do the other workers after their document); a
/// panic becomes [`Error::Panicked`] naming the documents it had in hand.
fn run_worker(shared: &Shared<'_>, rx: &Queue, lanes: usize) -> Result<()> {
    let in_hand = Mutex::new(Vec::new());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if lanes > 1 {
            work_lanes(shared, rx, lanes, &in_hand)
        } else {
            work(shared, rx, &in_hand)
        }
    }));
    let r = r.unwrap_or_else(|payload| {
        Err(Error::Panicked {
            documents: in_hand.into_inner().unwrap_or_else(|p| p.into_inner()),
            message: panic_message(payload.as_ref()),
        })
    });
    if r.is_err() {
        // Dropping the receiver fails the producer's next send.
        drop(rx.lock().unwrap_or_else(|p| p.into_inner()).take());
    }
    r
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Adds (`true`) or removes a document from a worker's list of documents in hand.
fn hold(in_hand: &Mutex<Vec<String>>, name: &str, held: bool) {
    let mut h = in_hand.lock().unwrap_or_else(|p| p.into_inner());
    if held {
        h.push(name.to_string());
    } else if let Some(i) = h.iter().position(|n| n == name) {
        h.swap_remove(i);
    }
}

fn work(shared: &Shared<'_>, rx: &Queue, in_hand: &Mutex<Vec<String>>) -> Result<()> {
    while let Some(doc) = receive(rx)? {
        if shared.progress.cancelled() {
            continue;
        }
        fold_asked(shared)?;
        let name = doc.location();
        hold(in_hand, &name, true);
        if !shared.index_phase.load(Ordering::Relaxed) {
            panic_for_tests(&name);
        }
        match process(shared, &doc) {
            Ok(_) if shared.index_phase.load(Ordering::Relaxed) => {}
            Ok(outcome) => shared.progress.done(&name, outcome),
            Err(e) => fold_failed(shared, name.clone(), e)?,
        }
        hold(in_hand, &name, false);
    }
    Ok(())
}

/// A test hook: a fold worker panics on a document whose name ends with the value of
/// `RWKV_TEST_PANIC_ON` (how the tests make a worker panic in a real run; the index phase
/// has committed by then).
fn panic_for_tests(name: &str) {
    if let Ok(end) = std::env::var("RWKV_TEST_PANIC_ON")
        && !end.is_empty()
        && name.ends_with(&end)
    {
        panic!("injected test panic on {name}");
    }
}

/// The next document from the sources, `None` once they are done or the queue was closed.
fn receive(rx: &Queue) -> Result<Option<Document>> {
    let rx = rx.lock().map_err(|_| poisoned())?;
    Ok(rx.as_ref().and_then(|r| r.recv().ok()))
}

/// A document's fold failed: a fold error (the model refused it) is that document's failure,
/// recorded; anything else (the store, the disk) ends the run.
fn fold_failed(shared: &Shared<'_>, name: String, e: Error) -> Result<()> {
    match e {
        e @ (Error::Reader(_) | Error::Model(_)) => {
            shared.counts.failed.fetch_add(1, Ordering::Relaxed);
            shared.progress.done(&name, "failed");
            shared.skips.lock().map_err(|_| poisoned())?.push(Skip {
                input: name,
                reason: "fold".into(),
                message: e.to_string(),
            });
            Ok(())
        }
        e => Err(e),
    }
}

/// A fold worker with `lanes` lanes ([`Reader::fold_lanes`]): documents that need folding take
/// a lane as one frees; the others (unchanged, reindexed) are done on the way in. Each
/// document's checkpoints, commit and index entries are those of the one-document path.
fn work_lanes(shared: &Shared<'_>, rx: &Queue, lanes: usize, in_hand: &Mutex<Vec<String>>) -> Result<()> {
    let fatal: RefCell<Option<Error>> = RefCell::new(None);
    let stop = |e: Error| {
        fatal.borrow_mut().get_or_insert(e);
    };
    let next = || -> Option<FoldJob<Document>> {
        while fatal.borrow().is_none() {
            let doc = match receive(rx) {
                Ok(Some(d)) => d,
                Ok(None) => return None,
                Err(e) => {
                    stop(e);
                    return None;
                }
            };
            if shared.progress.cancelled() {
                continue;
            }
            if let Err(e) = fold_asked(shared) {
                stop(e);
                return None;
            }
            match triage(shared, &doc) {
                Ok(Some(outcome)) => shared.progress.done(&doc.location(), outcome),
                Ok(None) => match FoldJob::new(shared, doc) {
                    Ok(job) => {
                        hold(in_hand, &job.name, true);
                        panic_for_tests(&job.name);
                        return Some(job);
                    }
                    Err(e) => stop(e),
                },
                Err(e) => stop(e),
            }
        }
        None
    };
    let on_done = |job: FoldJob<Document>, res: rwkv_reader::Result<rwkv_reader::FoldSummary>| {
        let name = job.name.clone();
        match res.map_err(Error::from).and_then(|s| job.finish(shared, &s)) {
            Ok(()) => {
                shared.counts.folded.fetch_add(1, Ordering::Relaxed);
                shared.progress.done(&name, "folded");
            }
            Err(e) => {
                if let Err(e) = fold_failed(shared, name.clone(), e) {
                    stop(e);
                }
            }
        }
        hold(in_hand, &name, false);
    };
    shared
        .reader
        .fold_lanes(lanes, next, |job, cp| job.checkpoint(shared, cp), on_done);
    fatal.into_inner().map_or(Ok(()), Err)
}

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
        let units = {
            let _span = tracing::debug_span!(target: "rwkv::index", "symbols", path = %name).entered();
            units_from(&self.record, &committed, &self.doc.borrow().text)
        };
        let _span = tracing::debug_span!(target: "rwkv::index", "index", path = %name, units = units.len()).entered();
        shared
            .index
            .lock()
            .map_err(|_| poisoned())?
            .add_document_units(&self.id, units)?;
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

/// Longest retrieval unit, in lines and bytes: a longer definition is indexed in pieces.
pub const UNIT_MAX_LINES: usize = 60;
/// See [`UNIT_MAX_LINES`].
pub const UNIT_MAX_BYTES: usize = 4096;

/// The retrieval units of a stored document ([`rwkv_symbols::units`]: definitions with their
/// bodies, sections, the text between them), each pointing at the checkpoint at or before its
/// start and carrying the names it refers to.
pub fn units_from(doc: &DocumentRecord, cps: &[CheckpointRecord], text: &str) -> Vec<Unit> {
    let syms = rwkv_symbols::extract(&doc.source, &doc.kind, text, &rwkv_symbols::Options::default());
    if let Some(note) = &syms.note {
        tracing::debug!(target: "rwkv::index", path = %doc.source, note = %note, "symbols by fallback");
    }
    let title_at = |off: u64| {
        doc.parts
            .iter()
            .rev()
            .find(|p| p.byte_offset <= off)
            .map(|p| p.title.clone())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| doc.title.clone())
    };
    // The checkpoints in text order (a document's checkpoints are, by seq).
    let mut cps: Vec<&CheckpointRecord> = cps.iter().collect();
    cps.sort_by_key(|c| c.seq);
    let mut refs = syms.references.iter().peekable();
    rwkv_symbols::units(text, &syms, UNIT_MAX_LINES, UNIT_MAX_BYTES)
        .into_iter()
        .enumerate()
        .map(|(seq, u)| {
            let cp = cps.iter().take_while(|c| c.byte_offset as usize <= u.byte_start).last();
            let sym = u.symbol.and_then(|i| syms.definitions.get(i));
            // References are sorted by line, units too: walk them once.
            let mut names: Vec<String> = Vec::new();
            while let Some(r) = refs.peek() {
                if r.line > u.line_end {
                    break;
                }
                if r.line >= u.line_start && !names.contains(&r.name) {
                    names.push(r.name.clone());
                }
                refs.next();
            }
            Unit {
                doc_id: doc.id.clone(),
                path: doc.source.clone(),
                title: title_at(u.byte_start as u64),
                text: text.get(u.byte_start..u.byte_end).unwrap_or_default().to_string(),
                line_start: u64::from(u.line_start),
                line_end: u64::from(u.line_end),
                byte_start: u.byte_start as u64,
                byte_end: u.byte_end as u64,
                checkpoint: cp.map(|c| c.key.to_hex()),
                checkpoint_offset: cp.map_or(0, |c| c.byte_offset),
                seq: seq as u64,
                kind: sym.map_or("text", |s| s.kind.as_str()).to_string(),
                name: sym.map(|s| s.name.clone()).unwrap_or_default(),
                scope: sym.and_then(|s| s.scope.clone()).unwrap_or_default(),
                name_line: sym.map_or(0, |s| u64::from(s.name_line)),
                head: u.head,
                refs: names,
                doc_bytes: text.len() as u64,
                also: syms
                    .definitions
                    .iter()
                    .enumerate()
                    .filter(|&(i, d)| {
                        Some(i) != u.symbol
                            && d.line_start >= u.line_start
                            && d.line_end <= u.line_end
                            && d.name_line >= u.line_start
                    })
                    .take(64)
                    .map(|(_, d)| (d.name.clone(), u64::from(d.name_line)))
                    .collect(),
                doc: match sym.map(|s| s.kind) {
                    Some(rwkv_symbols::SymbolKind::Section) => String::new(),
                    _ if syms.method == rwkv_symbols::Method::Headings => String::new(),
                    _ => rwkv_symbols::comments(text.get(u.byte_start..u.byte_end).unwrap_or_default()),
                },
            }
        })
        .collect()
}

fn units_of(store: &Store, rec: &DocumentRecord, text: &str) -> Result<Vec<Unit>> {
    Ok(units_from(rec, &store.checkpoints_of(&rec.id)?, text))
}

/// Refill the index from the store and the stored texts.
pub fn reindex_all(store: &Store, texts: &TextStore, index: &mut Index) -> Result<u64> {
    let mut n = 0;
    for rec in store.documents()? {
        if let Some(text) = texts.get(&rec.content_hash)? {
            let units = units_of(store, &rec, &text)?;
            index.add_document_units(&rec.id, units)?;
            n += 1;
        }
    }
    index.commit()?;
    Ok(n)
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

/// Collect unreferenced blobs and texts.
pub fn gc(store_dir: &Path, ident: StoreIdentity) -> Result<BTreeMap<&'static str, u64>> {
    let mut store = Store::open(store_dir, ident)?;
    let report = store.gc()?;
    let keep: BTreeSet<String> = store.documents()?.into_iter().map(|d| d.content_hash).collect();
    let (texts, text_bytes) = TextStore::new(store_dir).gc(&keep)?;
    Ok(BTreeMap::from([
        ("blobs_removed", report.blobs_removed),
        ("bytes_removed", report.bytes_removed),
        ("temp_removed", report.temp_removed),
        ("blobs_kept", report.blobs_kept),
        ("texts_removed", texts),
        ("text_bytes_removed", text_bytes),
    ]))
}

/// Rebuild a damaged manifest from the blobs, then the index from the store.
pub fn repair(store_dir: &Path, ident: StoreIdentity) -> Result<rwkv_store::RebuildReport> {
    let (store, report) = Store::rebuild_manifest(store_dir, ident)?;
    let texts = TextStore::new(store_dir);
    let mut index = Index::rebuild(StoreDir::new(store_dir).index(), std::iter::empty())?;
    reindex_all(&store, &texts, &mut index)?;
    Ok(report)
}

/// Merge other stores (same model and tokenizer) into `store_dir`, with their texts, and
/// rebuild the index. Before `store_dir` is touched, every other store must open with `ident`
/// and, when they are shard stores (`shard.json`), be every shard of one run's corpus,
/// complete and made with the same settings ([`rwkv_store::check_shard_set`]).
pub fn merge(store_dir: &Path, ident: StoreIdentity, others: &[PathBuf]) -> Result<Vec<rwkv_store::MergeReport>> {
    // Everything is checked before the target is touched: each store opens (it exists, was made
    // with this identity), and shard stores are the whole of one corpus made alike.
    let mut opened = Vec::with_capacity(others.len());
    let mut records = Vec::with_capacity(others.len());
    for o in others {
        if o.canonicalize()
            .ok()
            .is_some_and(|c| store_dir.canonicalize().ok() == Some(c))
        {
            return Err(Error::Usage(format!(
                "{}: cannot merge a store into itself",
                o.display()
            )));
        }
        opened.push(Store::open_read_only(o, ident.clone())?);
        records.push((o.clone(), ShardRecord::read(o)?));
    }
    rwkv_store::check_shard_set(&records)?;
    let mut store = Store::open(store_dir, ident.clone())?;
    // Shards compressed their blobs: a new merged store does too, so it holds the same bytes.
    let zstd = records.iter().find_map(|(_, r)| {
        r.as_ref()
            .and_then(|r| r.settings.get("compression"))
            .and_then(|c| c.strip_prefix("zstd-"))
            .and_then(|l| l.parse::<i32>().ok())
    });
    if let Some(level) = zstd
        && store.compression() == Compression::None
        && store.stats()?.documents == 0
    {
        store.set_compression(Compression::Zstd(level))?;
    }
    let texts = TextStore::new(store_dir);
    let mut reports = Vec::new();
    for (o, other) in others.iter().zip(opened) {
        let other_texts = TextStore::new(o);
        for d in other.documents()? {
            texts.copy_from(&other_texts, &d.content_hash)?;
        }
        reports.push(store.merge_from(&other)?);
    }
    let mut index = Index::rebuild(StoreDir::new(store_dir).index(), std::iter::empty())?;
    reindex_all(&store, &texts, &mut index)?;
    Ok(reports)
}
