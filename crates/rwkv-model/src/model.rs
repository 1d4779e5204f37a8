//! The public model: load a checkpoint, tell its generation from the tensors, fingerprint it,
//! and run it on tokens in sequence mode or token by token.
//!
//! [`Model`] holds one generation's weights on one backend behind [`crate::backend::BackendModel`]
//! (the CPU backend runs `v4`, `v5` for 5.0–5.2, `v6`, `v7`) and dispatches through it alone;
//! every generation takes official-layout tensors, so every file format (`.pth`, safetensors,
//! rwkv.cpp `.bin` after its rewrites are undone) runs through the same code. The shared types
//! are in `types.rs`, the fingerprint's rule in `fingerprint.rs`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::backend::{self, BackendModel};
use crate::error::{Error, Result};
use crate::fingerprint::FINGERPRINT_RULE;
use crate::loader::{RWKVCPP_FORMAT, load_tensors};
use crate::state::{Lane, State, StateSpec};
use crate::tensor::TensorMap;
use crate::types::{
    DEFAULT_CHUNK_LEN, Device, FoldPrecision, Generation, LoadOptions, Logits, ModelInfo, RWKVCPP_V5_GROUP_NORM_EPS,
    V5_GROUP_NORM_EPS, Weights,
};

/// A loaded model, ready to run. Cheap to share across threads (`&Model` is all a forward
/// call needs; the state is the caller's).
#[derive(Debug)]
pub struct Model {
    arch: Box<dyn BackendModel>,
    info: ModelInfo,
    fingerprint: String,
    chunk_len: usize,
    fold_precision: FoldPrecision,
    metadata: BTreeMap<String, String>,
    weights: Weights,
    rounded: Option<Weights>,
    held: &'static str,
    weight_bytes: usize,
    token_bytes: usize,
}

impl Model {
    /// Load a `.pth`, `.safetensors` or rwkv.cpp `.bin` checkpoint with default options.
    pub fn load(path: &Path) -> Result<Model> {
        Self::load_with(path, &LoadOptions::default())
    }

    /// Load a checkpoint with `opts`.
    pub fn load_with(path: &Path, opts: &LoadOptions) -> Result<Model> {
        let map = load_tensors(path)?;
        Self::from_tensors_with(&map, opts)
    }

    /// Build a model from tensors already read, with default options.
    pub fn from_tensors(map: &TensorMap) -> Result<Model> {
        Self::from_tensors_with(map, &LoadOptions::default())
    }

    /// Build a model from official-layout tensors already read.
    pub fn from_tensors_with(map: &TensorMap, opts: &LoadOptions) -> Result<Model> {
        let Some((generation, _)) = Generation::detect(map) else {
            if !map.contains("emb.weight") {
                return Err(Error::format(
                    &map.path,
                    "no `emb.weight` tensor: not an RWKV checkpoint",
                ));
            }
            return Err(Error::File(rwkv_formats::Error::MissingTensor {
                path: map.path.clone(),
                tensor: "blocks.0.att.time_decay".into(),
            }));
        };
        let quantized: Vec<&str> = map
            .metadata
            .iter()
            .filter(|(k, _)| k.starts_with(crate::tensor::GGML_TYPE_PREFIX))
            .map(|(_, v)| v.as_str())
            .collect();
        if let (Some(q), Weights::Bf16 | Weights::Int8) = (quantized.first(), opts.weights) {
            return Err(Error::format(
                &map.path,
                format!(
                    "this rwkv.cpp file is already quantized ({q}); weights {} cannot be applied to it \
                     (use weights auto or f32)",
                    opts.weights
                ),
            ));
        }
        let rounded = match opts.weights {
            Weights::Int8 => Some(Weights::Int8),
            Weights::Bf16
                if map.tensors.values().any(|t| {
                    t.shape.iter().filter(|&&d| d > 1).count() >= 2 && t.dtype != crate::tensor::DType::BF16
                }) =>
            {
                Some(Weights::Bf16)
            }
            _ => None,
        };
        let (prefix, v5_eps) = match generation {
            Generation::V7 => ("x070", 0.0),
            Generation::V6 => ("v6", 0.0),
            Generation::V4 => ("v4", 0.0),
            Generation::V5 => {
                let eps = opts.v5_group_norm_eps.unwrap_or(if is_rwkvcpp(map) {
                    RWKVCPP_V5_GROUP_NORM_EPS
                } else {
                    V5_GROUP_NORM_EPS
                });
                if !(eps.is_finite() && eps > 0.0) {
                    return Err(Error::format(
                        &map.path,
                        format!("RWKV-5 group-norm epsilon must be positive, not {eps}"),
                    ));
                }
                ("v5", eps)
            }
        };
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"rwkv-reader model fingerprint v2\0");
        hasher.update(prefix.as_bytes());
        hasher.update(b"\0");
        let arch = backend::load(generation, map, opts, v5_eps, &mut hasher)?;
        let info = arch.info();
        let prefix = match (generation, info.arch) {
            (Generation::V5, "5.0") => "v5.0",
            (Generation::V5, "5.1") => "v5.1",
            (Generation::V5, _) => "v5.2",
            _ => prefix,
        };
        let fingerprint = format!("{prefix}-{FINGERPRINT_RULE}-{}", &hasher.finalize().to_hex()[..32]);
        let mut model = Model {
            arch,
            info,
            fingerprint,
            chunk_len: DEFAULT_CHUNK_LEN,
            // The backend's own default: f32 on the CPU; a GPU's products are bf16 (cuBLAS,
            // f32 sums), so its folds are bf16 folds and a store it fills is a bf16-fold store.
            fold_precision: opts.device.support().fold_precisions[0],
            metadata: map.metadata.clone(),
            weights: opts.weights,
            rounded,
            held: "f32",
            weight_bytes: 0,
            token_bytes: 0,
        };
        model.measure();
        Ok(model)
    }

    /// Dimensions and generation.
    pub fn config(&self) -> &ModelInfo {
        &self.info
    }

    /// The RWKV-7 model's own configuration (LoRA ranks and all), if this is an RWKV-7 model.
    pub fn v7_config(&self) -> Option<&crate::v7::Config> {
        self.arch.v7_config()
    }

    /// Where the forward pass runs.
    pub fn device(&self) -> Device {
        self.arch.device()
    }

    /// The generation.
    pub fn generation(&self) -> Generation {
        self.info.generation
    }

    /// String metadata the checkpoint carried (safetensors `__metadata__`; for rwkv.cpp files,
    /// `format`, `rwkvcpp_version`, `rwkvcpp_data_type`, `rwkvcpp_n_layer`, and `ggml_type.<tensor>`
    /// for each tensor stored quantized).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Hash of the generation, tensor names, shapes and values (and, for RWKV-5, the group-norm
    /// epsilon), prefixed by the architecture and the rule (`v4-f2-…`, `v5.2-f2-…`, `v6-f2-…`,
    /// `x070-f2-…`): states carry it. It names the file's values, not their container or
    /// element type, nor how they are held ([`Model::weights_rounded`] says that).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Tokens per chunk in sequence mode.
    pub fn chunk_len(&self) -> usize {
        self.chunk_len
    }

    /// Set the tokens per chunk in sequence mode (at least 1). Results do not depend on it
    /// beyond float rounding.
    pub fn set_chunk_len(&mut self, t: usize) {
        self.chunk_len = t.max(1);
    }

    /// What the weight matrices were asked to be held as ([`LoadOptions::weights`]).
    pub fn weights(&self) -> Weights {
        self.weights
    }

    /// The rounding loading applied to the checkpoint's matrices: `Some(Weights::Bf16)` when
    /// f32 or f16 weights were rounded to bf16, `Some(Weights::Int8)` when they were quantized,
    /// `None` when the model holds the file's own values (its own precision or f32). A store
    /// records it, since it changes the states a fold makes.
    pub fn weights_rounded(&self) -> Option<Weights> {
        self.rounded
    }

    /// What the matrices are held as, by bytes: `"f32"`, `"bf16"`, `"f16"`, `"int8"`, or for
    /// rwkv.cpp's quantized files the block format held (`"q5_1"`, ...): the kind holding
    /// most bytes.
    pub fn held_weights(&self) -> &'static str {
        self.held
    }

    /// Bytes of weights the model holds: matrices (with the bf16 fold's copies, if any) and
    /// the embedding; vectors are not counted.
    pub fn weight_bytes(&self) -> usize {
        self.weight_bytes
    }

    /// Bytes of weights one generated token reads: the matrices as held (the head included,
    /// the bf16 fold's copies not) and one row of the embedding. Decode speed times this is
    /// the memory bandwidth a token step uses.
    pub fn token_bytes(&self) -> usize {
        self.token_bytes
    }

    /// Choose the arithmetic of sequence mode (folding). [`FoldPrecision::F32`] (the default)
    /// is exact against the official implementation; [`FoldPrecision::Bf16`] rounds the inputs
    /// of every multi-row matrix product to bf16 (keeping a packed bf16 copy of each matrix)
    /// and runs about twice as fast on CPUs with AVX512-BF16, at a relative error of up to
    /// 2⁻⁹ per product input. Token mode (one row) is unaffected.
    /// A backend that does not fold with `p` (a GPU folds bf16 only) keeps its own: use
    /// [`Model::try_set_fold_precision`] to have that refused by name.
    pub fn set_fold_precision(&mut self, p: FoldPrecision) {
        let _ = self.try_set_fold_precision(p);
    }

    /// [`Model::set_fold_precision`], or an error naming the device when its backend does not
    /// fold with `p` (`--device cuda` with f32).
    pub fn try_set_fold_precision(&mut self, p: FoldPrecision) -> Result<()> {
        let device = self.arch.device();
        device.support().check_fold(device, p)?;
        if p != self.fold_precision {
            self.fold_precision = p;
            self.arch.set_fold_precision(p);
            self.measure();
        }
        Ok(())
    }

    /// Recount [`Model::weight_bytes`] and [`Model::held_weights`].
    fn measure(&mut self) {
        (self.weight_bytes, self.held) = self.arch.held();
        self.token_bytes = self.arch.token_bytes();
    }

    /// The arithmetic of sequence mode.
    pub fn fold_precision(&self) -> FoldPrecision {
        self.fold_precision
    }

    /// What this model's states look like.
    pub fn state_spec(&self) -> StateSpec {
        let c = &self.info;
        let wkv_shape = self.arch.wkv_shape();
        StateSpec {
            generation: c.generation,
            n_layer: c.n_layer,
            n_embd: c.n_embd,
            n_head: c.n_head,
            head_size: c.head_size,
            wkv_shape,
            fingerprint: self.fingerprint.clone(),
        }
    }

    /// The zero state (for RWKV-4, `pp = −1e30` as the official package starts).
    pub fn new_state(&self) -> State {
        State::zeros(&self.state_spec())
    }

    fn check(&self, tokens: &[u32], state: &State) -> Result<()> {
        let vocab = self.info.vocab;
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::TokenOutOfRange { id, vocab });
        }
        let spec = self.state_spec();
        let wkv = spec.wkv_len();
        let ok = state.layers.len() == spec.n_layer
            && state
                .layers
                .iter()
                .all(|l| l.att_x.len() == spec.n_embd && l.ffn_x.len() == spec.n_embd && l.wkv.len() == wkv);
        if !ok {
            return Err(Error::BadState {
                path: "<memory>".into(),
                reason: "state shape does not match the model".into(),
            });
        }
        Ok(())
    }

    fn run(&self, tokens: &[u32], state: &mut State, logits: Logits, chunk: usize) -> Result<Vec<f32>> {
        // A forward pass hands work to the thread pool dozens of times per layer. From a thread
        // outside the pool each hand-off sleeps on a latch until a worker finishes (two thread
        // wake-ups, microseconds each); from a worker, `join` runs one half itself and the other
        // worker, still spinning from the last hand-off, takes the other. So move the whole
        // pass onto a worker once.
        if rayon::current_thread_index().is_none() && rayon::current_num_threads() > 1 {
            let mut out = Ok(Vec::new());
            rayon::scope(|_| out = self.run_here(tokens, state, logits, chunk));
            return out;
        }
        self.run_here(tokens, state, logits, chunk)
    }

    fn run_here(&self, tokens: &[u32], state: &mut State, logits: Logits, chunk: usize) -> Result<Vec<f32>> {
        self.arch.forward(tokens, state, logits, chunk)
    }

    /// Sequence mode: fold `tokens` into `state` in chunks; returns the logits asked for
    /// (`[vocab]` for [`Logits::Last`], `[T, vocab]` for [`Logits::All`], empty otherwise or
    /// when `tokens` is empty).
    pub fn forward_seq(&self, tokens: &[u32], state: &mut State, logits: Logits) -> Result<Vec<f32>> {
        self.check(tokens, state)?;
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        self.run(tokens, state, logits, self.chunk_len)
    }

    /// Batched sequence mode: folds each lane's tokens into its own state, no logits, with one
    /// set of matrix products over all lanes' rows per chunk step where the backend can (RWKV-7
    /// on every backend; the other generations fold the lanes one after another). Each lane
    /// ends as [`Model::forward_seq`] of its tokens alone would leave it: on the CPU bit for bit
    /// (a row's products do not depend on the other rows), on a GPU within the bf16 fold's
    /// rounding. A lane whose tokens or state do not fit the model gets its error and is left
    /// untouched; the others are folded.
    pub fn forward_lanes(&self, lanes: &mut [Lane<'_>]) -> Vec<Result<()>> {
        self.run_lanes(lanes, |arch, ok, chunk| {
            arch.forward_lanes(ok, chunk)?;
            Ok(vec![(); ok.len()])
        })
    }

    /// [`Model::forward_lanes`], returning each lane's logits after every one of its tokens
    /// (`[T, vocab]`, empty for a lane without tokens): what [`Model::forward_seq`] of the lane
    /// alone with [`Logits::All`] returns (on the CPU bit for bit). For scoring several short
    /// continuations of one text in one pass over the weights: the logits of all lanes are held
    /// at once.
    pub fn forward_lanes_logits(&self, lanes: &mut [Lane<'_>]) -> Vec<Result<Vec<f32>>> {
        self.run_lanes(lanes, |arch, ok, chunk| arch.forward_lanes_logits(ok, chunk))
    }

    /// Check every lane, run `f` over those that fit and have tokens (on a pool worker, as
    /// `run`), and give each lane its result: its check's error, `f`'s output for it, the
    /// default for an empty lane, or the device's error when `f` failed.
    fn run_lanes<R: Default + Send>(
        &self,
        lanes: &mut [Lane<'_>],
        f: impl FnOnce(&dyn BackendModel, &mut [Lane<'_>], usize) -> Result<Vec<R>> + Send,
    ) -> Vec<Result<R>> {
        let checks: Vec<Result<()>> = lanes.iter().map(|l| self.check(l.tokens, l.state)).collect();
        let ran: Vec<bool> = lanes
            .iter()
            .zip(&checks)
            .map(|(l, c)| c.is_ok() && !l.tokens.is_empty())
            .collect();
        let mut ok: Vec<Lane<'_>> = lanes
            .iter_mut()
            .zip(&ran)
            .filter(|(_, r)| **r)
            .map(|(l, _)| Lane {
                tokens: l.tokens,
                state: &mut *l.state,
            })
            .collect();
        let res = if ok.is_empty() {
            Ok(Vec::new())
        } else {
            let chunk = self.chunk_len;
            let arch: &dyn BackendModel = self.arch.as_ref();
            if rayon::current_thread_index().is_none() && rayon::current_num_threads() > 1 {
                // As in `run`: the whole pass on a pool worker.
                let mut res = Ok(Vec::new());
                rayon::scope(|_| res = f(arch, &mut ok, chunk));
                res
            } else {
                f(arch, &mut ok, chunk)
            }
        };
        drop(ok);
        match res {
            Ok(outs) => {
                let mut outs = outs.into_iter();
                checks
                    .into_iter()
                    .zip(&ran)
                    .map(|(c, &r)| {
                        c?;
                        Ok(if r {
                            outs.next().unwrap_or_default()
                        } else {
                            R::default()
                        })
                    })
                    .collect()
            }
            // The device failed the whole call: every lane it ran gets the error.
            Err(e) => {
                let msg = e.to_string();
                let device = self.device().to_string();
                checks
                    .into_iter()
                    .zip(&ran)
                    .map(|(c, &r)| match c {
                        Ok(()) if r => Err(Error::Device {
                            device: device.clone(),
                            reason: msg.clone(),
                        }),
                        Ok(()) => Ok(R::default()),
                        Err(e) => Err(e),
                    })
                    .collect()
            }
        }
    }

    /// Token mode for many states at once: `lanes[i].0` is folded into `lanes[i].1`; returns
    /// every lane's logits one after another (`[lanes, vocab]`). RWKV-7 on the CPU runs all
    /// the lanes' rows through one set of products (what a server decoding many answers at once
    /// wants: the weights are read once per step, not once per answer); each lane's logits and
    /// state equal [`Model::forward_token`] of its token alone, bit for bit. A lane that does
    /// not fit the model fails the whole call, naming the lane.
    pub fn decode_lanes(&self, lanes: &mut [(u32, &mut State)]) -> Result<Vec<f32>> {
        for (tok, state) in lanes.iter() {
            self.check(&[*tok], state)?;
        }
        if lanes.is_empty() {
            return Ok(Vec::new());
        }
        if rayon::current_thread_index().is_none() && rayon::current_num_threads() > 1 {
            let mut out = Ok(Vec::new());
            rayon::scope(|_| out = self.arch.decode_lanes(lanes));
            return out;
        }
        self.arch.decode_lanes(lanes)
    }

    /// Token mode: one token, returns its logits. The token takes the decode step's arithmetic
    /// ([`Model::decode_lanes`] with one lane), which may sum in another order than sequence
    /// mode (a bf16 checkpoint's fold on AMX): float rounding apart, the same logits.
    pub fn forward_token(&self, token: u32, state: &mut State) -> Result<Vec<f32>> {
        self.check(&[token], state)?;
        self.decode_lanes(&mut [(token, state)])
    }
}

/// Whether the tensors came from an rwkv.cpp `.bin` file.
fn is_rwkvcpp(map: &TensorMap) -> bool {
    map.metadata.get("format").map(String::as_str) == Some(RWKVCPP_FORMAT)
}
