//! What the CLI's store tests share: the repository root, and a store's blobs and manifest in
//! a form two stores can be compared by.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rwkv_model::{FoldPrecision, Model, StatePrecision};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every blob file of a store, by path under `blobs/`, with its bytes.
pub fn blobs(store: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&store.join("blobs"), store, &mut out);
    out
}

/// The manifest's documents (id, content, checkpoints) and every checkpoint record.
pub fn manifest(store: &Path) -> Vec<(String, String, Vec<String>)> {
    let model = Model::load(&root().join(rwkv_cli::DEMO_MODEL)).unwrap();
    let tok = rwkv_cli::choose_tokenizer("auto", &model).unwrap();
    let ident = rwkv_reader::store_identity(&model, FoldPrecision::F32, StatePrecision::Bf16, tok.as_ref());
    let st = rwkv_store::Store::open_read_only(store, ident).unwrap();
    st.documents()
        .unwrap()
        .into_iter()
        .map(|d| {
            let ck = st
                .checkpoints_of(&d.id)
                .unwrap()
                .iter()
                .map(|c| format!("{} {} {} {} {:?}", c.key, c.seq, c.token_offset, c.byte_offset, c.blob))
                .collect();
            (d.id, d.content_hash, ck)
        })
        .collect()
}

/// Copies the directory tree `from` to `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}
