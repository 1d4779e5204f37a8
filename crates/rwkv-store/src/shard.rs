//! Shard stores: a store that holds shard `i` of `n` of a corpus (one worker of a cluster job)
//! says so in `shard.json` beside its manifest, so that a rerun with another `n`, or a merge that
//! misses a shard or mixes settings, is refused by name instead of producing a store that differs
//! from a single-process ingest.
//!
//! ```json
//! {"version": 1, "index": 0, "count": 3, "complete": true,
//!  "model_fingerprint": "…", "tokenizer": "…", "settings": {"checkpoint_every": "4096"}}
//! ```
//!
//! `complete` turns true when the writer's run reached its end; a scheduler's resubmitted job can
//! skip a shard whose record says so. The file is replaced atomically (write, fsync, rename).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::records::StoreIdentity;

/// The shard record's file name inside a store directory.
pub const SHARD_FILE: &str = "shard.json";

const SHARD_RECORD_VERSION: u32 = 1;

/// What `shard.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardRecord {
    /// Version of this record's layout.
    pub version: u32,
    /// This shard's index, `0 <= index < count`.
    pub index: u64,
    /// How many shards the corpus was cut into.
    pub count: u64,
    /// Whether the writer's run reached its end.
    pub complete: bool,
    /// The store identity's model fingerprint (settings of the fold included).
    pub model_fingerprint: String,
    /// The store identity's tokenizer.
    pub tokenizer: String,
    /// Settings that change what the shard holds but are not part of the identity (checkpoint
    /// spacing, …), as the writer names them. Shards merge only when these agree.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

impl ShardRecord {
    /// A record for shard `index` of `count` of a store with `identity`, not yet complete.
    pub fn new(index: u64, count: u64, identity: &StoreIdentity, settings: BTreeMap<String, String>) -> Self {
        ShardRecord {
            version: SHARD_RECORD_VERSION,
            index,
            count,
            complete: false,
            model_fingerprint: identity.model_fingerprint.clone(),
            tokenizer: identity.tokenizer.clone(),
            settings,
        }
    }

    /// The record's path in store directory `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        crate::StoreDir::new(dir).shard_record()
    }

    /// The record of the store in `dir`, `None` when it is not a shard store.
    pub fn read(dir: &Path) -> Result<Option<ShardRecord>> {
        let path = Self::path(dir);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let rec: ShardRecord = serde_json::from_slice(&bytes).map_err(|e| Error::BadShardRecord {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if rec.version != SHARD_RECORD_VERSION {
            return Err(Error::BadShardRecord {
                path,
                reason: format!(
                    "record version {}, this build reads {SHARD_RECORD_VERSION}",
                    rec.version
                ),
            });
        }
        if rec.count == 0 || rec.index >= rec.count {
            return Err(Error::BadShardRecord {
                path,
                reason: format!("shard {}/{} is out of range", rec.index, rec.count),
            });
        }
        Ok(Some(rec))
    }

    /// Write the record into store directory `dir` (atomically: a temporary file, fsynced, then
    /// renamed over the old one).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        let tmp = dir.join(format!(".{SHARD_FILE}.tmp"));
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::BadShardRecord {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        bytes.push(b'\n');
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(&bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Check that a run asking for shard `shard` (`None`: the whole corpus) may write the store in
    /// `dir` whose record is `self` (or that holds no record: `existing == None`).
    pub fn check_run(dir: &Path, existing: Option<&ShardRecord>, shard: Option<(u64, u64)>) -> Result<()> {
        match (existing, shard) {
            (None, _) => Ok(()),
            (Some(r), Some((i, n))) if r.index == i && r.count == n => Ok(()),
            (Some(r), requested) => Err(Error::ShardChanged {
                dir: dir.to_path_buf(),
                recorded: (r.index, r.count),
                requested,
            }),
        }
    }
}

/// Check that `shards` (each store directory with its record) are the whole of one sharded
/// corpus: every store a shard store of the same count, model, tokenizer and settings, complete,
/// and every index `0..count` present exactly once. Stores without a record are refused only
/// when mixed with shard stores (merging plain stores is allowed).
pub fn check_shard_set(shards: &[(PathBuf, Option<ShardRecord>)]) -> Result<()> {
    let Some((first_dir, Some(first))) = shards.iter().find(|(_, r)| r.is_some()) else {
        return Ok(());
    };
    let mut seen: BTreeMap<u64, &Path> = BTreeMap::new();
    for (dir, rec) in shards {
        let Some(r) = rec else {
            return Err(Error::ShardSet {
                reason: format!(
                    "{} is not a shard store (no {SHARD_FILE}) but {} is shard {}/{}",
                    dir.display(),
                    first_dir.display(),
                    first.index,
                    first.count
                ),
            });
        };
        let differs = |what: &str, a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| Error::ShardSet {
            reason: format!(
                "{} has {what} {a:?} but {} has {b:?}: the shards were made by different runs",
                dir.display(),
                first_dir.display()
            ),
        };
        if r.count != first.count {
            return Err(differs("shard count", &r.count, &first.count));
        }
        if r.model_fingerprint != first.model_fingerprint {
            return Err(differs("model", &r.model_fingerprint, &first.model_fingerprint));
        }
        if r.tokenizer != first.tokenizer {
            return Err(differs("tokenizer", &r.tokenizer, &first.tokenizer));
        }
        if r.settings != first.settings {
            return Err(differs("settings", &r.settings, &first.settings));
        }
        if !r.complete {
            return Err(Error::ShardSet {
                reason: format!(
                    "{} (shard {}/{}) is not complete: its ingest did not reach the end; run it again",
                    dir.display(),
                    r.index,
                    r.count
                ),
            });
        }
        if let Some(other) = seen.insert(r.index, dir) {
            return Err(Error::ShardSet {
                reason: format!(
                    "{} and {} are both shard {}/{}",
                    other.display(),
                    dir.display(),
                    r.index,
                    r.count
                ),
            });
        }
    }
    let missing: Vec<String> = (0..first.count)
        .filter(|i| !seen.contains_key(i))
        .map(|i| format!("{i}/{}", first.count))
        .collect();
    if !missing.is_empty() {
        return Err(Error::ShardSet {
            reason: format!(
                "shard {} missing: every shard of the corpus must be merged",
                missing.join(", ")
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(model: &str) -> StoreIdentity {
        StoreIdentity {
            model_fingerprint: model.into(),
            tokenizer: "world".into(),
            format_version: 1,
        }
    }

    fn rec(i: u64, n: u64) -> ShardRecord {
        let mut r = ShardRecord::new(i, n, &ident("m"), BTreeMap::new());
        r.complete = true;
        r
    }

    fn set(recs: Vec<Option<ShardRecord>>) -> Vec<(PathBuf, Option<ShardRecord>)> {
        recs.into_iter()
            .enumerate()
            .map(|(k, r)| (PathBuf::from(format!("s{k}")), r))
            .collect()
    }

    #[test]
    fn a_record_round_trips_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ShardRecord::read(dir.path()).unwrap(), None);
        let r = rec(1, 3);
        r.write(dir.path()).unwrap();
        assert_eq!(ShardRecord::read(dir.path()).unwrap(), Some(r));
        std::fs::write(
            dir.path().join(SHARD_FILE),
            br#"{"version":1,"index":3,"count":3,"complete":false,"model_fingerprint":"m","tokenizer":"t"}"#,
        )
        .unwrap();
        let e = ShardRecord::read(dir.path()).unwrap_err();
        assert!(
            matches!(e, Error::BadShardRecord { .. }) && e.to_string().contains("3/3"),
            "{e}"
        );
        std::fs::write(dir.path().join(SHARD_FILE), b"{").unwrap();
        assert!(matches!(
            ShardRecord::read(dir.path()),
            Err(Error::BadShardRecord { .. })
        ));
    }

    #[test]
    fn a_run_keeps_to_its_shard() {
        let d = Path::new("s");
        let r = rec(1, 3);
        ShardRecord::check_run(d, None, Some((0, 2))).unwrap();
        ShardRecord::check_run(d, Some(&r), Some((1, 3))).unwrap();
        let e = ShardRecord::check_run(d, Some(&r), Some((1, 4))).unwrap_err();
        assert!(e.to_string().contains("1/3") && e.to_string().contains("1/4"), "{e}");
        let e = ShardRecord::check_run(d, Some(&r), None).unwrap_err();
        assert!(e.to_string().contains("whole corpus"), "{e}");
    }

    #[test]
    fn a_shard_set_must_be_whole_and_alike() {
        check_shard_set(&set(vec![None, None])).unwrap();
        check_shard_set(&set(vec![Some(rec(1, 2)), Some(rec(0, 2))])).unwrap();
        let e = check_shard_set(&set(vec![Some(rec(0, 3)), Some(rec(2, 3))])).unwrap_err();
        assert!(e.to_string().contains("shard 1/3 missing"), "{e}");
        let e = check_shard_set(&set(vec![Some(rec(0, 2)), Some(rec(0, 2))])).unwrap_err();
        assert!(e.to_string().contains("both shard 0/2"), "{e}");
        let e = check_shard_set(&set(vec![Some(rec(0, 2)), Some(rec(1, 3))])).unwrap_err();
        assert!(e.to_string().contains("shard count"), "{e}");
        let mut other = rec(1, 2);
        other.model_fingerprint = "m2".into();
        let e = check_shard_set(&set(vec![Some(rec(0, 2)), Some(other)])).unwrap_err();
        assert!(e.to_string().contains("model"), "{e}");
        let mut other = rec(1, 2);
        other.settings.insert("checkpoint_every".into(), "512".into());
        let e = check_shard_set(&set(vec![Some(rec(0, 2)), Some(other)])).unwrap_err();
        assert!(e.to_string().contains("settings"), "{e}");
        let mut other = rec(1, 2);
        other.complete = false;
        let e = check_shard_set(&set(vec![Some(rec(0, 2)), Some(other)])).unwrap_err();
        assert!(e.to_string().contains("not complete"), "{e}");
        let e = check_shard_set(&set(vec![Some(rec(0, 2)), None])).unwrap_err();
        assert!(e.to_string().contains("not a shard store"), "{e}");
    }
}
