//! The types every generation and every caller share: the generation, its dimensions, load
//! options (weights, device), the logits a forward call returns and the fold's arithmetic.

use crate::linalg::Kind;

pub use crate::loader::Generation;

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
    /// Where the forward pass runs.
    pub device: Device,
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

    /// Set the device the forward pass runs on.
    pub fn with_device(mut self, d: Device) -> Self {
        self.device = d;
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

/// The arithmetic of the matrix products in sequence mode; see [`Model::set_fold_precision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FoldPrecision {
    /// f32 inputs and sums: exact against the official implementation (to float rounding).
    #[default]
    F32,
    /// bf16 inputs, f32 sums (`vdpbf16ps` where the CPU has AVX512-BF16).
    Bf16,
    /// int8 weights (one scale per output row) and inputs rounded to −63 ..= 63 (one scale per
    /// block of 32), integer products summed exactly per block, blocks summed in f32
    /// ([`rwkv_kernels::gemm_i8`]).
    Int8,
}

named_options!(FoldPrecision, "fold precision", "f32, bf16 or int8", {
    F32 => "f32",
    Bf16 => "bf16",
    Int8 => "int8",
});

/// Default number of tokens per sequence-mode chunk.
pub const DEFAULT_CHUNK_LEN: usize = 256;

/// Where a model's forward pass runs: the backend that holds its weights and does its
/// arithmetic. The CPU backend runs every generation; others plug in behind
/// [`crate::backend::BackendModel`] without the generations' maths or the callers changing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Device {
    /// This machine's CPUs (the default).
    #[default]
    Cpu,
    /// CUDA GPU number `n` (`cuda` is `cuda:0`).
    Cuda(usize),
    /// The GPU backend's graph on candle's CPU device (`candle-cpu`, feature `candle`): the
    /// same candle ops and bf16 products as on a GPU, the WKV step done by the kernel's CPU
    /// twin. It is how the GPU path is tested on machines without one; it is not fast.
    CandleCpu,
}

impl std::str::FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            "candle-cpu" => Ok(Device::CandleCpu),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| format!("unknown device {s:?} (expected cpu, cuda, cuda:N or candle-cpu)")),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::CandleCpu => f.write_str("candle-cpu"),
        }
    }
}
