//! The backend seam: where a model's forward pass runs.
//!
//! [`Forward`] is everything [`crate::Model`] asks of a loaded generation: its dimensions, its
//! state's shape, and the forward pass over a slice of tokens (sequence mode when it is longer
//! than one, token mode otherwise), with the state kept host-side in [`State`]. The CPU backend
//! implements it for every generation (`v4`, `v5`, `v6`, `v7`, built by [`cpu`]); another
//! backend (a GPU holding RWKV-7's weights as device tensors) implements it for the generations
//! it supports and is chosen by [`crate::Device`] in [`crate::LoadOptions`]: the generations'
//! maths and the callers (reader, heads, pipeline) stay as they are. `Model` dispatches through
//! this trait and nowhere else.

use crate::error::{Error, Result};
use crate::linalg::Mat;
use crate::state::State;
use crate::tensor::TensorMap;
use crate::types::{Device, FoldPrecision, Generation, Lane, LoadOptions, Logits, ModelInfo};
use crate::v4::V4;
use crate::v5::V5;
use crate::v6::V6;
use crate::v7::{self, V7};

/// One generation's weights on one backend, ready to run.
pub(crate) trait Forward: Send + Sync + std::fmt::Debug {
    /// Dimensions and generation.
    fn info(&self) -> ModelInfo;
    /// The shape of one layer's WKV state.
    fn wkv_shape(&self) -> Vec<usize>;
    /// Folds `tokens` (at least one; token ids already checked against the vocabulary) into
    /// `state` (its shape already checked) in chunks of `chunk` tokens; the logits asked for.
    /// Only a device backend fails (the device's own errors: out of memory, a lost GPU).
    fn forward(&self, tokens: &[u32], state: &mut State, logits: Logits, chunk: usize) -> Result<Vec<f32>>;
    /// Folds every lane's tokens (already checked; some may be empty) into its own state, no
    /// logits, in lockstep chunks of `chunk` tokens per lane: a backend that can runs one set
    /// of matrix products over all the lanes' rows of a step. Each lane's state must come out
    /// as [`Forward::forward`] of its tokens alone would leave it (to float rounding). The
    /// default folds the lanes one after another.
    fn forward_lanes(&self, lanes: &mut [Lane<'_>], chunk: usize) -> Result<()> {
        for lane in lanes.iter_mut().filter(|l| !l.tokens.is_empty()) {
            self.forward(lane.tokens, lane.state, Logits::None, chunk)?;
        }
        Ok(())
    }
    /// One token for each lane (token mode: f32 arithmetic whatever the fold precision),
    /// returning each lane's logits one after another (`[lanes, vocab]`). A backend that can
    /// runs one set of matrix products over all the lanes' rows; each lane's logits and state
    /// must equal [`Forward::forward`] of its token alone. The default runs the lanes one after
    /// another.
    fn decode_lanes(&self, lanes: &mut [(u32, &mut State)]) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        for (tok, state) in lanes.iter_mut() {
            out.extend(self.forward(&[*tok], state, Logits::Last, 1)?);
        }
        Ok(out)
    }
    /// Sets the arithmetic of sequence mode.
    fn set_fold_precision(&mut self, p: FoldPrecision);
    /// Bytes of weights held, and what holds the most of them (`"f32"`, `"bf16"`, `"q5_1"`, …).
    fn held(&mut self) -> (usize, &'static str);
    /// RWKV-7's own configuration, when this is RWKV-7.
    fn v7_config(&self) -> Option<&v7::Config> {
        None
    }
    /// Where it runs.
    fn device(&self) -> Device;
}

/// Loads `generation` from `map` onto `opts.device`, feeding the fingerprint `hash`.
pub(crate) fn load(
    generation: Generation,
    map: &TensorMap,
    opts: &LoadOptions,
    v5_eps: f32,
    hash: &mut blake3::Hasher,
) -> Result<Box<dyn Forward>> {
    match opts.device {
        // The CPU backend: every generation.
        Device::Cpu => Ok(match generation {
            Generation::V7 => Box::new(V7::from_tensors(map, opts.weights, hash)?),
            Generation::V6 => Box::new(V6::from_tensors(map, opts.weights, hash)?),
            Generation::V5 => Box::new(V5::from_tensors(map, v5_eps, opts.weights, hash)?),
            Generation::V4 => Box::new(V4::from_tensors(map, opts.weights, hash)?),
        }),
        // The candle backend: RWKV-7 only.
        #[cfg(feature = "candle")]
        d @ (Device::Cuda(_) | Device::CandleCpu) => match generation {
            Generation::V7 => Ok(Box::new(crate::candle::CandleV7::load(map, opts.weights, d, hash)?)),
            other => Err(Error::Device {
                device: d.to_string(),
                reason: format!(
                    "RWKV-{} runs on the CPU only (this backend runs RWKV-7); use --device cpu",
                    &format!("{other:?}")[1..]
                ),
            }),
        },
        #[cfg(not(feature = "candle"))]
        d @ (Device::Cuda(_) | Device::CandleCpu) => Err(Error::Device {
            device: d.to_string(),
            reason: format!(
                "this build has no {} backend (build rwkv-reader with `--features {}`{}); use --device cpu",
                if d == Device::CandleCpu { "candle" } else { "CUDA" },
                if d == Device::CandleCpu { "candle" } else { "cuda" },
                if d == Device::CandleCpu {
                    ""
                } else {
                    ", see scripts/build-cuda.sh"
                },
            ),
        }),
    }
}

/// What the CPU generations share: matrices held as [`Mat`]s.
pub(crate) trait CpuMats {
    /// Calls `f` on every matrix.
    fn for_each_mat(&mut self, f: &mut dyn FnMut(&mut Mat));
    /// Bytes held outside the matrices (RWKV-7's embedding).
    fn extra_bytes(&self) -> usize {
        0
    }
}

/// [`Forward::set_fold_precision`] of a CPU generation.
pub(crate) fn cpu_set_fold_precision(m: &mut dyn CpuMats, p: FoldPrecision) {
    match p {
        FoldPrecision::F32 => m.for_each_mat(&mut Mat::disable_bf16_fold),
        FoldPrecision::Bf16 => m.for_each_mat(&mut Mat::enable_bf16_fold),
    }
}

/// [`Forward::held`] of a CPU generation.
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

/// `impl Forward` for a CPU generation with inherent `info`, `wkv_shape`, `for_each_mat` and
/// `forward`.
macro_rules! cpu_forward {
    ($ty:ty) => {
        impl CpuMats for $ty {
            fn for_each_mat(&mut self, f: &mut dyn FnMut(&mut Mat)) {
                <$ty>::for_each_mat(self, f)
            }
        }

        impl Forward for $ty {
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
}

impl Forward for V7 {
    fn info(&self) -> ModelInfo {
        let c = self.config();
        ModelInfo {
            generation: Generation::V7,
            arch: "x070",
            vocab: c.vocab,
            n_embd: c.n_embd,
            n_layer: c.n_layer,
            n_head: c.n_head,
            head_size: c.head_size,
            d_ffn: c.d_ffn,
            group_norm_eps: Some(64e-5),
        }
    }
    fn wkv_shape(&self) -> Vec<usize> {
        let c = self.config();
        vec![c.n_head, c.head_size, c.head_size]
    }
    fn forward(&self, tokens: &[u32], state: &mut State, logits: Logits, chunk: usize) -> Result<Vec<f32>> {
        Ok(V7::forward(self, tokens, state, logits, chunk))
    }
    fn forward_lanes(&self, lanes: &mut [Lane<'_>], chunk: usize) -> Result<()> {
        V7::forward_lanes(self, lanes, chunk);
        Ok(())
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
    fn v7_config(&self) -> Option<&v7::Config> {
        Some(self.config())
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
}
