//! The public model: load a checkpoint, tell its generation from the tensors, fingerprint it,
//! and run it on tokens in sequence mode or token by token.
//!
//! [`Model`] dispatches to one architecture per generation (`v4`, `v5` for 5.0–5.2, `v6`, `v7`);
//! each takes official-layout tensors, so every file format (`.pth`, safetensors, rwkv.cpp
//! `.bin` after its rewrites are undone) runs through the same code.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::linalg::{Kind, Mat};
use crate::loader::{RWKVCPP_FORMAT, load_tensors};
use crate::state::{State, StateSpec};
use crate::tensor::TensorMap;
use crate::v4::V4;
use crate::v5::V5;
use crate::v6::V6;
use crate::v7::V7;

/// RWKV generations, told apart by their tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Generation {
    /// RWKV-4 (and Raven): `att.time_decay`, no `ln_x`.
    V4,
    /// RWKV-5.0 (no gate), 5.1 and 5.2 (gate): `ln_x` and `time_decay`, no `time_maa_*`.
    V5,
    /// RWKV-6: `time_maa_*`.
    V6,
    /// RWKV-7 (x070): `att.r_k`.
    V7,
}

impl Generation {
    /// Detect the generation from block 0's tensor names; also returns the tensor that told.
    pub fn detect(map: &TensorMap) -> Option<(Generation, &'static str)> {
        let has = |n: &str| map.contains(n);
        if has("blocks.0.att.r_k") {
            Some((Generation::V7, "blocks.0.att.r_k"))
        } else if has("blocks.0.att.time_maa_x") {
            Some((Generation::V6, "blocks.0.att.time_maa_x"))
        } else if has("blocks.0.att.time_maa_w1") {
            Some((Generation::V6, "blocks.0.att.time_maa_w1"))
        } else if has("blocks.0.att.ln_x.weight") && has("blocks.0.att.time_decay") {
            Some((Generation::V5, "blocks.0.att.ln_x.weight"))
        } else if has("blocks.0.att.time_decay") {
            Some((Generation::V4, "blocks.0.att.time_decay"))
        } else {
            None
        }
    }

    /// Human name.
    pub fn name(self) -> &'static str {
        match self {
            Generation::V4 => "RWKV-4",
            Generation::V5 => "RWKV-5",
            Generation::V6 => "RWKV-6",
            Generation::V7 => "RWKV-7",
        }
    }

    /// The short stable key written in state files (`v4`, `v5`, `v6`, `v7`).
    pub fn key(self) -> &'static str {
        match self {
            Generation::V4 => "v4",
            Generation::V5 => "v5",
            Generation::V6 => "v6",
            Generation::V7 => "v7",
        }
    }

    /// The generation a state-file key names.
    pub fn from_key(key: &str) -> Option<Generation> {
        [Generation::V4, Generation::V5, Generation::V6, Generation::V7]
            .into_iter()
            .find(|g| g.key() == key)
    }
}

/// What every generation has in common: its dimensions, all inferred from tensor shapes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelInfo {
    /// The generation.
    pub generation: Generation,
    /// The architecture version within it: `"4"`, `"5.0"`, `"5.1"`, `"5.2"`, `"6.0"`, `"x070"`.
    pub arch: &'static str,
    /// Vocabulary size (rows of `emb.weight`).
    pub vocab: usize,
    /// Width `C`.
    pub n_embd: usize,
    /// Number of blocks.
    pub n_layer: usize,
    /// Heads `H` (0 for RWKV-4, whose time mix has no heads).
    pub n_head: usize,
    /// Head size `N`, `H · N = C` (0 for RWKV-4).
    pub head_size: usize,
    /// Channel-mix hidden width.
    pub d_ffn: usize,
    /// The group-norm epsilon of the time mix's output (`None` for RWKV-4, which has none).
    pub group_norm_eps: Option<f32>,
}

/// Settings for loading a model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadOptions {
    /// Group-norm epsilon of RWKV-5.x models. `None` picks the default of the file's origin:
    /// 1e-5 for rwkv.cpp `.bin` files (what rwkv.cpp computes with), else 64e-5 (the official
    /// package, and what the models were trained with). RWKV-6 and 7 always use 64e-5.
    pub v5_group_norm_eps: Option<f32>,
    /// What the model holds its weight matrices as (folding and generation alike).
    pub weights: Weights,
}

impl LoadOptions {
    /// Set the RWKV-5 group-norm epsilon.
    pub fn with_v5_group_norm_eps(mut self, eps: f32) -> Self {
        self.v5_group_norm_eps = Some(eps);
        self
    }

    /// Set what the weight matrices are held as.
    pub fn with_weights(mut self, w: Weights) -> Self {
        self.weights = w;
        self
    }
}

/// What a model holds its weight matrices (projections, LoRAs, head) as. One copy serves
/// folding and generation; products widen the weights to f32 inside the kernel and sum in f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weights {
    /// The file's own precision: bf16 and f16 checkpoints stay 16-bit, f32 stays f32, the
    /// quantized blocks of rwkv.cpp files stay quantized ([`crate::quant`]).
    #[default]
    Auto,
    /// f32 (four bytes a weight; the products of the `gemm` crate). rwkv.cpp's quantized
    /// blocks are decoded, their inputs still rounded as ggml rounds them.
    F32,
    /// bf16: 16-bit files as stored (f16 and f32 weights rounded to nearest even).
    Bf16,
    /// int8 with one scale per output row (the row's largest magnitude / 127), quantized at load.
    Int8,
}

named_options!(Weights, "weights", "auto, f32, bf16 or int8", {
    Auto => "auto",
    F32 => "f32",
    Bf16 => "bf16",
    Int8 => "int8",
});

impl Weights {
    /// How a matrix stored as `dtype` is held: `None` for f32, else packed panels of a kind.
    /// Matrices of rwkv.cpp's quantized blocks are not panels: `None` (see
    /// [`Weights::keeps_blocks`]).
    pub(crate) fn hold(self, dtype: crate::tensor::DType, quantized: bool) -> Option<Kind> {
        use crate::tensor::DType;
        if quantized || matches!(dtype, DType::Ggml(_)) {
            return None;
        }
        match (self, dtype) {
            (Weights::Auto, DType::BF16) => Some(Kind::Bf16),
            (Weights::Auto, DType::F16) => Some(Kind::F16),
            (Weights::Auto | Weights::F32, _) => None,
            (Weights::Bf16, _) => Some(Kind::Bf16),
            (Weights::Int8, _) => Some(Kind::I8),
        }
    }
}

impl Weights {
    /// Whether a matrix of ggml blocks stays blocks (`auto`); else (`f32`) it is decoded.
    pub(crate) fn keeps_blocks(self) -> bool {
        self == Weights::Auto
    }
}

/// Feed one tensor to the fingerprint (rule 2): its name, the shape the model reads it as, and
/// a digest of its values, whatever type stores them (so a lossless conversion of a checkpoint
/// is the same model). The values are cut into blocks of [`HASH_BLOCK`] elements and each
/// block is hashed on its own (blocks in parallel) in a canonical form: when every value of the
/// block is a bf16 value, its bf16 bytes (a bf16 checkpoint's own bytes, hashed straight from
/// the file's pages), else its f32 bytes; then the block digests are hashed in order. Plus the
/// activation rounding of rwkv.cpp's quantized matrices. No f32 copy of a tensor is made.
pub(crate) fn hash_tensor(
    hash: &mut blake3::Hasher,
    name: &str,
    shape: &[usize],
    t: &crate::tensor::RawTensor,
    act: Option<crate::linalg::ActQuant>,
) {
    use crate::tensor::DType;
    use rayon::prelude::*;
    hash.update(name.as_bytes());
    hash.update(&[0]);
    for d in shape {
        hash.update(&(*d as u64).to_le_bytes());
    }
    let size = t.dtype.size();
    let per = match t.dtype {
        // ggml blocks: `size` bytes per 32 values.
        DType::Ggml(_) => crate::loader::GGML_BLOCK,
        _ => 1,
    };
    let n = t.data.len() / size * per;
    let block = |b: usize| -> [u8; 32] {
        let (e0, e1) = (b * HASH_BLOCK, ((b + 1) * HASH_BLOCK).min(n));
        // HASH_BLOCK is a multiple of 32: ggml blocks are cut whole.
        let bytes = &t.data[e0 / per * size..e1 / per * size];
        let f32_bytes: Vec<u8> = match t.dtype {
            DType::BF16 => return block_digest(b"bf16", bytes),
            DType::I64 | DType::F64 => return block_digest(b"raw", bytes),
            DType::F32 => return canonical_f32(bytes),
            DType::F16 => {
                let mut out = vec![0u8; bytes.len() * 2];
                for (o, b) in out.chunks_exact_mut(4).zip(bytes.chunks_exact(2)) {
                    o.copy_from_slice(&half::f16::from_le_bytes([b[0], b[1]]).to_f32().to_le_bytes());
                }
                out
            }
            DType::Ggml(q) => {
                let mut v = Vec::with_capacity(e1 - e0);
                q.dequantize(bytes, &mut v);
                v.iter().flat_map(|x| x.to_le_bytes()).collect()
            }
        };
        canonical_f32(&f32_bytes)
    };
    let blocks = n.div_ceil(HASH_BLOCK);
    let digests: Vec<[u8; 32]> = if blocks > 1 {
        (0..blocks).into_par_iter().map(block).collect()
    } else {
        (0..blocks).map(block).collect()
    };
    hash.update(&(n as u64).to_le_bytes());
    for d in &digests {
        hash.update(d);
    }
    // Rounded activations change the outputs: the same values stored f32 are another model.
    if let Some(q) = act {
        hash.update(format!("act_quant {q:?}").as_bytes());
    }
}

/// The digest of one block of the fingerprint: its form's tag, then its bytes.
fn block_digest(tag: &[u8], bytes: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(tag);
    h.update(&[0]);
    h.update(bytes);
    *h.finalize().as_bytes()
}

/// The digest of a block of f32 little-endian values in canonical form: as bf16 bytes when
/// every value is a bf16 value (its low 16 bits are zero), else as they are.
fn canonical_f32(bytes: &[u8]) -> [u8; 32] {
    let narrow = bytes.chunks_exact(4).all(|v| v[0] == 0 && v[1] == 0);
    if !narrow {
        return block_digest(b"f32", bytes);
    }
    let halves: Vec<u8> = bytes.chunks_exact(4).flat_map(|v| [v[2], v[3]]).collect();
    block_digest(b"bf16", &halves)
}

/// Elements per block of the fingerprint's tensor digests ([`hash_tensor`]).
const HASH_BLOCK: usize = 1 << 18;
const _: () = assert!(HASH_BLOCK.is_multiple_of(crate::loader::GGML_BLOCK));

/// The rule that makes fingerprints, named in them (`x070-f2-…`): rule 2 hashes each tensor's
/// values in blocks ([`hash_tensor`]). Fingerprints without it were made by rule 1 (one
/// sequential hash over an f32 copy of every tensor), before 2026-12.
pub const FINGERPRINT_RULE: &str = "f2";

/// Whether `fingerprint` (possibly with `+…` suffixes) was made by the current rule.
pub fn fingerprint_is_current(fingerprint: &str) -> bool {
    fingerprint
        .split('+')
        .next()
        .and_then(|f| f.split('-').nth(1))
        .is_some_and(|r| r == FINGERPRINT_RULE)
}

/// The official package's RWKV-5 group-norm epsilon.
pub const V5_GROUP_NORM_EPS: f32 = 64e-5;
/// rwkv.cpp's RWKV-5 group-norm epsilon.
pub const RWKVCPP_V5_GROUP_NORM_EPS: f32 = 1e-5;

/// Which logits a forward call must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// None: fold only (the output head is skipped).
    None,
    /// The logits after the last token.
    Last,
    /// The logits after every token, `[T, vocab]`.
    All,
}

#[derive(Debug)]
enum Arch {
    V4(V4),
    V5(V5),
    V6(V6),
    V7(V7),
}

/// A loaded model, ready to run. Cheap to share across threads (`&Model` is all a forward
/// call needs; the state is the caller's).
#[derive(Debug)]
pub struct Model {
    arch: Arch,
    info: ModelInfo,
    fingerprint: String,
    chunk_len: usize,
    fold_precision: FoldPrecision,
    metadata: BTreeMap<String, String>,
    weights: Weights,
    rounded: Option<Weights>,
    held: &'static str,
    weight_bytes: usize,
}

/// The arithmetic of the matrix products in sequence mode; see [`Model::set_fold_precision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FoldPrecision {
    /// f32 inputs and sums: exact against the official implementation (to float rounding).
    #[default]
    F32,
    /// bf16 inputs, f32 sums (`vdpbf16ps` where the CPU has AVX512-BF16).
    Bf16,
}

named_options!(FoldPrecision, "fold precision", "f32 or bf16", {
    F32 => "f32",
    Bf16 => "bf16",
});

/// Default number of tokens per sequence-mode chunk.
pub const DEFAULT_CHUNK_LEN: usize = 256;

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
            return Err(Error::MissingTensor {
                path: map.path.clone(),
                tensor: "blocks.0.att.time_decay".into(),
            });
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
        let mut hasher = blake3::Hasher::new();
        let (arch, prefix) = match generation {
            Generation::V7 => {
                hasher.update(b"rwkv-reader model fingerprint v2\0x070\0");
                (Arch::V7(V7::from_tensors(map, opts.weights, &mut hasher)?), "x070")
            }
            Generation::V6 => {
                hasher.update(b"rwkv-reader model fingerprint v2\0v6\0");
                (Arch::V6(V6::from_tensors(map, opts.weights, &mut hasher)?), "v6")
            }
            Generation::V5 => {
                hasher.update(b"rwkv-reader model fingerprint v2\0v5\0");
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
                let m = V5::from_tensors(map, eps, opts.weights, &mut hasher)?;
                let prefix = match m.info().arch {
                    "5.0" => "v5.0",
                    "5.1" => "v5.1",
                    _ => "v5.2",
                };
                (Arch::V5(m), prefix)
            }
            Generation::V4 => {
                hasher.update(b"rwkv-reader model fingerprint v2\0v4\0");
                (Arch::V4(V4::from_tensors(map, opts.weights, &mut hasher)?), "v4")
            }
        };
        let info = match &arch {
            Arch::V4(m) => m.info().clone(),
            Arch::V5(m) => m.info().clone(),
            Arch::V6(m) => m.info().clone(),
            Arch::V7(m) => {
                let c = m.config();
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
        };
        let fingerprint = format!("{prefix}-{FINGERPRINT_RULE}-{}", &hasher.finalize().to_hex()[..32]);
        let mut model = Model {
            arch,
            info,
            fingerprint,
            chunk_len: DEFAULT_CHUNK_LEN,
            fold_precision: FoldPrecision::F32,
            metadata: map.metadata.clone(),
            weights: opts.weights,
            rounded,
            held: "f32",
            weight_bytes: 0,
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
        match &self.arch {
            Arch::V7(m) => Some(m.config()),
            _ => None,
        }
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

    /// Choose the arithmetic of sequence mode (folding). [`FoldPrecision::F32`] (the default)
    /// is exact against the official implementation; [`FoldPrecision::Bf16`] rounds the inputs
    /// of every multi-row matrix product to bf16 (keeping a packed bf16 copy of each matrix)
    /// and runs about twice as fast on CPUs with AVX512-BF16, at a relative error of up to
    /// 2⁻⁹ per product input. Token mode (one row) is unaffected.
    pub fn set_fold_precision(&mut self, p: FoldPrecision) {
        if p == self.fold_precision {
            return;
        }
        self.fold_precision = p;
        match p {
            FoldPrecision::F32 => self.for_each_mat(&mut Mat::disable_bf16_fold),
            FoldPrecision::Bf16 => self.for_each_mat(&mut Mat::enable_bf16_fold),
        }
        self.measure();
    }

    /// Recount [`Model::weight_bytes`] and [`Model::held_weights`].
    fn measure(&mut self) {
        const NAMES: [&str; 9] = ["f32", "bf16", "f16", "int8", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0"];
        let (mut total, mut by_kind) = (0usize, [0usize; NAMES.len()]);
        self.for_each_mat(&mut |m| {
            total += m.bytes();
            let slot = NAMES.iter().position(|&n| n == m.held_name()).unwrap_or(0);
            by_kind[slot] += m.bytes();
        });
        if let Arch::V7(m) = &self.arch {
            total += m.embedding_bytes();
        }
        let best = (0..NAMES.len()).max_by_key(|&i| by_kind[i]).unwrap_or(0);
        self.held = NAMES[best];
        self.weight_bytes = total;
    }

    /// The arithmetic of sequence mode.
    pub fn fold_precision(&self) -> FoldPrecision {
        self.fold_precision
    }

    fn for_each_mat(&mut self, f: &mut dyn FnMut(&mut Mat)) {
        match &mut self.arch {
            Arch::V4(m) => m.for_each_mat(f),
            Arch::V5(m) => m.for_each_mat(f),
            Arch::V6(m) => m.for_each_mat(f),
            Arch::V7(m) => m.for_each_mat(f),
        }
    }

    /// What this model's states look like.
    pub fn state_spec(&self) -> StateSpec {
        let c = &self.info;
        let wkv_shape = match &self.arch {
            Arch::V4(m) => m.wkv_shape(),
            Arch::V5(m) => m.wkv_shape(),
            Arch::V6(m) => m.wkv_shape(),
            Arch::V7(_) => vec![c.n_head, c.head_size, c.head_size],
        };
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

    fn run(&self, tokens: &[u32], state: &mut State, logits: Logits, chunk: usize) -> Vec<f32> {
        // A forward pass hands work to the thread pool dozens of times per layer. From a thread
        // outside the pool each hand-off sleeps on a latch until a worker finishes (two thread
        // wake-ups, microseconds each); from a worker, `join` runs one half itself and the other
        // worker, still spinning from the last hand-off, takes the other. So move the whole
        // pass onto a worker once.
        if rayon::current_thread_index().is_none() && rayon::current_num_threads() > 1 {
            let mut out = Vec::new();
            rayon::scope(|_| out = self.run_here(tokens, state, logits, chunk));
            return out;
        }
        self.run_here(tokens, state, logits, chunk)
    }

    fn run_here(&self, tokens: &[u32], state: &mut State, logits: Logits, chunk: usize) -> Vec<f32> {
        match &self.arch {
            Arch::V4(m) => m.forward(tokens, state, logits, chunk),
            Arch::V5(m) => m.forward(tokens, state, logits, chunk),
            Arch::V6(m) => m.forward(tokens, state, logits, chunk),
            Arch::V7(m) => m.forward(tokens, state, logits, chunk),
        }
    }

    /// Sequence mode: fold `tokens` into `state` in chunks; returns the logits asked for
    /// (`[vocab]` for [`Logits::Last`], `[T, vocab]` for [`Logits::All`], empty otherwise or
    /// when `tokens` is empty).
    pub fn forward_seq(&self, tokens: &[u32], state: &mut State, logits: Logits) -> Result<Vec<f32>> {
        self.check(tokens, state)?;
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.run(tokens, state, logits, self.chunk_len))
    }

    /// Token mode: one token, returns its logits.
    pub fn forward_token(&self, token: u32, state: &mut State) -> Result<Vec<f32>> {
        self.check(&[token], state)?;
        Ok(self.run(&[token], state, Logits::Last, 1))
    }
}

/// Whether the tensors came from an rwkv.cpp `.bin` file.
fn is_rwkvcpp(map: &TensorMap) -> bool {
    map.metadata.get("format").map(String::as_str) == Some(RWKVCPP_FORMAT)
}
