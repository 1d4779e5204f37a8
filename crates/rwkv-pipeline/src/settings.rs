//! The settings of an ingest run, from the command line and a job file.
//!
//! A setting given on the command line wins, then the job file's, then the default. Lists
//! (inputs, include and exclude globs) are the command line's followed by the job file's;
//! switches (`hidden`, `corpus_state`, `compress`) are on when either turns them on; a job
//! file's `max_file_size` replaces the command line's. Off the CPU backend (a GPU wants many
//! rows per product) the defaults are one fold worker folding [`GPU_LANES`] documents in lanes.

use std::path::PathBuf;

use rwkv_model::{Device, FoldPrecision, StatePrecision, Weights};

use crate::ingest::IngestConfig;
use crate::shard::{ShardError, ShardSpec};
use crate::spec::JobSpec;

/// The store directory when neither the command line nor the job file names one.
pub const DEFAULT_STORE: &str = ".rwkv";

/// The tokenizer when neither the command line nor the job file names one (the checkpoint's).
pub const DEFAULT_TOKENIZER: &str = "auto";

/// Fold workers by default on the CPU.
pub const CPU_FOLD_JOBS: usize = 2;

/// Lanes of a fold worker by default on the CPU: one document at a time.
pub const CPU_LANES: usize = 1;

/// Fold workers by default off the CPU: one, folding many documents in lanes.
pub const GPU_FOLD_JOBS: usize = 1;

/// Lanes of a fold worker by default off the CPU.
pub const GPU_LANES: usize = 32;

/// What the command line says about an ingest run: `None` (or empty, or off) for what it does
/// not give, so that the job file's setting applies.
#[derive(Debug, Clone, Default)]
pub struct IngestFlags {
    /// Inputs given as arguments.
    pub inputs: Vec<String>,
    /// `--model`.
    pub model: Option<PathBuf>,
    /// `--tokenizer`, when given on the command line.
    pub tokenizer: Option<String>,
    /// `--store`, when given on the command line.
    pub store: Option<PathBuf>,
    /// `--checkpoint-every`.
    pub checkpoint_every: Option<usize>,
    /// `--fold-jobs`.
    pub fold_jobs: Option<usize>,
    /// `--jobs` (the sources' extraction jobs): the fold workers when neither `--fold-jobs`
    /// nor the job file's `jobs` is given.
    pub source_jobs: Option<usize>,
    /// `--lanes`.
    pub lanes: Option<usize>,
    /// `--fold-precision`.
    pub fold_precision: Option<FoldPrecision>,
    /// `--state-precision`.
    pub state_precision: Option<StatePrecision>,
    /// `--weights`.
    pub weights: Option<Weights>,
    /// `--device`.
    pub device: Option<Device>,
    /// `--shard`.
    pub shard: Option<ShardSpec>,
    /// `--corpus-state`.
    pub corpus_state: bool,
    /// `--compress`.
    pub compress: bool,
    /// `--no-verify`.
    pub no_verify: bool,
    /// `--index-only`.
    pub index_only: bool,
    /// The source flags (walk, globs, caps, extraction jobs).
    pub sources: rwkv_sources::Options,
}

/// A setting that makes no run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// `--shard` cannot be resolved.
    #[error(transparent)]
    Shard(#[from] ShardError),
    /// The job file's `device` is not a device.
    #[error("job file: {0}")]
    JobDevice(String),
    /// An exact (f32) fold asked for off the CPU, whose backends fold with bf16 products.
    #[error(
        "--device {0} folds with bf16 products (a GPU store is a bf16-fold store); fold precision f32 needs --device cpu"
    )]
    ExactFoldOffCpu(Device),
    /// No inputs on the command line or in the job file.
    #[error("nothing to ingest: give PATH|URL arguments or a --pipeline file with inputs")]
    NothingToIngest,
    /// Checkpoints every 0 tokens.
    #[error("--checkpoint-every must be at least 1")]
    ZeroCheckpointEvery,
}

/// The resolved settings of a run: what to load, which store, and (for an ingest) what to
/// read and how to fold it.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// The model checkpoint, if the command line or the job file names one (else the caller's
    /// default).
    pub model: Option<PathBuf>,
    /// What the model holds its weights as.
    pub weights: Weights,
    /// Where the forward pass runs.
    pub device: Device,
    /// Arithmetic of the fold.
    pub fold_precision: FoldPrecision,
    /// Tokenizer name or path.
    pub tokenizer: String,
    /// Store directory.
    pub store: PathBuf,
    /// How checkpoint blobs store the state.
    pub state_precision: StatePrecision,
    /// The shard `(I, N)` of a sharded run.
    pub shard: Option<(u64, u64)>,
    /// Inputs: the command line's, then the job file's.
    pub inputs: Vec<String>,
    /// Source options.
    pub sources: rwkv_sources::Options,
    /// Tokens between checkpoints (`None`: the state-size-aware default).
    pub checkpoint_every: Option<usize>,
    /// Fold workers.
    pub jobs: usize,
    /// Documents each fold worker folds at once (at least 1).
    pub lanes: usize,
    /// Also fold every document into one corpus state.
    pub corpus_state: bool,
    /// Compress state blobs.
    pub compress: bool,
    /// Verify stored blobs of unchanged documents.
    pub verify: bool,
    /// Index without folding.
    pub index_only: bool,
}

impl IngestSettings {
    /// Resolve `flags` against the job file `spec`, reading a `--shard auto` index through
    /// `env` (a variable's value, `None` when unset). Checks what needs no model and no store:
    /// the shard, the job file's device, an exact fold off the CPU.
    pub fn resolve(
        flags: IngestFlags,
        spec: Option<&JobSpec>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<IngestSettings, SettingsError> {
        let shard = flags.shard.map(|s| s.resolve(env)).transpose()?;
        let device = match (flags.device, spec.and_then(|s| s.device.as_deref())) {
            (Some(d), _) => d,
            (None, Some(s)) => s.parse().map_err(SettingsError::JobDevice)?,
            (None, None) => Device::Cpu,
        };
        let on_cpu = device == Device::Cpu;
        let fold = flags.fold_precision.or(spec.and_then(|s| s.fold_precision));
        if !on_cpu && fold == Some(FoldPrecision::F32) {
            return Err(SettingsError::ExactFoldOffCpu(device));
        }
        let mut sources = flags.sources;
        let mut inputs = flags.inputs;
        let (mut corpus_state, mut compress) = (flags.corpus_state, flags.compress);
        if let Some(s) = spec {
            inputs.extend(s.inputs.iter().cloned());
            sources.include.extend(s.include.iter().cloned());
            sources.exclude.extend(s.exclude.iter().cloned());
            sources.hidden |= s.hidden;
            if let Some(m) = s.max_file_size {
                sources.max_file_size = m;
            }
            corpus_state |= s.corpus_state;
            compress |= s.compress;
        }
        Ok(IngestSettings {
            model: flags.model.or_else(|| spec.and_then(|s| s.model.clone())),
            weights: flags.weights.or(spec.and_then(|s| s.weights)).unwrap_or_default(),
            device,
            fold_precision: fold.unwrap_or_default(),
            tokenizer: flags
                .tokenizer
                .or_else(|| spec.and_then(|s| s.tokenizer.clone()))
                .unwrap_or_else(|| DEFAULT_TOKENIZER.to_string()),
            store: flags
                .store
                .or_else(|| spec.and_then(|s| s.store.clone()))
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STORE)),
            state_precision: flags
                .state_precision
                .or(spec.and_then(|s| s.state_precision))
                .unwrap_or_default(),
            shard,
            inputs,
            sources,
            checkpoint_every: flags.checkpoint_every.or(spec.and_then(|s| s.checkpoints.every)),
            jobs: flags
                .fold_jobs
                .or(spec.and_then(|s| s.jobs))
                .or(flags.source_jobs)
                .unwrap_or(if on_cpu { CPU_FOLD_JOBS } else { GPU_FOLD_JOBS }),
            lanes: flags
                .lanes
                .or(spec.and_then(|s| s.lanes))
                .unwrap_or(if on_cpu { CPU_LANES } else { GPU_LANES })
                .max(1),
            corpus_state,
            compress,
            verify: !flags.no_verify,
            index_only: flags.index_only,
        })
    }

    /// The ingest job these settings describe: refused when there is nothing to read or
    /// checkpoints would come every 0 tokens.
    pub fn ingest_config(&self) -> Result<IngestConfig, SettingsError> {
        if self.inputs.is_empty() {
            return Err(SettingsError::NothingToIngest);
        }
        if self.checkpoint_every == Some(0) {
            return Err(SettingsError::ZeroCheckpointEvery);
        }
        Ok(IngestConfig {
            inputs: self.inputs.clone(),
            store_dir: self.store.clone(),
            checkpoint_every: self.checkpoint_every,
            state_precision: self.state_precision,
            jobs: self.jobs,
            lanes: self.lanes,
            sources: self.sources.clone(),
            shard: self.shard,
            corpus_state: self.corpus_state,
            verify: self.verify,
            compress: self.compress,
            index_only: self.index_only,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn job(toml: &str) -> JobSpec {
        JobSpec::parse(toml, Path::new("/jobs"), Path::new("/jobs/job.toml")).unwrap()
    }

    fn resolve(flags: IngestFlags, spec: Option<&JobSpec>) -> IngestSettings {
        IngestSettings::resolve(flags, spec, no_env).unwrap()
    }

    #[test]
    fn without_a_job_file_the_defaults_apply() {
        let s = resolve(IngestFlags::default(), None);
        assert_eq!(s.model, None);
        assert_eq!(s.weights, Weights::default());
        assert_eq!(s.device, Device::Cpu);
        assert_eq!(s.fold_precision, FoldPrecision::F32);
        assert_eq!(s.tokenizer, "auto");
        assert_eq!(s.store, Path::new(".rwkv"));
        assert_eq!(s.state_precision, StatePrecision::default());
        assert_eq!((s.jobs, s.lanes), (2, 1));
        assert_eq!((s.shard, s.checkpoint_every), (None, None));
        assert!(!s.corpus_state && !s.compress && s.verify);
    }

    /// Each row: what the command line gives, what the job file gives, and who wins.
    #[test]
    fn the_command_line_wins_over_the_job_file_over_the_defaults() {
        let spec = job(r#"
            inputs = ["src"]
            model = "m.pth"
            tokenizer = "world"
            store = "store"
            jobs = 3
            lanes = 4
            fold_precision = "bf16"
            state_precision = "f32"
            weights = "int8"
            checkpoints = { every = 512 }
        "#);
        let from_file = resolve(IngestFlags::default(), Some(&spec));
        assert_eq!(from_file.model.as_deref(), Some(Path::new("/jobs/m.pth")));
        assert_eq!(from_file.tokenizer, "world");
        assert_eq!(from_file.store, Path::new("/jobs/store"));
        assert_eq!((from_file.jobs, from_file.lanes), (3, 4));
        assert_eq!(from_file.fold_precision, FoldPrecision::Bf16);
        assert_eq!(from_file.state_precision, StatePrecision::F32);
        assert_eq!(from_file.weights, Weights::Int8);
        assert_eq!(from_file.checkpoint_every, Some(512));

        let flags = IngestFlags {
            model: Some("cli.pth".into()),
            tokenizer: Some("bytes".into()),
            store: Some("cli-store".into()),
            fold_jobs: Some(5),
            source_jobs: Some(7),
            lanes: Some(6),
            fold_precision: Some(FoldPrecision::F32),
            state_precision: Some(StatePrecision::Bf16),
            weights: Some(Weights::Bf16),
            checkpoint_every: Some(1024),
            ..IngestFlags::default()
        };
        let from_cli = resolve(flags.clone(), Some(&spec));
        assert_eq!(from_cli.model.as_deref(), Some(Path::new("cli.pth")));
        assert_eq!(from_cli.tokenizer, "bytes");
        assert_eq!(from_cli.store, Path::new("cli-store"));
        assert_eq!((from_cli.jobs, from_cli.lanes), (5, 6));
        assert_eq!(from_cli.fold_precision, FoldPrecision::F32);
        assert_eq!(from_cli.state_precision, StatePrecision::Bf16);
        assert_eq!(from_cli.weights, Weights::Bf16);
        assert_eq!(from_cli.checkpoint_every, Some(1024));
        // The same flags without a job file.
        let alone = resolve(flags, None);
        assert_eq!((alone.jobs, alone.lanes, alone.tokenizer.as_str()), (5, 6, "bytes"));
    }

    #[test]
    fn fold_jobs_come_from_the_flag_then_the_job_file_then_jobs_then_the_device() {
        let with_jobs = job("inputs = [\"a\"]\njobs = 3");
        let without = job("inputs = [\"a\"]");
        // --fold-jobs, --jobs, the job file, --device: fold workers.
        let cases = [
            (Some(5), Some(7), Some(&with_jobs), None, 5),
            (None, Some(7), Some(&with_jobs), None, 3),
            (None, Some(7), Some(&without), None, 7),
            (None, Some(7), None, Some(Device::Cuda(0)), 7),
            (None, None, Some(&without), None, CPU_FOLD_JOBS),
            (None, None, None, Some(Device::Cuda(0)), GPU_FOLD_JOBS),
            (None, None, None, Some(Device::CandleCpu), GPU_FOLD_JOBS),
        ];
        for (i, (fold_jobs, source_jobs, spec, device, want)) in cases.into_iter().enumerate() {
            let flags = IngestFlags {
                fold_jobs,
                source_jobs,
                device,
                ..IngestFlags::default()
            };
            assert_eq!(resolve(flags, spec).jobs, want, "case {i}");
        }
    }

    #[test]
    fn lanes_default_to_one_on_the_cpu_and_32_elsewhere_and_are_at_least_one() {
        let lanes = |cli: Option<usize>, file: Option<&str>, device: Option<Device>| {
            let spec = file.map(|l| job(&format!("inputs = [\"a\"]\nlanes = {l}")));
            let flags = IngestFlags {
                lanes: cli,
                device,
                ..IngestFlags::default()
            };
            resolve(flags, spec.as_ref()).lanes
        };
        assert_eq!(lanes(None, None, None), 1);
        assert_eq!(lanes(None, None, Some(Device::Cpu)), 1);
        assert_eq!(lanes(None, None, Some(Device::Cuda(1))), 32);
        assert_eq!(lanes(None, Some("8"), Some(Device::Cuda(0))), 8);
        assert_eq!(lanes(Some(2), Some("8"), Some(Device::Cuda(0))), 2);
        assert_eq!(lanes(Some(0), None, None), 1);
        assert_eq!(lanes(None, Some("0"), None), 1);
    }

    #[test]
    fn the_device_comes_from_the_flag_then_the_job_file() {
        let cuda = job("inputs = [\"a\"]\ndevice = \"cuda:1\"");
        assert_eq!(resolve(IngestFlags::default(), Some(&cuda)).device, Device::Cuda(1));
        let flags = IngestFlags {
            device: Some(Device::Cpu),
            ..IngestFlags::default()
        };
        let s = resolve(flags, Some(&cuda));
        assert_eq!((s.device, s.jobs, s.lanes), (Device::Cpu, 2, 1));
        let bad = job("inputs = [\"a\"]\ndevice = \"gpu\"");
        let e = IngestSettings::resolve(IngestFlags::default(), Some(&bad), no_env).unwrap_err();
        assert!(matches!(e, SettingsError::JobDevice(_)), "{e:?}");
        assert!(
            e.to_string().starts_with("job file: ") && e.to_string().contains("cuda:N"),
            "{e}"
        );
    }

    #[test]
    fn an_exact_fold_needs_the_cpu() {
        let gpu_exact = IngestFlags {
            device: Some(Device::Cuda(0)),
            fold_precision: Some(FoldPrecision::F32),
            ..IngestFlags::default()
        };
        let e = IngestSettings::resolve(gpu_exact, None, no_env).unwrap_err();
        assert_eq!(e, SettingsError::ExactFoldOffCpu(Device::Cuda(0)));
        assert_eq!(
            e.to_string(),
            "--device cuda:0 folds with bf16 products (a GPU store is a bf16-fold store); fold precision f32 needs --device cpu"
        );
        // Also when the job file asks for it; a GPU without a fold precision is fine.
        let exact = job("inputs = [\"a\"]\nfold_precision = \"f32\"");
        let on_gpu = IngestFlags {
            device: Some(Device::Cuda(0)),
            ..IngestFlags::default()
        };
        assert!(IngestSettings::resolve(on_gpu.clone(), Some(&exact), no_env).is_err());
        let s = resolve(on_gpu, None);
        assert_eq!(s.fold_precision, FoldPrecision::default());
    }

    #[test]
    fn lists_join_switches_add_and_the_job_files_size_cap_replaces() {
        let spec = job(r#"
            inputs = ["docs", "https://example.com/a"]
            include = ["*.rs"]
            exclude = ["target/**"]
            hidden = true
            max_file_size = 1000
            corpus_state = true
        "#);
        let mut sources = rwkv_sources::Options::default();
        sources.include.push("*.py".into());
        sources.max_file_size = 5;
        let flags = IngestFlags {
            inputs: vec!["src".into()],
            compress: true,
            no_verify: true,
            sources,
            ..IngestFlags::default()
        };
        let s = resolve(flags, Some(&spec));
        assert_eq!(s.inputs, ["src", "/jobs/docs", "https://example.com/a"]);
        assert_eq!(s.sources.include, ["*.py", "*.rs"]);
        assert_eq!(s.sources.exclude, ["target/**"]);
        assert!(s.sources.hidden && s.corpus_state && s.compress && !s.verify);
        assert_eq!(s.sources.max_file_size, 1000);
    }

    #[test]
    fn the_shard_is_resolved_from_the_given_environment() {
        let env: HashMap<&str, &str> = [("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_COUNT", "4")].into();
        let flags = IngestFlags {
            shard: Some(ShardSpec::Auto(None)),
            ..IngestFlags::default()
        };
        let s = IngestSettings::resolve(flags.clone(), None, |k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(s.shard, Some((1, 4)));
        assert_eq!(s.ingest_config().map(|_| ()), Err(SettingsError::NothingToIngest));
        let e = IngestSettings::resolve(flags, None, no_env).unwrap_err();
        assert_eq!(e, SettingsError::Shard(ShardError::NoCount));
    }

    #[test]
    fn the_ingest_config_needs_inputs_and_a_positive_spacing() {
        let flags = IngestFlags {
            inputs: vec!["src".into()],
            checkpoint_every: Some(0),
            ..IngestFlags::default()
        };
        let s = resolve(flags, None);
        assert_eq!(s.ingest_config().map(|_| ()), Err(SettingsError::ZeroCheckpointEvery));
        let s = IngestSettings {
            checkpoint_every: Some(256),
            shard: Some((0, 2)),
            ..s
        };
        let cfg = s.ingest_config().unwrap();
        assert_eq!(cfg.inputs, ["src"]);
        assert_eq!(cfg.store_dir, Path::new(".rwkv"));
        assert_eq!((cfg.checkpoint_every, cfg.jobs, cfg.lanes), (Some(256), 2, 1));
        assert_eq!(cfg.shard, Some((0, 2)));
        assert!(cfg.verify && !cfg.compress && !cfg.corpus_state);
    }
}
