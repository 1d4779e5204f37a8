//! `rwkv-ingest` killed with SIGKILL at random points (anywhere, and in its index phase), and
//! `rwkv-ask` killed while it folds a document on demand and commits it; the next runs resume
//! and end with the same manifest and the same state blobs as an uninterrupted run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rwkv_store::{Store, StoreIdentity};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const INPUTS: [&str; 3] = [
    "fixtures/code",
    "fixtures/books/lighthouse.txt",
    "fixtures/books/notes.md",
];

fn ingest_cmd(store: &Path) -> Command {
    ingest_with(store, &["--checkpoint-every", "48"])
}

/// `rwkv-ingest` of the inputs with `extra` flags into `store`, quiet.
fn ingest_with(store: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rwkv-ingest"));
    c.current_dir(root())
        .args(INPUTS)
        .args(extra)
        .args(["--json", "--store"])
        .arg(store)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    c
}

/// Run `cmd` to the end; on failure, panic with its exit status and what it printed on stderr.
fn must_succeed(mut cmd: Command) {
    let what = format!("{cmd:?}");
    let out = cmd.stderr(std::process::Stdio::piped()).output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {} with stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Documents (without commit times) and, per checkpoint, its record and blob bytes.
fn snapshot(store: &Path) -> Vec<String> {
    let s = Store::open_read_only(store, identity_of()).unwrap();
    let mut out = Vec::new();
    for mut d in s.documents().unwrap() {
        d.committed_at_ms = 0;
        out.push(format!("{d:?}"));
        for cp in s.checkpoints_of(&d.id).unwrap() {
            let blob = s.read_blob(&cp.key).unwrap();
            out.push(format!("{cp:?} {}", blake3::hash(&blob).to_hex()));
        }
    }
    out
}

/// The identity the CLI uses for the demo model.
fn identity_of() -> StoreIdentity {
    let model = rwkv_model::Model::load(&root().join("fixtures/models/rwkv7-code-11m.bf16.safetensors")).unwrap();
    let tok = rwkv_cli::choose_tokenizer("auto", &model).unwrap();
    rwkv_reader::store_identity(
        &model,
        rwkv_model::FoldPrecision::F32,
        rwkv_model::StatePrecision::default(),
        tok.as_ref(),
    )
}

#[test]
fn sigkill_at_random_points_then_rerun_gives_the_uninterrupted_store() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = tmp.path().join("clean");
    let t0 = std::time::Instant::now();
    must_succeed(ingest_cmd(&clean));
    let full = t0.elapsed();
    let expected = snapshot(&clean);
    assert!(expected.len() > 20);

    // Each round: a fresh store, an ingest killed at a random point (SIGKILL: no destructor,
    // flush or cleanup runs), then a rerun to completion and --gc; the result must equal the
    // uninterrupted run, manifest and blob bytes alike.
    let mut x: u64 = 0x2545F4914F6CDD1D;
    let (mut kills, mut rounds) = (0, 0);
    while kills < 20 {
        rounds += 1;
        assert!(
            rounds <= 40,
            "only {kills} of {rounds} runs were killed before finishing"
        );
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let store = tmp.path().join(format!("killed-{rounds}"));
        let delay = Duration::from_micros(x % (full.as_micros() as u64 * 9 / 10 + 1));
        let mut child = ingest_cmd(&store).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        if !child.wait().unwrap().success() {
            kills += 1;
        }
        must_succeed(ingest_cmd(&store));
        assert_same_after_gc(
            &store,
            &clean,
            &expected,
            &format!("round {rounds}, killed after {delay:?}"),
        );
        std::fs::remove_dir_all(&store).unwrap();
    }
}

/// `rwkv-ingest --gc`, then `store` must equal `clean` (its `expected` snapshot): manifest,
/// blob bytes, and no orphan blob.
fn assert_same_after_gc(store: &Path, clean: &Path, expected: &[String], what: &str) {
    let gc = Command::new(env!("CARGO_BIN_EXE_rwkv-ingest"))
        .current_dir(root())
        .args(["--gc", "--json", "--store"])
        .arg(store)
        .output()
        .unwrap();
    assert!(gc.status.success(), "{}", String::from_utf8_lossy(&gc.stderr));
    assert_eq!(snapshot(store), expected, "{what}");
    assert_eq!(
        walk(&store.join("blobs")),
        walk(&clean.join("blobs")),
        "{what}: orphan blobs left"
    );
}

/// A generator of delays: xorshift from a fixed seed, uniform below `max`.
struct Delays(u64);

impl Delays {
    fn next(&mut self, max: Duration) -> Duration {
        let x = &mut self.0;
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        Duration::from_micros(*x % (max.as_micros() as u64 + 1))
    }
}

/// Spawn `cmd`, kill it with SIGKILL after `delay`; whether it was killed (had not finished).
fn kill_after(mut cmd: Command, delay: Duration) -> bool {
    let mut child = cmd.spawn().unwrap();
    std::thread::sleep(delay);
    let _ = child.kill();
    !child.wait().unwrap().success()
}

#[test]
fn sigkill_in_the_index_phase_then_rerun_gives_the_uninterrupted_store() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = tmp.path().join("clean");
    must_succeed(ingest_with(&clean, &[]));
    let expected = snapshot(&clean);
    // How long starting and indexing take: an --index-only run of the same inputs.
    let t0 = std::time::Instant::now();
    assert!(
        ingest_with(&tmp.path().join("index-only"), &["--index-only"])
            .status()
            .unwrap()
            .success()
    );
    let index_phase = t0.elapsed();
    let mut delays = Delays(0x9E3779B97F4A7C15);
    let mut kills = 0;
    for round in 0..12 {
        let store = tmp.path().join(format!("killed-{round}"));
        let delay = delays.next(index_phase);
        kills += usize::from(kill_after(ingest_with(&store, &[]), delay));
        must_succeed(ingest_with(&store, &[]));
        assert_same_after_gc(
            &store,
            &clean,
            &expected,
            &format!("round {round}, killed after {delay:?}"),
        );
    }
    assert!(kills >= 6, "only {kills} of 12 runs were killed before finishing");
}

#[test]
fn sigkill_of_rwkv_ask_folding_on_demand_then_ingest_gives_the_uninterrupted_store() {
    // The question is answered from the book, which the index-only store has not folded:
    // rwkv-ask folds it on demand, answers, then folds it whole and commits it.
    let q = "lighthouse keeper lamp";
    let ask = |store: &Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rwkv-ask"));
        c.current_dir(root())
            .args([q, "--generate", "--max-tokens", "4", "--json", "--store"])
            .arg(store)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c
    };
    let tmp = tempfile::tempdir().unwrap();
    let clean = tmp.path().join("clean");
    must_succeed(ingest_with(&clean, &[]));
    let expected = snapshot(&clean);
    // One uninterrupted ask on an index-only store: it commits the book's fold.
    let whole = tmp.path().join("asked");
    must_succeed(ingest_with(&whole, &["--index-only"]));
    let t0 = std::time::Instant::now();
    let out = ask(&whole).output().unwrap();
    let asking = t0.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["sources"][0]["path"].as_str().unwrap().ends_with("lighthouse.txt"),
        "{v}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("into the store"));
    let mut delays = Delays(0xD1B54A32D192ED03);
    let mut kills = 0;
    for round in 0..10 {
        let store = tmp.path().join(format!("killed-{round}"));
        must_succeed(ingest_with(&store, &["--index-only"]));
        let delay = delays.next(asking);
        kills += usize::from(kill_after(ask(&store), delay));
        // The store answers after the kill, and an ingest then completes it.
        let out = ask(&store).output().unwrap();
        assert!(
            out.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        must_succeed(ingest_with(&store, &[]));
        assert_same_after_gc(
            &store,
            &clean,
            &expected,
            &format!("round {round}, ask killed after {delay:?}"),
        );
        // The index knows the fold: the answer resumes a stored checkpoint.
        let out = ask(&store).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_ne!(v["sources"][0]["checkpoint"], "", "round {round}: {v}");
        assert_eq!(v["timings"]["folded_tokens"], 0, "round {round}: {v}");
    }
    assert!(kills >= 5, "only {kills} of 10 asks were killed before finishing");
}

fn walk(d: &Path) -> usize {
    std::fs::read_dir(d)
        .map(|rd| {
            rd.flatten()
                .map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 })
                .sum()
        })
        .unwrap_or(0)
}
