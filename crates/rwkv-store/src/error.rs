//! Errors of the store. Every variant names the directory, file, document or checkpoint involved,
//! and the two a caller acts on are distinct: [`Error::Corrupt`] means "refold this checkpoint",
//! [`Error::ManifestDamaged`] means "run the repair (rebuild from blobs)".

use std::path::PathBuf;

use crate::key::Key;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong opening, reading or writing a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory of the store could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Another process has the store open for writing.
    #[error("{dir}: store is busy: another process has it open for writing (only one writer at a time)")]
    Busy {
        /// The store directory.
        dir: PathBuf,
    },
    /// A write was attempted through a store opened with [`crate::Store::open_read_only`].
    #[error("{dir}: store is open read-only")]
    ReadOnly {
        /// The store directory.
        dir: PathBuf,
    },
    /// A read-only open found no manifest: the directory is not a store (yet).
    #[error("{dir}: not an rwkv store (no manifest.redb)")]
    NotAStore {
        /// The directory.
        dir: PathBuf,
    },
    /// A read-only open found a manifest left by an interrupted writer; redb recovers it on the
    /// next open for writing.
    #[error(
        "{path}: manifest needs recovery after an interrupted write; open the store for writing once (run rwkv-ingest) to recover it"
    )]
    NeedsRecovery {
        /// The manifest file.
        path: PathBuf,
    },
    /// The store was made by an older rwkv-reader whose model fingerprints (rule 1, f32 values)
    /// this version no longer computes (rule 2, stored bytes: `…-f2-…`), so it cannot tell
    /// whether the model is the same; the states must be folded again.
    #[error(
        "{dir}: store was made by an older rwkv-reader (model fingerprint {store_fingerprint}, made by \
         fingerprint rule 1; this version computes rule 2, {requested_fingerprint}): re-ingest into a new \
         store directory, or delete {dir} and run rwkv-ingest again (--repair cannot convert it)"
    )]
    OldFingerprintRule {
        /// The store directory.
        dir: PathBuf,
        /// The fingerprint the store was made with.
        store_fingerprint: String,
        /// The fingerprint the caller opened it with.
        requested_fingerprint: String,
    },
    /// The store was made for another model or tokenizer; its states cannot be resumed here.
    #[error(
        "{dir}: store was made with model {store_fingerprint} (tokenizer {store_tokenizer}), \
         not model {requested_fingerprint} (tokenizer {requested_tokenizer}); use another store directory"
    )]
    FingerprintMismatch {
        /// The store directory.
        dir: PathBuf,
        /// The fingerprint the store was made with.
        store_fingerprint: String,
        /// The tokenizer the store was made with.
        store_tokenizer: String,
        /// The fingerprint the caller opened it with.
        requested_fingerprint: String,
        /// The tokenizer the caller opened it with.
        requested_tokenizer: String,
    },
    /// The store holds states of another state-format version (or was written by another
    /// version of this crate's manifest schema).
    #[error("{dir}: store has {what} version {found}, this build uses {expected}")]
    FormatVersion {
        /// The store directory.
        dir: PathBuf,
        /// Which version: "state format" or "manifest schema".
        what: &'static str,
        /// The version in the store.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
    /// The manifest cannot be trusted: redb refuses it, or its tables are missing or hold
    /// records that do not parse or do not agree with each other.
    #[error(
        "{path}: store manifest is damaged ({reason}); rebuild it from the state blobs with `rwkv-ingest --repair`"
    )]
    ManifestDamaged {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A redb operation failed for a reason other than damage (for example the disk is full).
    #[error("{path}: manifest: {source}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// redb's error.
        #[source]
        source: Box<redb::Error>,
    },
    /// A state blob is missing or does not match the checksum the manifest recorded: the
    /// checkpoint must be refolded.
    #[error("{path}: state blob of checkpoint {key} is corrupt ({reason}); refold the document")]
    Corrupt {
        /// The checkpoint.
        key: Key,
        /// The blob file.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
    /// No checkpoint with this key is in the manifest.
    #[error("checkpoint {key} is not in the store")]
    UnknownCheckpoint {
        /// The key asked for.
        key: Key,
    },
    /// A document or its checkpoints given to `commit_document` are inconsistent.
    #[error("document {doc}: {reason}")]
    InvalidDocument {
        /// The document id.
        doc: String,
        /// What is inconsistent.
        reason: String,
    },
    /// A checkpoint key is already owned by another document.
    #[error("document {doc}: checkpoint {key} already belongs to document {other_doc}")]
    KeyConflict {
        /// The document being committed.
        doc: String,
        /// The key.
        key: Key,
        /// The document that already has it.
        other_doc: String,
    },
    /// A store's `shard.json` does not parse or is out of range.
    #[error("{path}: bad shard record: {reason}")]
    BadShardRecord {
        /// The record file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A run asked for another shard (or for the whole corpus) than the one the store holds.
    #[error(
        "{dir}: store holds shard {}/{} but this run asks for {}; use the same --shard, or another store directory",
        recorded.0, recorded.1,
        requested.map(|(i, n)| format!("shard {i}/{n}")).unwrap_or_else(|| "the whole corpus (no --shard)".into())
    )]
    ShardChanged {
        /// The store directory.
        dir: PathBuf,
        /// `(index, count)` the store records.
        recorded: (u64, u64),
        /// What the run asked for.
        requested: Option<(u64, u64)>,
    },
    /// Stores given to a merge are not the whole of one sharded corpus.
    #[error("merge refused: {reason}")]
    ShardSet {
        /// What is wrong (names the stores).
        reason: String,
    },
    /// A blob is not a safetensors file, or its header lacks the store's metadata.
    #[error("{path}: {reason}")]
    BadBlob {
        /// The blob file (or a description of the bytes).
        path: PathBuf,
        /// What is wrong.
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

    /// Whether the caller should refold the checkpoint involved (the blob is missing or damaged).
    pub fn needs_refold(&self) -> bool {
        matches!(self, Error::Corrupt { .. })
    }
}
