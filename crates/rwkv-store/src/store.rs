//! [`Store`]: the public face of a store directory, tying blobs and manifest together and
//! enforcing the order that makes crashes harmless: a blob is durable before the manifest
//! commit that names it, and nothing is deleted while a manifest entry still names it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::blobs::{self, Found};
use crate::error::{Error, Result};
use crate::key::Key;
use crate::manifest::{MANIFEST_FILE, Manifest, SCHEMA_VERSION};
use crate::records::{BlobInfo, CheckpointRecord, Compression, DocumentRecord, StoreIdentity};

/// A store directory: state blobs plus the manifest that says which document and position each
/// belongs to. `Store` is `Sync`: ingest threads may share `&Store` for `put_blob`,
/// `commit_document` and reads (redb serializes the write transactions).
pub struct Store {
    dir: PathBuf,
    identity: StoreIdentity,
    compression: Compression,
    pub(crate) manifest: Manifest,
}

/// What [`Store::gc`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Unreferenced blob files deleted.
    pub blobs_removed: u64,
    /// Their bytes.
    pub bytes_removed: u64,
    /// Temp files (interrupted writes) deleted.
    pub temp_removed: u64,
    /// Their bytes.
    pub temp_bytes_removed: u64,
    /// Referenced blob files kept.
    pub blobs_kept: u64,
    /// Their bytes.
    pub bytes_kept: u64,
    /// Files under `blobs/` that are not ours (left alone).
    pub other_files: u64,
}

/// Counts from [`Store::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Documents in the manifest.
    pub documents: u64,
    /// Checkpoints in the manifest.
    pub checkpoints: u64,
    /// Stored bytes of the blobs the manifest references.
    pub blob_bytes: u64,
}

/// What [`Store::merge_from`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Documents that were not here.
    pub documents_added: u64,
    /// Documents here replaced by a newer version from the other store.
    pub documents_replaced: u64,
    /// Documents left as they were: identical, or ours is as new or newer.
    pub documents_kept: u64,
    /// Checkpoints copied.
    pub checkpoints_copied: u64,
    /// Uncompressed state bytes copied.
    pub bytes_copied: u64,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Store {
    /// Open the store in `dir` for writing, creating it (and `dir`) if needed. An existing store
    /// must have been made with the same `identity`, else [`Error::FingerprintMismatch`] or
    /// [`Error::FormatVersion`]. Only one process may have a store open for writing: a second
    /// gets [`Error::Busy`] at once (never a hang).
    pub fn open(dir: impl AsRef<Path>, identity: StoreIdentity) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        blobs::create_dir_durable(&dir)?;
        Manifest::create_if_missing(&dir, &identity, Compression::None)?;
        let (manifest, fresh) = Manifest::open_write(&dir)?;
        // A valid file with no tables: made by an older build that was stopped before its
        // first commit.
        if fresh {
            manifest.initialize(&identity, Compression::None)?;
        }
        Self::finish_open(dir, identity, manifest)
    }

    /// Open an existing store read-only. Any number of readers may share a store with one
    /// writer (`Store::open`), in this process or others; each read sees the latest commit.
    /// A missing store is [`Error::NotAStore`].
    pub fn open_read_only(dir: impl AsRef<Path>, identity: StoreIdentity) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        let manifest = Manifest::open_read(&dir)?;
        Self::finish_open(dir, identity, manifest)
    }

    /// Let the manifest of the store in `dir` recover from an interrupted writer (a process
    /// killed while committing): open it for writing once, which replays redb's recovery, and
    /// close it. What a reader does when [`Store::open_read_only`] says
    /// [`Error::NeedsRecovery`]; [`Error::Busy`] while a writer holds the store (that writer
    /// has recovered it). Never creates a store.
    pub fn recover(dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        if !dir.join(crate::manifest::MANIFEST_FILE).is_file() {
            return Err(Error::NotAStore { dir: dir.to_path_buf() });
        }
        let (manifest, _) = Manifest::open_write(dir)?;
        drop(manifest);
        Ok(())
    }

    fn finish_open(dir: PathBuf, identity: StoreIdentity, manifest: Manifest) -> Result<Store> {
        let (stored, schema, compression) = manifest.load_meta()?;
        if schema != SCHEMA_VERSION {
            return Err(Error::FormatVersion {
                dir,
                what: "manifest schema",
                found: schema,
                expected: SCHEMA_VERSION,
            });
        }
        if stored.model_fingerprint != identity.model_fingerprint
            && fingerprint_rule(&identity.model_fingerprint) > fingerprint_rule(&stored.model_fingerprint)
        {
            return Err(Error::OldFingerprintRule {
                dir,
                store_fingerprint: stored.model_fingerprint,
                requested_fingerprint: identity.model_fingerprint,
            });
        }
        if stored.model_fingerprint != identity.model_fingerprint || stored.tokenizer != identity.tokenizer {
            return Err(Error::FingerprintMismatch {
                dir,
                store_fingerprint: stored.model_fingerprint,
                store_tokenizer: stored.tokenizer,
                requested_fingerprint: identity.model_fingerprint,
                requested_tokenizer: identity.tokenizer,
            });
        }
        if stored.format_version != identity.format_version {
            return Err(Error::FormatVersion {
                dir,
                what: "state format",
                found: stored.format_version,
                expected: identity.format_version,
            });
        }
        Ok(Store {
            dir,
            identity,
            compression,
            manifest,
        })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The identity the store was opened with (and made with).
    pub fn identity(&self) -> &StoreIdentity {
        &self.identity
    }

    /// The manifest file.
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST_FILE)
    }

    /// How new blobs are written.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Change how new blobs are written (persisted in the manifest). Existing blobs stay as
    /// they are; both forms are always readable.
    pub fn set_compression(&mut self, compression: Compression) -> Result<()> {
        self.manifest.set_compression(compression)?;
        self.compression = compression;
        Ok(())
    }

    /// Where the blob of `key` lives (in the form `info` says).
    pub fn blob_path(&self, key: &Key, info: &BlobInfo) -> PathBuf {
        self.dir.join(blobs::blob_rel_path(key, info.compressed))
    }

    fn check_writable(&self) -> Result<()> {
        if self.manifest.is_read_only() {
            return Err(Error::ReadOnly { dir: self.dir.clone() });
        }
        Ok(())
    }

    /// Store the state bytes (safetensors, with [`crate::blob_metadata`] in the header) of
    /// checkpoint `key`, durably, before any manifest entry names it. A blob already there with
    /// the same bytes is left as it is; one with other bytes (a damaged one being refolded) is
    /// replaced atomically. Returns what goes into [`CheckpointRecord::blob`].
    pub fn put_blob(&self, key: &Key, bytes: &[u8]) -> Result<BlobInfo> {
        self.check_writable()?;
        blobs::put(&self.dir, key, bytes, self.compression)
    }

    /// Commit a document and its checkpoints (in `seq` order 0, 1, ...; the last one
    /// `is_final`) in one durable transaction, replacing any older version of the document
    /// atomically. Sets `checkpoints` and `committed_at_ms` on the stored record. Every blob
    /// must already be in the store (`put_blob`), else [`Error::InvalidDocument`].
    pub fn commit_document(&self, doc: DocumentRecord, checkpoints: Vec<CheckpointRecord>) -> Result<()> {
        self.commit_inner(doc, checkpoints, None)
    }

    pub(crate) fn commit_inner(
        &self,
        mut doc: DocumentRecord,
        mut checkpoints: Vec<CheckpointRecord>,
        committed_at_ms: Option<u64>,
    ) -> Result<()> {
        self.check_writable()?;
        checkpoints.sort_by_key(|c| c.seq);
        validate(&doc, &checkpoints)?;
        for c in &checkpoints {
            let path = self.blob_path(&c.key, &c.blob);
            match std::fs::metadata(&path) {
                Ok(m) if m.len() == c.blob.size => {}
                Ok(m) => {
                    return Err(Error::InvalidDocument {
                        doc: doc.id.clone(),
                        reason: format!(
                            "blob of checkpoint {} has {} bytes, the record says {}",
                            c.key,
                            m.len(),
                            c.blob.size
                        ),
                    });
                }
                Err(_) => {
                    return Err(Error::InvalidDocument {
                        doc: doc.id.clone(),
                        reason: format!("blob of checkpoint {} is not in the store (put_blob first)", c.key),
                    });
                }
            }
        }
        doc.checkpoints = checkpoints.iter().map(|c| c.key).collect();
        doc.committed_at_ms = committed_at_ms.unwrap_or_else(now_ms);
        self.manifest.put_document(&doc, &checkpoints)
    }

    /// Remove a document and its checkpoints from the manifest (their blobs stay until
    /// [`Store::gc`]). Returns whether it was there.
    pub fn remove_document(&self, id: &str) -> Result<bool> {
        self.check_writable()?;
        self.manifest.remove_document(id)
    }

    /// A document, if the manifest has it.
    pub fn document(&self, id: &str) -> Result<Option<DocumentRecord>> {
        self.manifest.document(id)
    }

    /// Every document, ordered by id.
    pub fn documents(&self) -> Result<Vec<DocumentRecord>> {
        self.manifest.documents()
    }

    /// A document's checkpoints in order (empty if there is no such document).
    pub fn checkpoints_of(&self, doc_id: &str) -> Result<Vec<CheckpointRecord>> {
        Ok(self.manifest.checkpoints_of(doc_id)?.unwrap_or_default())
    }

    /// A checkpoint, if the manifest has it.
    pub fn checkpoint(&self, key: &Key) -> Result<Option<CheckpointRecord>> {
        self.manifest.checkpoint(key)
    }

    /// The state bytes of a checkpoint (uncompressed safetensors), after checking them against
    /// the checksum the manifest recorded. A missing or damaged blob is [`Error::Corrupt`]: the
    /// caller refolds the document.
    pub fn read_blob(&self, key: &Key) -> Result<Vec<u8>> {
        let rec = self.checkpoint(key)?.ok_or(Error::UnknownCheckpoint { key: *key })?;
        blobs::read_verified(&self.dir, key, &rec.blob)
    }

    /// Delete every blob no manifest entry references, and every temp file left by an
    /// interrupted write. Takes `&mut self` so no `put_blob` of this handle is in flight; a
    /// blob put but not yet committed counts as garbage, so run it between ingests.
    pub fn gc(&mut self) -> Result<GcReport> {
        self.check_writable()?;
        let referenced: HashSet<(Key, bool)> = self
            .manifest
            .all_checkpoints()?
            .into_iter()
            .map(|c| (c.key, c.blob.compressed))
            .collect();
        let mut report = GcReport::default();
        let mut touched: HashSet<PathBuf> = HashSet::new();
        for found in blobs::scan(&self.dir)? {
            match found {
                Found::Blob {
                    path,
                    key,
                    compressed,
                    size,
                    ..
                } => {
                    if referenced.contains(&(key, compressed)) {
                        report.blobs_kept += 1;
                        report.bytes_kept += size;
                    } else {
                        remove(&path, &mut touched)?;
                        report.blobs_removed += 1;
                        report.bytes_removed += size;
                    }
                }
                Found::Temp { path, size } => {
                    remove(&path, &mut touched)?;
                    report.temp_removed += 1;
                    report.temp_bytes_removed += size;
                }
                Found::Other => report.other_files += 1,
            }
        }
        for dir in touched {
            blobs::sync_dir(&dir)?;
        }
        Ok(report)
    }

    /// Counts of documents and checkpoints, and the stored bytes of referenced blobs.
    pub fn stats(&self) -> Result<StoreStats> {
        let (documents, checkpoints) = self.manifest.counts()?;
        let blob_bytes = self.manifest.all_checkpoints()?.iter().map(|c| c.blob.size).sum();
        Ok(StoreStats {
            documents,
            checkpoints,
            blob_bytes,
        })
    }

    /// Copy another store's documents into this one (combining shard stores). Both must have
    /// the same identity. Per document: one not here is added; one here with the same
    /// checkpoints is kept; otherwise the version committed later (`committed_at_ms`) wins, and
    /// on a tie ours is kept. Blobs are read with checksum verification and written here before
    /// each document's commit, so an interrupted merge leaves a consistent store and can simply
    /// be run again. A damaged blob in `other` stops the merge with [`Error::Corrupt`].
    pub fn merge_from(&self, other: &Store) -> Result<MergeReport> {
        self.check_writable()?;
        if other.identity != self.identity {
            return Err(Error::FingerprintMismatch {
                dir: other.dir.clone(),
                store_fingerprint: other.identity.model_fingerprint.clone(),
                store_tokenizer: other.identity.tokenizer.clone(),
                requested_fingerprint: self.identity.model_fingerprint.clone(),
                requested_tokenizer: self.identity.tokenizer.clone(),
            });
        }
        let mut report = MergeReport::default();
        for theirs in other.documents()? {
            let replacing = match self.document(&theirs.id)? {
                Some(ours) if ours.checkpoints == theirs.checkpoints && ours.content_hash == theirs.content_hash => {
                    report.documents_kept += 1;
                    continue;
                }
                Some(ours) if ours.committed_at_ms >= theirs.committed_at_ms => {
                    report.documents_kept += 1;
                    continue;
                }
                Some(_) => true,
                None => false,
            };
            let mut ckpts = other.checkpoints_of(&theirs.id)?;
            for c in &mut ckpts {
                let bytes = other.read_blob(&c.key)?;
                c.blob = self.put_blob(&c.key, &bytes)?;
                report.checkpoints_copied += 1;
                report.bytes_copied += bytes.len() as u64;
            }
            let at = theirs.committed_at_ms;
            self.commit_inner(theirs, ckpts, Some(at))?;
            if replacing {
                report.documents_replaced += 1;
            } else {
                report.documents_added += 1;
            }
        }
        Ok(report)
    }
}

fn remove(path: &Path, touched: &mut HashSet<PathBuf>) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(path, e)),
    }
    if let Some(parent) = path.parent() {
        touched.insert(parent.to_path_buf());
    }
    Ok(())
}

/// Check a document and its (seq-sorted) checkpoints agree with each other.
fn validate(doc: &DocumentRecord, ckpts: &[CheckpointRecord]) -> Result<()> {
    let bad = |reason: String| Error::InvalidDocument {
        doc: doc.id.clone(),
        reason,
    };
    if doc.id.is_empty() {
        return Err(bad("empty document id".into()));
    }
    let n = ckpts.len();
    for (i, c) in ckpts.iter().enumerate() {
        if c.doc_id != doc.id {
            return Err(bad(format!("checkpoint {} belongs to document {}", c.key, c.doc_id)));
        }
        if c.seq as usize != i {
            return Err(bad(format!(
                "checkpoint seqs must be 0..{n} without gaps; found {} at {i}",
                c.seq
            )));
        }
        if c.is_final != (i + 1 == n) {
            return Err(bad(format!(
                "only the last checkpoint is final (checkpoint {} at seq {i})",
                c.key
            )));
        }
        let expected_parent = if i == 0 { None } else { Some(ckpts[i - 1].key) };
        if i > 0 && c.parent != expected_parent {
            return Err(bad(format!(
                "checkpoint {} at seq {i} does not name seq {} as its parent",
                c.key,
                i - 1
            )));
        }
    }
    Ok(())
}

/// The rule a model fingerprint was made by: `x070-f2-…` → 2; one without the marker (rule 1,
/// `x070-<hex>`) → 1.
fn fingerprint_rule(fp: &str) -> u32 {
    fp.split('+')
        .next()
        .and_then(|f| f.split('-').nth(1))
        .and_then(|r| r.strip_prefix('f'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}
