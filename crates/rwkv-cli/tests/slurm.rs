//! The Slurm path for real: `scripts/slurm-local.sh` starts a one-machine Slurm cluster, runs
//! `pipelines/slurm/` (an array job of 3 shard workers and the merge job that waits for it) and
//! the merged store must equal a single-process ingest of the same tree, also when one array
//! task is cancelled mid-fold and the job is submitted again.
//!
//! Runs where Slurm is installed and this is root (slurmd's requirement); `.ci/run` sets
//! `RWKV_REQUIRE_SLURM=1`, and then a machine where the cluster cannot be made fails the test
//! instead of skipping it.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

mod common;
use common::{blobs, copy_tree, manifest, root};

/// One cluster at a time: each harness run starts its own daemons.
static CLUSTER: Mutex<()> = Mutex::new(());

fn slurm_available() -> bool {
    let required = std::env::var("RWKV_REQUIRE_SLURM").is_ok_and(|v| v == "1");
    let have = Command::new("sh")
        .args([
            "-c",
            "command -v slurmctld && command -v slurmd && command -v munged && [ \"$(id -u)\" = 0 ]",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have && !required {
        eprintln!(
            "skipped: Slurm (slurm-wlm, munge) is not installed or this is not root; RWKV_REQUIRE_SLURM=1 makes this a failure"
        );
    }
    // Required: the harness installs the packages itself, or fails saying why.
    have || required
}

/// A single-process ingest of `input` into `dir/whole`, checkpoints every 512 tokens.
fn single_run(input: &Path, dir: &Path) -> std::path::PathBuf {
    let whole = dir.join("whole");
    ingest(&[
        input.to_str().unwrap(),
        "--store",
        whole.to_str().unwrap(),
        "--checkpoint-every",
        "512",
    ]);
    whole
}

fn ingest(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_rwkv-ingest"))
        .args(args)
        .env_remove("RWKV_MODEL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Runs the harness; its stdout's last line (the merge's summary) as JSON, and its stderr.
fn slurm_local(
    input: &Path,
    store: &Path,
    n: usize,
    cancel: Option<usize>,
    args: &[&str],
) -> (serde_json::Value, String) {
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("scripts/slurm-local.sh"))
        .arg(input)
        .arg(store)
        .arg(n.to_string())
        .args(args)
        .env("RWKV_INGEST", env!("CARGO_BIN_EXE_rwkv-ingest"))
        .env_remove("RWKV_MODEL")
        .env_remove("SLURM_CONF");
    match cancel {
        Some(i) => cmd.env("RWKV_SLURM_CANCEL", i.to_string()),
        None => cmd.env_remove("RWKV_SLURM_CANCEL"),
    };
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "slurm-local.sh failed:\n{stdout}\n{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    let v = serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}\n{stderr}"));
    (v, stderr)
}

fn same_store(merged: &Path, whole: &Path) {
    assert_eq!(
        manifest(merged),
        manifest(whole),
        "the merged manifest is the single run's"
    );
    let (m, w) = (blobs(merged), blobs(whole));
    assert!(!w.is_empty());
    assert_eq!(m.keys().collect::<Vec<_>>(), w.keys().collect::<Vec<_>>());
    assert!(m == w, "the merged blobs are the single run's, byte for byte");
}

#[test]
fn a_three_task_array_job_merges_into_the_single_run() {
    if !slurm_available() {
        return;
    }
    let _one = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("code");
    copy_tree(&root().join("fixtures/code"), &input);
    let whole = single_run(&input, tmp.path());

    let store = tmp.path().join("store");
    let (v, _) = slurm_local(&input, &store, 3, None, &["--checkpoint-every", "512"]);
    let merged = v["merged"].as_array().unwrap();
    assert_eq!(merged.len(), 3, "{v}");
    let added: u64 = merged.iter().map(|m| m["documents_added"].as_u64().unwrap()).sum();
    assert_eq!(added, v["store_documents"].as_u64().unwrap(), "{v}");
    same_store(&store, &whole);
}

/// The shard of `n` that holds the most documents of `input`.
fn busiest_shard(input: &Path, n: u64) -> usize {
    let out = Command::new(env!("CARGO_BIN_EXE_rwkv-ingest"))
        .arg(input)
        .arg("--list")
        .output()
        .unwrap();
    let mut count = vec![0usize; n as usize];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["type"] == "document" {
            let id = v["id"].as_str().unwrap();
            let i = (0..n).find(|&i| rwkv_pipeline::in_shard(id, Some((i, n)))).unwrap();
            count[i as usize] += 1;
        }
    }
    (0..n as usize).max_by_key(|&i| count[i]).unwrap()
}

/// Twelve generated notes of ~2.5k tokens each: enough work that a task can be caught mid-fold.
fn notes(dir: &Path) {
    let words: Vec<&str> = "the state of a recurrent model folds every token it reads into a fixed size matrix and resumes later from checkpoints kept on disk"
        .split(' ')
        .collect();
    let mut x: u64 = 7;
    std::fs::create_dir_all(dir).unwrap();
    for k in 0..12 {
        let mut text = format!("# Note {k}\n\n");
        for j in 0..100 {
            text.push_str(&format!("Note {k}.{j}:"));
            for _ in 0..12 {
                x = (x * 1_103_515_245 + 12_345) % (1 << 31);
                text.push(' ');
                text.push_str(words[x as usize % words.len()]);
            }
            text.push_str(".\n");
        }
        std::fs::write(dir.join(format!("note-{k:02}.md")), text).unwrap();
    }
}

#[test]
fn a_task_cancelled_mid_fold_and_resubmitted_still_merges_into_the_single_run() {
    if !slurm_available() {
        return;
    }
    let _one = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("notes");
    notes(&input);
    let whole = single_run(&input, tmp.path());

    // Documents go to shards by a hash of their id, which holds the input's path: cancel the
    // shard with the most documents (at least 4 of the 12), so there is a fold to cut short.
    let victim = busiest_shard(&input, 3);
    let store = tmp.path().join("store");
    let (v, log) = slurm_local(&input, &store, 3, Some(victim), &["--checkpoint-every", "512"]);
    assert!(
        log.contains(&format!("cancelled array task {victim} mid-fold")),
        "{log}"
    );
    assert!(log.contains("resubmitted"), "{log}");
    // The resubmission ran only the cancelled shard; the finished ones were not submitted again.
    let logs: Vec<String> = std::fs::read_dir(tmp.path().join("store.shards/logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ingest-"))
        .collect();
    assert_eq!(logs.len(), 4, "3 tasks, then the cancelled one again: {logs:?}");
    assert_eq!(v["merged"].as_array().unwrap().len(), 3, "{v}");
    same_store(&store, &whole);
}
