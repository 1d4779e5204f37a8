//! Errors of the index. Every variant names the index directory.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong opening, writing or searching the index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read, written or removed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// tantivy failed (a damaged index that got past the open checks, a full disk, a held
    /// writer lock). Rebuilding the index from the store fixes the damaged case.
    #[error("{dir}: search index: {source}")]
    Tantivy {
        /// The index directory.
        dir: PathBuf,
        /// tantivy's error.
        #[source]
        source: Box<tantivy::TantivyError>,
    },
    /// A write through an index opened with [`crate::Index::open_read_only`].
    #[error("{dir}: search index is open read-only")]
    ReadOnly {
        /// The index directory.
        dir: PathBuf,
    },
    /// A read-only open found no usable index: it must be (re)built by ingest.
    #[error("{dir}: no usable search index ({reason}); run rwkv-ingest to rebuild it from the store")]
    Unusable {
        /// The index directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
}
