//! `rwkv-serve` with real clients no one here wrote: the official `openai` and `mcp` Python
//! packages (in a venv this test makes, pinned in `tests/py/requirements.txt`), over HTTP and
//! MCP's stdio and streamable-HTTP transports; the guide's curl examples as written; and the
//! start-up refusals. Skipped, with the reason, only when the package registry is unreachable.

use std::io::{BufRead, BufReader};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

mod common;
use common::root;

const SERVE: &str = env!("CARGO_BIN_EXE_rwkv-serve");

/// A running server, stopped when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Server {
    let mut child = Command::new(SERVE)
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("rwkv-serve: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Server { child, base }
}

/// The README's main job: a store `.rwkv` of the reader crate, made once.
fn store() -> &'static Path {
    static S: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &S.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join(".rwkv");
        let st = Command::new(env!("CARGO_BIN_EXE_rwkv-ingest"))
            .arg(root().join("crates/rwkv-reader"))
            .arg("--store")
            .arg(&store)
            .arg("-q")
            .status()
            .unwrap();
        assert!(st.success());
        (dir, store)
    })
    .1
}

fn registry_reachable() -> bool {
    ("pypi.org", 443)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(5)).is_ok())
}

/// The venv with the pinned clients, or why there is none.
fn venv() -> Result<PathBuf, String> {
    static V: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    V.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("py-clients");
        let reqs = root().join("crates/rwkv-cli/tests/py/requirements.txt");
        let stamp = dir.join("installed.txt");
        let want = std::fs::read_to_string(&reqs).unwrap();
        let py = dir.join("bin/python");
        if std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) && py.exists() {
            return Ok(py);
        }
        let ok = Command::new("python3").args(["-m", "venv"]).arg(&dir).status();
        if !ok.is_ok_and(|s| s.success()) {
            panic!("python3 -m venv failed: install python3 and python3-venv");
        }
        let out = Command::new(&py)
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "-r"])
            .arg(&reqs)
            .output()
            .unwrap();
        if !out.status.success() {
            if !registry_reachable() {
                return Err("the package registry (pypi.org) is unreachable".into());
            }
            panic!("pip install failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::fs::write(&stamp, want).unwrap();
        Ok(py)
    })
    .clone()
}

fn python(py: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(py).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("")).unwrap()
}

fn script(name: &str) -> String {
    root().join("crates/rwkv-cli/tests/py").join(name).display().to_string()
}

#[test]
fn the_openai_package_streams_and_grounds_chat_completions() {
    let py = match venv() {
        Ok(p) => p,
        Err(why) => return eprintln!("skipped: {why}"),
    };
    let s = start(&["--store", store().to_str().unwrap()]);
    let root = root().join("crates/rwkv-reader").display().to_string();
    let v = python(
        &py,
        &[
            &script("openai_client.py"),
            &s.base,
            "rwkv7-code-11m.bf16.safetensors",
            ".rwkv",
            &root,
        ],
    );
    assert!(v["grounded_evidence"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["grounded_source"].as_str().unwrap().ends_with("lib.rs"), "{v}");
}

#[test]
fn the_mcp_sdk_lists_and_calls_the_tools_over_stdio_and_http() {
    let py = match venv() {
        Ok(p) => p,
        Err(why) => return eprintln!("skipped: {why}"),
    };
    let v = python(
        &py,
        &[&script("mcp_client.py"), "stdio", SERVE, store().to_str().unwrap()],
    );
    assert!(v["search_chars"].as_u64().unwrap() > 0, "{v}");
    let s = start(&["--store", store().to_str().unwrap()]);
    let v = python(&py, &[&script("mcp_client.py"), "http", &format!("{}/mcp", s.base)]);
    assert!(v["ask_chars"].as_u64().unwrap() > 0, "{v}");
}

/// The guide's curl examples (docs/guide.md, between the `serve-curl` markers), run as written against a
/// server on the port they name.
#[test]
fn the_readme_curl_examples_work_as_written() {
    let readme = std::fs::read_to_string(root().join("docs/guide.md")).unwrap();
    let block = readme
        .split("<!-- serve-curl-begin -->")
        .nth(1)
        .and_then(|b| b.split("<!-- serve-curl-end -->").next())
        .expect("README has the serve-curl block");
    let cmds: Vec<&str> = block.lines().filter(|l| l.trim_start().starts_with("curl ")).collect();
    assert!(cmds.len() >= 4, "the block holds the curl examples");
    let s = start(&["--store", store().to_str().unwrap()]);
    for c in cmds {
        let c = c.replace("http://127.0.0.1:8080", &s.base);
        let out = Command::new("bash").args(["-c", &c]).output().unwrap();
        assert!(
            out.status.success() && !out.stdout.is_empty(),
            "{c}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn start_up_refuses_an_open_address_without_a_key() {
    let out = Command::new(SERVE)
        .args(["--store", store().to_str().unwrap(), "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("API key"));
    // A store of another model is refused at start, naming the store.
    let out = Command::new(SERVE)
        .args(["--store", store().to_str().unwrap(), "--model"])
        .arg(root().join("fixtures/models/tiny-rwkv-7v0-834K.safetensors"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\".rwkv\""));
    // With a key file, the key is required.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "s3cret\n").unwrap();
    let s = start(&[
        "--store",
        store().to_str().unwrap(),
        "--api-key-file",
        key.to_str().unwrap(),
    ]);
    let code = |auth: &str| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", auth])
            .arg(format!("{}/v1/models", s.base))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(code("Authorization: Bearer s3cret"), "200");
    assert_eq!(code("Authorization: Bearer nope"), "401");
}
