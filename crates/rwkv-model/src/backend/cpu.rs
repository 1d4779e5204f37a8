//! The CPU backend: every generation (`v4`, `v5`, `v6`, `v7`), matrices held as [`Mat`]s in
//! the precision `--weights` asks for, both fold precisions.

use super::BackendModel;
use crate::error::Result;
use crate::linalg::Mat;
use crate::state::Lane;
use crate::state::State;
use crate::tensor::TensorMap;
use crate::types::{Device, FoldPrecision, Generation, Logits, ModelInfo, Weights};
use crate::v4::V4;
use crate::v5::V5;
use crate::v6::V6;
use crate::v7::{self, V7};

/// Builds `generation` from `map` on the CPU, feeding the fingerprint `hash`.
pub(crate) fn load(
    generation: Generation,
    map: &TensorMap,
    weights: Weights,
    v5_eps: f32,
    hash: &mut blake3::Hasher,
) -> Result<Box<dyn BackendModel>> {
    Ok(match generation {
        Generation::V7 => Box::new(V7::from_tensors(map, weights, hash)?),
        Generation::V6 => Box::new(V6::from_tensors(map, weights, hash)?),
        Generation::V5 => Box::new(V5::from_tensors(map, v5_eps, weights, hash)?),
        Generation::V4 => Box::new(V4::from_tensors(map, weights, hash)?),
    })
}

/// What the CPU generations share: matrices held as [`Mat`]s.
pub(crate) trait CpuMats {
    /// Calls `f` on every matrix.
    fn for_each_mat(&mut self, f: &mut dyn FnMut(&mut Mat));
    /// Bytes held outside the matrices (RWKV-7's embedding).
    fn extra_bytes(&self) -> usize {
        0
    }
    /// Bytes of that a token step reads (one row of the embedding).
    fn extra_token_bytes(&self) -> usize {
        0
    }
}

/// [`BackendModel::token_bytes`] of a CPU generation.
pub(crate) fn cpu_token_bytes(m: &mut dyn CpuMats) -> usize {
    let mut total = m.extra_token_bytes();
    m.for_each_mat(&mut |mat| total += mat.own_bytes());
    total
}

/// [`BackendModel::set_fold_precision`] of a CPU generation.
pub(crate) fn cpu_set_fold_precision(m: &mut dyn CpuMats, p: FoldPrecision) {
    match p {
        FoldPrecision::F32 => m.for_each_mat(&mut |w| {
            w.disable_bf16_fold();
            w.disable_int8_fold();
        }),
        FoldPrecision::Bf16 => m.for_each_mat(&mut |w| {
            w.disable_int8_fold();
            w.enable_bf16_fold();
        }),
        FoldPrecision::Int8 => m.for_each_mat(&mut |w| {
            w.disable_bf16_fold();
            w.enable_int8_fold();
        }),
    }
}

/// [`BackendModel::held`] of a CPU generation.
pub(crate) fn cpu_held(m: &mut dyn CpuMats) -> (usize, &'static str) {
    const NAMES: [&str; 9] = ["f32", "bf16", "f16", "int8", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0"];
    let (mut total, mut by_kind) = (0usize, [0usize; NAMES.len()]);
    m.for_each_mat(&mut |mat| {
        total += mat.bytes();
        let slot = NAMES.iter().position(|&n| n == mat.held_name()).unwrap_or(0);
        by_kind[slot] += mat.bytes();
    });
    total += m.extra_bytes();
    let best = (0..NAMES.len()).max_by_key(|&i| by_kind[i]).unwrap_or(0);
    (total, NAMES[best])
}

/// `impl BackendModel` for a CPU generation with inherent `info`, `wkv_shape`, `for_each_mat` and
/// `forward`.
macro_rules! cpu_forward {
    ($ty:ty) => {
        impl CpuMats for $ty {
            fn for_each_mat(&mut self, f: &mut dyn FnMut(&mut Mat)) {
                <$ty>::for_each_mat(self, f)
            }
        }

        impl BackendModel for $ty {
            fn info(&self) -> ModelInfo {
                <$ty>::info(self).clone()
            }
            fn wkv_shape(&self) -> Vec<usize> {
                <$ty>::wkv_shape(self)
            }
            fn forward(&self, tokens: &[u32], state: &mut State, logits: Logits, chunk: usize) -> Result<Vec<f32>> {
                Ok(<$ty>::forward(self, tokens, state, logits, chunk))
            }
            fn set_fold_precision(&mut self, p: FoldPrecision) {
                cpu_set_fold_precision(self, p)
            }
            fn held(&mut self) -> (usize, &'static str) {
                cpu_held(self)
            }
            fn token_bytes(&mut self) -> usize {
                cpu_token_bytes(self)
            }
            fn device(&self) -> Device {
                Device::Cpu
            }
        }
    };
}

cpu_forward!(V4);
cpu_forward!(V5);
cpu_forward!(V6);

impl CpuMats for V7 {
    fn for_each_mat(&mut self, f: &mut dyn FnMut(&mut Mat)) {
        V7::for_each_mat(self, f)
    }
    fn extra_bytes(&self) -> usize {
        self.embedding_bytes()
    }
    fn extra_token_bytes(&self) -> usize {
        self.embedding_bytes() / self.config().vocab.max(1)
    }
}

impl BackendModel for V7 {
    fn info(&self) -> ModelInfo {
        self.config().info()
    }
    fn wkv_shape(&self) -> Vec<usize> {
        self.config().wkv_shape()
    }
    fn forward(&self, tokens: &[u32], state: &mut State, logits: Logits, chunk: usize) -> Result<Vec<f32>> {
        Ok(V7::forward(self, tokens, state, logits, chunk))
    }
    fn forward_lanes(&self, lanes: &mut [Lane<'_>], chunk: usize) -> Result<()> {
        V7::forward_lanes(self, lanes, chunk);
        Ok(())
    }
    fn forward_lanes_logits(&self, lanes: &mut [Lane<'_>], chunk: usize) -> Result<Vec<Vec<f32>>> {
        Ok(V7::forward_lanes_logits(self, lanes, chunk))
    }
    fn decode_lanes(&self, lanes: &mut [(u32, &mut State)]) -> Result<Vec<f32>> {
        Ok(V7::decode_lanes(self, lanes))
    }
    fn set_fold_precision(&mut self, p: FoldPrecision) {
        cpu_set_fold_precision(self, p)
    }
    fn held(&mut self) -> (usize, &'static str) {
        cpu_held(self)
    }
    fn token_bytes(&mut self) -> usize {
        cpu_token_bytes(self)
    }
    fn v7_config(&self) -> Option<&v7::Config> {
        Some(self.config())
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
}
