//! Rebuilding a lost or damaged manifest from the blobs alone (`rwkv-ingest --repair`).
//!
//! Why it is possible: every blob's safetensors header names its checkpoint, its parent and its
//! document, and a document's final blob also carries the document record (see
//! [`crate::records`]). A document is restored when a final blob chains back through parents,
//! seq by seq, to seq 0. If several complete versions of a document are on disk (no `gc` since
//! it changed), the one whose final blob was written last wins (file mtime, which `put_blob`
//! refreshes even when the blob already existed).
//!
//! What is not recovered: documents whose chain is incomplete (an interrupted fold, or a lost
//! blob) are left out, so the next ingest folds them again (reusing every blob that is still
//! there, since keys are content-addressed); `committed_at_ms` becomes the final blob's mtime;
//! a document removed from the manifest but not yet collected by `gc` comes back, and the next
//! incremental ingest removes it again; the compression setting becomes zstd level 3 if any
//! restored blob is compressed. Blob bytes are only checked for a well-formed safetensors
//! header: the new checksums are taken from the files as they are.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::blobs::{self, Found};
use crate::error::{Error, Result};
use crate::key::Key;
use crate::manifest::MANIFEST_FILE;
use crate::records::{BlobInfo, CheckpointRecord, Compression, DocumentRecord, StoreIdentity, parse_blob_metadata};
use crate::store::{Store, now_ms};

/// What [`Store::rebuild_manifest`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// Where the old manifest was moved (if there was one).
    pub old_manifest: Option<PathBuf>,
    /// Documents restored.
    pub documents: u64,
    /// Checkpoints restored.
    pub checkpoints: u64,
    /// Ids of documents with blobs but no complete chain (they will be refolded).
    pub incomplete_documents: Vec<String>,
    /// Blob files whose header could not be read or carries no store metadata.
    pub unreadable_blobs: Vec<PathBuf>,
    /// Blobs made by another model (metadata `model` differs from the identity), ignored.
    pub foreign_blobs: u64,
    /// Readable blobs not used by any restored document (old versions; `gc` collects them).
    pub unused_blobs: u64,
}

struct Entry {
    meta: crate::records::BlobMetadata,
    info: BlobInfo,
    modified_ms: u64,
}

impl Store {
    /// Rebuild `dir`'s manifest from its blobs, moving the old manifest (if any) aside to
    /// `manifest.redb.damaged-<ms>`, and return the opened store. Fails with [`Error::Busy`] if
    /// another process has the store open for writing.
    pub fn rebuild_manifest(dir: impl AsRef<Path>, identity: StoreIdentity) -> Result<(Store, RebuildReport)> {
        let dir = dir.as_ref();
        let mut report = RebuildReport::default();
        let path = dir.join(MANIFEST_FILE);
        if path.exists() {
            // Refuse while a writer holds the file; any other failure is the damage we repair.
            if let Err(Error::Busy { dir }) = crate::manifest::Manifest::open_write(dir).map(drop) {
                return Err(Error::Busy { dir });
            }
            let aside = dir.join(format!("{MANIFEST_FILE}.damaged-{}", now_ms()));
            std::fs::rename(&path, &aside).map_err(|e| Error::io(&path, e))?;
            blobs::sync_dir(dir)?;
            report.old_manifest = Some(aside);
        }

        let mut by_doc: HashMap<String, HashMap<Key, Entry>> = HashMap::new();
        for found in blobs::scan(dir)? {
            let Found::Blob {
                path,
                key,
                compressed,
                modified,
                ..
            } = found
            else {
                continue;
            };
            let parsed = blobs::read_unverified(&path, compressed)
                .and_then(|(raw, info)| parse_blob_metadata(&path, &raw).map(|m| (m, info)));
            let (meta, info) = match parsed {
                Ok(x) if x.0.checkpoint.key == key => x,
                _ => {
                    report.unreadable_blobs.push(path);
                    continue;
                }
            };
            if meta
                .model_fingerprint
                .as_ref()
                .is_some_and(|m| *m != identity.model_fingerprint)
            {
                report.foreign_blobs += 1;
                continue;
            }
            let modified_ms = modified
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as u64);
            let entries = by_doc.entry(meta.checkpoint.doc_id.clone()).or_default();
            // The same key in both forms (the compression setting changed): keep the newer.
            if entries.get(&key).is_some_and(|e| e.modified_ms > modified_ms) {
                continue;
            }
            entries.insert(
                key,
                Entry {
                    meta,
                    info,
                    modified_ms,
                },
            );
        }

        let mut restored: Vec<(DocumentRecord, Vec<CheckpointRecord>)> = Vec::new();
        let mut any_compressed = false;
        let mut total_blobs = 0u64;
        let mut doc_ids: Vec<&String> = by_doc.keys().collect();
        doc_ids.sort();
        for id in doc_ids {
            let entries = &by_doc[id];
            total_blobs += entries.len() as u64;
            let best = entries
                .values()
                .filter(|e| e.meta.checkpoint.is_final)
                .filter_map(|fin| chain(entries, fin).map(|c| (fin, c)))
                .max_by_key(|(fin, c)| (fin.modified_ms, c.len(), fin.meta.checkpoint.key));
            let Some((fin, chain)) = best else {
                report.incomplete_documents.push(id.clone());
                continue;
            };
            let mut doc = fin.meta.document.clone();
            doc.committed_at_ms = fin.modified_ms;
            let ckpts: Vec<CheckpointRecord> = chain
                .iter()
                .map(|e| {
                    any_compressed |= e.info.compressed;
                    CheckpointRecord {
                        blob: e.info.clone(),
                        ..e.meta.checkpoint.clone()
                    }
                })
                .collect();
            restored.push((doc, ckpts));
        }

        let mut store = Store::open(dir, identity)?;
        if any_compressed {
            store.set_compression(Compression::Zstd(3))?;
        }
        for (doc, ckpts) in restored {
            report.documents += 1;
            report.checkpoints += ckpts.len() as u64;
            let at = doc.committed_at_ms;
            store.commit_inner(doc, ckpts, Some(at))?;
        }
        report.unused_blobs = total_blobs - report.checkpoints;
        Ok((store, report))
    }
}

/// The chain from seq 0 to `fin`, if every link is there.
fn chain<'a>(entries: &'a HashMap<Key, Entry>, fin: &'a Entry) -> Option<Vec<&'a Entry>> {
    let mut out = vec![fin];
    let mut cur = fin;
    while cur.meta.checkpoint.seq > 0 {
        let parent = entries.get(cur.meta.checkpoint.parent.as_ref()?)?;
        if parent.meta.checkpoint.seq + 1 != cur.meta.checkpoint.seq || parent.meta.checkpoint.is_final {
            return None;
        }
        out.push(parent);
        cur = parent;
    }
    out.reverse();
    Some(out)
}
