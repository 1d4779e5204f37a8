//! Ingest end to end on the fixtures with the bundled demo model: incremental re-runs, changed
//! and deleted files, corrupted blobs, damaged manifests, resuming from stored checkpoints,
//! shards and merges, and the job files in `pipelines/`.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rwkv_model::tokenizer::BytesTokenizer;
use rwkv_model::tokenizer::Tokenizer;
use rwkv_model::{Model, State, StatePrecision};
use rwkv_pipeline::{IngestConfig, JobSpec, NoProgress, ingest};
use rwkv_reader::store_identity as identity_for;
use rwkv_reader::{DocInput, ReaderBuilder, ResumePoint};
use rwkv_store::Store;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model() -> Model {
    Model::load(&root().join("fixtures/models/rwkv7-code-11m.bf16.safetensors")).unwrap()
}

/// The identity of a store of `model`'s states at its fold precision, bf16 blobs.
fn identity(model: &Model, tok: &dyn Tokenizer) -> rwkv_store::StoreIdentity {
    identity_for(model, model.fold_precision(), StatePrecision::default(), tok)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        let dst = to.join(e.file_name());
        if ft.is_dir() {
            copy_dir(&e.path(), &dst);
        } else if ft.is_file() {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

fn cfg(inputs: Vec<String>, store: &Path) -> IngestConfig {
    IngestConfig {
        inputs,
        store_dir: store.to_path_buf(),
        checkpoint_every: Some(64),
        state_precision: rwkv_model::StatePrecision::default(),
        jobs: 2,
        lanes: 1,
        sources: rwkv_sources::Options::default(),
        shard: None,
        corpus_state: false,
        verify: true,
        compress: false,
        index_only: false,
    }
}

#[test]
fn incremental_changed_deleted_and_corrupt() {
    let m = model();
    let tmp = tempfile::tempdir().unwrap();
    let code = tmp.path().join("code");
    copy_dir(&root().join("fixtures/code"), &code);
    let store = tmp.path().join("store");
    let c = cfg(vec![code.display().to_string()], &store);
    let tok = Arc::new(BytesTokenizer);

    let first = ingest(&c, &m, tok.clone(), &NoProgress).unwrap();
    assert!(first.folded > 0 && first.tokens > 0);
    assert_eq!(first.failed, 0);
    assert!(first.skips.iter().any(|s| s.reason == "binary"));

    // Unchanged: nothing folded.
    let second = ingest(&c, &m, tok.clone(), &NoProgress).unwrap();
    assert_eq!(second.tokens, 0);
    assert_eq!(second.folded, 0);
    assert_eq!(second.unchanged, first.folded);

    // A changed file is refolded; a deleted file leaves the manifest and the index.
    let changed = code.join("src/main.rs");
    let mut text = std::fs::read_to_string(&changed).unwrap();
    text.push_str("\npub fn brand_new_function_xyz() {}\n");
    std::fs::write(&changed, text).unwrap();
    let deleted = code.join("README.md");
    std::fs::remove_file(&deleted).unwrap();
    let third = ingest(&c, &m, tok.clone(), &NoProgress).unwrap();
    assert_eq!(third.folded, 1, "{third:?}");
    assert_eq!(third.removed, 1);
    {
        let s = Store::open_read_only(&store, identity(&m, tok.as_ref())).unwrap();
        assert!(
            s.documents()
                .unwrap()
                .iter()
                .all(|d| !d.source.ends_with("code/README.md"))
        );
        let idx = rwkv_index::Index::open_read_only(store.join("index")).unwrap();
        let hits = idx.search("brand_new_function_xyz", 3).unwrap();
        assert!(hits.first().is_some_and(|h| h.path.ends_with("main.rs")), "{hits:?}");
        assert!(
            idx.search_path_or_symbol("README.md", 5)
                .unwrap()
                .iter()
                .all(|h| !h.path.ends_with("code/README.md"))
        );
    }

    // A corrupted blob is found by its checksum and refolded on the next run.
    let (blob, key) = {
        let s = Store::open_read_only(&store, identity(&m, tok.as_ref())).unwrap();
        let d = s
            .documents()
            .unwrap()
            .into_iter()
            .find(|d| d.source.ends_with("main.rs"))
            .unwrap();
        let cp = s.checkpoints_of(&d.id).unwrap().pop().unwrap();
        (s.blob_path(&cp.key, &cp.blob), cp.key)
    };
    let mut bytes = std::fs::read(&blob).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0xFF;
    std::fs::write(&blob, bytes).unwrap();
    let fourth = ingest(&c, &m, tok.clone(), &NoProgress).unwrap();
    assert_eq!(fourth.refolded_corrupt, 1, "{fourth:?}");
    let s = Store::open_read_only(&store, identity(&m, tok.as_ref())).unwrap();
    s.read_blob(&key).expect("the refold rewrote the damaged blob");
}

#[test]
fn a_stored_checkpoint_folded_on_gives_the_whole_fold() {
    let m = model();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let book = root().join("fixtures/books/lighthouse.txt");
    let c = IngestConfig {
        state_precision: StatePrecision::F32,
        ..cfg(vec![book.display().to_string()], &store)
    };
    let tok = Arc::new(BytesTokenizer);
    ingest(&c, &m, tok.clone(), &NoProgress).unwrap();
    let exact = identity_for(&m, m.fold_precision(), StatePrecision::F32, tok.as_ref());
    let s = Store::open_read_only(&store, exact).unwrap();
    let d = s.documents().unwrap().pop().unwrap();
    let cps = s.checkpoints_of(&d.id).unwrap();
    assert!(cps.len() > 4, "a long document has interval checkpoints");
    let spec = m.state_spec();
    let load = |k| {
        State::from_bytes(Path::new("blob"), &s.read_blob(k).unwrap(), &spec, Some("bytes"))
            .unwrap()
            .0
    };
    let whole = load(&cps.last().unwrap().key);
    let text = rwkv_store::TextStore::new(&store)
        .get(&d.content_hash)
        .unwrap()
        .unwrap();
    let parts: Vec<usize> = d.parts.iter().map(|p| p.byte_offset as usize).collect();
    let reader = ReaderBuilder::new(&m, tok.clone()).checkpoint_every(64).build();
    let input = DocInput {
        id: &d.id,
        name: &d.source,
        text: &text,
        parts: &parts,
    };
    for cp in [&cps[1], &cps[cps.len() / 2], &cps[cps.len() - 2]] {
        let from = ResumePoint {
            seq: cp.seq,
            byte_offset: cp.byte_offset as usize,
            token_offset: cp.token_offset,
            state: load(&cp.key),
        };
        let mut last = None;
        reader
            .fold_from(&input, from, |c| {
                last = Some(c.state);
                ControlFlow::Continue(())
            })
            .unwrap();
        let diff = last.unwrap().max_abs_diff(&whole);
        assert!(diff < 1e-4, "resume from seq {}: {diff}", cp.seq);
    }
}

#[test]
fn damaged_manifest_is_a_clear_error_and_repair_restores_it() {
    let m = model();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let c = cfg(vec![root().join("fixtures/code").display().to_string()], &store);
    let tok = Arc::new(BytesTokenizer);
    let first = ingest(&c, &m, tok.clone(), &NoProgress).unwrap();
    let manifest = store.join("manifest.redb");
    let mut bytes = std::fs::read(&manifest).unwrap();
    for b in bytes.iter_mut().take(4096) {
        *b = 0x5A;
    }
    std::fs::write(&manifest, bytes).unwrap();
    let err = ingest(&c, &m, tok.clone(), &NoProgress).unwrap_err().to_string();
    assert!(err.contains("--repair"), "{err}");
    let report = rwkv_pipeline::repair(&store, identity(&m, tok.as_ref())).unwrap();
    assert_eq!(report.documents as u64, first.folded);
    let again = ingest(&c, &m, tok.clone(), &NoProgress).unwrap();
    assert_eq!(again.tokens, 0, "{again:?}");
}

#[test]
fn shards_merge_into_the_whole() {
    let m = model();
    let tmp = tempfile::tempdir().unwrap();
    let tok = Arc::new(BytesTokenizer);
    let input = vec![root().join("fixtures/code").display().to_string()];
    let whole = tmp.path().join("whole");
    ingest(&cfg(input.clone(), &whole), &m, tok.clone(), &NoProgress).unwrap();
    let mut shards = Vec::new();
    for i in 0..2 {
        let dir = tmp.path().join(format!("s{i}"));
        let mut c = cfg(input.clone(), &dir);
        c.shard = Some((i, 2));
        ingest(&c, &m, tok.clone(), &NoProgress).unwrap();
        shards.push(dir);
    }
    let merged = tmp.path().join("merged");
    rwkv_pipeline::merge(&merged, identity(&m, tok.as_ref()), &shards).unwrap();
    let ids = |d: &Path| {
        let s = Store::open_read_only(d, identity(&m, tok.as_ref())).unwrap();
        s.documents()
            .unwrap()
            .into_iter()
            .map(|d| (d.id, d.checkpoints))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&merged), ids(&whole));
    let idx = rwkv_index::Index::open_read_only(merged.join("index")).unwrap();
    assert!(idx.num_units() > 0);
}

#[test]
fn every_job_file_parses_and_unknown_keys_are_errors() {
    let dir = root().join("pipelines");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let spec = JobSpec::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(!spec.inputs.is_empty());
            n += 1;
        }
    }
    assert!(n >= 3);
    let bad = JobSpec::parse(
        "inputs = [\"x\"]\ncheckpoint_evry = 5\n",
        Path::new("."),
        Path::new("bad.toml"),
    );
    assert!(bad.unwrap_err().to_string().contains("checkpoint_evry"));
    let bad = JobSpec::parse(
        "inputs = [\"x\"]\n[checkpoints]\nevery = 0\n",
        Path::new("."),
        Path::new("b.toml"),
    );
    assert!(bad.is_err());
    for key in ["fold_precision", "state_precision"] {
        let bad = JobSpec::parse(
            &format!("inputs = [\"x\"]\n{key} = \"f16\"\n"),
            Path::new("."),
            Path::new("p.toml"),
        );
        let err = bad.unwrap_err().to_string();
        assert!(err.contains("p.toml") && err.contains("f16"), "{key}: {err}");
    }
    let ok = JobSpec::parse(
        "inputs = [\"x\"]\nstate_precision = \"f32\"\n",
        Path::new("."),
        Path::new("s.toml"),
    )
    .unwrap();
    assert_eq!(ok.state_precision, Some(StatePrecision::F32));
    assert_eq!(ok.checkpoints.every, None, "absent: the state-size-aware default");
    // A hub reference stays as written; a model path is relative to the job file.
    let hub = JobSpec::parse(
        "inputs = [\"x\"]\nmodel = \"hf:o/r/m.pth@v1\"\n",
        Path::new("/jobs"),
        Path::new("h.toml"),
    )
    .unwrap();
    assert_eq!(hub.model.as_deref(), Some(Path::new("hf:o/r/m.pth@v1")));
    let local = JobSpec::parse(
        "inputs = [\"x\"]\nmodel = \"m.pth\"\n",
        Path::new("/jobs"),
        Path::new("l.toml"),
    )
    .unwrap();
    assert_eq!(local.model.as_deref(), Some(Path::new("/jobs/m.pth")));
}

#[test]
fn bf16_state_blobs_are_the_exact_states_rounded_and_keep_to_their_store() {
    let m = model();
    let tmp = tempfile::tempdir().unwrap();
    let tok = Arc::new(BytesTokenizer);
    let book = vec![root().join("fixtures/books/lighthouse.txt").display().to_string()];
    let at = |p: StatePrecision, dir: &str| IngestConfig {
        state_precision: p,
        checkpoint_every: None,
        ..cfg(book.clone(), &tmp.path().join(dir))
    };
    let (ca, cb) = (at(StatePrecision::F32, "f32"), at(StatePrecision::Bf16, "bf16"));
    let a = ingest(&ca, &m, tok.clone(), &NoProgress).unwrap();
    let b = ingest(&cb, &m, tok.clone(), &NoProgress).unwrap();
    assert_eq!(
        (a.checkpoint_every, b.checkpoint_every),
        (4096, 4096),
        "a small state keeps the floor"
    );
    assert_eq!(a.state_bytes_per_checkpoint, 2 * b.state_bytes_per_checkpoint);
    assert_eq!(a.store_checkpoints, b.store_checkpoints);
    assert!(
        b.store_bytes * 100 < a.store_bytes * 55,
        "{} vs {}",
        b.store_bytes,
        a.store_bytes
    );

    // Each store refuses the other kind, naming the suffix.
    let err = ingest(&at(StatePrecision::Bf16, "f32"), &m, tok.clone(), &NoProgress).unwrap_err();
    assert!(err.to_string().contains("+state-bf16"), "{err}");
    let err = ingest(&at(StatePrecision::F32, "bf16"), &m, tok.clone(), &NoProgress).unwrap_err();
    assert!(err.to_string().contains("+state-bf16"), "{err}");

    // The bf16 blob of each checkpoint is the exact one rounded (the fold goes on exactly).
    let open = |c: &IngestConfig| {
        let id = identity_for(&m, m.fold_precision(), c.state_precision, tok.as_ref());
        Store::open_read_only(&c.store_dir, id).unwrap()
    };
    let (sa, sb) = (open(&ca), open(&cb));
    let spec = m.state_spec();
    let load =
        |s: &Store, k| State::from_bytes(Path::new("blob"), &s.read_blob(k).unwrap(), &spec, Some("bytes")).unwrap();
    let doc = sa.documents().unwrap().pop().unwrap();
    let (ka, kb) = (sa.checkpoints_of(&doc.id).unwrap(), sb.checkpoints_of(&doc.id).unwrap());
    assert_eq!(ka.len(), kb.len());
    assert_ne!(ka[0].key, kb[0].key, "checkpoint keys name the store's kind");
    for (x, y) in ka.iter().zip(&kb) {
        let ((exact, ia), (rounded, ib)) = (load(&sa, &x.key), load(&sb, &y.key));
        assert_eq!(
            (ia.precision, ib.precision),
            (StatePrecision::F32, StatePrecision::Bf16)
        );
        assert!(rounded.bit_eq(&exact.stored_as(StatePrecision::Bf16)), "seq {}", x.seq);
        assert_eq!(ib.metadata.get("store_model"), Some(&sb.identity().model_fingerprint));
    }

    // A manifest rebuilt from bf16 blobs keeps the store's identity.
    std::fs::remove_file(cb.store_dir.join("manifest.redb")).unwrap();
    drop(sb);
    let id = identity_for(&m, m.fold_precision(), StatePrecision::Bf16, tok.as_ref());
    let report = rwkv_pipeline::repair(&cb.store_dir, id).unwrap();
    assert_eq!(report.documents, 1);
    assert_eq!(ingest(&cb, &m, tok.clone(), &NoProgress).unwrap().tokens, 0);
}

#[test]
fn a_store_of_another_model_refuses_to_open() {
    let m = model();
    let other = Model::load(&root().join("fixtures/models/tiny-rwkv-7v0-834K.safetensors")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let c = cfg(vec![root().join("fixtures/code/src").display().to_string()], &store);
    ingest(&c, &m, Arc::new(BytesTokenizer), &NoProgress).unwrap();
    let err = ingest(&c, &other, Arc::new(BytesTokenizer), &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(m.fingerprint()) && err.contains(other.fingerprint()),
        "{err}"
    );
}

#[test]
fn a_bf16_fold_store_keeps_to_itself_and_repairs() {
    let mut m = model();
    m.set_fold_precision(rwkv_model::FoldPrecision::Bf16);
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let c = cfg(vec![root().join("fixtures/code/src").display().to_string()], &store);
    let tok = Arc::new(BytesTokenizer);
    let first = ingest(&c, &m, tok.clone(), &NoProgress).unwrap();
    assert!(first.folded > 0 && first.failed == 0, "{first:?}");
    let again = ingest(&c, &m, tok.clone(), &NoProgress).unwrap();
    assert_eq!(again.tokens, 0, "{again:?}");

    // The exact fold may not add its states to this store, nor the other way round.
    let exact = model();
    let err = ingest(&c, &exact, tok.clone(), &NoProgress).unwrap_err().to_string();
    assert!(err.contains("+fold-bf16"), "{err}");

    // A manifest rebuilt from the blobs keeps the store's identity.
    std::fs::remove_file(store.join("manifest.redb")).unwrap();
    let report = rwkv_pipeline::repair(&store, identity(&m, tok.as_ref())).unwrap();
    assert_eq!(report.documents as u64, first.folded);
    let after = ingest(&c, &m, tok.clone(), &NoProgress).unwrap();
    assert_eq!(after.tokens, 0, "{after:?}");

    // Its states are states of the model: they load and resume under the plain fingerprint.
    let s = Store::open_read_only(&store, identity(&m, tok.as_ref())).unwrap();
    let doc = s.documents().unwrap().into_iter().next().unwrap();
    let cps = s.checkpoints_of(&doc.id).unwrap();
    let bytes = s.read_blob(&cps.last().unwrap().key).unwrap();
    let (state, _) = State::from_bytes(Path::new("blob"), &bytes, &exact.state_spec(), Some("bytes")).unwrap();
    assert!(state.tokens > 0);
}

/// Records the order in which documents start folding.
#[derive(Default)]
struct Order(std::sync::Mutex<Vec<String>>);

impl rwkv_pipeline::Progress for Order {
    fn start(&self, name: &str, _tokens: u64) {
        self.0.lock().unwrap().push(name.to_string());
    }
}

#[test]
fn documents_asked_about_before_the_fold_are_folded_first() {
    let m = model();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let tok: Arc<dyn Tokenizer> = Arc::new(BytesTokenizer);
    let mut c = cfg(vec![root().join("fixtures/code/src").display().to_string()], &store);
    c.jobs = 1;
    c.index_only = true;
    let s = ingest(&c, &m, tok.clone(), &NoProgress).unwrap();
    assert_eq!((s.folded, s.store_unfolded), (0, s.store_documents));
    // The document the sources give last is asked about (as rwkv-ask queues it).
    c.index_only = false;
    let order = Order::default();
    let plain = tmp.path().join("plain");
    let mut pc = cfg(c.inputs.clone(), &plain);
    pc.jobs = 1;
    ingest(&pc, &m, tok.clone(), &order).unwrap();
    assert!(order.0.lock().unwrap().len() >= 3);
    let last = order.0.lock().unwrap().last().unwrap().clone();
    let id = {
        let st = Store::open_read_only(&store, identity(&m, tok.as_ref())).unwrap();
        st.documents()
            .unwrap()
            .into_iter()
            .find(|d| d.source == last)
            .unwrap()
            .id
    };
    rwkv_store::StoreDir::new(&store).push_asked(&id).unwrap();
    let order = Order::default();
    let s = ingest(&c, &m, tok.clone(), &order).unwrap();
    assert_eq!(order.0.lock().unwrap().first(), Some(&last));
    assert_eq!((s.folded, s.unchanged, s.store_unfolded), (s.documents, 0, 0));
    assert!(!rwkv_store::StoreDir::new(&store).asked().exists());
}

/// Records why the index was rebuilt.
#[derive(Default)]
struct Rebuilt(std::sync::Mutex<Vec<String>>);

impl rwkv_pipeline::Progress for Rebuilt {
    fn index_rebuilt(&self, reason: &str) {
        self.0.lock().unwrap().push(reason.to_string());
    }
}

#[test]
fn an_index_of_another_content_version_is_rebuilt_with_its_reason_and_nothing_refolded() {
    let m = model();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let tok: Arc<dyn Tokenizer> = Arc::new(BytesTokenizer);
    let c = cfg(vec![root().join("fixtures/code/src").display().to_string()], &store);
    let first = ingest(&c, &m, tok.clone(), &NoProgress).unwrap();
    assert!(first.folded > 0);
    // The same store again: the index is used as it is.
    let told = Rebuilt::default();
    ingest(&c, &m, tok.clone(), &told).unwrap();
    assert!(told.0.lock().unwrap().is_empty());
    // An index whose units an older build made.
    let version = rwkv_store::StoreDir::new(&store).index().join("rwkv-content-version");
    std::fs::write(&version, "0").unwrap();
    let told = Rebuilt::default();
    let again = ingest(&c, &m, tok.clone(), &told).unwrap();
    let reasons = told.0.lock().unwrap().clone();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("version 0"), "{reasons:?}");
    assert_eq!((again.folded, again.tokens), (0, 0), "{again:?}");
    assert_eq!(again.store_documents, first.store_documents);
}
