//! Errors of loading and running an embedder.

use std::path::PathBuf;

/// Errors of [`crate::Embedder`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read as tensors.
    #[error(transparent)]
    Format(#[from] rwkv_formats::Error),
    /// The file is not an embedder made by `scripts/make-embedder.py`.
    #[error("{path}: not a sentence encoder file ({what}); make one with scripts/make-embedder.py")]
    NotAnEmbedder {
        /// The file.
        path: PathBuf,
        /// What is missing or wrong.
        what: String,
    },
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;
