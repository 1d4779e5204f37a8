//! Shared helpers for the model tests: fixture paths and reference files.
#![allow(dead_code)]

use std::path::PathBuf;

use rwkv_model::loader::read_safetensors;
use rwkv_model::tensor::{DType, TensorMap, to_f32};

pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(rel)
}

pub struct Case {
    pub name: String,
    pub tokens: Vec<u32>,
    pub logits: Vec<f32>,
    pub greedy64: Vec<u32>,
    /// Per layer: att_x_prev, att_kv, ffn_x_prev (official order), when the reference has it.
    pub state: Option<Vec<Vec<f32>>>,
}

fn ints(map: &TensorMap, name: &str) -> Vec<u32> {
    let t = map.get(name).unwrap();
    assert_eq!(t.dtype, DType::I64);
    t.data
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as u32)
        .collect()
}

pub fn reference_cases(model: &str) -> Vec<Case> {
    let path = fixture(&format!("reference/{model}.ref.safetensors"));
    let map = read_safetensors(&path).unwrap();
    let names: Vec<String> = map
        .tensors
        .keys()
        .filter_map(|k| k.strip_suffix(".tokens").map(str::to_string))
        .collect();
    names
        .into_iter()
        .map(|name| {
            let f = |k: &str| to_f32(&path, k, map.get(k).unwrap()).unwrap();
            let state = map.contains(&format!("{name}.state.0")).then(|| {
                let mut v = Vec::new();
                let mut i = 0;
                while map.contains(&format!("{name}.state.{i}")) {
                    v.push(f(&format!("{name}.state.{i}")));
                    i += 1;
                }
                v
            });
            Case {
                tokens: ints(&map, &format!("{name}.tokens")),
                logits: f(&format!("{name}.logits")),
                greedy64: ints(&map, &format!("{name}.greedy64")),
                state,
                name,
            }
        })
        .collect()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// What a reference check measured (largest absolute differences).
#[derive(Debug, Default, Clone, Copy)]
pub struct Measured {
    /// Logits, sequence mode, every position.
    pub seq: f32,
    /// Logits, token mode, every position.
    pub token: f32,
    /// Final state after the prompt (where the reference has one).
    pub state: Option<f32>,
}

/// Compare our state with a reference state in the official order: per layer `att_x, kv, ffn_x`
/// (RWKV-5/6/7) or `att_x, aa, bb, pp, ffn_x` (RWKV-4, whose `wkv` buffer is `[aa; bb; pp]`).
pub fn state_diff(state: &rwkv_model::State, reference: &[Vec<f32>]) -> f32 {
    let per = reference.len() / state.layers.len();
    assert_eq!(per * state.layers.len(), reference.len());
    let mut m = 0f32;
    for (i, l) in state.layers.iter().enumerate() {
        let r = &reference[i * per..(i + 1) * per];
        let wkv_ref: Vec<f32> = r[1..per - 1].concat();
        m = m
            .max(max_abs_diff(&l.att_x, &r[0]))
            .max(max_abs_diff(&l.wkv, &wkv_ref))
            .max(max_abs_diff(&l.ffn_x, &r[per - 1]));
    }
    m
}

/// Check `model` against the official outputs in `reference/<reference>.ref.safetensors`:
/// logits at every position in sequence mode (in one chunk and in chunks of 5) and in token
/// mode, the state after each prompt that has one, and the greedy continuation generated from
/// a prompt read in either mode. Panics past `tol`; returns the largest differences per case.
pub fn check_reference(
    model: &mut rwkv_model::Model,
    label: &str,
    reference: &str,
    tol: f32,
) -> Vec<(String, Measured)> {
    use rwkv_model::{Logits, likelihood::argmax};
    let cases = reference_cases(reference);
    assert!(!cases.is_empty());
    let vocab = model.config().vocab;
    let mut out = Vec::new();
    for case in &cases {
        let mut m = Measured::default();
        for chunk in [rwkv_model::DEFAULT_CHUNK_LEN, 5] {
            model.set_chunk_len(chunk);
            let mut state = model.new_state();
            let logits = model.forward_seq(&case.tokens, &mut state, Logits::All).unwrap();
            m.seq = m.seq.max(max_abs_diff(&logits, &case.logits));
            assert_eq!(state.tokens, case.tokens.len() as u64);
            if let Some(r) = &case.state {
                let d = state_diff(&state, r);
                m.state = Some(m.state.unwrap_or(0f32).max(d));
            }
        }
        model.set_chunk_len(rwkv_model::DEFAULT_CHUNK_LEN);
        assert!(
            m.seq < tol,
            "{label} {}: sequence-mode logits max|diff| {}",
            case.name,
            m.seq
        );
        if let Some(d) = m.state {
            assert!(d < tol, "{label} {}: state max|diff| {d}", case.name);
        }

        // Token mode at every position, then greedy from there.
        let mut state = model.new_state();
        let mut l = Vec::new();
        for (i, &t) in case.tokens.iter().enumerate() {
            l = model.forward_token(t, &mut state).unwrap();
            m.token = m.token.max(max_abs_diff(&l, &case.logits[i * vocab..(i + 1) * vocab]));
        }
        assert!(
            m.token < tol,
            "{label} {}: token-mode logits max|diff| {}",
            case.name,
            m.token
        );
        if let Some(r) = &case.state {
            let d = state_diff(&state, r);
            assert!(d < tol, "{label} {}: token-mode state max|diff| {d}", case.name);
        }
        let greedy = |mut l: Vec<f32>, mut state: rwkv_model::State| {
            let mut generated = Vec::new();
            for _ in 0..case.greedy64.len() {
                let t = argmax(&l);
                generated.push(t);
                l = model.forward_token(t, &mut state).unwrap();
            }
            generated
        };
        assert_eq!(
            greedy(l, state),
            case.greedy64,
            "{label} {}: greedy64 after a token-mode prompt",
            case.name
        );
        let mut state = model.new_state();
        let l = model.forward_seq(&case.tokens, &mut state, Logits::Last).unwrap();
        assert_eq!(
            greedy(l, state),
            case.greedy64,
            "{label} {}: greedy64 after a sequence-mode prompt",
            case.name
        );
        out.push((case.name.clone(), m));
    }
    out
}
