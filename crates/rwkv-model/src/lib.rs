//! The RWKV model core: checkpoint loading, the forward pass, recurrent state and log-likelihood.
//!
//! A checkpoint is read into a [`tensor::TensorMap`] by [`loader::load_tensors`] (`.pth`,
//! `.safetensors` or rwkv.cpp `.bin`), turned into a [`Model`] of its generation (RWKV-4, 5.x, 6
//! or 7), and run in two modes with the same results: [`Model::forward_token`] (generation) and
//! [`Model::forward_seq`] (folding a slice of tokens; the output head runs only when logits are
//! asked for). [`State`] is the fixed-size recurrent state, saved and loaded as safetensors
//! carrying the model fingerprint.
#![deny(missing_docs)]

/// `FromStr` and `Display` of an option enum from one table of its lowercase names; the parse
/// error says `unknown WHAT "x" (expected EXPECTED)`.
macro_rules! named_options {
    ($ty:ident, $what:literal, $expected:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(format!(concat!("unknown ", $what, " {:?} (expected ", $expected, ")"), s)),
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(match self {
                    $($ty::$variant => $name,)+
                })
            }
        }
    };
}

// The front door: `Model` (model.rs) over the backend seam (backend/), the shared types
// (types.rs), states and sampling. The generations (v4–v7) are private.
mod backend;
mod blocks;
pub mod error;
mod fingerprint;
pub mod likelihood;
mod model;
pub mod state;
mod types;
mod v4;
mod v5;
mod v6;
mod v7;

// The parts below the model, each a crate of its own: file formats, CPU kernels, tokenizers.
// Re-exported under their old names so the model's code and its users read one path per concept.
pub use rwkv_formats::{loader, tensor};
pub use rwkv_kernels::{gemm_bf16, linalg, simd};
use rwkv_kernels::{kernels, quant};
pub use rwkv_tokenizers as tokenizer;

pub use backend::Support;
pub use error::{Error, Result};
pub use fingerprint::{FINGERPRINT_RULE, fingerprint_is_current};
pub use model::Model;
pub use state::{Lane, State, StateInfo, StatePrecision, StateSpec};
pub use types::{
    DEFAULT_CHUNK_LEN, Device, FoldPrecision, Generation, LoadOptions, Logits, ModelInfo, RWKVCPP_V5_GROUP_NORM_EPS,
    V5_GROUP_NORM_EPS, Weights,
};
pub use v7::Config as V7Config;
