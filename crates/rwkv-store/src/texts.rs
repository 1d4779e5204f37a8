//! Document texts kept in the store (`<store>/texts/<content hash>.txt`), so the index can be
//! rebuilt and answers can quote segments without the original inputs.
//!
//! Content-addressed and written atomically (temp file, fsync, rename) before the manifest
//! commit that refers to the document, like the state blobs.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::layout::StoreDir;

/// The texts directory of a store.
#[derive(Debug, Clone)]
pub struct TextStore {
    dir: PathBuf,
}

impl TextStore {
    /// The texts of the store in `store_dir`.
    pub fn new(store_dir: &Path) -> Self {
        TextStore {
            dir: StoreDir::new(store_dir).texts(),
        }
    }

    fn path(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}.txt"))
    }

    /// Store `text` under its content hash (no-op when present).
    pub fn put(&self, hash: &str, text: &str) -> Result<()> {
        let path = self.path(hash);
        if path.is_file() {
            return Ok(());
        }
        let io = |e| Error::Io {
            path: path.clone(),
            source: e,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        // One temporary file per call: two workers of one process may store the same text (a
        // file and its vendored copy) at once.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.dir.join(format!(".{hash}.{}.{n}.tmp", std::process::id()));
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(io)
    }

    /// The text with this hash, if stored.
    pub fn get(&self, hash: &str) -> Result<Option<String>> {
        let path = self.path(hash);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io { path, source: e }),
        }
    }

    /// Delete texts (and temp files) whose hash is not in `keep`; returns (files, bytes).
    pub fn gc(&self, keep: &BTreeSet<String>) -> Result<(u64, u64)> {
        let (mut n, mut bytes) = (0, 0);
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
            Err(e) => {
                return Err(Error::Io {
                    path: self.dir.clone(),
                    source: e,
                });
            }
        };
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let live = name.strip_suffix(".txt").is_some_and(|h| keep.contains(h));
            if !live {
                bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
                n += 1;
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok((n, bytes))
    }

    /// Copy a text from another store's texts (for merges).
    pub fn copy_from(&self, other: &TextStore, hash: &str) -> Result<bool> {
        match other.get(hash)? {
            Some(t) => self.put(hash, &t).map(|_| true),
            None => Ok(false),
        }
    }

    /// Total bytes of the stored texts.
    pub fn bytes(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|rd| rd.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_storing_the_same_text_at_once_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let texts = TextStore::new(dir.path());
        let text = "the same text, twice in one tree\n".repeat(2000);
        for round in 0..20 {
            let hash = format!("{round:064x}");
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..8).map(|_| s.spawn(|| texts.put(&hash, &text))).collect();
                for h in handles {
                    h.join().unwrap().unwrap();
                }
            });
            assert_eq!(texts.get(&hash).unwrap().as_deref(), Some(text.as_str()));
        }
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(StoreDir::new(dir.path()).texts())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
