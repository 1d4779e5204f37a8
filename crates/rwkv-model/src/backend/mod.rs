//! The backend seam: where a model's forward pass runs.
//!
//! [`BackendModel`] is everything [`crate::Model`] asks of a loaded generation: its dimensions,
//! its state's shape, and the forward pass over a slice of tokens (sequence mode when it is
//! longer than one, token mode otherwise), with the state kept host-side in [`State`]. Each
//! backend declares what it runs ([`Support`]: generations, weights, fold precisions) and
//! [`load`] refuses the rest by name before loading anything. The CPU backend ([`cpu`]) runs
//! every generation; the candle backend (`candle`, features `candle`/`cuda`) runs RWKV-7
//! with bf16 weights. `Model` dispatches through this trait and nowhere else; the generations'
//! maths and the callers (reader, heads, pipeline) do not know which backend runs them.

use crate::error::{Error, Result};
use crate::state::Lane;
use crate::state::State;
use crate::tensor::TensorMap;
use crate::types::{Device, FoldPrecision, Generation, LoadOptions, Logits, ModelInfo, Weights};
use crate::v7;

#[cfg(feature = "candle")]
pub(crate) mod candle;
pub(crate) mod cpu;

/// What a backend runs: the rest is refused by name before anything is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Support {
    /// The backend, as `--device` names it.
    pub backend: &'static str,
    /// The generations it runs.
    pub generations: &'static [Generation],
    /// The `--weights` it can hold.
    pub weights: &'static [Weights],
    /// The fold precisions it folds with; the first is its default.
    pub fold_precisions: &'static [FoldPrecision],
}

const ALL_GENERATIONS: &[Generation] = &[Generation::V4, Generation::V5, Generation::V6, Generation::V7];

/// The CPU backend: every generation, every weight kind, every fold (f32 by default).
pub const CPU: Support = Support {
    backend: "cpu",
    generations: ALL_GENERATIONS,
    weights: &[Weights::Auto, Weights::F32, Weights::Bf16, Weights::Int8],
    fold_precisions: &[FoldPrecision::F32, FoldPrecision::Bf16, FoldPrecision::Int8],
};

/// The candle backend (a CUDA GPU, or candle's CPU device in tests): RWKV-7 with bf16 weights
/// and bf16 products.
pub const CANDLE: Support = Support {
    backend: "candle",
    generations: &[Generation::V7],
    weights: &[Weights::Auto, Weights::Bf16],
    fold_precisions: &[FoldPrecision::Bf16],
};

impl Device {
    /// What the backend behind this device runs (whether or not this build has it).
    pub fn support(self) -> &'static Support {
        match self {
            Device::Cpu => &CPU,
            Device::Cuda(_) | Device::CandleCpu => &CANDLE,
        }
    }
}

impl Support {
    /// `Err` naming what `device` does not run, and what to use instead.
    pub fn check(&self, device: Device, generation: Generation, weights: Weights) -> Result<()> {
        let refuse = |reason: String| {
            Err(Error::Device {
                device: device.to_string(),
                reason,
            })
        };
        if !self.generations.contains(&generation) {
            return refuse(format!(
                "RWKV-{} runs on the CPU only (this backend runs {}); use --device cpu",
                &format!("{generation:?}")[1..],
                names(
                    self.generations
                        .iter()
                        .map(|g| format!("RWKV-{}", &format!("{g:?}")[1..]))
                )
            ));
        }
        if !self.weights.contains(&weights) {
            return refuse(format!(
                "this backend holds {} weights; --weights {weights} runs on --device cpu (use --weights {} here)",
                names(
                    self.weights
                        .iter()
                        .filter(|w| **w != Weights::Auto)
                        .map(|w| w.to_string())
                ),
                names(self.weights.iter().map(|w| w.to_string()))
            ));
        }
        Ok(())
    }

    /// `Err` naming a fold precision `device` does not fold with.
    pub fn check_fold(&self, device: Device, p: FoldPrecision) -> Result<()> {
        if self.fold_precisions.contains(&p) {
            return Ok(());
        }
        Err(Error::Device {
            device: device.to_string(),
            reason: format!(
                "this backend folds with {} products; fold precision {p} needs --device cpu",
                names(self.fold_precisions.iter().map(|p| p.to_string()))
            ),
        })
    }
}

fn names(it: impl Iterator<Item = String>) -> String {
    it.collect::<Vec<_>>().join(" or ")
}

/// One generation's weights on one backend, ready to run.
pub(crate) trait BackendModel: Send + Sync + std::fmt::Debug {
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
    /// as [`BackendModel::forward`] of its tokens alone would leave it (to float rounding). The
    /// default folds the lanes one after another.
    fn forward_lanes(&self, lanes: &mut [Lane<'_>], chunk: usize) -> Result<()> {
        for lane in lanes.iter_mut().filter(|l| !l.tokens.is_empty()) {
            self.forward(lane.tokens, lane.state, Logits::None, chunk)?;
        }
        Ok(())
    }
    /// [`BackendModel::forward_lanes`], returning each lane's logits after every one of its
    /// tokens (`[T, vocab]`; empty for an empty lane), each as [`BackendModel::forward`] of the
    /// lane alone with [`Logits::All`] gives them. The default runs the lanes one after
    /// another.
    fn forward_lanes_logits(&self, lanes: &mut [Lane<'_>], chunk: usize) -> Result<Vec<Vec<f32>>> {
        lanes
            .iter_mut()
            .map(|l| {
                if l.tokens.is_empty() {
                    Ok(Vec::new())
                } else {
                    self.forward(l.tokens, l.state, Logits::All, chunk)
                }
            })
            .collect()
    }
    /// One token for each lane (token mode: f32 arithmetic whatever the fold precision),
    /// returning each lane's logits one after another (`[lanes, vocab]`). A backend that can
    /// runs one set of matrix products over all the lanes' rows; each lane's logits and state
    /// must equal [`BackendModel::forward`] of its token alone. The default runs the lanes one after
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
    /// Bytes of weights one token step reads: the matrices as held (not a fold's copies) and
    /// one row of the embedding. The default is every byte held.
    fn token_bytes(&mut self) -> usize {
        self.held().0
    }
    /// RWKV-7's own configuration, when this is RWKV-7.
    fn v7_config(&self) -> Option<&v7::Config> {
        None
    }
    /// Where it runs.
    fn device(&self) -> Device;
}

/// Loads `generation` from `map` onto `opts.device`, feeding the fingerprint `hash`: what the
/// device's backend does not run is refused by name first ([`Support::check`]).
pub(crate) fn load(
    generation: Generation,
    map: &TensorMap,
    opts: &LoadOptions,
    v5_eps: f32,
    hash: &mut blake3::Hasher,
) -> Result<Box<dyn BackendModel>> {
    let device = opts.device;
    device.support().check(device, generation, opts.weights)?;
    match device {
        Device::Cpu => cpu::load(generation, map, opts.weights, v5_eps, hash),
        #[cfg(feature = "candle")]
        Device::Cuda(_) | Device::CandleCpu => Ok(Box::new(candle::CandleV7::load(map, opts.weights, device, hash)?)),
        #[cfg(not(feature = "candle"))]
        Device::Cuda(_) | Device::CandleCpu => Err(Error::Device {
            device: device.to_string(),
            reason: if device == Device::CandleCpu {
                "this build has no candle backend (build rwkv-reader with `--features candle`); use --device cpu".into()
            } else {
                "this build has no CUDA backend (build rwkv-reader with `--features cuda`, see \
                 scripts/build-cuda.sh); use --device cpu"
                    .into()
            },
        }),
    }
}
