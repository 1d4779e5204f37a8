//! `rwkv-ingest` killed with SIGKILL at random points, and rerun after each kill, ends with the
//! same manifest and the same state blobs as an uninterrupted run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rwkv_store::{Store, StoreIdentity};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ingest_cmd(store: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rwkv-ingest"));
    c.current_dir(root())
        .args([
            "fixtures/code",
            "fixtures/books/lighthouse.txt",
            "fixtures/books/notes.md",
            "--checkpoint-every",
            "48",
            "--json",
            "--store",
        ])
        .arg(store)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    c
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
    assert!(ingest_cmd(&clean).status().unwrap().success());
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
        assert!(ingest_cmd(&store).status().unwrap().success());
        let gc = Command::new(env!("CARGO_BIN_EXE_rwkv-ingest"))
            .current_dir(root())
            .args(["--gc", "--json", "--store"])
            .arg(&store)
            .output()
            .unwrap();
        assert!(gc.status.success(), "{}", String::from_utf8_lossy(&gc.stderr));
        assert_eq!(snapshot(&store), expected, "round {rounds}, killed after {delay:?}");
        assert_eq!(
            walk(&store.join("blobs")),
            walk(&clean.join("blobs")),
            "round {rounds}: orphan blobs left"
        );
        std::fs::remove_dir_all(&store).unwrap();
    }
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
