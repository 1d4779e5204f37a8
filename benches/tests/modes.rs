//! fold-bench's device-side modes on the CPU (the same code paths the GPU check runs):
//! `--exact` compares two folds and fails beyond 0.5 %; `--lanes` adds the batched figure;
//! `--device cuda` in a build without the CUDA backend is a named error.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bench(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fold-bench"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const DEMO: &str = "fixtures/models/rwkv7-code-11m.bf16.safetensors";

#[test]
fn exact_compares_two_folds_of_a_text() {
    let (code, out, err) = bench(&["--exact", "fixtures/code/README.md", "--model", DEMO, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["device"], "cpu");
    assert_eq!(v["fold_precision"], "bf16");
    let diff = v["bits_diff_percent"].as_f64().unwrap();
    assert!(diff > 0.0 && diff < 0.5, "{out}");
    let logit = v["max_logit_diff"].as_f64().unwrap();
    assert!(logit > 0.0 && logit < 0.5, "{out}");
    assert!(v["cpu_bits_per_token"].as_f64().unwrap() > 0.5, "{out}");
    assert_eq!(v["pass"], true);
}

#[test]
fn lanes_add_the_batched_fold() {
    let (code, out, err) = bench(&[
        "--model",
        DEMO,
        "--lanes",
        "3",
        "--tokens",
        "128",
        "--decode-tokens",
        "4",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out[out.find('{').unwrap()..]).unwrap();
    assert_eq!(v["lanes"], 3);
    assert!(v["fold_batched_tok_s"].as_f64().unwrap() > 0.0, "{out}");
    assert!(v["fold_tok_s"].as_f64().unwrap() > 0.0, "{out}");
}

#[test]
fn cuda_without_the_backend_is_a_named_error() {
    let (code, _, err) = bench(&["--model", DEMO, "--device", "cuda", "--tokens", "16"]);
    assert_ne!(code, 0);
    assert!(err.contains("cuda:0") && err.contains("CUDA"), "{err}");
}
