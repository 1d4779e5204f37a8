//! Errors of reading a checkpoint file. Every variant names the file and, where one is involved,
//! the tensor.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong reading a checkpoint file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read at all.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error (in the message, not also a source: a chain printed whole says it once).
        error: std::io::Error,
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
    /// A tensor the caller needs is absent.
    #[error("{path}: missing tensor `{tensor}`")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
    },
    /// A tensor has a shape other than the one asked for.
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
}

impl Error {
    /// An OS error reading `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error: source,
        }
    }
    /// `path` is damaged.
    pub fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
    /// `path` is not in a format we read.
    pub fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
