//! State blobs on disk: content-addressed files under `blobs/<2 hex>/<62 hex>.st[.zst]`.
//!
//! Why this shape: a key names a blob for life, so a blob is written once and never edited; a
//! write is temp file, fsync, rename, fsync of the directory, so after `put` returns the blob
//! survives a crash, and a crash before that leaves at most a `.tmp-*` file that `gc` removes.
//! Readers check the checksum the manifest recorded before trusting a byte.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::key::{Key, checksum_hex, from_hex32};
use crate::records::{BlobInfo, Compression};

/// The directory under the store root that holds blobs.
pub(crate) const BLOB_DIR: &str = "blobs";
/// Prefix of temp files; anything so named is garbage once no write is in flight.
pub(crate) const TMP_PREFIX: &str = ".tmp-";

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The path of a blob relative to the store root.
pub(crate) fn blob_rel_path(key: &Key, compressed: bool) -> PathBuf {
    let hex = key.to_hex();
    let ext = if compressed { "st.zst" } else { "st" };
    Path::new(BLOB_DIR).join(&hex[..2]).join(format!("{}.{ext}", &hex[2..]))
}

/// fsync a directory so a rename or create inside it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Create `dir` (and parents) and make the new entries durable.
pub(crate) fn create_dir_durable(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durable(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Write `bytes` to `path` atomically and durably: temp file in the same directory, write,
/// fsync, rename over `path`, fsync the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().expect("blob paths have a parent");
    create_dir_durable(dir)?;
    let name = path.file_name().expect("blob paths have a name").to_string_lossy();
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!("{TMP_PREFIX}{}-{n}-{name}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Store `raw` (uncompressed safetensors bytes) under `key`. A blob already there with the same
/// stored bytes is kept (its mtime is refreshed, which marks it as part of the newest version
/// for `rebuild_manifest`); one with other bytes (damaged, or another writer's) is replaced.
pub(crate) fn put(root: &Path, key: &Key, raw: &[u8], compression: Compression) -> Result<BlobInfo> {
    let (stored, compressed) = match compression {
        Compression::None => (std::borrow::Cow::Borrowed(raw), false),
        Compression::Zstd(level) => {
            let z = zstd::bulk::compress(raw, level).map_err(|e| Error::io(blob_rel_path(key, true), e))?;
            (std::borrow::Cow::Owned(z), true)
        }
    };
    let info = BlobInfo {
        checksum: checksum_hex(&stored),
        size: stored.len() as u64,
        compressed,
    };
    let path = root.join(blob_rel_path(key, compressed));
    if let Ok(meta) = fs::metadata(&path)
        && meta.len() == info.size
        && let Ok(existing) = fs::read(&path)
        && checksum_hex(&existing) == info.checksum
    {
        // Best effort: the mtime only orders versions for a rebuild.
        if let Ok(f) = File::options().write(true).open(&path) {
            let _ = f.set_modified(SystemTime::now());
        }
        return Ok(info);
    }
    write_atomic(&path, &stored)?;
    Ok(info)
}

/// Read the stored bytes of `key`'s blob, check them against `info` and return them
/// uncompressed. Any mismatch is [`Error::Corrupt`].
pub(crate) fn read_verified(root: &Path, key: &Key, info: &BlobInfo) -> Result<Vec<u8>> {
    let path = root.join(blob_rel_path(key, info.compressed));
    let corrupt = |reason: String| Error::Corrupt {
        key: *key,
        path: path.clone(),
        reason,
    };
    let stored = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(corrupt("blob file is missing".into())),
        Err(e) => return Err(Error::io(&path, e)),
    };
    if stored.len() as u64 != info.size {
        return Err(corrupt(format!(
            "{} bytes, the manifest recorded {}",
            stored.len(),
            info.size
        )));
    }
    let sum = checksum_hex(&stored);
    if sum != info.checksum {
        return Err(corrupt(format!(
            "checksum {sum}, the manifest recorded {}",
            info.checksum
        )));
    }
    if info.compressed {
        zstd::stream::decode_all(&stored[..]).map_err(|e| corrupt(format!("zstd: {e}")))
    } else {
        Ok(stored)
    }
}

/// Read a blob file without a recorded checksum (rebuild, which has none), uncompressed.
pub(crate) fn read_unverified(path: &Path, compressed: bool) -> Result<(Vec<u8>, BlobInfo)> {
    let stored = fs::read(path).map_err(|e| Error::io(path, e))?;
    let info = BlobInfo {
        checksum: checksum_hex(&stored),
        size: stored.len() as u64,
        compressed,
    };
    let raw = if compressed {
        zstd::stream::decode_all(&stored[..]).map_err(|e| Error::BadBlob {
            path: path.to_path_buf(),
            reason: format!("zstd: {e}"),
        })?
    } else {
        stored
    };
    Ok((raw, info))
}

/// A file found under `blobs/`.
#[derive(Debug)]
pub(crate) enum Found {
    /// A blob file whose name parses as a key.
    Blob {
        path: PathBuf,
        key: Key,
        compressed: bool,
        size: u64,
        modified: Option<SystemTime>,
    },
    /// A temp file left by an interrupted write.
    Temp { path: PathBuf, size: u64 },
    /// Anything else (not ours).
    Other,
}

/// Every file under `root/blobs`.
pub(crate) fn scan(root: &Path) -> Result<Vec<Found>> {
    let blobs = root.join(BLOB_DIR);
    let mut out = Vec::new();
    let top = match fs::read_dir(&blobs) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(&blobs, e)),
    };
    let mut fanouts: Vec<PathBuf> = Vec::new();
    for entry in top {
        let entry = entry.map_err(|e| Error::io(&blobs, e))?;
        let path = entry.path();
        if entry.file_type().map_err(|e| Error::io(&path, e))?.is_dir() {
            fanouts.push(path);
        } else {
            out.push(classify(&path, None, &entry));
        }
    }
    fanouts.sort();
    for dir in fanouts {
        let prefix = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        let mut entries: Vec<_> = fs::read_dir(&dir)
            .map_err(|e| Error::io(&dir, e))?
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io(&dir, e))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            out.push(classify(&entry.path(), prefix.as_deref(), &entry));
        }
    }
    Ok(out)
}

fn classify(path: &Path, prefix: Option<&str>, entry: &fs::DirEntry) -> Found {
    let name = entry.file_name().to_string_lossy().into_owned();
    let meta = entry.metadata().ok();
    let size = meta.as_ref().map_or(0, |m| m.len());
    let is_file = meta.as_ref().is_some_and(|m| m.is_file());
    if is_file && name.starts_with(TMP_PREFIX) {
        return Found::Temp {
            path: path.to_path_buf(),
            size,
        };
    }
    let parsed = prefix.filter(|_| is_file).and_then(|p| {
        let (rest, compressed) = if let Some(r) = name.strip_suffix(".st.zst") {
            (r, true)
        } else {
            (name.strip_suffix(".st")?, false)
        };
        from_hex32(&format!("{p}{rest}")).map(|k| (Key(k), compressed))
    });
    match parsed {
        // Only the canonical (lowercase) spelling is ours.
        Some((key, compressed)) if blob_rel_path(&key, compressed).file_name() == path.file_name() => Found::Blob {
            path: path.to_path_buf(),
            key,
            compressed,
            size,
            modified: meta.and_then(|m| m.modified().ok()),
        },
        _ => Found::Other,
    }
}
