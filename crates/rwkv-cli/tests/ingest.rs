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
    // The WARC's warcinfo record, then a request record before each response: not pages.
    assert_eq!(
        (lines[2]["type"].as_str(), lines[2]["reason"].as_str()),
        (Some("skipped"), Some("not_a_page"))
    );
    assert_eq!(lines[3]["reason"], "not_a_page");
    assert_eq!(lines[4]["url"], "https://example.org/one");
    assert_eq!(lines.len(), 10);
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

/// One WARC/1.0 record with the given type, target and block (Content-Length from the block).
fn warc_record(ty: &str, n: u32, target: Option<&str>, content_type: &str, block: &str) -> String {
    let target = target.map(|t| format!("WARC-Target-URI: {t}\r\n")).unwrap_or_default();
    format!(
        "WARC/1.0\r\nWARC-Type: {ty}\r\nWARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-{n:012}>\r\n\
         WARC-Date: 2024-05-01T12:00:00Z\r\n{target}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{block}\r\n\r\n",
        block.len()
    )
}

#[test]
fn a_wget_warc_ingests_its_page_and_skips_the_other_records() {
    // What `wget --warc-file` writes: warcinfo, a request and response per URL (a 404 for
    // robots.txt), then metadata and resource records about the crawl itself.
    let page = "<html><head><title>Tide Tables</title></head><body><main><h1>Tide Tables</h1>\
                <p>High water comes twice a day, about fifty minutes later each day.</p></main></body></html>";
    let http = |status: &str, ct: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let req = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: example.org\r\n\r\n");
    let warc = [
        warc_record(
            "warcinfo",
            1,
            None,
            "application/warc-fields",
            "software: Wget/1.21\r\nformat: WARC File Format 1.0\r\n",
        ),
        warc_record(
            "request",
            2,
            Some("<http://example.org/robots.txt>"),
            "application/http;msgtype=request",
            &req("/robots.txt"),
        ),
        warc_record(
            "response",
            3,
            Some("<http://example.org/robots.txt>"),
            "application/http;msgtype=response",
            &http("404 Not Found", "text/html", "<html><body>Not Found</body></html>"),
        ),
        warc_record(
            "request",
            4,
            Some("<http://example.org/tides>"),
            "application/http;msgtype=request",
            &req("/tides"),
        ),
        warc_record(
            "response",
            5,
            Some("<http://example.org/tides>"),
            "application/http;msgtype=response",
            &http("200 OK", "text/html; charset=utf-8", page),
        ),
        warc_record(
            "metadata",
            6,
            Some("<metadata://gnu.org/software/wget/warc/MANIFEST.txt>"),
            "text/plain",
            "urn:uuid:00000000-0000-0000-0000-000000000001\n",
        ),
        warc_record(
            "resource",
            7,
            Some("<metadata://gnu.org/software/wget/warc/wget.log>"),
            "text/plain",
            "Saving to: 'tides'\n",
        ),
    ]
    .concat();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("crawl.warc");
    std::fs::write(&file, warc).unwrap();
    let store = tmp.path().join("store");
    let (code, lines, stderr) = ingest(&[file.to_str().unwrap(), "--json", "--store", store.to_str().unwrap()]);
    assert_eq!(code, 0, "skipped records are not failures: {stderr}");
    let s = &lines[0];
    assert_eq!(
        (
            s["folded"].as_u64(),
            s["failed"].as_u64(),
            s["store_documents"].as_u64()
        ),
        (Some(1), Some(0), Some(1)),
        "{s}"
    );
    let mut skips: Vec<(String, String)> = s["skips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let input = k["input"].as_str().unwrap();
            let at = input.rsplit_once('#').map_or(input, |(_, r)| r).to_string();
            (k["reason"].as_str().unwrap().to_string(), at)
        })
        .collect();
    skips.sort();
    assert_eq!(
        skips,
        [
            ("http_4xx", "http://example.org/robots.txt"),
            ("not_a_page", "http://example.org/robots.txt"),
            ("not_a_page", "http://example.org/tides"),
            ("not_a_page", "metadata://gnu.org/software/wget/warc/MANIFEST.txt"),
            ("not_a_page", "urn:uuid:00000000-0000-0000-0000-000000000001"),
            ("unsupported", "metadata://gnu.org/software/wget/warc/wget.log"),
        ]
        .map(|(r, a)| (r.to_string(), a.to_string())),
        "{s}"
    );
    // The one document is the page.
    let (code, lines, _) = ingest(&["--list", file.to_str().unwrap()]);
    assert_eq!(code, 0);
    let docs: Vec<_> = lines.iter().filter(|l| l["type"] == "document").collect();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["url"], "http://example.org/tides");
    assert_eq!(docs[0]["title"], "Tide Tables");
}
