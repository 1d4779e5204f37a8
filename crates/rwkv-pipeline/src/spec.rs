//! Job files: the TOML form of an ingest run (`pipelines/*.toml`).
//!
//! Every key is optional except `inputs`; unknown keys are errors (a typo must not silently
//! fall back to a default). Relative paths are resolved against the file's own directory, so a
//! job file means the same thing from any working directory.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// One ingest job as written in a TOML file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Format version of the job file (1).
    #[serde(default = "one")]
    pub version: u32,
    /// What to read: directories, files, WARC files, `http(s)://` URLs.
    pub inputs: Vec<String>,
    /// Model checkpoint, or a hub reference `hf:OWNER/REPO/FILE[@REVISION]` (kept as written);
    /// the CLI's default (bundled demo model) when absent.
    pub model: Option<PathBuf>,
    /// Tokenizer: `auto`, `bytes` or `world`.
    pub tokenizer: Option<String>,
    /// Store directory (default `.rwkv`).
    pub store: Option<PathBuf>,
    /// Checkpoint policy.
    #[serde(default)]
    pub checkpoints: CheckpointPolicy,
    /// Include globs (only matching files are read).
    #[serde(default)]
    pub include: Vec<String>,
    /// Exclude globs.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Read hidden files.
    #[serde(default)]
    pub hidden: bool,
    /// Largest file read, in bytes.
    pub max_file_size: Option<u64>,
    /// Fold workers.
    pub jobs: Option<usize>,
    /// Documents each fold worker folds at once in lockstep lanes (default 1 on the CPU, 32 on
    /// a GPU).
    pub lanes: Option<usize>,
    /// Also fold every document, in order, into one corpus state.
    #[serde(default)]
    pub corpus_state: bool,
    /// Compress state blobs with zstd.
    #[serde(default)]
    pub compress: bool,
    /// Arithmetic of the fold: `f32` (exact, the default) or `bf16` (about twice as fast on
    /// CPUs with AVX512-BF16; a store holds states of one kind).
    pub fold_precision: Option<rwkv_model::FoldPrecision>,
    /// What the model holds its weights as: `auto` (the checkpoint's own precision, the
    /// default), `f32`, `bf16` or `int8`; a store holds states of one kind.
    pub weights: Option<rwkv_model::Weights>,
    /// Where the forward pass runs: `cpu` (the default), `cuda` or `cuda:N` (a build with the
    /// CUDA backend). A store records nothing of the device.
    pub device: Option<String>,
    /// How checkpoint blobs store the state: `f32` (exact resume) or `bf16` (half the bytes);
    /// a store holds blobs of one precision.
    pub state_precision: Option<rwkv_model::StatePrecision>,
}

/// Where checkpoints are taken.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckpointPolicy {
    /// Tokens between checkpoints inside a long part; absent: the state-size-aware default
    /// ([`rwkv_reader::default_checkpoint_every`]).
    pub every: Option<usize>,
}

fn one() -> u32 {
    1
}

impl JobSpec {
    /// Parse a job from TOML text; `base` resolves relative paths.
    pub fn parse(text: &str, base: &Path, origin: &Path) -> Result<JobSpec> {
        let mut spec: JobSpec = toml::from_str(text).map_err(|e| Error::Job {
            path: origin.to_path_buf(),
            reason: e.to_string(),
        })?;
        if spec.version != 1 {
            return Err(Error::Job {
                path: origin.to_path_buf(),
                reason: format!("unknown version {}", spec.version),
            });
        }
        if spec.inputs.is_empty() {
            return Err(Error::Job {
                path: origin.to_path_buf(),
                reason: "`inputs` is empty".into(),
            });
        }
        if spec.checkpoints.every == Some(0) {
            return Err(Error::Job {
                path: origin.to_path_buf(),
                reason: "`checkpoints.every` must be > 0".into(),
            });
        }
        let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
        spec.inputs = spec
            .inputs
            .iter()
            .map(|i| {
                if i.starts_with("http://") || i.starts_with("https://") {
                    i.clone()
                } else {
                    resolve(Path::new(i)).to_string_lossy().into_owned()
                }
            })
            .collect();
        // A hub reference names no local file: it is not relative to the job file.
        spec.model = spec.model.as_deref().map(|m| {
            if m.to_str().is_some_and(|s| s.starts_with("hf:")) {
                m.to_path_buf()
            } else {
                resolve(m)
            }
        });
        spec.store = spec.store.as_deref().map(resolve);
        Ok(spec)
    }

    /// Read and parse a job file.
    pub fn load(path: &Path) -> Result<JobSpec> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base, path)
    }
}
