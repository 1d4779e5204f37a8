//! Ingest jobs: `POST /v1/stores/{name}/ingest` runs an ingest into a served store on a
//! background thread; its progress is polled and it can be cancelled (what it committed stays,
//! the next run goes on from there). Only paths under `--allow-root` folders are read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rwkv_pipeline::{IngestConfig, Progress};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::error::{ApiError, ApiResult};

/// The jobs a server ran or runs.
#[derive(Default)]
pub struct Jobs {
    map: Mutex<BTreeMap<String, Arc<Job>>>,
    counter: AtomicU64,
}

/// What an ingest request asks for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    /// Files or folders to ingest (under an allowed root).
    pub paths: Vec<String>,
    /// Options.
    #[serde(default)]
    pub options: IngestRequestOptions,
}

/// Options of an ingest job.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestRequestOptions {
    /// Tokens between checkpoints (default: the model's).
    pub checkpoint_every: Option<usize>,
    /// Documents folded at once.
    pub lanes: Option<usize>,
}

/// One job.
pub struct Job {
    id: String,
    store: String,
    paths: Vec<String>,
    started: Instant,
    cancel: AtomicBool,
    documents_total: u64,
    documents_done: AtomicU64,
    tokens: AtomicU64,
    state: Mutex<JobState>,
}

#[derive(Debug, Clone)]
enum JobState {
    Running,
    Done(serde_json::Value),
    Failed(String),
    Cancelled,
}

/// A job's report.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    /// Its id.
    pub id: String,
    /// The store it ingests into.
    pub store: String,
    /// What it reads.
    pub paths: Vec<String>,
    /// `running`, `done`, `failed` or `cancelled`.
    pub status: &'static str,
    /// Documents finished (folded, unchanged or failed).
    pub documents_done: u64,
    /// Files under the paths when it started (an estimate of the documents).
    pub documents_total: u64,
    /// Tokens folded.
    pub tokens: u64,
    /// Tokens folded per second.
    pub tokens_per_second: f64,
    /// Seconds since it started.
    pub elapsed_s: f64,
    /// Seconds left, estimated from the documents done so far.
    pub eta_s: Option<f64>,
    /// The ingest's summary, once done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<serde_json::Value>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Job {
    fn report(&self) -> JobReport {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let elapsed = self.started.elapsed().as_secs_f64();
        let done = self.documents_done.load(Ordering::Relaxed);
        let tokens = self.tokens.load(Ordering::Relaxed);
        let (status, summary, error) = match state {
            JobState::Running => ("running", None, None),
            JobState::Done(s) => ("done", Some(s), None),
            JobState::Failed(e) => ("failed", None, Some(e)),
            JobState::Cancelled => ("cancelled", None, None),
        };
        let eta = (status == "running" && done > 0)
            .then(|| elapsed / done as f64 * self.documents_total.saturating_sub(done) as f64);
        JobReport {
            id: self.id.clone(),
            store: self.store.clone(),
            paths: self.paths.clone(),
            status,
            documents_done: done,
            documents_total: self.documents_total.max(done),
            tokens,
            tokens_per_second: tokens as f64 / elapsed.max(1e-9),
            elapsed_s: elapsed,
            eta_s: eta,
            summary,
            error,
        }
    }
}

struct JobProgress<'a>(&'a Job);

impl Progress for JobProgress<'_> {
    fn tokens(&self, n: u64) {
        self.0.tokens.fetch_add(n, Ordering::Relaxed);
    }
    fn done(&self, _name: &str, _outcome: &str) {
        self.0.documents_done.fetch_add(1, Ordering::Relaxed);
    }
    fn cancelled(&self) -> bool {
        self.0.cancel.load(Ordering::Relaxed)
    }
}

/// `path` resolved (symlinks followed) if it lies under one of `roots` (also resolved).
pub(crate) fn allowed(path: &str, roots: &[PathBuf]) -> ApiResult<PathBuf> {
    if roots.is_empty() {
        return Err(ApiError::Forbidden(
            "ingest jobs are off: start the server with --allow-root DIR to allow reading under DIR".into(),
        ));
    }
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(ApiError::BadRequest(format!("{path:?}: give an absolute path")));
    }
    // Resolve before comparing, so `..` and symlinks cannot lead outside a root.
    let real =
        std::fs::canonicalize(p).map_err(|_| ApiError::Forbidden(format!("{path}: not under an allowed root")))?;
    for r in roots {
        if let Ok(root) = std::fs::canonicalize(r)
            && real.starts_with(&root)
        {
            return Ok(real);
        }
    }
    Err(ApiError::Forbidden(format!("{path}: not under an allowed root")))
}

/// Files under `p` (not following links), counted up to a bound.
fn count_files(p: &Path) -> u64 {
    let mut n = 0u64;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&d) else {
            continue;
        };
        if meta.is_file() {
            n += 1;
        } else if meta.is_dir()
            && let Ok(rd) = std::fs::read_dir(&d)
        {
            for e in rd.flatten() {
                let name = e.file_name();
                if name.to_string_lossy().starts_with('.') {
                    continue;
                }
                stack.push(e.path());
            }
        }
        if n > 1_000_000 {
            break;
        }
    }
    n
}

impl Jobs {
    /// Start an ingest of `req` into store `store`.
    pub(crate) fn start(&self, app: &Arc<App>, store: &str, req: IngestRequest) -> ApiResult<JobReport> {
        let slot = app.slot(store)?;
        if req.paths.is_empty() {
            return Err(ApiError::BadRequest("give at least one path".into()));
        }
        let mut inputs = Vec::new();
        for p in &req.paths {
            inputs.push(allowed(p, &app.opts.allow_roots)?);
        }
        {
            let map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(j) = map.values().find(|j| {
                j.store == store
                    && matches!(
                        *j.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
                        JobState::Running
                    )
            }) {
                return Err(ApiError::BadRequest(format!(
                    "store {store:?} is already being ingested by job {}",
                    j.id
                )));
            }
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let job = Arc::new(Job {
            id: format!("job-{n}"),
            store: store.to_string(),
            paths: req.paths.clone(),
            started: Instant::now(),
            cancel: AtomicBool::new(false),
            documents_total: inputs.iter().map(|p| count_files(p)).sum(),
            documents_done: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            state: Mutex::new(JobState::Running),
        });
        let cfg = IngestConfig {
            inputs: inputs.iter().map(|p| p.display().to_string()).collect(),
            store_dir: slot.dir.clone(),
            checkpoint_every: req.options.checkpoint_every,
            state_precision: rwkv_model::StatePrecision::default(),
            jobs: 1,
            lanes: req.options.lanes.unwrap_or(1).clamp(1, 64),
            sources: rwkv_sources::Options::default(),
            shard: None,
            corpus_state: false,
            verify: false,
            compress: false,
            index_only: false,
        };
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(job.id.clone(), job.clone());
        let (app2, job2) = (app.clone(), job.clone());
        std::thread::Builder::new()
            .name(format!("rwkv-{}", job.id))
            .spawn(move || {
                let _span =
                    tracing::info_span!(target: "rwkv::serve", "ingest_job", id = %job2.id, store = %job2.store)
                        .entered();
                let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    rwkv_pipeline::ingest(&cfg, app2.model, app2.tokenizer.clone(), &JobProgress(&job2))
                        .map_err(Box::new)
                }));
                let state = match res {
                    Ok(Ok(summary)) => JobState::Done(serde_json::to_value(summary).unwrap_or_default()),
                    Ok(Err(e)) if matches!(*e, rwkv_pipeline::Error::Cancelled) => JobState::Cancelled,
                    Ok(Err(e)) => JobState::Failed(e.to_string()),
                    Err(_) => JobState::Failed("the ingest panicked".into()),
                };
                app2.reopen(&job2.store);
                *job2.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = state;
            })
            .map_err(|e| ApiError::Internal(format!("could not start the job: {e}")))?;
        Ok(job.report())
    }

    /// A job's report.
    pub(crate) fn report(&self, id: &str) -> ApiResult<JobReport> {
        let map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(id)
            .map(|j| j.report())
            .ok_or_else(|| ApiError::NotFound(format!("no job {id:?}")))
    }

    /// Ask a job to stop.
    pub(crate) fn cancel(&self, id: &str) -> ApiResult<JobReport> {
        let map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let j = map
            .get(id)
            .ok_or_else(|| ApiError::NotFound(format!("no job {id:?}")))?;
        j.cancel.store(true, Ordering::Relaxed);
        Ok(j.report())
    }
}
