//! The server's state and the operations every front end (HTTP, OpenAI, MCP) shares.

use std::collections::{BTreeMap, VecDeque};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use rwkv_heads::sample::SamplerConfig;
use rwkv_heads::{Answer, AskOptions, Evidence, Library, Rank, Source, SummaryTarget, Template, Timings};
use rwkv_model::tokenizer::Tokenizer;
use rwkv_model::{Model, State};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::engine::{Done, Engine, Event, GenRequest};
use crate::error::{ApiError, ApiResult};
use crate::jobs::Jobs;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The model's id in `/v1/models` and responses (its file name).
    pub model_id: String,
    /// The chat template (`rwkv-ask`'s).
    pub template: Template,
    /// The bundled demo model: `/v1/ask` gives evidence only unless `generate` is asked for.
    pub demo: bool,
    /// Required as `Authorization: Bearer KEY` (or `x-api-key`) on every route but `/health`.
    pub api_key: Option<String>,
    /// Folders ingest jobs may read (none: ingest jobs are refused).
    pub allow_roots: Vec<PathBuf>,
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// Generations queued or running at once before `429`.
    pub capacity: usize,
    /// Bytes of states kept in the scratch area (`return_state`, uploads); oldest go first.
    pub scratch_bytes: usize,
    /// Largest `max_tokens` a request may ask for.
    pub max_tokens_limit: usize,
    /// Characters of an MCP tool result before it is cut.
    pub tool_result_chars: usize,
    /// The sentence encoder that re-ranks retrieval by meaning (`rwkv-ask --embedder`).
    pub embedder: Option<Arc<rwkv_embed::Embedder>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            model_id: "rwkv".into(),
            template: Template::Chat,
            demo: false,
            api_key: None,
            allow_roots: Vec::new(),
            body_limit: 1 << 20,
            capacity: 64,
            scratch_bytes: 256 << 20,
            max_tokens_limit: 4096,
            tool_result_chars: 20_000,
            embedder: None,
        }
    }
}

/// A store the server serves: its directory and, once it holds documents, its library.
pub(crate) struct StoreSlot {
    pub dir: PathBuf,
    pub lib: RwLock<Option<Arc<Library<'static>>>>,
}

/// Everything a request handler needs.
pub struct App {
    pub(crate) model: &'static Model,
    pub(crate) tokenizer: Arc<dyn Tokenizer>,
    pub(crate) opts: ServeOptions,
    pub(crate) stores: BTreeMap<String, StoreSlot>,
    pub(crate) engine: Engine,
    pub(crate) scratch: Mutex<Scratch>,
    pub(crate) jobs: Jobs,
    pub(crate) started: Instant,
    /// Documents (store, id) an answer folded on demand that a thread is committing now.
    pub(crate) committing: Mutex<std::collections::BTreeSet<(String, String)>>,
}

/// Errors starting a server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Two stores share a directory name.
    #[error("two stores are named {0:?} (a store's name is its directory name): give directories with distinct names")]
    DuplicateName(String),
    /// A store refused the model.
    #[error("store {name:?}: {source}")]
    Store {
        /// The store's name.
        name: String,
        /// Why.
        #[source]
        source: Box<rwkv_heads::Error>,
    },
}

/// A store's name: its directory's name.
pub fn store_name(dir: &Path) -> String {
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    abs.components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .next_back()
        .unwrap_or_else(|| "store".into())
}

impl App {
    /// A server over `stores` with `model` (held for the life of the process). A store that
    /// does not exist yet or holds no document is served empty (an ingest job can fill it); one
    /// made with another model is refused.
    pub fn new(
        model: &'static Model,
        tokenizer: Arc<dyn Tokenizer>,
        stores: &[PathBuf],
        opts: ServeOptions,
    ) -> Result<Arc<App>, StartError> {
        let mut slots = BTreeMap::new();
        for dir in stores {
            let name = store_name(dir);
            let lib = match Library::open(dir, model, tokenizer.clone()) {
                Ok(l) => Some(Arc::new(l.with_embedder(opts.embedder.clone()))),
                Err(rwkv_heads::Error::NoStore(_)) => None,
                Err(source) => {
                    return Err(StartError::Store {
                        name,
                        source: Box::new(source),
                    });
                }
            };
            let slot = StoreSlot {
                dir: dir.clone(),
                lib: RwLock::new(lib),
            };
            if slots.insert(name.clone(), slot).is_some() {
                return Err(StartError::DuplicateName(name));
            }
        }
        let engine = Engine::start(model, tokenizer.clone(), opts.capacity);
        Ok(Arc::new(App {
            model,
            tokenizer,
            scratch: Mutex::new(Scratch::new(opts.scratch_bytes)),
            opts,
            stores: slots,
            engine,
            jobs: Jobs::default(),
            started: Instant::now(),
            committing: Mutex::default(),
        }))
    }

    /// The options.
    pub fn options(&self) -> &ServeOptions {
        &self.opts
    }

    /// Generations queued or running now.
    pub fn engine_load(&self) -> usize {
        self.engine.load()
    }

    /// The served stores' names.
    pub fn store_names(&self) -> Vec<String> {
        self.stores.keys().cloned().collect()
    }

    pub(crate) fn slot(&self, name: &str) -> ApiResult<&StoreSlot> {
        self.stores.get(name).ok_or_else(|| {
            ApiError::NotFound(format!(
                "no store named {name:?}; this server has: {}",
                self.stores.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// The library of store `name`.
    pub(crate) fn library(&self, name: &str) -> ApiResult<Arc<Library<'static>>> {
        let slot = self.slot(name)?;
        let lib = slot
            .lib
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        lib.ok_or_else(|| ApiError::NotFound(format!("store {name:?} holds no documents yet: ingest something first")))
    }

    /// Open store `name` again (after an ingest committed documents).
    pub(crate) fn reopen(&self, name: &str) {
        if let Ok(slot) = self.slot(name)
            && let Ok(l) = Library::open(&slot.dir, self.model, self.tokenizer.clone())
        {
            *slot.lib.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(Arc::new(l.with_embedder(self.opts.embedder.clone())));
        }
    }

    /// The store to use when a request names none: the only one, if there is one.
    pub(crate) fn default_store(&self, asked: Option<&str>) -> ApiResult<String> {
        match asked {
            Some(s) => Ok(s.to_string()),
            None if self.stores.len() == 1 => Ok(self.stores.keys().next().cloned().unwrap_or_default()),
            None => Err(ApiError::BadRequest(format!(
                "name a store (\"store\"): this server has {}",
                self.stores.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// Check a request's `max_tokens`.
    pub(crate) fn max_tokens(&self, asked: Option<usize>, default: usize) -> ApiResult<usize> {
        let n = asked.unwrap_or(default);
        if n > self.opts.max_tokens_limit {
            return Err(ApiError::BadRequest(format!(
                "max_tokens {n} is over this server's limit of {}",
                self.opts.max_tokens_limit
            )));
        }
        Ok(n)
    }

    /// Queue a generation; its events come back on the receiver.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn generate(
        &self,
        state: State,
        prefill: Vec<u32>,
        sampler: SamplerConfig,
        max_tokens: usize,
        stops: Vec<String>,
        unstoppable: bool,
        return_state: bool,
    ) -> ApiResult<mpsc::UnboundedReceiver<Event>> {
        if prefill.is_empty() {
            return Err(ApiError::BadRequest(
                "the prompt is empty: give some text to continue".into(),
            ));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let req = GenRequest {
            state,
            prefill,
            logits: None,
            sampler,
            max_tokens,
            stops,
            unstoppable,
            return_state,
            events: tx,
        };
        self.engine
            .submit(req)
            .map_err(|_| ApiError::Busy(self.engine.load()))?;
        Ok(rx)
    }

    /// Retrieval and evidence (no generation).
    pub fn search(&self, store: &str, question: &str, top: Option<usize>) -> ApiResult<SearchResult> {
        if question.trim().is_empty() {
            return Err(ApiError::BadRequest("the question is empty".into()));
        }
        let lib = self.library(store)?;
        let opts = self.ask_options(top, None, SamplerConfig::greedy(), false);
        let found = lib.search(question, &opts)?;
        let answers = found.answers();
        let sources = if answers {
            found.retrieval.candidates.iter().map(Source::of).collect()
        } else {
            Vec::new()
        };
        Ok(SearchResult {
            store: store.to_string(),
            answers,
            support: found.retrieval.support,
            evidence: found.evidence,
            sources,
            timings: found.timings,
        })
    }

    pub(crate) fn ask_options(
        &self,
        top: Option<usize>,
        max_tokens: Option<usize>,
        sampler: SamplerConfig,
        generate: bool,
    ) -> AskOptions {
        AskOptions {
            top: top.unwrap_or(3).clamp(1, 20),
            max_tokens: max_tokens.unwrap_or(256),
            sampler,
            template: self.opts.template.clone(),
            rank: Rank::Bm25,
            generate,
            reread: rwkv_heads::Reread::default(),
            read_tokens: rwkv_heads::default_read_tokens(self.model.config()),
        }
    }

    /// Start answering `question` from `store`: retrieval, evidence and the restored checkpoint
    /// now (on the caller's thread), the reading and generation queued on the engine.
    /// A document an answer folded on demand (indexed, not folded): it is folded into the store
    /// on a thread of its own, as `rwkv-ask` does after answering, so the next question on it
    /// resumes a checkpoint; the store is then opened again. If an ingest holds the store, the
    /// document is queued for that ingest to fold first. One thread per document at a time.
    pub(crate) fn commit_on_demand(self: &Arc<Self>, store: &str, doc_id: &str, ident: rwkv_store::StoreIdentity) {
        let key = (store.to_string(), doc_id.to_string());
        let Ok(slot) = self.slot(store) else { return };
        let dir = slot.dir.clone();
        if !self
            .committing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.clone())
        {
            return;
        }
        let app = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("rwkv-serve-commit".into())
            .spawn(move || {
                let ids = std::slice::from_ref(&key.1);
                match rwkv_pipeline::fold_stored(&dir, ident, app.model, app.tokenizer.clone(), ids, &rwkv_pipeline::NoProgress) {
                    Ok(n) => {
                        tracing::info!(store = %key.0, doc = %key.1, folded = n, "committed a document folded on demand");
                        if n > 0 {
                            app.reopen(&key.0);
                        }
                    }
                    Err(e) => {
                        let queued = rwkv_store::StoreDir::new(&dir).push_asked(&key.1).is_ok();
                        tracing::info!(store = %key.0, doc = %key.1, queued, "the store is busy, not committed: {e}");
                    }
                }
                app.committing
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&key);
            });
        if spawned.is_err() {
            self.committing
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&(store.to_string(), doc_id.to_string()));
        }
    }

    pub(crate) fn start_ask(self: &Arc<Self>, store: &str, question: &str, opts: &AskOptions) -> ApiResult<AskStart> {
        if question.trim().is_empty() {
            return Err(ApiError::BadRequest("the question is empty".into()));
        }
        let lib = self.library(store)?;
        if !opts.generate {
            let answer = lib.answer_with(question, opts, &mut |_| {}, &mut |_| ControlFlow::Continue(()))?;
            return Ok(match answer {
                Some(a) => AskStart::Done(Box::new(a)),
                None => AskStart::NotFound,
            });
        }
        let Some(plan) = lib.plan(question, opts)? else {
            return Ok(AskStart::NotFound);
        };
        let state = plan
            .state
            .ok_or_else(|| ApiError::Internal("no state restored".into()))?;
        if let Some(src) = plan.sources.first()
            && src.checkpoint.is_empty()
        {
            self.commit_on_demand(store, &src.doc_id, lib.store().identity().clone());
        }
        let stops = vec![opts.template.stop().to_string()];
        let rx = self.generate(state, plan.tokens, opts.sampler, opts.max_tokens, stops, false, false)?;
        Ok(AskStart::Generating(Box::new(Pending {
            support: plan.support,
            evidence: plan.evidence,
            sources: plan.sources,
            timings: plan.timings,
            rx,
        })))
    }

    /// The documents of `store`.
    pub fn documents(&self, store: &str) -> ApiResult<Vec<DocumentInfo>> {
        let lib = self.library(store)?;
        let docs = lib.store().documents().map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(docs
            .into_iter()
            .map(|d| DocumentInfo {
                id: d.id,
                path: d.source,
                kind: d.kind,
                title: d.title,
                bytes: d.byte_len,
                lines: d.line_count,
                tokens: d.token_count,
                checkpoints: d.checkpoints.iter().map(|k| k.to_string()).collect(),
            })
            .collect())
    }

    /// Lines `start ..= end` (1-based) of a stored document, found by id or path.
    pub fn read_file(&self, store: &str, path: &str, start: Option<u64>, end: Option<u64>) -> ApiResult<FileLines> {
        let lib = self.library(store)?;
        let docs = lib.store().documents().map_err(|e| ApiError::Internal(e.to_string()))?;
        let doc = docs
            .iter()
            .find(|d| d.id == path)
            .or_else(|| docs.iter().find(|d| d.source == path))
            .or_else(|| {
                docs.iter()
                    .find(|d| d.source.ends_with(&format!("/{path}")) || d.id.ends_with(&format!("/{path}")))
            })
            .ok_or_else(|| ApiError::NotFound(format!("no document {path:?} in store {store:?}")))?;
        let text = lib
            .text_of(&doc.id)?
            .ok_or_else(|| ApiError::NotFound(format!("the text of {path:?} is not stored")))?;
        let lines: Vec<&str> = text.lines().collect();
        let total = lines.len() as u64;
        let start = start.unwrap_or(1).max(1);
        let end = end.unwrap_or(total).min(total);
        if start > end && total > 0 {
            return Err(ApiError::BadRequest(format!(
                "lines {start}-{end}: {path} has {total} lines"
            )));
        }
        let picked: Vec<String> = if total == 0 {
            Vec::new()
        } else {
            lines[(start - 1) as usize..end as usize]
                .iter()
                .map(|s| s.to_string())
                .collect()
        };
        Ok(FileLines {
            path: doc.source.clone(),
            start,
            end: if total == 0 { 0 } else { end },
            total_lines: total,
            lines: picked,
        })
    }

    /// A summary of a path or of everything: with a model that can write, the map-reduce
    /// summary; with the demo model, every document's key lines.
    pub fn summarize(&self, store: &str, path: Option<&str>, generate: bool) -> ApiResult<serde_json::Value> {
        let lib = self.library(store)?;
        let target = match path {
            None | Some("all") | Some("") => SummaryTarget::All,
            Some(p) => SummaryTarget::Path(p.to_string()),
        };
        if !generate {
            let docs = lib
                .outline(&target)?
                .ok_or_else(|| ApiError::NotFound("no matching documents".into()))?;
            return Ok(serde_json::json!({"documents": docs, "generated": false, "summary": null}));
        }
        let opts = self.ask_options(None, None, SamplerConfig::greedy(), true);
        let s = lib
            .summarize(&target, &opts, &mut |_, _, _| {}, &mut |_| ControlFlow::Continue(()))?
            .ok_or_else(|| ApiError::NotFound("no matching documents".into()))?;
        serde_json::to_value(s).map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// A state by key: `tmp-…` from the scratch area, else a checkpoint of `store`.
    pub(crate) fn state_by_key(&self, store: Option<&str>, key: &str) -> ApiResult<State> {
        if key.starts_with(SCRATCH_PREFIX) {
            return self
                .scratch
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(key)
                .ok_or_else(|| {
                    ApiError::NotFound(format!("no state {key:?} (scratch states are dropped oldest first)"))
                });
        }
        let (store, key) = match key.split_once(':') {
            Some((s, k)) => (s.to_string(), k),
            None => (self.default_store(store)?, key),
        };
        let lib = self.library(&store)?;
        if !key.chars().all(|c| c.is_ascii_hexdigit()) || key.is_empty() {
            return Err(ApiError::BadRequest(format!("{key:?} is not a checkpoint key")));
        }
        lib.restore_checkpoint(key).map_err(|e| match e {
            rwkv_heads::Error::Stale(_) => ApiError::NotFound(format!("no checkpoint {key} in store {store:?}")),
            rwkv_heads::Error::Store(rwkv_store::Error::UnknownCheckpoint { .. }) => {
                ApiError::NotFound(format!("no checkpoint {key} in store {store:?}"))
            }
            other => ApiError::from(other),
        })
    }

    /// Keep `state` in the scratch area; its key.
    pub(crate) fn keep_state(&self, state: State) -> String {
        self.scratch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .put(state)
    }
}

/// What [`App::start_ask`] started.
pub(crate) enum AskStart {
    /// The store does not answer the question.
    NotFound,
    /// Answered without generating (evidence and sources only).
    Done(Box<Answer>),
    /// Generating.
    Generating(Box<Pending>),
}

/// A grounded answer being generated.
pub(crate) struct Pending {
    pub support: f32,
    pub evidence: Vec<Evidence>,
    pub sources: Vec<Source>,
    pub timings: Timings,
    pub rx: mpsc::UnboundedReceiver<Event>,
}

impl Pending {
    /// The answer once generation is done.
    pub fn answer(&self, text: String, done: &Done) -> Answer {
        let mut timings = self.timings.clone();
        let before = timings.retrieve_ms + timings.evidence_ms + timings.restore_ms;
        timings.read_ms = done.read_ms;
        timings.first_token_ms = before + done.first_token_ms;
        timings.generate_ms = done.generate_ms;
        timings.tokens = done.completion_tokens;
        timings.tokens_per_second = done.completion_tokens as f64 / (done.generate_ms / 1e3).max(1e-9);
        Answer {
            text,
            generated: true,
            support: self.support,
            evidence: self.evidence.clone(),
            sources: self.sources.clone(),
            finish: done.finish,
            timings,
        }
    }

    /// Wait for the whole answer.
    pub async fn collect(mut self) -> ApiResult<(Answer, Done)> {
        let mut text = String::new();
        while let Some(ev) = self.rx.recv().await {
            match ev {
                Event::Text(t) => text.push_str(&t),
                Event::Done(d) => return Ok((self.answer(text, &d), *d)),
                Event::Failed(e) => return Err(ApiError::Internal(e)),
            }
        }
        Err(ApiError::Internal("the engine stopped".into()))
    }
}

/// Collect a generation's text and end.
pub(crate) async fn collect(mut rx: mpsc::UnboundedReceiver<Event>) -> ApiResult<(String, Done)> {
    let mut text = String::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Text(t) => text.push_str(&t),
            Event::Done(d) => return Ok((text, *d)),
            Event::Failed(e) => return Err(ApiError::Internal(e)),
        }
    }
    Err(ApiError::Internal("the engine stopped".into()))
}

/// `/v1/search`'s answer.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    /// The store searched.
    pub store: String,
    /// Whether the store answers the question (support high enough, evidence found).
    pub answers: bool,
    /// The share of the question's content words the best units hold.
    pub support: f32,
    /// The lines that answer, best first.
    pub evidence: Vec<Evidence>,
    /// The units they come from.
    pub sources: Vec<Source>,
    /// Timings.
    pub timings: Timings,
}

/// A stored document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocumentInfo {
    /// Its id in the store.
    pub id: String,
    /// Path or URL.
    pub path: String,
    /// `code`, `book`, `web`, …
    pub kind: String,
    /// Title.
    pub title: String,
    /// Bytes.
    pub bytes: u64,
    /// Lines.
    pub lines: u64,
    /// Tokens folded.
    pub tokens: u64,
    /// Checkpoint keys, in order.
    pub checkpoints: Vec<String>,
}

/// Lines of a stored document.
#[derive(Debug, Clone, Serialize)]
pub struct FileLines {
    /// Path or URL.
    pub path: String,
    /// First line given (1-based).
    pub start: u64,
    /// Last line given.
    pub end: u64,
    /// Lines in the document.
    pub total_lines: u64,
    /// The lines, exactly as stored.
    pub lines: Vec<String>,
}

/// Keys of scratch states start with this.
pub const SCRATCH_PREFIX: &str = "tmp-";

/// States kept for later requests, dropped oldest first beyond a byte cap.
pub(crate) struct Scratch {
    cap: usize,
    used: usize,
    order: VecDeque<String>,
    states: BTreeMap<String, State>,
    counter: u64,
}

impl Scratch {
    fn new(cap: usize) -> Self {
        Scratch {
            cap,
            used: 0,
            order: VecDeque::new(),
            states: BTreeMap::new(),
            counter: 0,
        }
    }

    fn put(&mut self, state: State) -> String {
        self.counter += 1;
        let seed = format!(
            "{:?}{}{}",
            std::time::SystemTime::now(),
            self.counter,
            std::process::id()
        );
        let key = format!("{SCRATCH_PREFIX}{}", &blake3::hash(seed.as_bytes()).to_hex()[..24]);
        self.used += state.byte_len();
        self.order.push_back(key.clone());
        self.states.insert(key.clone(), state);
        while self.used > self.cap && self.order.len() > 1 {
            if let Some(old) = self.order.pop_front()
                && let Some(s) = self.states.remove(&old)
            {
                self.used -= s.byte_len();
            }
        }
        key
    }

    fn get(&self, key: &str) -> Option<State> {
        self.states.get(key).cloned()
    }
}
