//! The manifest: documents, checkpoints and the store's identity in one redb file.
//!
//! Why redb: a write transaction with `Durability::Immediate` is all-or-nothing and on disk when
//! `commit` returns, so replacing a document's checkpoint list is atomic, and a crash leaves the
//! previous commit. The file is opened in `ConcurrencyMode::SingleWriter`: one process writes,
//! any number of read-only handles (other processes included) read alongside it and see each
//! commit as it lands. Records are JSON, so a field added later does not break older stores.
//!
//! Anything that does not parse or that contradicts itself (a document listing a checkpoint that
//! is not there, a table that is gone) is reported as [`Error::ManifestDamaged`], never skipped.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use redb::{
    Builder, ConcurrencyMode, Database, DatabaseError, Durability, ReadOnlyDatabase, ReadTransaction, ReadableDatabase,
    ReadableTable, ReadableTableMetadata, TableDefinition, TableError, WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::key::Key;
use crate::records::{CheckpointRecord, Compression, DocumentRecord, StoreIdentity};

/// The manifest's file name inside the store directory.
pub(crate) const MANIFEST_FILE: &str = "manifest.redb";
/// The manifest schema this build writes and reads.
pub(crate) const SCHEMA_VERSION: u32 = 1;

const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const DOCUMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("documents");
const CHECKPOINTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("checkpoints");

const META_IDENTITY: &str = "identity";
const META_SCHEMA: &str = "schema_version";
const META_COMPRESSION: &str = "compression";

/// redb's page cache; the manifest is small, so keep this modest.
const CACHE_BYTES: usize = 32 << 20;

enum Db {
    Write(Database),
    Read(ReadOnlyDatabase),
}

/// An open manifest.
pub(crate) struct Manifest {
    db: Db,
    path: PathBuf,
    dir: PathBuf,
}

fn builder() -> Builder {
    let mut b = Builder::new();
    b.set_concurrency_mode(ConcurrencyMode::SingleWriter)
        .set_cache_size(CACHE_BYTES);
    b
}

/// Map a redb error to ours: damage is [`Error::ManifestDamaged`], a held lock is
/// [`Error::Busy`], the rest is [`Error::Manifest`].
pub(crate) fn db_err(path: &Path, dir: &Path, e: impl Into<redb::Error>) -> Error {
    let e: redb::Error = e.into();
    match e {
        redb::Error::Corrupted(reason) => Error::ManifestDamaged {
            path: path.to_path_buf(),
            reason,
        },
        redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => Error::Busy { dir: dir.to_path_buf() },
        redb::Error::UpgradeRequired(v) => Error::ManifestDamaged {
            path: path.to_path_buf(),
            reason: format!("written by an older redb file format {v}"),
        },
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => Error::ManifestDamaged {
            path: path.to_path_buf(),
            reason: format!("not a redb database: {io}"),
        },
        // A read past the end: the file is shorter than its own header says (truncated).
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => Error::ManifestDamaged {
            path: path.to_path_buf(),
            reason: format!("the file is truncated: {io}"),
        },
        other => Error::Manifest {
            path: path.to_path_buf(),
            source: Box::new(other),
        },
    }
}

fn damaged(path: &Path, reason: impl Into<String>) -> Error {
    Error::ManifestDamaged {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Run `f`, turning a panic inside redb (its debug builds assert on some damage) into
/// [`Error::ManifestDamaged`].
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(damaged(path, "redb failed on the file's contents")),
    }
}

/// The prefix of a manifest being made: it is built and initialized under this name and
/// linked into place only when whole, so a process killed while creating a store leaves no
/// half-written `manifest.redb` behind (redb cannot open one).
pub(crate) const MANIFEST_TEMP_PREFIX: &str = "manifest.redb.new-";

impl Manifest {
    /// Make a new store's manifest in `dir` if it has none: built under a temporary name with
    /// `identity` and `compression` committed, then linked to `manifest.redb` (never replacing
    /// one another process made first). Leftover temporaries of interrupted creations go.
    pub(crate) fn create_if_missing(dir: &Path, identity: &StoreIdentity, compression: Compression) -> Result<()> {
        let path = dir.join(MANIFEST_FILE);
        if path.exists() {
            // A creator killed after linking its manifest left the temporary name behind.
            remove_manifest_temps(dir);
            return Ok(());
        }
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let temp = dir.join(format!("{MANIFEST_TEMP_PREFIX}{}-{nonce}", std::process::id()));
        {
            let db = guarded(&temp, || builder().create(&temp).map_err(|e| open_err(&temp, dir, e)))?;
            let m = Manifest {
                db: Db::Write(db),
                path: temp.clone(),
                dir: dir.to_path_buf(),
            };
            m.initialize(identity, compression)?;
        }
        // Another creator won the race: its manifest stands (the identity check comes later).
        // A file system without hard links (exFAT, some network mounts) gets a rename, which
        // is as atomic but could replace a manifest made in the same instant.
        let outcome = match std::fs::hard_link(&temp, &path) {
            Ok(()) => Ok(()),
            Err(_) if path.exists() => Ok(()),
            Err(_) => std::fs::rename(&temp, &path).map_err(|e| Error::io(&path, e)),
        };
        remove_manifest_temps(dir);
        crate::blobs::sync_dir(dir)?;
        outcome
    }

    /// Open (creating if needed) for writing. Returns the manifest and whether it was new.
    pub(crate) fn open_write(dir: &Path) -> Result<(Manifest, bool)> {
        let path = dir.join(MANIFEST_FILE);
        let db = guarded(&path, || {
            let mut b = builder();
            // Verify every page's checksum on open: a file altered behind redb's back is an
            // error here instead of a wrong answer (or a panic) later.
            b.set_check_integrity_on_open(true);
            b.create(&path).map_err(|e| open_err(&path, dir, e))
        })?;
        let m = Manifest {
            db: Db::Write(db),
            path,
            dir: dir.to_path_buf(),
        };
        let fresh = guarded(&m.path, || m.is_uninitialized())?;
        Ok((m, fresh))
    }

    /// Open an existing manifest read-only.
    pub(crate) fn open_read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        if !path.is_file() {
            return Err(Error::NotAStore { dir: dir.to_path_buf() });
        }
        let db = guarded(&path, || {
            builder().open_read_only(&path).map_err(|e| open_err(&path, dir, e))
        })?;
        Ok(Manifest {
            db: Db::Read(db),
            path,
            dir: dir.to_path_buf(),
        })
    }

    pub(crate) fn is_read_only(&self) -> bool {
        matches!(self.db, Db::Read(_))
    }

    fn err(&self, e: impl Into<redb::Error>) -> Error {
        db_err(&self.path, &self.dir, e)
    }

    fn begin_read(&self) -> Result<ReadTransaction> {
        match &self.db {
            Db::Write(db) => db.begin_read(),
            Db::Read(db) => db.begin_read(),
        }
        .map_err(|e| self.err(e))
    }

    /// Run `f` in a read transaction.
    fn read<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T>) -> Result<T> {
        guarded(&self.path, || {
            let txn = self.begin_read()?;
            f(&txn)
        })
    }

    /// Run `f` in a write transaction committed with `Durability::Immediate`; an error from `f`
    /// aborts it.
    fn write<T>(&self, f: impl FnOnce(&WriteTransaction) -> Result<T>) -> Result<T> {
        let Db::Write(db) = &self.db else {
            return Err(Error::ReadOnly { dir: self.dir.clone() });
        };
        guarded(&self.path, || {
            let mut txn = db.begin_write().map_err(|e| self.err(e))?;
            txn.set_durability(Durability::Immediate).map_err(|e| self.err(e))?;
            let out = f(&txn)?;
            txn.commit().map_err(|e| self.err(e))?;
            Ok(out)
        })
    }

    /// True for a file with none of our tables (just created, or created and then interrupted
    /// before the first commit).
    fn is_uninitialized(&self) -> Result<bool> {
        self.read(|txn| {
            let names: Vec<String> = txn
                .list_tables()
                .map_err(|e| self.err(e))?
                .map(|t| redb::TableHandle::name(&t).to_string())
                .collect();
            Ok(names.is_empty())
        })
    }

    /// Write the identity and settings of a new store, and create the tables.
    pub(crate) fn initialize(&self, identity: &StoreIdentity, compression: Compression) -> Result<()> {
        self.write(|txn| {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            meta.insert(META_IDENTITY, to_json(identity).as_str())
                .map_err(|e| self.err(e))?;
            meta.insert(META_SCHEMA, SCHEMA_VERSION.to_string().as_str())
                .map_err(|e| self.err(e))?;
            meta.insert(META_COMPRESSION, to_json(&compression).as_str())
                .map_err(|e| self.err(e))?;
            txn.open_table(DOCUMENTS).map_err(|e| self.err(e))?;
            txn.open_table(CHECKPOINTS).map_err(|e| self.err(e))?;
            Ok(())
        })
    }

    /// Read the identity, schema version and compression setting, checking every table exists.
    pub(crate) fn load_meta(&self) -> Result<(StoreIdentity, u32, Compression)> {
        self.read(|txn| {
            for name in ["documents", "checkpoints"] {
                let r = if name == "documents" {
                    txn.open_table(DOCUMENTS).map(|_| ())
                } else {
                    txn.open_table(CHECKPOINTS).map(|_| ())
                };
                self.table_ok(r, name)?;
            }
            let meta = self.table_ok(txn.open_table(META), "meta")?;
            let get = |k: &str| -> Result<String> {
                meta.get(k)
                    .map_err(|e| self.err(e))?
                    .map(|v| v.value().to_string())
                    .ok_or_else(|| damaged(&self.path, format!("meta entry `{k}` is missing")))
            };
            let identity: StoreIdentity = from_json(&self.path, "identity", get(META_IDENTITY)?.as_bytes())?;
            let schema: u32 = get(META_SCHEMA)?
                .parse()
                .map_err(|_| damaged(&self.path, "meta entry `schema_version` is not a number"))?;
            let compression: Compression = from_json(&self.path, "compression", get(META_COMPRESSION)?.as_bytes())?;
            Ok((identity, schema, compression))
        })
    }

    fn table_ok<T>(&self, r: std::result::Result<T, TableError>, name: &str) -> Result<T> {
        match r {
            Ok(t) => Ok(t),
            Err(TableError::TableDoesNotExist(_)) => Err(damaged(&self.path, format!("table `{name}` is missing"))),
            Err(TableError::TableTypeMismatch { .. }) => {
                Err(damaged(&self.path, format!("table `{name}` has the wrong types")))
            }
            Err(e) => Err(self.err(e)),
        }
    }

    pub(crate) fn set_compression(&self, c: Compression) -> Result<()> {
        self.write(|txn| {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            meta.insert(META_COMPRESSION, to_json(&c).as_str())
                .map_err(|e| self.err(e))?;
            Ok(())
        })
    }

    pub(crate) fn document(&self, id: &str) -> Result<Option<DocumentRecord>> {
        self.read(|txn| {
            let t = self.table_ok(txn.open_table(DOCUMENTS), "documents")?;
            let v = t.get(id).map_err(|e| self.err(e))?;
            v.map(|v| from_json(&self.path, "document", v.value())).transpose()
        })
    }

    pub(crate) fn documents(&self) -> Result<Vec<DocumentRecord>> {
        self.read(|txn| {
            let t = self.table_ok(txn.open_table(DOCUMENTS), "documents")?;
            let mut out = Vec::new();
            for item in t.iter().map_err(|e| self.err(e))? {
                let (_, v) = item.map_err(|e| self.err(e))?;
                out.push(from_json(&self.path, "document", v.value())?);
            }
            Ok(out)
        })
    }

    pub(crate) fn checkpoint(&self, key: &Key) -> Result<Option<CheckpointRecord>> {
        self.read(|txn| {
            let t = self.table_ok(txn.open_table(CHECKPOINTS), "checkpoints")?;
            let v = t.get(key.as_bytes().as_slice()).map_err(|e| self.err(e))?;
            v.map(|v| from_json(&self.path, "checkpoint", v.value())).transpose()
        })
    }

    /// A document's checkpoints in order, or `None` if there is no such document. Read in one
    /// transaction, so the list and the records agree.
    pub(crate) fn checkpoints_of(&self, id: &str) -> Result<Option<Vec<CheckpointRecord>>> {
        self.read(|txn| {
            let docs = self.table_ok(txn.open_table(DOCUMENTS), "documents")?;
            let Some(v) = docs.get(id).map_err(|e| self.err(e))? else {
                return Ok(None);
            };
            let doc: DocumentRecord = from_json(&self.path, "document", v.value())?;
            let ckpts = self.table_ok(txn.open_table(CHECKPOINTS), "checkpoints")?;
            let mut out = Vec::with_capacity(doc.checkpoints.len());
            for key in &doc.checkpoints {
                let Some(v) = ckpts.get(key.as_bytes().as_slice()).map_err(|e| self.err(e))? else {
                    return Err(damaged(
                        &self.path,
                        format!("document {id} lists checkpoint {key}, which is not in the manifest"),
                    ));
                };
                out.push(from_json(&self.path, "checkpoint", v.value())?);
            }
            Ok(Some(out))
        })
    }

    /// Every checkpoint record.
    pub(crate) fn all_checkpoints(&self) -> Result<Vec<CheckpointRecord>> {
        self.read(|txn| {
            let t = self.table_ok(txn.open_table(CHECKPOINTS), "checkpoints")?;
            let mut out = Vec::new();
            for item in t.iter().map_err(|e| self.err(e))? {
                let (_, v) = item.map_err(|e| self.err(e))?;
                out.push(from_json(&self.path, "checkpoint", v.value())?);
            }
            Ok(out)
        })
    }

    /// (documents, checkpoints)
    pub(crate) fn counts(&self) -> Result<(u64, u64)> {
        self.read(|txn| {
            let d = self.table_ok(txn.open_table(DOCUMENTS), "documents")?;
            let c = self.table_ok(txn.open_table(CHECKPOINTS), "checkpoints")?;
            Ok((d.len().map_err(|e| self.err(e))?, c.len().map_err(|e| self.err(e))?))
        })
    }

    /// Replace document `doc.id` (if present) by `doc` and `ckpts` in one transaction. The
    /// caller has validated them; `doc.checkpoints` lists `ckpts`' keys.
    pub(crate) fn put_document(&self, doc: &DocumentRecord, ckpts: &[CheckpointRecord]) -> Result<()> {
        self.write(|txn| {
            let mut docs = txn.open_table(DOCUMENTS).map_err(|e| self.err(e))?;
            let mut table = txn.open_table(CHECKPOINTS).map_err(|e| self.err(e))?;
            let old: Option<DocumentRecord> = docs
                .get(doc.id.as_str())
                .map_err(|e| self.err(e))?
                .map(|v| from_json(&self.path, "document", v.value()))
                .transpose()?;
            if let Some(old) = old {
                for key in &old.checkpoints {
                    table.remove(key.as_bytes().as_slice()).map_err(|e| self.err(e))?;
                }
            }
            for c in ckpts {
                let existing: Option<CheckpointRecord> = table
                    .get(c.key.as_bytes().as_slice())
                    .map_err(|e| self.err(e))?
                    .map(|v| from_json(&self.path, "checkpoint", v.value()))
                    .transpose()?;
                if let Some(other) = existing
                    && other.doc_id != doc.id
                {
                    return Err(Error::KeyConflict {
                        doc: doc.id.clone(),
                        key: c.key,
                        other_doc: other.doc_id,
                    });
                }
                table
                    .insert(c.key.as_bytes().as_slice(), to_json(c).as_bytes())
                    .map_err(|e| self.err(e))?;
            }
            docs.insert(doc.id.as_str(), to_json(doc).as_bytes())
                .map_err(|e| self.err(e))?;
            Ok(())
        })
    }

    /// Remove a document and its checkpoints. Returns whether it was there.
    pub(crate) fn remove_document(&self, id: &str) -> Result<bool> {
        self.write(|txn| {
            let mut docs = txn.open_table(DOCUMENTS).map_err(|e| self.err(e))?;
            let mut table = txn.open_table(CHECKPOINTS).map_err(|e| self.err(e))?;
            let old: Option<DocumentRecord> = docs
                .remove(id)
                .map_err(|e| self.err(e))?
                .map(|v| from_json(&self.path, "document", v.value()))
                .transpose()?;
            let Some(old) = old else { return Ok(false) };
            for key in &old.checkpoints {
                table.remove(key.as_bytes().as_slice()).map_err(|e| self.err(e))?;
            }
            Ok(true)
        })
    }
}

/// Map an open error: damage, a lock held elsewhere, or a file needing recovery.
/// Delete every temporary manifest in `dir` (best effort: one another creator is still
/// writing is unlinked under it, and that creator then opens the manifest that won).
fn remove_manifest_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(MANIFEST_TEMP_PREFIX) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn open_err(path: &Path, dir: &Path, e: DatabaseError) -> Error {
    match e {
        DatabaseError::RepairAborted => Error::NeedsRecovery {
            path: path.to_path_buf(),
        },
        other => db_err(path, dir, other),
    }
}

fn to_json<T: Serialize>(v: &T) -> String {
    // Records are plain structs of strings, integers and keys: serializing cannot fail.
    serde_json::to_string(v).expect("manifest records serialize")
}

fn from_json<T: DeserializeOwned>(path: &Path, what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| damaged(path, format!("a {what} record does not parse: {e}")))
}
