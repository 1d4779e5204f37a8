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
