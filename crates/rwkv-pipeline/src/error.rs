//! Errors of an ingest run. A bad document is not one of them: it is counted and reported in
//! the summary, and the run goes on.

use std::path::PathBuf;

/// Result with the pipeline's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What stops an ingest run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A job file is invalid.
    #[error("{path}: invalid job file: {reason}")]
    Job {
        /// The job file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// File system error outside the store.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The store refused.
    #[error(transparent)]
    Store(#[from] rwkv_store::Error),
    /// The index refused.
    #[error(transparent)]
    Index(#[from] rwkv_index::Error),
    /// The sources could not start.
    #[error(transparent)]
    Sources(#[from] rwkv_sources::Error),
    /// Folding failed for a reason that is not the document's fault (e.g. model/state mismatch).
    #[error(transparent)]
    Reader(#[from] rwkv_reader::Error),
    /// A state could not be read back.
    #[error(transparent)]
    Model(#[from] rwkv_model::Error),
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
    /// A fold worker (or the sources' thread) panicked: a bug, reported with the documents it
    /// was folding. What was committed before stays; the next run folds those documents again.
    #[error("a worker panicked{}: {message}", if documents.is_empty() { String::new() } else { format!(" while folding {}", documents.join(", ")) })]
    Panicked {
        /// The documents the worker had in hand.
        documents: Vec<String>,
        /// The panic's message.
        message: String,
    },
    /// The run was cancelled ([`crate::Progress::cancelled`]): what it committed stays, the
    /// next run goes on from there.
    #[error("the ingest was cancelled; run it again to go on from what it committed")]
    Cancelled,
}
