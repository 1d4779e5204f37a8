//! `rwkv-ingest --shard` and `--merge` as cluster workers use them: the index from the engine's
//! variable (`auto/N`), the shard record a store keeps, and every way a merge or a rerun can be
//! wrong refused by name (exit 2) with the target store untouched.

use std::path::Path;
use std::process::Command;

mod common;
use common::{blobs, manifest, root};

/// Runs rwkv-ingest on the fixtures' code tree with `env` set (and the engines' variables
/// cleared otherwise): exit code, stdout, stderr.
fn ingest(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rwkv-ingest"));
    cmd.args(args).current_dir(root().join("fixtures"));
    for v in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "JOB_COMPLETION_INDEX",
        "RWKV_MODEL",
    ] {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn auto_shards_from_slurm_and_kubernetes_merge_into_the_single_run() {
    let tmp = tempfile::tempdir().unwrap();
    let common = ["code", "--json", "--checkpoint-every", "512"];
    let whole = tmp.path().join("whole");
    let (code, _, err) = ingest(&[&common[..], &["--store", s(&whole)]].concat(), &[]);
    assert_eq!(code, 0, "{err}");

    // Shards 0 and 1 as Slurm array tasks (`auto`: N from the array), shard 2 as a Kubernetes
    // Indexed Job's pod (`auto/3`: the index from JOB_COMPLETION_INDEX).
    let shard = |i: usize| tmp.path().join(format!("shards/shard-{i}"));
    for i in 0..2 {
        let id = i.to_string();
        let env = [("SLURM_ARRAY_TASK_ID", id.as_str()), ("SLURM_ARRAY_TASK_COUNT", "3")];
        let (code, out, err) = ingest(
            &[&common[..], &["--store", s(&shard(i)), "--shard", "auto"]].concat(),
            &env,
        );
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["shard"], serde_json::json!({"index": i, "count": 3}));
    }
    let (code, _, err) = ingest(
        &[&common[..], &["--store", s(&shard(2)), "--shard", "auto/3"]].concat(),
        &[("JOB_COMPLETION_INDEX", "2")],
    );
    assert_eq!(code, 0, "{err}");
    let rec = rwkv_store::ShardRecord::read(&shard(2)).unwrap().unwrap();
    assert_eq!((rec.index, rec.count, rec.complete), (2, 3, true));

    let merged = tmp.path().join("merged");
    let (code, out, err) = ingest(
        &[
            "--json",
            "--store",
            s(&merged),
            "--merge",
            s(&shard(0)),
            s(&shard(1)),
            s(&shard(2)),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["merged"].as_array().unwrap().len(), 3);
    let m = manifest(&merged);
    assert!(m.len() > 3, "the fixture tree has documents in every shard");
    assert_eq!(v["store_documents"], m.len());
    assert_eq!(m, manifest(&whole), "the merged manifest is the single run's");
    assert_eq!(
        blobs(&merged),
        blobs(&whole),
        "the merged blobs are the single run's, byte for byte"
    );

    // A shard rerun is incremental and stays complete.
    let env = [("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_COUNT", "3")];
    let (code, out, err) = ingest(
        &[&common[..], &["--store", s(&shard(1)), "--shard", "auto"]].concat(),
        &env,
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["folded"], 0);
    assert!(rwkv_store::ShardRecord::read(&shard(1)).unwrap().unwrap().complete);
}

#[test]
fn bad_shards_and_merges_are_named_errors_and_leave_the_target_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let common = ["code/src", "--json", "--checkpoint-every", "512"];
    let shard = |i: usize| tmp.path().join(format!("shard-{i}"));

    // No index, a bad index, an index out of range: exit 2 before any model loads or store is made.
    for (arg, env, says) in [
        ("auto/2", vec![], "SLURM_ARRAY_TASK_ID"),
        ("auto", vec![("JOB_COMPLETION_INDEX", "0")], "SLURM_ARRAY_TASK_COUNT"),
        ("auto/2", vec![("SLURM_ARRAY_TASK_ID", "2")], "out of range"),
        ("auto/2", vec![("JOB_COMPLETION_INDEX", "x")], "not a number"),
    ] {
        let (code, _, err) = ingest(
            &[&common[..], &["--store", s(&shard(9)), "--shard", arg]].concat(),
            &env,
        );
        assert_eq!(code, 2, "{arg} {env:?}: {err}");
        assert!(err.contains(says), "{arg}: {err}");
        assert!(!shard(9).exists());
    }
    let (code, _, err) = ingest(
        &[&common[..], &["--store", s(&shard(9)), "--shard", "2/2"]].concat(),
        &[],
    );
    assert_eq!(code, 2, "{err}");

    for i in 0..2 {
        let arg = format!("{i}/2");
        let (code, _, err) = ingest(
            &[&common[..], &["--store", s(&shard(i)), "--shard", &arg]].concat(),
            &[],
        );
        assert_eq!(code, 0, "{err}");
    }
    // N changes between runs on one shard directory; the whole corpus into a shard store.
    let (code, _, err) = ingest(
        &[&common[..], &["--store", s(&shard(0)), "--shard", "0/3"]].concat(),
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("holds shard 0/2") && err.contains("shard 0/3"), "{err}");
    let (code, _, err) = ingest(&[&common[..], &["--store", s(&shard(0))]].concat(), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("whole corpus"), "{err}");
    // The refused runs did not change the record.
    let rec = rwkv_store::ShardRecord::read(&shard(0)).unwrap().unwrap();
    assert_eq!((rec.index, rec.count, rec.complete), (0, 2, true));

    // Shard 1 of 2 folded with other settings; shard 1 made with another fold precision.
    let (code, _, err) = ingest(
        &[
            "code/src",
            "--checkpoint-every",
            "256",
            "--store",
            s(&shard(2)),
            "--shard",
            "1/2",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = ingest(
        &[
            &common[..],
            &["--store", s(&shard(3)), "--shard", "1/2", "--fold-precision", "bf16"],
        ]
        .concat(),
        &[],
    );
    assert_eq!(code, 0, "{err}");

    let target = tmp.path().join("final");
    for (shards, says) in [
        (vec![shard(0)], "shard 1/2 missing"),
        (vec![shard(0), shard(0)], "both shard 0/2"),
        (vec![shard(0), shard(2)], "settings"),
        (vec![shard(0), shard(3)], "not model"),
        (vec![shard(0), shard(1), tmp.path().join("nope")], "not an rwkv store"),
    ] {
        let mut args = vec!["--store", s(&target), "--merge"];
        args.extend(shards.iter().map(|p| s(p)));
        let (code, _, err) = ingest(&args, &[]);
        assert_eq!(code, 2, "{shards:?}: {err}");
        assert!(err.contains(says), "{shards:?}: {err}");
        assert!(!target.exists(), "a refused merge leaves the target untouched");
    }
    // An incomplete shard (its run did not reach the end) is refused too.
    let mut rec = rwkv_store::ShardRecord::read(&shard(1)).unwrap().unwrap();
    rec.complete = false;
    rec.write(&shard(1)).unwrap();
    let (code, _, err) = ingest(&["--store", s(&target), "--merge", s(&shard(0)), s(&shard(1))], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not complete"), "{err}");
    assert!(!target.exists());
}
