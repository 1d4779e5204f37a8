//! Helpers: fixture paths, copying a fixture tree, collecting a stream.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use rwkv_sources::{Document, Error, Input, Options, Sources};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .canonicalize()
        .expect("fixtures dir")
}

pub fn fixture(rel: &str) -> PathBuf {
    fixtures().join(rel)
}

/// Copies a directory tree (regular files and directories only).
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

/// Runs the stream to the end on a fresh runtime.
pub fn collect(inputs: Vec<Input>, opts: Options) -> Vec<Result<Document, Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let stream = Sources::new(opts).unwrap().inputs(inputs).stream();
        tokio::time::timeout(std::time::Duration::from_secs(120), stream.collect::<Vec<_>>())
            .await
            .expect("stream finished in time")
    })
}

pub fn paths(inputs: &[PathBuf]) -> Vec<Input> {
    inputs.iter().map(|p| Input::Path(p.clone())).collect()
}

/// `doc <path relative to root>` or `<reason> <path relative to root>` per item.
pub fn summary(items: &[Result<Document, Error>], root: &Path) -> Vec<String> {
    let root = root.to_string_lossy().to_string();
    let rel = |s: &str| s.strip_prefix(&root).unwrap_or(s).trim_start_matches('/').to_string();
    items
        .iter()
        .map(|i| match i {
            Ok(d) => format!("doc {}", rel(&d.location())),
            Err(e) => format!("{} {}", e.reason(), rel(e.at())),
        })
        .collect()
}

pub fn docs(items: Vec<Result<Document, Error>>) -> Vec<Document> {
    items
        .into_iter()
        .map(|i| i.unwrap_or_else(|e| panic!("unexpected error: {e}")))
        .collect()
}

pub fn part_titles(d: &Document) -> Vec<&str> {
    d.parts.iter().map(|p| p.title.as_str()).collect()
}
