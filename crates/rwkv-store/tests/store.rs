//! Public-API tests of the store: round trips, identity, corruption, crash order, damage and
//! rebuild, gc, merge, readers beside a writer.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use rwkv_store::{
    CheckpointRecord, Compression, DocumentRecord, Error, Key, Part, Store, StoreIdentity, blob_metadata,
    checkpoint_key, checksum_hex, span_hash,
};
use safetensors::{Dtype, tensor::TensorView};

const FP: &str = "model-fp-aaaa";

fn identity() -> StoreIdentity {
    StoreIdentity {
        model_fingerprint: FP.into(),
        tokenizer: "world".into(),
        format_version: 1,
    }
}

/// A stand-in for a model state file: one f32 tensor derived from `seed`, plus metadata.
fn state_bytes(seed: u32, meta: HashMap<String, String>) -> Vec<u8> {
    let data: Vec<u8> = (0..64u32)
        .flat_map(|i| ((seed * 1000 + i) as f32).to_le_bytes())
        .collect();
    let view = TensorView::new(Dtype::F32, vec![64], &data).unwrap();
    safetensors::serialize(vec![("blocks.0.att_kv".to_string(), view)], Some(meta)).unwrap()
}

/// What the writer does for one document: `spans` checkpoints, each span a few tokens derived
/// from `content`, blobs written with metadata, records returned (not committed).
fn fold(store: &Store, id: &str, content: &str, spans: usize) -> (DocumentRecord, Vec<CheckpointRecord>, Vec<Vec<u8>>) {
    let doc = DocumentRecord {
        id: id.into(),
        source: format!("src/{id}.rs"),
        kind: "code".into(),
        title: format!("Title of {id}"),
        content_hash: checksum_hex(content.as_bytes()),
        byte_len: (spans * 100) as u64,
        line_count: (spans * 10) as u64,
        token_count: (spans * 50) as u64,
        parts: vec![Part {
            title: "all".into(),
            byte_offset: 0,
            line: 1,
        }],
        ..Default::default()
    };
    let mut parent: Option<Key> = None;
    let mut ckpts = Vec::new();
    let mut blobs = Vec::new();
    for i in 0..spans {
        let tokens: Vec<u32> = format!("{id}/{content}/{i}").bytes().map(u32::from).collect();
        let key = checkpoint_key(FP, parent.as_ref(), &span_hash(&tokens));
        let mut rec = CheckpointRecord {
            key,
            doc_id: id.into(),
            seq: i as u32,
            token_offset: ((i + 1) * 50) as u64,
            byte_offset: ((i + 1) * 100) as u64,
            line: (i * 10 + 1) as u64,
            parent,
            is_final: i + 1 == spans,
            blob: Default::default(),
        };
        let mut meta: HashMap<String, String> = blob_metadata(&rec, &doc).into_iter().collect();
        meta.insert("model".into(), FP.into());
        let bytes = state_bytes(i as u32 + content.len() as u32, meta);
        rec.blob = store.put_blob(&key, &bytes).unwrap();
        parent = Some(key);
        ckpts.push(rec);
        blobs.push(bytes);
    }
    (doc, ckpts, blobs)
}

fn commit(
    store: &Store,
    id: &str,
    content: &str,
    spans: usize,
) -> (DocumentRecord, Vec<CheckpointRecord>, Vec<Vec<u8>>) {
    let (doc, ckpts, blobs) = fold(store, id, content, spans);
    store.commit_document(doc.clone(), ckpts.clone()).unwrap();
    (doc, ckpts, blobs)
}

fn blob_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for d in fs::read_dir(dir.join("blobs")).unwrap() {
        let d = d.unwrap().path();
        if d.is_dir() {
            for f in fs::read_dir(&d).unwrap() {
                out.push(f.unwrap().path());
            }
        }
    }
    out.sort();
    out
}

/// The parts of a document record that rebuild and merge must preserve.
fn strip(mut d: DocumentRecord) -> DocumentRecord {
    d.committed_at_ms = 0;
    d
}

#[test]
fn round_trip_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(".rwkv");
    let (doc, ckpts, blobs) = {
        let store = Store::open(&dir, identity()).unwrap();
        commit(&store, "a", "hello", 3)
    };
    let store = Store::open(&dir, identity()).unwrap();
    let got = store.document("a").unwrap().unwrap();
    assert_eq!(got.checkpoints, ckpts.iter().map(|c| c.key).collect::<Vec<_>>());
    assert!(got.committed_at_ms > 0);
    assert_eq!(strip(got.clone()).content_hash, doc.content_hash);
    assert_eq!(store.checkpoints_of("a").unwrap(), ckpts);
    assert_eq!(store.checkpoint(&ckpts[1].key).unwrap().unwrap(), ckpts[1]);
    for (c, b) in ckpts.iter().zip(&blobs) {
        assert_eq!(&store.read_blob(&c.key).unwrap(), b);
    }
    let stats = store.stats().unwrap();
    assert_eq!((stats.documents, stats.checkpoints), (1, 3));
    assert_eq!(stats.blob_bytes, blobs.iter().map(|b| b.len() as u64).sum::<u64>());
    assert_eq!(store.documents().unwrap().len(), 1);
    assert!(store.document("zzz").unwrap().is_none());
    assert!(store.checkpoints_of("zzz").unwrap().is_empty());
    let missing = checkpoint_key(FP, None, &[0; 32]);
    assert!(matches!(
        store.read_blob(&missing),
        Err(Error::UnknownCheckpoint { .. })
    ));
    // Blob layout: blobs/<2 hex>/<62 hex>.st
    let hex = ckpts[0].key.to_hex();
    assert!(
        dir.join("blobs")
            .join(&hex[..2])
            .join(format!("{}.st", &hex[2..]))
            .is_file()
    );
}

#[test]
fn put_blob_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), identity()).unwrap();
    let key = checkpoint_key(FP, None, &span_hash(&[1, 2]));
    let bytes = state_bytes(1, HashMap::new());
    let a = store.put_blob(&key, &bytes).unwrap();
    let b = store.put_blob(&key, &bytes).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.checksum, checksum_hex(&bytes));
    assert_eq!(blob_files(tmp.path()).len(), 1, "no temp files left behind");
}

#[test]
fn zstd_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path(), identity()).unwrap();
    let (_, plain, _) = commit(&store, "plain", "p", 1);
    store.set_compression(Compression::Zstd(3)).unwrap();
    let (_, ckpts, blobs) = commit(&store, "z", "zz", 2);
    assert!(ckpts.iter().all(|c| c.blob.compressed));
    assert!(
        store
            .blob_path(&ckpts[0].key, &ckpts[0].blob)
            .to_string_lossy()
            .ends_with(".st.zst")
    );
    drop(store);
    let store = Store::open(tmp.path(), identity()).unwrap();
    assert_eq!(store.compression(), Compression::Zstd(3));
    for (c, b) in ckpts.iter().zip(&blobs) {
        assert_eq!(&store.read_blob(&c.key).unwrap(), b);
    }
    assert!(
        store.read_blob(&plain[0].key).is_ok(),
        "old uncompressed blobs stay readable"
    );
}

#[test]
fn identity_mismatch_names_both_fingerprints() {
    let tmp = tempfile::tempdir().unwrap();
    drop(Store::open(tmp.path(), identity()).unwrap());
    let other = StoreIdentity {
        model_fingerprint: "model-fp-bbbb".into(),
        ..identity()
    };
    let err = Store::open(tmp.path(), other.clone()).err().unwrap();
    assert!(matches!(err, Error::FingerprintMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(FP) && msg.contains("model-fp-bbbb"), "{msg}");
    assert!(msg.contains(&tmp.path().display().to_string()), "{msg}");
    let err = Store::open_read_only(tmp.path(), other).err().unwrap();
    assert!(matches!(err, Error::FingerprintMismatch { .. }), "{err}");
    let tok = StoreIdentity {
        tokenizer: "bytes".into(),
        ..identity()
    };
    assert!(matches!(
        Store::open(tmp.path(), tok),
        Err(Error::FingerprintMismatch { .. })
    ));
    let ver = StoreIdentity {
        format_version: 2,
        ..identity()
    };
    assert!(matches!(Store::open(tmp.path(), ver), Err(Error::FormatVersion { .. })));
}

#[test]
fn a_store_fingerprinted_by_the_old_rule_is_a_named_error() {
    let tmp = tempfile::tempdir().unwrap();
    let old = StoreIdentity {
        model_fingerprint: "x070-0123456789abcdef+fold-bf16".into(),
        ..identity()
    };
    let store = Store::open(tmp.path(), old.clone()).unwrap();
    commit(&store, "a", "text", 1);
    drop(store);
    let new = StoreIdentity {
        model_fingerprint: "x070-f2-0123456789abcdef0123456789abcdef+fold-bf16".into(),
        ..identity()
    };
    for err in [
        Store::open(tmp.path(), new.clone()).err().unwrap(),
        Store::open_read_only(tmp.path(), new.clone()).err().unwrap(),
    ] {
        assert!(matches!(err, Error::OldFingerprintRule { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("x070-0123456789abcdef") && msg.contains("re-ingest"),
            "{msg}"
        );
    }
    // The old rule's store still opens with its own identity, and another model of the new
    // rule against a new-rule store stays a plain mismatch.
    Store::open_read_only(tmp.path(), old).unwrap();
    let tmp2 = tempfile::tempdir().unwrap();
    drop(Store::open(tmp2.path(), new).unwrap());
    let other = StoreIdentity {
        model_fingerprint: "x070-f2-ffffffffffffffffffffffffffffffff".into(),
        ..identity()
    };
    let err = Store::open(tmp2.path(), other).err().unwrap();
    assert!(matches!(err, Error::FingerprintMismatch { .. }), "{err}");
}

#[test]
fn flipped_byte_is_corrupt_and_refold_repairs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), identity()).unwrap();
    let (_, ckpts, blobs) = commit(&store, "a", "text", 2);
    let path = store.blob_path(&ckpts[1].key, &ckpts[1].blob);
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x40;
    fs::write(&path, &bytes).unwrap();
    let err = store.read_blob(&ckpts[1].key).unwrap_err();
    assert!(err.needs_refold());
    match &err {
        Error::Corrupt { key, path: p, .. } => {
            assert_eq!(*key, ckpts[1].key);
            assert_eq!(p, &path);
        }
        other => panic!("{other}"),
    }
    assert!(
        store.read_blob(&ckpts[0].key).is_ok(),
        "other checkpoints are unaffected"
    );
    // The refold writes the same bytes again: the damaged file is replaced.
    let info = store.put_blob(&ckpts[1].key, &blobs[1]).unwrap();
    assert_eq!(info, ckpts[1].blob);
    assert_eq!(store.read_blob(&ckpts[1].key).unwrap(), blobs[1]);
    // A missing blob is corrupt too.
    fs::remove_file(&path).unwrap();
    assert!(matches!(store.read_blob(&ckpts[1].key), Err(Error::Corrupt { .. })));
    // And a truncated one.
    fs::write(&path, &blobs[1][..10]).unwrap();
    assert!(matches!(store.read_blob(&ckpts[1].key), Err(Error::Corrupt { .. })));
}

#[test]
fn crash_between_blob_write_and_commit_leaves_an_orphan() {
    let tmp = tempfile::tempdir().unwrap();
    let (kept, orphan) = {
        let store = Store::open(tmp.path(), identity()).unwrap();
        let kept = commit(&store, "a", "one", 2);
        // Blobs of "b" and "a"'s next version are durable, then the process dies before the
        // manifest commit (and an interrupted write left a temp file).
        let orphan = fold(&store, "b", "two", 2);
        let _ = fold(&store, "a", "one-v2", 2);
        let fanout = store.blob_path(&orphan.1[0].key, &orphan.1[0].blob);
        fs::write(fanout.parent().unwrap().join(".tmp-999-0-partial.st"), b"partial").unwrap();
        (kept, orphan)
    };
    let mut store = Store::open(tmp.path(), identity()).unwrap();
    assert!(store.document("b").unwrap().is_none());
    assert!(store.checkpoint(&orphan.1[0].key).unwrap().is_none());
    assert_eq!(store.checkpoints_of("a").unwrap(), kept.1, "the old version is intact");
    for (c, b) in kept.1.iter().zip(&kept.2) {
        assert_eq!(&store.read_blob(&c.key).unwrap(), b);
    }
    assert_eq!(blob_files(tmp.path()).len(), 7);
    let report = store.gc().unwrap();
    assert_eq!(report.blobs_removed, 4);
    assert_eq!(report.temp_removed, 1);
    assert_eq!(report.blobs_kept, 2);
    assert_eq!(blob_files(tmp.path()).len(), 2);
    for (c, b) in kept.1.iter().zip(&kept.2) {
        assert_eq!(&store.read_blob(&c.key).unwrap(), b);
    }
    assert_eq!(store.gc().unwrap().blobs_removed, 0);
}

#[test]
fn replace_and_remove_documents() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path(), identity()).unwrap();
    let (_, v1, _) = commit(&store, "a", "one", 3);
    let (_, v2, b2) = commit(&store, "a", "two", 2);
    assert_eq!(store.checkpoints_of("a").unwrap(), v2);
    for c in &v1 {
        assert!(
            store.checkpoint(&c.key).unwrap().is_none(),
            "old version's checkpoints leave"
        );
    }
    assert_eq!(store.stats().unwrap().checkpoints, 2);
    let report = store.gc().unwrap();
    assert_eq!((report.blobs_removed, report.blobs_kept), (3, 2));
    assert_eq!(store.read_blob(&v2[1].key).unwrap(), b2[1]);
    commit(&store, "b", "bee", 1);
    assert!(store.remove_document("a").unwrap());
    assert!(!store.remove_document("a").unwrap());
    assert!(store.document("a").unwrap().is_none());
    assert!(store.checkpoint(&v2[0].key).unwrap().is_none());
    let stats = store.stats().unwrap();
    assert_eq!((stats.documents, stats.checkpoints), (1, 1));
    assert_eq!(store.gc().unwrap().blobs_removed, 2);
}

#[test]
fn commit_validates_its_input() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), identity()).unwrap();
    let (doc, ckpts, _) = fold(&store, "a", "x", 3);
    // A blob that was never put.
    let mut no_blob = ckpts.clone();
    no_blob[2].key = checkpoint_key(FP, Some(&ckpts[1].key), &[9; 32]);
    assert!(matches!(
        store.commit_document(doc.clone(), no_blob),
        Err(Error::InvalidDocument { .. })
    ));
    // A gap in seq.
    let gap = vec![ckpts[0].clone(), ckpts[2].clone()];
    assert!(matches!(
        store.commit_document(doc.clone(), gap),
        Err(Error::InvalidDocument { .. })
    ));
    // The final flag on the wrong checkpoint.
    let mut not_final = ckpts.clone();
    not_final[2].is_final = false;
    assert!(matches!(
        store.commit_document(doc.clone(), not_final),
        Err(Error::InvalidDocument { .. })
    ));
    // Out of order input is sorted by seq.
    let mut shuffled = ckpts.clone();
    shuffled.reverse();
    store.commit_document(doc.clone(), shuffled).unwrap();
    assert_eq!(store.checkpoints_of("a").unwrap(), ckpts);
    // Another document may not claim those keys.
    let mut other_doc = doc.clone();
    other_doc.id = "b".into();
    let stolen: Vec<_> = ckpts
        .iter()
        .cloned()
        .map(|c| CheckpointRecord {
            doc_id: "b".into(),
            ..c
        })
        .collect();
    assert!(matches!(
        store.commit_document(other_doc, stolen),
        Err(Error::KeyConflict { .. })
    ));
    assert_eq!(
        store.checkpoints_of("a").unwrap(),
        ckpts,
        "a failed commit changes nothing"
    );
    // A document with no checkpoints is fine.
    let empty = DocumentRecord {
        id: "empty".into(),
        ..Default::default()
    };
    store.commit_document(empty, vec![]).unwrap();
    assert!(store.checkpoints_of("empty").unwrap().is_empty());
}

fn assert_repair_hint(err: &Error) {
    assert!(matches!(err, Error::ManifestDamaged { .. }), "{err}");
    assert!(err.to_string().contains("rwkv-ingest --repair"), "{err}");
}

#[test]
fn damaged_manifest_is_a_clear_error_and_rebuild_restores_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (docs, ckpts) = {
        let store = Store::open(dir, identity()).unwrap();
        commit(&store, "a", "alpha", 3);
        commit(&store, "b", "beta", 1);
        commit(&store, "c", "gamma", 2);
        let docs: Vec<_> = store.documents().unwrap().into_iter().map(strip).collect();
        let ckpts: Vec<_> = docs.iter().map(|d| store.checkpoints_of(&d.id).unwrap()).collect();
        (docs, ckpts)
    };
    let manifest = dir.join("manifest.redb");
    let len = fs::metadata(&manifest).unwrap().len() as usize;
    fs::write(&manifest, vec![0x5a; len]).unwrap();
    assert_repair_hint(&Store::open(dir, identity()).err().unwrap());
    assert_repair_hint(&Store::open_read_only(dir, identity()).err().unwrap());

    let (store, report) = Store::rebuild_manifest(dir, identity()).unwrap();
    assert_eq!((report.documents, report.checkpoints), (3, 6));
    assert!(report.incomplete_documents.is_empty() && report.unreadable_blobs.is_empty());
    assert!(
        report.old_manifest.as_ref().unwrap().is_file(),
        "the damaged file is kept aside"
    );
    let rebuilt: Vec<_> = store.documents().unwrap().into_iter().map(strip).collect();
    assert_eq!(rebuilt, docs);
    for (d, c) in docs.iter().zip(&ckpts) {
        assert_eq!(&store.checkpoints_of(&d.id).unwrap(), c);
        for c in c {
            store.read_blob(&c.key).unwrap();
        }
    }
    drop(store);
    // It opens normally afterwards.
    assert_eq!(Store::open(dir, identity()).unwrap().stats().unwrap().documents, 3);
}

#[test]
fn garbage_records_are_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    drop(Store::open(dir, identity()).unwrap());
    {
        let db = redb::Database::builder()
            .set_concurrency_mode(redb::ConcurrencyMode::SingleWriter)
            .open(dir.join("manifest.redb"))
            .unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("documents"))
            .unwrap()
            .insert("x", b"{not json".as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let store = Store::open(dir, identity()).unwrap();
    assert_repair_hint(&store.documents().unwrap_err());
    assert_repair_hint(&store.document("x").unwrap_err());
}

#[test]
fn truncated_or_missing_tables_are_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    drop(Store::open(dir, identity()).unwrap());
    // A valid redb file whose tables are gone.
    {
        let db = redb::Database::builder()
            .set_concurrency_mode(redb::ConcurrencyMode::SingleWriter)
            .open(dir.join("manifest.redb"))
            .unwrap();
        let txn = db.begin_write().unwrap();
        txn.delete_table(redb::TableDefinition::<&[u8], &[u8]>::new("checkpoints"))
            .unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(dir, identity()).err().unwrap();
    assert_repair_hint(&err);
    assert!(err.to_string().contains("checkpoints"), "{err}");
    // A truncated file.
    let manifest = dir.join("manifest.redb");
    let bytes = fs::read(&manifest).unwrap();
    fs::write(&manifest, &bytes[..bytes.len() / 3]).unwrap();
    assert_repair_hint(&Store::open(dir, identity()).err().unwrap());
}

#[test]
fn rebuild_without_manifest_picks_complete_newest_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let store = Store::open(dir, identity()).unwrap();
        commit(&store, "a", "old", 3);
        std::thread::sleep(std::time::Duration::from_millis(20));
        commit(&store, "a", "new", 2);
        // An interrupted fold: blobs of the first two of three checkpoints, no final one.
        let (_, ckpts, _) = fold(&store, "c", "partial", 3);
        let last = store.blob_path(&ckpts[2].key, &ckpts[2].blob);
        fs::remove_file(last).unwrap();
        // A blob that is not a state at all.
        let junk = checkpoint_key(FP, None, &[7; 32]);
        store.put_blob(&junk, b"not safetensors").unwrap();
    }
    let expected = {
        let s = Store::open(dir, identity()).unwrap();
        (strip(s.document("a").unwrap().unwrap()), s.checkpoints_of("a").unwrap())
    };
    fs::remove_file(dir.join("manifest.redb")).unwrap();
    let (store, report) = Store::rebuild_manifest(dir, identity()).unwrap();
    assert_eq!(report.old_manifest, None);
    assert_eq!(report.documents, 1);
    assert_eq!(report.incomplete_documents, vec!["c".to_string()]);
    assert_eq!(report.unreadable_blobs.len(), 1);
    assert_eq!(report.unused_blobs, 3 + 2);
    assert_eq!(strip(store.document("a").unwrap().unwrap()), expected.0);
    assert_eq!(store.checkpoints_of("a").unwrap(), expected.1);
}

#[test]
fn rebuild_refuses_while_a_writer_holds_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let _writer = Store::open(tmp.path(), identity()).unwrap();
    assert!(matches!(
        Store::rebuild_manifest(tmp.path(), identity()),
        Err(Error::Busy { .. })
    ));
}

#[test]
fn merge_two_shard_stores() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Store::open(tmp.path().join("a"), identity()).unwrap();
    let mut b = Store::open(tmp.path().join("b"), identity()).unwrap();
    b.set_compression(Compression::Zstd(1)).unwrap();
    commit(&a, "only-a", "1", 2);
    commit(&a, "both-same", "same", 1);
    commit(&b, "both-same", "same", 1);
    commit(&a, "both-diff", "older", 2);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let (_, newer, newer_blobs) = commit(&b, "both-diff", "newer", 3);
    let (_, only_b, only_b_blobs) = commit(&b, "only-b", "2", 2);
    let report = a.merge_from(&b).unwrap();
    assert_eq!(report.documents_added, 1);
    assert_eq!(report.documents_replaced, 1);
    assert_eq!(report.documents_kept, 1);
    assert_eq!(report.checkpoints_copied, 5);
    let ids: Vec<_> = a.documents().unwrap().into_iter().map(|d| d.id).collect();
    assert_eq!(ids, ["both-diff", "both-same", "only-a", "only-b"]);
    for (c, bytes) in newer.iter().zip(&newer_blobs).chain(only_b.iter().zip(&only_b_blobs)) {
        assert_eq!(&a.read_blob(&c.key).unwrap(), bytes);
        assert!(
            !a.checkpoint(&c.key).unwrap().unwrap().blob.compressed,
            "written in a's form"
        );
    }
    assert_eq!(
        a.document("both-diff").unwrap().unwrap().committed_at_ms,
        b.document("both-diff").unwrap().unwrap().committed_at_ms
    );
    // Merging again changes nothing.
    let again = a.merge_from(&b).unwrap();
    assert_eq!(
        (again.documents_added, again.documents_replaced, again.documents_kept),
        (0, 0, 3)
    );
    // Another model's store cannot be merged.
    let c = Store::open(
        tmp.path().join("c"),
        StoreIdentity {
            model_fingerprint: "other".into(),
            ..identity()
        },
    )
    .unwrap();
    assert!(matches!(a.merge_from(&c), Err(Error::FingerprintMismatch { .. })));
}

#[test]
fn readers_share_the_store_with_one_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert!(matches!(
        Store::open_read_only(dir, identity()),
        Err(Error::NotAStore { .. })
    ));
    let writer = Store::open(dir, identity()).unwrap();
    commit(&writer, "a", "first", 1);
    let reader = Store::open_read_only(dir, identity()).unwrap();
    assert_eq!(reader.documents().unwrap().len(), 1);
    // A second writer is refused at once.
    assert!(matches!(Store::open(dir, identity()), Err(Error::Busy { .. })));
    // The reader sees the writer's next commit.
    let (_, ckpts, blobs) = commit(&writer, "b", "second", 2);
    assert_eq!(reader.documents().unwrap().len(), 2);
    assert_eq!(reader.read_blob(&ckpts[1].key).unwrap(), blobs[1]);
    // Readers cannot write.
    assert!(matches!(
        reader.put_blob(&ckpts[0].key, b"x"),
        Err(Error::ReadOnly { .. })
    ));
    assert!(matches!(reader.remove_document("a"), Err(Error::ReadOnly { .. })));
    // A second reader, while both are open.
    let reader2 = Store::open_read_only(dir, identity()).unwrap();
    assert_eq!(reader2.stats().unwrap().checkpoints, 3);
    drop(writer);
    assert_eq!(reader.stats().unwrap().documents, 2);
}

/// Runs in a child process (see `readers_and_writers_in_other_processes`); a no-op otherwise.
#[test]
fn child_process_role() {
    let Ok(dir) = std::env::var("RWKV_STORE_TEST_CHILD_DIR") else {
        return;
    };
    match std::env::var("RWKV_STORE_TEST_CHILD_ROLE").unwrap().as_str() {
        "reader" => {
            let store = Store::open_read_only(&dir, identity()).unwrap();
            let docs = store.documents().unwrap();
            assert_eq!(docs.len(), 1);
            for c in store.checkpoints_of("a").unwrap() {
                store.read_blob(&c.key).unwrap();
            }
        }
        "writer" => {
            let err = Store::open(&dir, identity()).err().expect("a second writer is refused");
            assert!(matches!(err, Error::Busy { .. }), "{err}");
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn readers_and_writers_in_other_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let writer = Store::open(tmp.path(), identity()).unwrap();
    commit(&writer, "a", "shared", 2);
    for role in ["reader", "writer"] {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_process_role", "--test-threads=1"])
            .env("RWKV_STORE_TEST_CHILD_DIR", tmp.path())
            .env("RWKV_STORE_TEST_CHILD_ROLE", role)
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{role}: {}",
            String::from_utf8_lossy(&status.stdout)
        );
    }
    drop(writer);
}

#[test]
fn store_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), identity()).unwrap();
    std::thread::scope(|s| {
        for i in 0..4 {
            let store = &store;
            s.spawn(move || commit(store, &format!("doc{i}"), "threaded", 2));
        }
    });
    assert_eq!(store.stats().unwrap().checkpoints, 8);
}

#[test]
fn a_store_whose_creation_was_interrupted_opens_as_new() {
    let tmp = tempfile::tempdir().unwrap();
    // What a creator killed at any point leaves: a temporary manifest cut anywhere (redb
    // cannot open most of these), never a half-written manifest.redb.
    let whole = tmp.path().join("whole");
    drop(Store::open(&whole, identity()).unwrap());
    assert_eq!(
        fs::read_dir(&whole).unwrap().count(),
        1,
        "a new store holds its manifest and nothing else"
    );
    let bytes = fs::read(whole.join("manifest.redb")).unwrap();
    for n in [0, 1, 300, 4096, bytes.len() / 2, bytes.len()] {
        let dir = tmp.path().join(format!("cut-{n}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("manifest.redb.new-4242-17"), &bytes[..n]).unwrap();
        let store = Store::open(&dir, identity()).unwrap_or_else(|e| panic!("cut at {n}: {e}"));
        commit(&store, "a", "text", 2);
        drop(store);
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("manifest"))
            .collect();
        assert_eq!(names, vec!["manifest.redb".to_string()], "cut at {n}");
        let store = Store::open_read_only(&dir, identity()).unwrap();
        assert_eq!(store.checkpoints_of("a").unwrap().len(), 2);
    }
    // Killed after linking, before removing its temporary: the next open removes it.
    fs::write(whole.join("manifest.redb.new-4242-18"), &bytes).unwrap();
    drop(Store::open(&whole, identity()).unwrap());
    assert_eq!(fs::read_dir(&whole).unwrap().count(), 1);
}
