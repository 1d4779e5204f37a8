//! The RWKV model core: checkpoint loading, the forward pass, recurrent state, tokenizers and
//! sampling.
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

// The front door: `Model` (model.rs) over the backend seam (backend.rs), the shared types
// (types.rs), states, tokenizers and sampling. The generations (v4–v7) and their kernels are
// private; `linalg`, `gemm_bf16`, `simd`, `loader` and `tensor` stay public for the benches and
// the tests that measure and check the kernels and parsers directly.
mod backend;
mod blocks;

pub mod error;
mod fingerprint;
pub mod gemm_bf16;
mod ggml;
mod kernels;
pub mod likelihood;
pub mod linalg;
pub mod loader;
mod model;
mod panels;
mod quant;
mod rows16;
pub mod sample;
pub mod simd;
pub mod state;
pub mod tensor;
pub mod tokenizer;
mod types;
mod v4;
mod v5;
mod v6;
mod v7;

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
