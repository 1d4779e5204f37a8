//! `--model hf:OWNER/REPO/FILE` end to end against a local stand-in for the Hugging Face hub:
//! an HTTP server on 127.0.0.1 that answers the way the hub does for an LFS file (the
//! `resolve` route redirects to a CDN URL with `x-repo-commit`, `x-linked-etag` (the file's
//! SHA-256) and `x-linked-size`; the CDN serves `Range` requests with `206` and
//! `Content-Range`), reached through `HF_ENDPOINT`, with the cache in a temporary `HF_HOME`.
#![cfg(feature = "hub")]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

const FIXTURE: &str = "fixtures/models/random-x070-C64-L2-H4N16.safetensors";
const FILE: &str = "random-x070-C64-L2-H4N16.safetensors";
const REPO: &str = "test-org/tiny";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[derive(Default)]
struct State {
    /// Body downloads of the file (GETs at the CDN route other than the 1-byte probe).
    body_gets: AtomicUsize,
    /// Every request, as `METHOD PATH [RANGE]`.
    log: Mutex<Vec<String>>,
    /// Send half of each body, then close, under a full Content-Length.
    truncate: AtomicBool,
    stop: AtomicBool,
}

/// The local hub: serves `bytes` as FILE of REPO at revision `main`.
struct Hub {
    port: u16,
    state: Arc<State>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hub {
    fn start(bytes: Vec<u8>) -> Hub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        let (st, bytes) = (state.clone(), Arc::new(bytes));
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (st, bytes, sha) = (st.clone(), bytes.clone(), sha.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, port, &st, &bytes, &sha);
                });
            }
        });
        Hub {
            port,
            state,
            thread: Some(thread),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops accepting: connecting afterwards is refused.
    fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.state.stop.store(true, Ordering::SeqCst);
            // Wake the accept loop so it sees `stop` and drops the listener.
            let _ = TcpStream::connect(("127.0.0.1", self.port));
            t.join().unwrap();
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One request per connection (`Connection: close`), like a plain HTTP/1.1 server.
fn serve(mut conn: TcpStream, port: u16, st: &State, bytes: &[u8], sha: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.trim().eq_ignore_ascii_case("range")
        {
            range = Some(v.trim().to_string());
        }
    }
    st.log
        .lock()
        .unwrap()
        .push(format!("{method} {path} {}", range.clone().unwrap_or_default()));
    let resolve = format!("/{REPO}/resolve/main/{FILE}");
    let cdn = format!("/cdn/{sha}");
    if path == resolve {
        // The hub redirects an LFS file to its CDN, with the file's identity in the headers.
        let head = format!(
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{port}{cdn}?sig=x\r\nx-repo-commit: {COMMIT}\r\n\
             x-linked-etag: \"{sha}\"\r\nx-linked-size: {}\r\netag: \"not-the-blob\"\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            bytes.len()
        );
        return conn.write_all(head.as_bytes());
    }
    if path.split('?').next() == Some(cdn.as_str()) && (method == "GET" || method == "HEAD") {
        let total = bytes.len();
        let (start, end) = match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
            Some(r) => {
                let (a, b) = r.split_once('-').unwrap();
                let a: usize = a.parse().unwrap();
                let b: usize = if b.is_empty() { total - 1 } else { b.parse().unwrap() };
                (a, b.min(total - 1))
            }
            None => (0, total - 1),
        };
        if start >= total {
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            return conn.write_all(head.as_bytes());
        }
        let probe = start == 0 && end == 0;
        if method == "GET" && !probe {
            st.body_gets.fetch_add(1, Ordering::SeqCst);
        }
        let status = if range.is_some() {
            "206 Partial Content"
        } else {
            "200 OK"
        };
        let len = end + 1 - start;
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nContent-Range: bytes {start}-{end}/{total}\r\n\
             Accept-Ranges: bytes\r\netag: \"{sha}\"\r\nConnection: close\r\n\r\n"
        );
        conn.write_all(head.as_bytes())?;
        if method == "GET" {
            let mut body = &bytes[start..=end];
            if st.truncate.load(Ordering::SeqCst) && !probe {
                body = &body[..len / 2];
            }
            conn.write_all(body)?;
        }
        conn.flush()?;
        return conn.shutdown(std::net::Shutdown::Both);
    }
    let body = "Entry not found";
    let head = format!(
        "HTTP/1.1 404 Not Found\r\nx-error-code: EntryNotFound\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(head.as_bytes())
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn score(model: &str, text: &Path, env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rwkv-score"));
    cmd.arg(text).args(["--model", model, "--json"]).current_dir(root());
    for k in [
        "HF_ENDPOINT",
        "HF_HOME",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_HUB_OFFLINE",
        "HF_TOKEN",
        "RWKV_MODEL",
    ] {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn bits_per_token(o: &Out) -> f64 {
    assert_eq!(o.code, 0, "stderr: {}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    v["bits_per_token"].as_f64().unwrap()
}

fn text_file(dir: &Path) -> PathBuf {
    let p = dir.join("text.txt");
    std::fs::write(
        &p,
        "The lighthouse keeper counted the ships again, and wrote the number down.\n",
    )
    .unwrap();
    p
}

fn hub_ref() -> String {
    format!("hf:{REPO}/{FILE}")
}

/// The repository's folder in the cache.
fn repo_cache(home: &Path) -> PathBuf {
    home.join("hub").join("models--test-org--tiny")
}

#[test]
fn downloads_once_then_scores_from_the_cache_and_offline() {
    let bytes = std::fs::read(root().join(FIXTURE)).unwrap();
    let mut hub = Hub::start(bytes.clone());
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("hf");
    let text = text_file(tmp.path());
    let endpoint = hub.endpoint();
    let env = [("HF_ENDPOINT", endpoint.as_str()), ("HF_HOME", home.to_str().unwrap())];

    let local = bits_per_token(&score(FIXTURE, &text, &[]));
    // (1) The download scores exactly as the local file does, and lands in the hub's layout.
    let first = score(&hub_ref(), &text, &env);
    assert_eq!(bits_per_token(&first), local);
    assert_eq!(
        hub.state.body_gets.load(Ordering::SeqCst),
        1,
        "{:?}",
        hub.state.log.lock().unwrap()
    );
    let snapshot = repo_cache(&home).join("snapshots").join(COMMIT).join(FILE);
    assert_eq!(std::fs::read(&snapshot).unwrap(), bytes);
    assert_eq!(
        std::fs::read_to_string(repo_cache(&home).join("refs/main")).unwrap(),
        COMMIT
    );
    let v: serde_json::Value = serde_json::from_str(&first.stdout).unwrap();
    assert!(v["model"].as_str().unwrap().ends_with(FILE), "{}", first.stdout);

    // (2) A second run is a cache hit: the body is not downloaded again.
    let requests = hub.state.log.lock().unwrap().len();
    assert_eq!(bits_per_token(&score(&hub_ref(), &text, &env)), local);
    assert_eq!(hub.state.body_gets.load(Ordering::SeqCst), 1);
    assert_eq!(
        hub.state.log.lock().unwrap().len(),
        requests,
        "a cached file needs no request"
    );

    // The same through $RWKV_MODEL (no --model): the argument is read the same way.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rwkv-score"));
    cmd.arg(&text).arg("--json").current_dir(root());
    let o = cmd
        .env("RWKV_MODEL", hub_ref())
        .env("HF_HOME", &home)
        .env("HF_ENDPOINT", &endpoint)
        .env_remove("HF_HUB_CACHE")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // A blob deleted from under its snapshot link is downloaded again.
    let blob = std::fs::canonicalize(&snapshot).unwrap();
    std::fs::remove_file(&blob).unwrap();
    assert_eq!(bits_per_token(&score(&hub_ref(), &text, &env)), local);
    assert_eq!(hub.state.body_gets.load(Ordering::SeqCst), 2);
    assert_eq!(std::fs::read(&snapshot).unwrap(), bytes);

    // (3) Offline with the server gone: the cache serves it.
    hub.stop();
    let offline = [
        ("HF_ENDPOINT", endpoint.as_str()),
        ("HF_HOME", home.to_str().unwrap()),
        ("HF_HUB_OFFLINE", "1"),
    ];
    assert_eq!(bits_per_token(&score(&hub_ref(), &text, &offline)), local);
    // Offline, a file not in the cache is a named error, not a network attempt.
    let missing = score(&format!("hf:{REPO}/other.safetensors"), &text, &offline);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("HF_HUB_OFFLINE") && missing.stderr.contains("not in the hub cache"),
        "{}",
        missing.stderr
    );
    // Online but the server gone: a network failure naming the URL.
    let down = score(&format!("hf:{REPO}/other.safetensors"), &text, &env);
    assert_eq!(down.code, 2);
    assert!(
        down.stderr.contains("network failure")
            && down
                .stderr
                .contains(&format!("{endpoint}/{REPO}/resolve/main/other.safetensors")),
        "{}",
        down.stderr
    );
}

#[test]
fn a_job_files_hub_model_is_downloaded_not_taken_for_a_relative_path() {
    let bytes = std::fs::read(root().join(FIXTURE)).unwrap();
    let hub = Hub::start(bytes);
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("hf");
    let text = text_file(tmp.path());
    let job = tmp.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "version = 1\ninputs = [{:?}]\nmodel = \"{}\"\nstore = \"store\"\njobs = 1\n",
            text.display().to_string(),
            hub_ref()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rwkv-ingest"))
        .args(["--pipeline", job.to_str().unwrap(), "--json"])
        .current_dir(tmp.path())
        .env("HF_ENDPOINT", hub.endpoint())
        .env("HF_HOME", &home)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("RWKV_MODEL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(hub.state.body_gets.load(Ordering::SeqCst), 1);
    assert!(tmp.path().join("store/manifest.redb").is_file());
}

#[test]
fn hub_cache_honours_hf_hub_cache() {
    let bytes = std::fs::read(root().join(FIXTURE)).unwrap();
    let hub = Hub::start(bytes);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("elsewhere");
    let text = text_file(tmp.path());
    let endpoint = hub.endpoint();
    let home = tmp.path().join("home");
    let env = [
        ("HF_ENDPOINT", endpoint.as_str()),
        ("HF_HOME", home.to_str().unwrap()),
        ("HF_HUB_CACHE", cache.to_str().unwrap()),
    ];
    let o = score(&hub_ref(), &text, &env);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        cache
            .join("models--test-org--tiny/snapshots")
            .join(COMMIT)
            .join(FILE)
            .is_file()
    );
    assert!(!home.join("hub").exists());
}

#[test]
fn missing_file_is_a_404_naming_the_url() {
    let bytes = std::fs::read(root().join(FIXTURE)).unwrap();
    let hub = Hub::start(bytes);
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("hf");
    let text = text_file(tmp.path());
    let endpoint = hub.endpoint();
    let env = [("HF_ENDPOINT", endpoint.as_str()), ("HF_HOME", home.to_str().unwrap())];
    for model in [
        format!("hf:{REPO}/nope.safetensors"),
        format!("hf:no-one/nothing/{FILE}"),
        format!("hf:{REPO}/{FILE}@v9"),
    ] {
        let o = score(&model, &text, &env);
        assert_eq!(o.code, 2, "{model}: {}", o.stderr);
        let rest = model.strip_prefix("hf:").unwrap();
        let (body, rev) = rest.rsplit_once('@').unwrap_or((rest, "main"));
        let mut it = body.splitn(3, '/');
        let (o1, r1, f1) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        let url = format!("{endpoint}/{o1}/{r1}/resolve/{rev}/{f1}");
        assert!(
            o.stderr.contains("not found (HTTP 404)") && o.stderr.contains(&url),
            "{model}: {}",
            o.stderr
        );
    }
}

#[test]
fn truncated_download_is_a_named_error_and_leaves_no_final_file() {
    let bytes = std::fs::read(root().join(FIXTURE)).unwrap();
    let hub = Hub::start(bytes.clone());
    hub.state.truncate.store(true, Ordering::SeqCst);
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("hf");
    let text = text_file(tmp.path());
    let endpoint = hub.endpoint();
    let env = [("HF_ENDPOINT", endpoint.as_str()), ("HF_HOME", home.to_str().unwrap())];
    let o = score(&hub_ref(), &text, &env);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("truncated download"), "{}", o.stderr);
    assert!(
        o.stderr.contains(&format!("{endpoint}/{REPO}/resolve/main/{FILE}")),
        "{}",
        o.stderr
    );
    let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    let blobs = repo_cache(&home).join("blobs");
    assert!(!blobs.join(&sha).exists(), "no blob at the final path");
    assert!(!repo_cache(&home).join("snapshots").exists(), "no snapshot entry");
    let part = std::fs::metadata(blobs.join(format!("{sha}.part"))).unwrap().len();
    assert!(part > 0 && part < bytes.len() as u64, "a resumable part file: {part}");
    // Resumed: the next run asks only for the rest and ends with the whole file.
    hub.state.truncate.store(false, Ordering::SeqCst);
    let local = bits_per_token(&score(FIXTURE, &text, &[]));
    assert_eq!(bits_per_token(&score(&hub_ref(), &text, &env)), local);
    assert_eq!(std::fs::read(blobs.join(&sha)).unwrap(), bytes);
    let log = hub.state.log.lock().unwrap();
    let last = log.iter().rev().find(|l| l.starts_with("GET /cdn/")).unwrap();
    assert!(
        last.ends_with(&format!("bytes={part}-")),
        "resumed from the part file: {log:?}"
    );
    assert!(!blobs.join(format!("{sha}.part")).exists());
}

#[test]
fn malformed_reference_names_the_expected_form() {
    let tmp = tempfile::tempdir().unwrap();
    let text = text_file(tmp.path());
    for bad in ["hf:only-owner", "hf:owner/repo", "hf:o/r/../x.pth"] {
        let o = score(bad, &text, &[("HF_HOME", tmp.path().to_str().unwrap())]);
        assert_eq!(o.code, 2, "{bad}: {}", o.stderr);
        assert!(
            o.stderr.contains("not a valid hub model reference") && o.stderr.contains("hf:OWNER/REPO/FILE"),
            "{bad}: {}",
            o.stderr
        );
        assert!(!tmp.path().join("hub").exists(), "nothing cached for {bad}");
    }
}
