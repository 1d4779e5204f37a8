//! `RUST_LOG=rwkv=debug` logs each timed phase's span close, with its time, on stderr only.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(bin: &str, args: &[&str], store: &Path) -> Output {
    Command::new(bin)
        .current_dir(root())
        .args(args)
        .arg("--store")
        .arg(store)
        .env("RUST_LOG", "rwkv=debug")
        .output()
        .unwrap()
}

/// The stderr lines closing a span named `name` (possibly inside a parent span).
fn closes<'a>(stderr: &'a str, name: &str) -> Vec<&'a str> {
    stderr
        .lines()
        .filter(|l| l.contains(": close ") && (l.contains(&format!(" {name}{{")) || l.contains(&format!(":{name}{{"))))
        .collect()
}

fn assert_timed(stderr: &str, names: &[&str]) {
    for name in names {
        let lines = closes(stderr, name);
        assert!(!lines.is_empty(), "no `{name}` span closed in:\n{stderr}");
        assert!(
            lines
                .iter()
                .all(|l| l.contains("time.busy=") && l.contains("time.idle=")),
            "{lines:?}"
        );
    }
}

#[test]
fn ingest_and_ask_log_their_phases_with_timings_and_keep_stdout_pure() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let out = run(env!("CARGO_BIN_EXE_rwkv-ingest"), &["fixtures/code", "--json"], &store);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_timed(&stderr, &["extract", "tokenize", "fold", "checkpoint", "index"]);
    assert!(
        closes(&stderr, "fold").iter().any(|l| l.contains("src/main.rs")),
        "{stderr}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(summary["folded"].as_u64().unwrap() > 0, "{summary}");

    let out = run(
        env!("CARGO_BIN_EXE_rwkv-ask"),
        &["what does main do", "--max-tokens", "4", "--json", "--generate"],
        &store,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_timed(&stderr, &["retrieve", "restore", "generate"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let answer: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(answer["sources"].as_array().is_some_and(|s| !s.is_empty()), "{answer}");
}

#[test]
fn without_rust_log_no_spans_are_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rwkv-ingest"))
        .current_dir(root())
        .args(["fixtures/code/src", "--json", "--store"])
        .arg(tmp.path().join("store"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("time.busy"), "{stderr}");
}
