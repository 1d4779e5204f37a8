//! RWKV-4, 5.0, 5.2 and 6 against the official implementation (`rwkv` 0.8.32, `cpu fp32`):
//! logits at every position in both modes, states after prompts, greedy continuations — from
//! rwkv.cpp files (with their rewrites undone), from official-layout files, and with the
//! RWKV-5 group-norm epsilon both ways.

mod common;

use std::collections::HashMap;

use common::{check_reference, fixture, max_abs_diff};
use rwkv_model::loader::read_rwkvcpp;
use rwkv_model::tensor::DType;
use rwkv_model::{
    Error, Generation, LoadOptions, Logits, Model, RWKVCPP_V5_GROUP_NORM_EPS, State, V5_GROUP_NORM_EPS, Weights,
};

const TOL: f32 = 1e-4;

fn report(label: &str, rows: &[(String, common::Measured)]) {
    for (case, m) in rows {
        eprintln!(
            "TABLE | {label} | {case} | seq {:.2e} | token {:.2e} | state {} |",
            m.seq,
            m.token,
            m.state.map_or("-".to_string(), |d| format!("{d:.2e}"))
        );
    }
}

fn bin(name: &str) -> std::path::PathBuf {
    fixture(&format!("rwkvcpp/{name}"))
}

#[test]
fn v4_rwkvcpp_fp32() {
    let mut m = Model::load(&bin("tiny-rwkv-4v0-660K-FP32.bin")).unwrap();
    assert_eq!(m.generation(), Generation::V4);
    let r = check_reference(&mut m, "4v0 FP32.bin", "tiny-rwkv-4v0-660K", TOL);
    report("tiny-rwkv-4v0-660K-FP32.bin", &r);
}

#[test]
fn v5_0_rwkvcpp_fp32_both_epsilons() {
    let path = bin("tiny-rwkv-5v1-730K-FP32.bin");
    let mut m = Model::load(&path).unwrap();
    assert_eq!(m.config().arch, "5.0");
    assert_eq!(m.config().group_norm_eps, Some(RWKVCPP_V5_GROUP_NORM_EPS));
    let r = check_reference(&mut m, "5v1 FP32.bin eps 1e-5", "tiny-rwkv-5v1-730K_gn1e-5", TOL);
    report("tiny-rwkv-5v1-730K-FP32.bin (eps 1e-5)", &r);
    let opts = LoadOptions::default().with_v5_group_norm_eps(V5_GROUP_NORM_EPS);
    let mut m = Model::load_with(&path, &opts).unwrap();
    let r = check_reference(&mut m, "5v1 FP32.bin eps 64e-5", "tiny-rwkv-5v1-730K", TOL);
    report("tiny-rwkv-5v1-730K-FP32.bin (eps 64e-5)", &r);
}

#[test]
fn v5_2_rwkvcpp_fp32_both_epsilons() {
    let path = bin("tiny-rwkv-5v2-730K-FP32.bin");
    let mut m = Model::load(&path).unwrap();
    assert_eq!(m.config().arch, "5.2");
    let r = check_reference(&mut m, "5v2 FP32.bin eps 1e-5", "tiny-rwkv-5v2-730K_gn1e-5", TOL);
    report("tiny-rwkv-5v2-730K-FP32.bin (eps 1e-5)", &r);
    let opts = LoadOptions::default().with_v5_group_norm_eps(V5_GROUP_NORM_EPS);
    let mut m = Model::load_with(&path, &opts).unwrap();
    let r = check_reference(&mut m, "5v2 FP32.bin eps 64e-5", "tiny-rwkv-5v2-730K", TOL);
    report("tiny-rwkv-5v2-730K-FP32.bin (eps 64e-5)", &r);
}

#[test]
fn v6_official_bf16_and_rwkvcpp_fp32() {
    let mut m = Model::load(&fixture("models/tiny-rwkv-6v0-1m.bf16.safetensors")).unwrap();
    assert_eq!(m.generation(), Generation::V6);
    let r = check_reference(&mut m, "6v0 bf16", "tiny-rwkv-6v0-1m", TOL);
    report("tiny-rwkv-6v0-1m.bf16.safetensors", &r);
    let mut m = Model::load(&bin("tiny-rwkv-6v0-1m-FP32.bin")).unwrap();
    let r = check_reference(&mut m, "6v0 FP32.bin", "tiny-rwkv-6v0-1m", TOL);
    report("tiny-rwkv-6v0-1m-FP32.bin", &r);
}

#[test]
fn v7_rwkvcpp_fp32() {
    let mut m = Model::load(&bin("tiny-rwkv-7v0-834K-FP32.bin")).unwrap();
    let r = check_reference(&mut m, "7v0 FP32.bin", "tiny-rwkv-7v0-834K", TOL);
    report("tiny-rwkv-7v0-834K-FP32.bin", &r);
}

/// rwkv.cpp files converted to official-layout safetensors (as `rwkvcpp_to_official.py` does)
/// load through the official path, with the official epsilon by default.
#[test]
fn official_layout_files_of_v4_and_v5() {
    let dir = tempdir();
    for (file, reference, arch) in [
        ("tiny-rwkv-4v0-660K-FP32.bin", "tiny-rwkv-4v0-660K", "4"),
        ("tiny-rwkv-5v1-730K-FP32.bin", "tiny-rwkv-5v1-730K", "5.0"),
        ("tiny-rwkv-5v2-730K-FP32.bin", "tiny-rwkv-5v2-730K", "5.2"),
    ] {
        let map = read_rwkvcpp(&bin(file)).unwrap();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = map
            .tensors
            .iter()
            .map(|(k, t)| {
                assert_eq!(t.dtype, DType::F32);
                let v =
                    safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.shape.clone(), &t.data).unwrap();
                (k.clone(), v)
            })
            .collect();
        let path = dir.path().join(format!("{reference}.safetensors"));
        safetensors::serialize_to_file(views, None::<HashMap<String, String>>, &path).unwrap();
        let mut m = Model::load(&path).unwrap();
        assert_eq!(m.config().arch, arch);
        if arch != "4" {
            assert_eq!(m.config().group_norm_eps, Some(V5_GROUP_NORM_EPS));
        }
        let r = check_reference(&mut m, file, reference, TOL);
        report(&format!("{reference}.safetensors (official layout, from {file})"), &r);
    }
}

fn all_models() -> Vec<(&'static str, Model)> {
    vec![
        ("v4", Model::load(&bin("tiny-rwkv-4v0-660K-FP32.bin")).unwrap()),
        ("v5.0", Model::load(&bin("tiny-rwkv-5v1-730K-FP32.bin")).unwrap()),
        ("v5.2", Model::load(&bin("tiny-rwkv-5v2-730K-FP16.bin")).unwrap()),
        (
            "v6",
            Model::load(&fixture("models/tiny-rwkv-6v0-1m.bf16.safetensors")).unwrap(),
        ),
    ]
}

fn text_tokens(n: usize) -> Vec<u32> {
    let text = "{\n \"instruction\": \"Fold the document.\", \"output\": \"The reader folds each file.\" }\n\
                Once upon a time — café, naïve, 日本語.\n";
    text.bytes().cycle().take(n).map(u32::from).collect()
}

#[test]
fn sequence_mode_chunks_and_splits_equal_token_mode() {
    for (name, mut m) in all_models() {
        let toks = text_tokens(90);
        let v = m.config().vocab;
        let mut s1 = m.new_state();
        let seq = m.forward_seq(&toks, &mut s1, Logits::All).unwrap();
        let mut s2 = m.new_state();
        for (i, &t) in toks.iter().enumerate() {
            let l = m.forward_token(t, &mut s2).unwrap();
            assert!(
                max_abs_diff(&l, &seq[i * v..(i + 1) * v]) < 1e-4,
                "{name}: position {i}"
            );
        }
        assert!(s1.max_abs_diff(&s2) < 1e-4, "{name}: states {}", s1.max_abs_diff(&s2));
        for chunk in [1, 7, 64] {
            m.set_chunk_len(chunk);
            let mut s = m.new_state();
            let l = m.forward_seq(&toks, &mut s, Logits::Last).unwrap();
            assert!(
                max_abs_diff(&l, &seq[(toks.len() - 1) * v..]) < 1e-4,
                "{name}: chunk {chunk}"
            );
            assert!(s.max_abs_diff(&s1) < 1e-4, "{name}: chunk {chunk}");
        }
        m.set_chunk_len(rwkv_model::DEFAULT_CHUNK_LEN);
        for split in [0, 1, 33, 89, 90] {
            let mut s = m.new_state();
            m.forward_seq(&toks[..split], &mut s, Logits::None).unwrap();
            m.forward_seq(&toks[split..], &mut s, Logits::None).unwrap();
            assert!(s.max_abs_diff(&s1) < 1e-4, "{name}: split at {split}");
            assert_eq!(s.tokens, 90);
        }
    }
}

#[test]
fn states_save_load_and_refuse_other_models() {
    let dir = tempdir();
    let models = all_models();
    for (i, (name, m)) in models.iter().enumerate() {
        let spec = m.state_spec();
        assert_eq!(spec.generation, m.generation());
        let mut s = m.new_state();
        if m.generation() == Generation::V4 {
            // The zero state starts `pp` at −1e30, as the official package does.
            let c = m.config().n_embd;
            assert_eq!(spec.wkv_shape, vec![3, c]);
            assert!(s.layers[0].wkv[2 * c..].iter().all(|&x| x == -1e30));
        }
        m.forward_seq(&text_tokens(50), &mut s, Logits::None).unwrap();
        let path = dir.path().join(format!("{name}.state"));
        s.save(&path, &spec, "bytes").unwrap();
        let (back, info) = State::load(&path, &spec, Some("bytes")).unwrap();
        assert!(back.bit_eq(&s), "{name}");
        assert_eq!(info.generation, m.generation());
        assert_eq!(info.fingerprint, m.fingerprint());
        // Resuming the loaded state gives exactly what resuming the original gives.
        let (mut a, mut b) = (s.clone(), back);
        let la = m.forward_seq(&text_tokens(9), &mut a, Logits::Last).unwrap();
        let lb = m.forward_seq(&text_tokens(9), &mut b, Logits::Last).unwrap();
        assert_eq!(la, lb);
        // Every other model refuses it, naming both fingerprints.
        for (j, (other, o)) in models.iter().enumerate() {
            if i != j {
                let e = State::load(&path, &o.state_spec(), None).unwrap_err();
                assert!(matches!(e, Error::StateMismatch { .. }), "{name} on {other}: {e}");
                assert!(e.to_string().contains(m.fingerprint()) && e.to_string().contains(o.fingerprint()));
            }
        }
    }
    // A state of another shape is refused by the forward pass (RWKV-4's differs from all).
    let (v4, v5) = (&models[0].1, &models[1].1);
    assert!(v4.forward_seq(&[1], &mut v5.new_state(), Logits::None).is_err());
    assert!(v5.forward_token(1, &mut v4.new_state()).is_err());
}

#[test]
fn fingerprints_name_the_architecture_and_cover_the_epsilon() {
    let prefixes: Vec<String> = all_models()
        .iter()
        .map(|(_, m)| m.fingerprint().split('-').next().unwrap().to_string())
        .collect();
    assert_eq!(prefixes, ["v4", "v5.0", "v5.2", "v6"]);
    let path = bin("tiny-rwkv-5v1-730K-FP32.bin");
    let a = Model::load(&path).unwrap();
    let b = Model::load_with(&path, &LoadOptions::default().with_v5_group_norm_eps(V5_GROUP_NORM_EPS)).unwrap();
    assert_ne!(a.fingerprint(), b.fingerprint(), "outputs differ, so must fingerprints");
    let bad = LoadOptions::default().with_v5_group_norm_eps(-1.0);
    assert!(Model::load_with(&path, &bad).is_err());
}

#[test]
fn weights_held_as_bf16_and_int8_are_close_for_every_generation() {
    let files = [
        ("v4", bin("tiny-rwkv-4v0-660K-FP32.bin")),
        ("v5.0", bin("tiny-rwkv-5v1-730K-FP32.bin")),
        ("v5.2", bin("tiny-rwkv-5v2-730K-FP16.bin")),
        ("v6", fixture("models/tiny-rwkv-6v0-1m.bf16.safetensors")),
    ];
    for (name, path) in files {
        let run = |m: &Model| {
            let mut s = m.new_state();
            text_tokens(30)
                .iter()
                .map(|&t| m.forward_token(t, &mut s).unwrap())
                .last()
                .unwrap()
        };
        let f32_logits = run(&Model::load_with(&path, &LoadOptions::default().with_weights(Weights::F32)).unwrap());
        for (w, tol) in [(Weights::Auto, 1e-4), (Weights::Bf16, 0.5), (Weights::Int8, 1.0)] {
            let m = Model::load_with(&path, &LoadOptions::default().with_weights(w)).unwrap();
            let d = max_abs_diff(&f32_logits, &run(&m));
            // The file's own precision is exact; rounding the weights moves logits a little.
            let tol = if name == "v6" && w == Weights::Bf16 { 1e-4 } else { tol };
            assert!(d < tol, "{name} {w}: {d}");
        }
    }
}

/// A fresh folder, deleted when the test ends.
fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
