//! Errors of the model crate. Every variant names the file and, where one is involved, the tensor.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong loading a checkpoint, a state or a tokenizer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The device asked for cannot run the model (no such backend in this build, no GPU, a
    /// driver too old, not enough device memory, a generation the backend does not run).
    #[error("device {device}: {reason}")]
    Device {
        /// The device, as `--device` names it (`cuda:0`).
        device: String,
        /// What is missing.
        reason: String,
    },
    /// The checkpoint file: unreadable, not a checkpoint, damaged, or a tensor missing, of
    /// another shape or of an element type we cannot read (each naming the file and tensor).
    #[error(transparent)]
    File(#[from] rwkv_formats::Error),
    /// The checkpoint belongs to an RWKV generation (or variant) this build does not run.
    #[error(
        "{path}: this is an {generation} checkpoint, which this build does not run (detected from tensor `{tensor}`)"
    )]
    Generation {
        /// The file.
        path: PathBuf,
        /// The detected generation, e.g. "RWKV-6".
        generation: String,
        /// The tensor that gave it away.
        tensor: String,
    },
    /// A saved state belongs to another model (or tokenizer, or format).
    #[error("{path}: state was saved for model {found}, but the loaded model is {expected}")]
    StateMismatch {
        /// The state file.
        path: PathBuf,
        /// Fingerprint stored in the state.
        found: String,
        /// Fingerprint of the loaded model.
        expected: String,
    },
    /// A state file is malformed.
    #[error("{path}: bad state file: {reason}")]
    BadState {
        /// The state file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab} entries")]
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    /// A tokenizer could not be built (or its file read).
    #[error(transparent)]
    Tokenizer(#[from] rwkv_tokenizers::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::File(rwkv_formats::Error::io(path, source))
    }
    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::File(rwkv_formats::Error::corrupt(path, reason))
    }
    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::File(rwkv_formats::Error::format(path, reason))
    }
}
