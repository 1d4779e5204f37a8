//! Durable RWKV state checkpoints: content-addressed state blobs plus a redb manifest.
//!
//! Why it exists: ingest folds documents into RWKV state once, and questions resume from the
//! state nearest their answer instead of re-reading. Those states must survive crashes, be
//! found by document and position, and never be resumed on the wrong model or trusted when
//! damaged.
//!
//! A store is a directory (by default `.rwkv/`, the caller chooses):
//!
//! ```text
//! manifest.redb            documents, checkpoints, identity (redb)
//! blobs/<2 hex>/<62 hex>.st      state files (safetensors), named by checkpoint key
//! blobs/<2 hex>/<62 hex>.st.zst  the same, zstd-compressed (a store setting)
//! texts/<hash>.txt         document texts by content hash ([`TextStore`])
//! index/                   the full-text index (written by rwkv-index)
//! shard.json               only in a shard store: which shard of how many ([`ShardRecord`])
//! ```
//!
//! [`StoreDir`] names every one of these paths; no other crate spells them. The identity a store
//! opens with ([`StoreIdentity::for_fold`]) and the span hash of its checkpoint keys
//! ([`span_hash`]) are defined here too, so every writer makes the same keys.
//!
//! The writer's protocol, per document:
//!
//! 1. for each checkpoint: `key = checkpoint_key(fingerprint, parent, &span_hash(span))`, the
//!    state serialized with [`blob_metadata`] in its header, then [`Store::put_blob`] (durable
//!    when it returns);
//! 2. [`Store::commit_document`] with the document and all its checkpoint records (one atomic,
//!    durable transaction that replaces any older version);
//! 3. then, and only then, the full-text index.
//!
//! **Invariants.** A blob is durable before the manifest commit that names it, and the manifest
//! before the index, so a crash leaves at worst orphan blobs ([`Store::gc`] collects them) and a
//! stale index (rebuilt from the store). Every read checks the blob against the checksum the
//! manifest recorded ([`Error::Corrupt`] means refold). A store opens only for the model and
//! tokenizer it was made with. The manifest can be rebuilt from the blobs alone
//! ([`Store::rebuild_manifest`]). This crate never prints and knows nothing of models.
#![deny(missing_docs)]

mod blobs;
mod error;
mod key;
mod layout;
mod manifest;
mod rebuild;
mod records;
mod shard;
mod store;
mod texts;

pub use error::{Error, Result};
pub use key::{Key, ParseKeyError, checkpoint_key, checksum_hex, span_hash};
pub use layout::StoreDir;
pub use rebuild::RebuildReport;
pub use records::{
    BLOB_META_VERSION, BlobInfo, BlobMetadata, CheckpointRecord, Compression, DocumentRecord, FoldKind, Part,
    StoreIdentity, blob_metadata, meta_keys, parse_blob_metadata,
};
pub use shard::{SHARD_FILE, ShardRecord, check_shard_set};
pub use store::{GcReport, MergeReport, Store, StoreStats};
pub use texts::TextStore;

/// The default store directory, relative to where ingest runs.
pub const DEFAULT_STORE_DIR: &str = ".rwkv";
