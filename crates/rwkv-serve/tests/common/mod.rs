//! What the server's tests share: the demo model and a store of `fixtures/code` (named `code`),
//! made once per test binary, and an `App` over it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rwkv_model::Model;
use rwkv_model::tokenizer::{KnownTokenizer, Tokenizer};
use rwkv_pipeline::{IngestConfig, NoProgress};
use rwkv_serve::{App, ServeOptions};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub struct Fixture {
    pub model: &'static Model,
    pub tokenizer: Arc<dyn Tokenizer>,
    pub store: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn ingest_into(model: &Model, tokenizer: Arc<dyn Tokenizer>, input: &Path, store: &Path) {
    ingest_with(model, tokenizer, input, store, false);
}

/// `rwkv-ingest --index-only`: every document indexed, none folded.
pub fn index_only_into(model: &Model, tokenizer: Arc<dyn Tokenizer>, input: &Path, store: &Path) {
    ingest_with(model, tokenizer, input, store, true);
}

fn ingest_with(model: &Model, tokenizer: Arc<dyn Tokenizer>, input: &Path, store: &Path, index_only: bool) {
    let cfg = IngestConfig {
        inputs: vec![input.display().to_string()],
        store_dir: store.to_path_buf(),
        checkpoint_every: Some(64),
        state_precision: rwkv_model::StatePrecision::default(),
        jobs: 1,
        lanes: 1,
        sources: rwkv_sources::Options::default(),
        shard: None,
        corpus_state: false,
        verify: false,
        compress: false,
        index_only,
    };
    rwkv_pipeline::ingest(&cfg, model, tokenizer, &NoProgress).unwrap();
}

/// The demo model and a store (named `code`) of `fixtures/code`, made once per test binary.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let model = Model::load(&root().join("fixtures/models/rwkv7-code-11m.bf16.safetensors")).unwrap();
        let tokenizer = KnownTokenizer::for_model(model.config().vocab, model.metadata())
            .unwrap()
            .load()
            .unwrap();
        let model: &'static Model = Box::leak(Box::new(model));
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("code");
        ingest_into(model, tokenizer.clone(), &root().join("fixtures/code"), &store);
        Fixture {
            model,
            tokenizer,
            store,
            _dir: dir,
        }
    })
}

pub fn app_with(opts: ServeOptions) -> Arc<App> {
    app_at(&fixture().store, opts)
}

/// An `App` over the store at `store` with the demo model.
pub fn app_at(store: &Path, opts: ServeOptions) -> Arc<App> {
    let f = fixture();
    App::new(f.model, f.tokenizer.clone(), &[store.to_path_buf()], opts).unwrap()
}
