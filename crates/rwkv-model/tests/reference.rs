//! Exactness against the official implementation (`rwkv` 0.8.32, `cpu fp32`): logits at every
//! position, final states, and greedy continuations, for every RWKV-7 fixture model and file
//! format.

mod common;

use common::{fixture, max_abs_diff, reference_cases};
use rwkv_model::{Logits, Model, likelihood::argmax};

const TOL: f32 = 1e-4;

fn check_model(file: &str, reference: &str) {
    let model = Model::load(&fixture(&format!("models/{file}"))).unwrap();
    let cases = reference_cases(reference);
    assert!(!cases.is_empty());
    let vocab = model.config().vocab;
    for case in &cases {
        let mut state = model.new_state();
        let logits = model.forward_seq(&case.tokens, &mut state, Logits::All).unwrap();
        let d = max_abs_diff(&logits, &case.logits);
        assert!(d < TOL, "{file} {}: logits max|diff| {d}", case.name);
        assert_eq!(state.tokens, case.tokens.len() as u64);

        if let Some(ref_state) = &case.state {
            assert_eq!(ref_state.len(), 3 * state.layers.len());
            for (i, l) in state.layers.iter().enumerate() {
                for (j, ours) in [&l.att_x, &l.wkv, &l.ffn_x].into_iter().enumerate() {
                    let d = max_abs_diff(ours, &ref_state[3 * i + j]);
                    assert!(d < TOL, "{file} {}: state {i}.{j} max|diff| {d}", case.name);
                }
            }
        }

        // Greedy continuation, token by token, from the state after the prompt.
        let mut state = model.new_state();
        let (last, prefix) = case.tokens.split_last().unwrap();
        for &t in prefix {
            model.forward_token(t, &mut state).unwrap();
        }
        let mut l = model.forward_token(*last, &mut state).unwrap();
        let d = max_abs_diff(&l, &case.logits[(case.tokens.len() - 1) * vocab..]);
        assert!(d < TOL, "{file} {}: token-mode last logits max|diff| {d}", case.name);
        let mut generated = Vec::new();
        for _ in 0..case.greedy64.len() {
            let t = argmax(&l);
            generated.push(t);
            l = model.forward_token(t, &mut state).unwrap();
        }
        assert_eq!(generated, case.greedy64, "{file} {}: greedy64", case.name);
    }
}

#[test]
fn tiny_v7_safetensors_f32() {
    check_model("tiny-rwkv-7v0-834K.safetensors", "tiny-rwkv-7v0-834K");
}

#[test]
fn tiny_v7_safetensors_bf16() {
    check_model("tiny-rwkv-7v0-834K.bf16.safetensors", "tiny-rwkv-7v0-834K");
}

#[test]
fn tiny_v7_pth() {
    check_model("tiny-rwkv-7v0-834K.pth", "tiny-rwkv-7v0-834K");
}

#[test]
fn random_four_heads_safetensors() {
    check_model("random-x070-C64-L2-H4N16.safetensors", "random-x070-C64-L2-H4N16");
}

#[test]
fn random_four_heads_pth() {
    check_model("random-x070-C64-L2-H4N16.pth", "random-x070-C64-L2-H4N16");
}

#[test]
fn code_11m_bf16() {
    check_model("rwkv7-code-11m.bf16.safetensors", "rwkv7-code-11m");
}

#[test]
fn formats_share_one_fingerprint() {
    let a = Model::load(&fixture("models/tiny-rwkv-7v0-834K.safetensors")).unwrap();
    let b = Model::load(&fixture("models/tiny-rwkv-7v0-834K.bf16.safetensors")).unwrap();
    assert_eq!(a.fingerprint(), b.fingerprint(), "same weights, same fingerprint");
    let c = Model::load(&fixture("models/random-x070-C64-L2-H4N16.safetensors")).unwrap();
    assert_ne!(a.fingerprint(), c.fingerprint());
}
