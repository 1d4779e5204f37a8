//! `rwkv-score` end to end: its bits per token equal those computed from the official
//! implementation's logits for the same text.

use std::path::PathBuf;
use std::process::Command;

use rwkv_model::likelihood::log_softmax_at;
use rwkv_model::loader::read_safetensors;
use rwkv_model::tensor::to_f32;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn score(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rwkv-score"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn bits_per_token_match_the_reference_logits() {
    let refs = root().join("fixtures/reference/rwkv7-code-11m.ref.safetensors");
    let map = read_safetensors(&refs).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for case in ["code", "prose", "utf8"] {
        let toks = map.get(&format!("{case}.tokens")).unwrap();
        let tokens: Vec<u32> = toks
            .data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as u32)
            .collect();
        let logits = to_f32(&refs, "l", map.get(&format!("{case}.logits")).unwrap()).unwrap();
        let mut nll = 0f64;
        for i in 0..tokens.len() - 1 {
            nll -= log_softmax_at(&logits[i * 256..(i + 1) * 256], tokens[i + 1]) as f64;
        }
        let expected_bpt = nll / (tokens.len() - 1) as f64 / std::f64::consts::LN_2;

        let file = dir.join(format!("{case}.txt"));
        std::fs::write(&file, tokens.iter().map(|&t| t as u8).collect::<Vec<u8>>()).unwrap();
        let (code, stdout, stderr) = score(&[
            file.to_str().unwrap(),
            "--model",
            "fixtures/models/rwkv7-code-11m.bf16.safetensors",
            "--json",
        ]);
        assert_eq!(code, 0, "{stderr}");
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        let bpt = v["bits_per_token"].as_f64().unwrap();
        assert!(
            (bpt - expected_bpt).abs() < 1e-4,
            "{case}: {bpt} vs reference {expected_bpt}"
        );
        assert_eq!(v["scored_tokens"].as_u64().unwrap() as usize, tokens.len() - 1);
        assert_eq!(v["tokenizer"], "bytes");
    }
}

#[test]
fn default_model_is_the_bundled_demo() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let f = dir.join("a.rs");
    std::fs::write(&f, "fn main() { println!(\"hello\"); }\n").unwrap();
    let (code, stdout, stderr) = score(&[f.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("bits per byte"), "{stdout}");
    assert!(stderr.contains("demo model"), "{stderr}");
}

#[test]
fn bf16_and_int8_folds_score_close_to_the_exact_fold() {
    let f = root().join("crates/rwkv-model/src/v7/kernels.rs");
    let run = |p: &str| -> serde_json::Value {
        let (code, stdout, stderr) = score(&[f.to_str().unwrap(), "--fold-precision", p, "--json"]);
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str(&stdout).unwrap()
    };
    let (exact, bf16) = (run("f32"), run("bf16"));
    assert_eq!(exact["fold_precision"], "f32");
    assert_eq!(bf16["fold_precision"], "bf16");
    let (a, b) = (
        exact["bits_per_token"].as_f64().unwrap(),
        bf16["bits_per_token"].as_f64().unwrap(),
    );
    assert!(a != b && (a - b).abs() < 0.01 * a, "exact {a} vs bf16 {b}");
    let int8 = run("int8");
    assert_eq!(int8["fold_precision"], "int8");
    let c = int8["bits_per_token"].as_f64().unwrap();
    assert!(a != c && (a - c).abs() < 0.01 * a, "exact {a} vs int8 {c}");
    let (code, _, stderr) = score(&[f.to_str().unwrap(), "--fold-precision", "f16"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("f16"), "{stderr}");
}

#[test]
fn errors_name_the_file_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (code, _, stderr) = score(&["/definitely/not/here.txt"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/definitely/not/here.txt"), "{stderr}");

    let bad = dir.join("weights.safetensors");
    std::fs::write(&bad, b"garbage garbage garbage").unwrap();
    let f = dir.join("t.txt");
    std::fs::write(&f, "some text").unwrap();
    let (code, _, stderr) = score(&[f.to_str().unwrap(), "--model", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("weights.safetensors"), "{stderr}");

    let (code, _, stderr) = score(&[f.to_str().unwrap(), "--tokenizer", "klingon"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("klingon"), "{stderr}");
}

#[test]
fn scores_rwkvcpp_files_and_checks_the_tokenizer_fits() {
    // rwkv.cpp's RWKV-4 file: bits per token equal those of the official logits.
    let refs = root().join("fixtures/reference/tiny-rwkv-4v0-660K.ref.safetensors");
    let map = read_safetensors(&refs).unwrap();
    let toks = map.get("alpaca.tokens").unwrap();
    let tokens: Vec<u32> = toks
        .data
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as u32)
        .collect();
    let logits = to_f32(&refs, "l", map.get("alpaca.logits").unwrap()).unwrap();
    let mut nll = 0f64;
    for i in 0..tokens.len() - 1 {
        nll -= log_softmax_at(&logits[i * 256..(i + 1) * 256], tokens[i + 1]) as f64;
    }
    let expected_bpt = nll / (tokens.len() - 1) as f64 / std::f64::consts::LN_2;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let file = dir.join("alpaca.txt");
    std::fs::write(&file, tokens.iter().map(|&t| t as u8).collect::<Vec<u8>>()).unwrap();
    let model = "fixtures/rwkvcpp/tiny-rwkv-4v0-660K-FP32.bin";
    let (code, stdout, stderr) = score(&[file.to_str().unwrap(), "--model", model, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let bpt = v["bits_per_token"].as_f64().unwrap();
    assert!((bpt - expected_bpt).abs() < 1e-4, "{bpt} vs reference {expected_bpt}");
    assert_eq!(v["tokenizer"], "bytes");
    assert!(v["fingerprint"].as_str().unwrap().starts_with("v4-"));

    // The 20B tokenizer (by name or as a tokenizer.json) does not fit a 256-token model.
    let json = root().join("crates/rwkv-tokenizers/vocab/20B_tokenizer.json");
    for t in ["20b", json.to_str().unwrap()] {
        let (code, _, stderr) = score(&[file.to_str().unwrap(), "--model", model, "--tokenizer", t]);
        assert_eq!(code, 2);
        assert!(stderr.contains("50277 ids but the model only 256"), "{stderr}");
    }
}

#[test]
fn a_device_without_a_backend_in_this_build_exits_2_naming_cuda() {
    for tool in [
        env!("CARGO_BIN_EXE_rwkv-score"),
        env!("CARGO_BIN_EXE_rwkv-ask"),
        env!("CARGO_BIN_EXE_rwkv-ingest"),
    ] {
        let args: &[&str] = if tool.ends_with("rwkv-score") {
            &["README.md", "--device", "cuda"]
        } else if tool.ends_with("rwkv-ask") {
            &[
                "what does main do?",
                "--device",
                "cuda:1",
                "--store",
                "/nonexistent-store",
            ]
        } else {
            &["fixtures/code", "--device", "cuda", "--store", "/nonexistent-dir/store"]
        };
        let out = Command::new(tool)
            .current_dir(root())
            .args(args)
            .env_remove("RWKV_MODEL")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{tool}: {err}");
        assert!(err.contains("CUDA") && err.contains("device cuda:"), "{tool}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let (code, _, err) = score(&["README.md", "--device", "gpu"]);
    assert_eq!(code, 2);
    assert!(err.contains("cpu, cuda, cuda:N or candle-cpu"), "{err}");
}
