//! Runs the real `rwkv-ingest` binary.

use std::path::PathBuf;
use std::process::Command;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn ingest(args: &[&str]) -> (i32, Vec<serde_json::Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rwkv-ingest"))
        .args(args)
        .current_dir(fixtures())
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn list_prints_one_json_line_per_document_and_skip() {
    let (code, lines, _) = ingest(&["--list", "books/three.epub", "code/logo.png", "web/crawl.warc.gz"]);
    assert_eq!(code, 0, "policy skips are not failures");
    let doc = &lines[0];
    assert_eq!(doc["type"], "document");
    assert_eq!(doc["kind"], "book");
    assert_eq!(doc["path"], "books/three.epub");
    assert_eq!(doc["title"], "Three Chapters");
    assert_eq!(doc["id"].as_str().unwrap().len(), 32);
    assert!(doc["bytes"].as_u64().unwrap() > 1000 && doc["lines"].as_u64().unwrap() > 10);
    let parts: Vec<_> = doc["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        parts,
        [
            "Chapter One: Arrival",
            "Chapter Two: The Storm",
            "Chapter Three: Departure"
        ]
    );
    assert_eq!(lines[1]["type"], "skipped");
    assert_eq!(lines[1]["reason"], "binary");
    assert_eq!(lines[1]["input"], "code/logo.png");
    assert_eq!(lines[2]["url"], "https://example.org/one");
    assert_eq!(lines.len(), 6);
}

#[test]
fn failed_inputs_exit_1_and_the_run_goes_on() {
    let (code, lines, _) = ingest(&["--list", "books/bad/not-a-zip.epub", "no/such/dir", "books/notes.md"]);
    assert_eq!(code, 1);
    let reasons: Vec<_> = lines
        .iter()
        .map(|l| l["reason"].as_str().unwrap_or("document"))
        .collect();
    assert_eq!(reasons, ["malformed", "unreadable", "document"]);
}

#[test]
fn without_list_documents_are_folded_into_a_store() {
    let store = tempfile::tempdir().unwrap();
    let dir = store.path().to_str().unwrap();
    let (code, lines, stderr) = ingest(&["code", "--json", "--checkpoint-every", "512", "--store", dir]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines.len(), 1, "one JSON summary");
    let s = &lines[0];
    assert!(
        s["folded"].as_u64().unwrap() > 0 && s["tokens"].as_u64().unwrap() > 0,
        "{s}"
    );
    assert_eq!(
        s["skips"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["reason"] == "binary")
            .count(),
        1,
        "{s}"
    );
    // Again: nothing changed, nothing folded.
    let (code, lines, _) = ingest(&["code", "--json", "--checkpoint-every", "512", "--store", dir]);
    assert_eq!(code, 0);
    assert_eq!(lines[0]["tokens"], 0);
    assert_eq!(lines[0]["folded"], 0);
    let (code, _, stderr) = ingest(&["--list", "--include", "a[", "code"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("invalid glob"), "{stderr}");
}

#[test]
fn a_flag_on_the_command_line_beats_the_job_file_even_when_it_equals_the_default() {
    // The job file names its store; `--store .rwkv` on the command line (the default's value)
    // still wins, and without it the job file's store is used.
    let tmp = tempfile::tempdir().unwrap();
    let job = tmp.path().join("job.toml");
    let code_dir = fixtures().join("code/src");
    std::fs::write(
        &job,
        format!(
            "version = 1\ninputs = [{:?}]\nstore = \"from-job\"\njobs = 1\n",
            code_dir.display().to_string()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_rwkv-ingest"))
            .args(args)
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["--pipeline", job.to_str().unwrap(), "--store", ".rwkv", "--json"]);
    assert!(tmp.path().join(".rwkv/manifest.redb").is_file());
    assert!(!tmp.path().join("from-job").exists());
    run(&["--pipeline", job.to_str().unwrap(), "--json"]);
    assert!(tmp.path().join("from-job/manifest.redb").is_file());
}
