//! Ingest jobs: sources → reader → store and index.
//!
//! [`ingest`] runs one job: documents stream from `rwkv-sources` on tokio through a bounded
//! channel into fold workers sharing one model; each document's checkpoints are written as
//! durable blobs, then committed to the manifest, then indexed. Runs are incremental (an
//! unchanged document folds nothing; a changed one is refolded; a deleted one leaves the
//! manifest and the index) and resumable (a crash loses at most the documents not yet
//! committed, which the next run folds again, writing identical blobs).
//!
//! [`IngestSettings::resolve`] makes a run's settings from the command line's flags and a job
//! file ([`JobSpec`]), the shard of a sharded run included ([`ShardSpec`]: `I/N`, or the index a
//! Slurm array or Kubernetes Indexed Job gives the worker).
#![deny(missing_docs)]

pub mod error;
mod ingest;
pub mod settings;
pub mod shard;
pub mod spec;

pub use error::{Error, Result};
pub use ingest::{
    IngestConfig, NoProgress, Progress, Skip, Summary, UNIT_MAX_BYTES, UNIT_MAX_LINES, checkpoint_every, fold_stored,
    gc, in_shard, ingest, merge, reindex_all, repair, units_from,
};
pub use settings::{IngestFlags, IngestSettings, SettingsError};
pub use shard::{ShardError, ShardSpec};
pub use spec::{CheckpointPolicy, JobSpec};
