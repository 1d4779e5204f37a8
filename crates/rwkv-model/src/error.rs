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
    /// The file could not be read at all.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not in a format we read (or is damaged beyond recognition).
    #[error("{path}: not an RWKV checkpoint: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The file is damaged: truncated, or a tensor's bytes do not fit its header.
    #[error("{path}: damaged file: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A tensor the architecture needs is absent.
    #[error("{path}: missing tensor `{tensor}`")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
    },
    /// A tensor has a shape other than the one the other tensors imply.
    #[error("{path}: tensor `{tensor}` has shape {found:?}, expected {expected:?}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The shape in the file.
        found: Vec<usize>,
        /// The shape we need.
        expected: Vec<usize>,
    },
    /// A tensor is stored in an element type we cannot read.
    #[error("{path}: tensor `{tensor}` has unsupported dtype {dtype}")]
    DType {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The dtype as the file names it.
        dtype: String,
    },
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
    /// A tokenizer could not be built.
    #[error("tokenizer {name}: {reason}")]
    Tokenizer {
        /// Which tokenizer.
        name: String,
        /// What was wrong.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
