//! The store directory's layout: every path inside a store is named here, and every crate that
//! reads or writes a store (ingest, merge, repair, the query heads) finds its parts through
//! [`StoreDir`].
//!
//! ```text
//! <root>/manifest.redb     documents, checkpoints, identity (redb)
//! <root>/blobs/            state files, named by checkpoint key
//! <root>/texts/            document texts by content hash (quotes, index rebuilds)
//! <root>/index/            the full-text index (tantivy; written by rwkv-index)
//! <root>/shard.json        only in a shard store (see ShardRecord)
//! <root>/summaries/        generated summaries cached by the query heads (any may be deleted)
//! ```

use std::path::{Path, PathBuf};

use crate::blobs::BLOB_DIR;
use crate::manifest::MANIFEST_FILE;
use crate::shard::SHARD_FILE;
use crate::texts::TextStore;

const TEXTS_DIR: &str = "texts";
const INDEX_DIR: &str = "index";
const SUMMARIES_DIR: &str = "summaries";

/// A store directory and the places of its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreDir {
    root: PathBuf,
}

impl StoreDir {
    /// The store rooted at `root` (nothing is read or created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StoreDir { root: root.into() }
    }

    /// The store directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether a store exists here (its manifest does).
    pub fn exists(&self) -> bool {
        self.manifest().is_file()
    }

    /// The manifest file.
    pub fn manifest(&self) -> PathBuf {
        self.root.join(MANIFEST_FILE)
    }

    /// The state blobs' directory.
    pub fn blobs(&self) -> PathBuf {
        self.root.join(BLOB_DIR)
    }

    /// The summary cache's directory: one JSON file per generated summary, named by the hash of
    /// what made it (document content, model, generation settings). Not part of the store's
    /// durable state: deleting it only costs regenerating.
    pub fn summaries(&self) -> PathBuf {
        self.root.join(SUMMARIES_DIR)
    }

    /// The document texts' directory.
    pub fn texts(&self) -> PathBuf {
        self.root.join(TEXTS_DIR)
    }

    /// The document texts.
    pub fn text_store(&self) -> TextStore {
        TextStore::new(&self.root)
    }

    /// The full-text index's directory.
    pub fn index(&self) -> PathBuf {
        self.root.join(INDEX_DIR)
    }

    /// The shard record (present only in a shard store).
    pub fn shard_record(&self) -> PathBuf {
        self.root.join(SHARD_FILE)
    }
}
