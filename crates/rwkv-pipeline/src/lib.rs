//! Ingest jobs: sources → reader → store and index.
//!
//! [`ingest`] runs one job: documents stream from `rwkv-sources` on tokio through a bounded
//! channel into fold workers sharing one model; each document's checkpoints are written as
//! durable blobs, then committed to the manifest, then indexed. Runs are incremental (an
//! unchanged document folds nothing; a changed one is refolded; a deleted one leaves the
//! manifest and the index) and resumable (a crash loses at most the documents not yet
//! committed, which the next run folds again, writing identical blobs).
#![deny(missing_docs)]

pub mod error;
mod ingest;
pub mod spec;

pub use error::{Error, Result};
pub use ingest::{
    IngestConfig, NoProgress, Progress, Skip, Summary, UNIT_MAX_BYTES, UNIT_MAX_LINES, checkpoint_every, gc, in_shard,
    ingest, merge, reindex_all, repair, units_from,
};
pub use spec::{CheckpointPolicy, JobSpec};
