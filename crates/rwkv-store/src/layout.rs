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
//! <root>/asked             ids of documents asked about before they were folded (a queue)
//! <root>/settings.json     how the last ingest folded (`checkpoint_every`), for folds on demand
//! ```

use std::path::{Path, PathBuf};

use crate::blobs::BLOB_DIR;
use crate::manifest::MANIFEST_FILE;
use crate::shard::SHARD_FILE;
use crate::texts::TextStore;

const TEXTS_DIR: &str = "texts";
const INDEX_DIR: &str = "index";
const SUMMARIES_DIR: &str = "summaries";
const ASKED_FILE: &str = "asked";
const SETTINGS_FILE: &str = "settings.json";

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

    /// The fold settings the last ingest recorded (`{"checkpoint_every": "4096"}`): a fold on
    /// demand (`rwkv-ask` before the ingest reached a document) follows them, so the document
    /// gets the checkpoints the ingest would have given it.
    pub fn settings(&self) -> PathBuf {
        self.root.join(SETTINGS_FILE)
    }

    /// The checkpoint spacing the last ingest recorded, in tokens; `None` when no ingest
    /// recorded one (a store made before the file existed) or the file cannot be read.
    pub fn checkpoint_every(&self) -> Option<usize> {
        let bytes = std::fs::read(self.settings()).ok()?;
        let map: std::collections::BTreeMap<String, String> = serde_json::from_slice(&bytes).ok()?;
        map.get("checkpoint_every")?.parse().ok().filter(|&n: &usize| n > 0)
    }

    /// Record the checkpoint spacing of an ingest (atomically: a temporary file, fsynced, then
    /// renamed over the old one). Nothing is written when the file already says `every`.
    pub fn record_checkpoint_every(&self, every: usize) -> crate::Result<()> {
        use std::io::Write;
        if self.checkpoint_every() == Some(every) {
            return Ok(());
        }
        let path = self.settings();
        let tmp = self.root.join(format!(".{SETTINGS_FILE}.tmp"));
        let map = std::collections::BTreeMap::from([("checkpoint_every", every.to_string())]);
        let mut bytes = serde_json::to_vec_pretty(&map).unwrap_or_default();
        bytes.push(b'\n');
        let mut f = std::fs::File::create(&tmp).map_err(|e| crate::Error::io(&tmp, e))?;
        f.write_all(&bytes).map_err(|e| crate::Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| crate::Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| crate::Error::io(&path, e))
    }

    /// The queue of documents asked about before they were folded: one document id per line,
    /// appended by `rwkv-ask` while an ingest holds the store; the ingest folds them first.
    pub fn asked(&self) -> PathBuf {
        self.root.join(ASKED_FILE)
    }

    /// Appends `doc_id` to the asked queue (one short line in one append, so concurrent
    /// writers do not interleave).
    pub fn push_asked(&self, doc_id: &str) -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.asked())?;
        f.write_all(format!("{doc_id}\n").as_bytes())
    }

    /// The asked queue's ids from byte `from` on (whole lines only), and the byte where they
    /// end: the `from` of the next read. An absent queue is empty.
    pub fn read_asked(&self, from: u64) -> std::io::Result<(Vec<String>, u64)> {
        // Read before each document of a fold: a stat answers "nothing new" without a read.
        match std::fs::metadata(self.asked()) {
            Ok(m) if m.len() <= from => return Ok((Vec::new(), from.min(m.len()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
            _ => {}
        }
        let bytes = match std::fs::read(self.asked()) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
            Err(e) => return Err(e),
        };
        let start = (from as usize).min(bytes.len());
        let end = bytes[start..]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(start, |i| start + i + 1);
        let ids = String::from_utf8_lossy(&bytes[start..end])
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        Ok((ids, end as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_asked_queue_reads_whole_lines_from_where_the_last_read_ended() {
        let dir = tempfile::tempdir().unwrap();
        let s = StoreDir::new(dir.path());
        assert_eq!(s.read_asked(0).unwrap(), (Vec::new(), 0));
        s.push_asked("a1").unwrap();
        s.push_asked("b2").unwrap();
        let (ids, end) = s.read_asked(0).unwrap();
        assert_eq!((ids, end), (vec!["a1".to_string(), "b2".to_string()], 6));
        // A line still being written is left for the next read.
        std::fs::write(s.asked(), "a1\nb2\nc3").unwrap();
        assert_eq!(s.read_asked(end).unwrap(), (Vec::new(), 6));
        s.push_asked("").unwrap();
        assert_eq!(s.read_asked(end).unwrap(), (vec!["c3".to_string()], 9));
    }
}
