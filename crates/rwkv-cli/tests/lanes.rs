//! `rwkv-ingest --lanes N`: folding documents in lockstep lanes makes the same store as folding
//! them one at a time — every blob byte for byte, the same manifest — for any lane count and
//! worker count, in f32 and bf16 folds; reruns find everything unchanged; `lanes` in a job
//! file; the summary says how many lanes folded.

use std::path::Path;
use std::process::Command;

mod common;
use common::{blobs, manifest, root};

fn ingest(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rwkv-ingest"))
        .args(args)
        .current_dir(root().join("fixtures"))
        .env_remove("RWKV_MODEL")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out.trim()).unwrap()
}

#[test]
fn lanes_make_the_store_of_the_one_document_fold_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    for precision in ["f32", "bf16"] {
        // Small spacing: long files get interval checkpoints, so lanes cross pieces mid-step.
        let common = [
            "code",
            "books/lighthouse.txt",
            "books/three.epub",
            "--json",
            "--checkpoint-every",
            "300",
            "--fold-precision",
            precision,
        ];
        let one = tmp.path().join(format!("one-{precision}"));
        let (code, out, err) = ingest(&[&common[..], &["--store", s(&one), "--lanes", "1"]].concat());
        assert_eq!(code, 0, "{err}");
        let base = json(&out);
        assert_eq!(base["lanes"], 1);
        assert!(base["folded"].as_u64().unwrap() >= 5, "{out}");
        for (lanes, workers) in [("3", "1"), ("8", "2")] {
            let dir = tmp.path().join(format!("lanes{lanes}-{precision}"));
            let (code, out, err) = ingest(
                &[
                    &common[..],
                    &["--store", s(&dir), "--lanes", lanes, "--fold-jobs", workers],
                ]
                .concat(),
            );
            assert_eq!(code, 0, "{err}");
            let v = json(&out);
            assert_eq!(v["lanes"].to_string(), lanes);
            for k in ["documents", "folded", "tokens", "checkpoints", "store_bytes"] {
                assert_eq!(v[k], base[k], "{precision} lanes {lanes}: {k}");
            }
            if precision == "f32" {
                // (The helper opens stores of the demo model's f32 fold.)
                assert_eq!(manifest(&dir), manifest(&one), "{precision} lanes {lanes}: manifest");
            }
            assert!(
                blobs(&dir) == blobs(&one),
                "{precision} lanes {lanes}: the blobs differ from the one-document fold's"
            );
            // A rerun with lanes finds every document unchanged.
            let (code, out, err) = ingest(&[&common[..], &["--store", s(&dir), "--lanes", lanes]].concat());
            assert_eq!(code, 0, "{err}");
            let v = json(&out);
            assert_eq!(v["folded"], 0, "{out}");
            assert_eq!(v["unchanged"], base["folded"], "{out}");
        }
    }
}

#[test]
fn a_job_file_sets_the_lanes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let job = tmp.path().join("job.toml");
    let code_dir = root().join("fixtures/code");
    std::fs::write(
        &job,
        format!(
            "inputs = [{:?}]\nstore = {:?}\nlanes = 4\n[checkpoints]\nevery = 300\n",
            s(&code_dir),
            s(&store)
        ),
    )
    .unwrap();
    let (code, out, err) = ingest(&["--pipeline", s(&job), "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["lanes"], 4, "{out}");
    // --lanes on the command line wins over the file.
    let other = tmp.path().join("other");
    let (code, out, err) = ingest(&["--pipeline", s(&job), "--json", "--lanes", "2", "--store", s(&other)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["lanes"], 2, "{out}");
    assert!(blobs(&other) == blobs(&store));
}
