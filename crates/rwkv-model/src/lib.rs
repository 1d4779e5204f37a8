//! The RWKV model core: checkpoint loading, the forward pass, recurrent state, tokenizers and
//! sampling.
//!
//! A checkpoint is read into a [`tensor::TensorMap`] by [`loader::load_tensors`] (`.pth` or
//! `.safetensors`), turned into a [`Model`], and run in two modes with the same results:
//! [`Model::forward_token`] (generation) and [`Model::forward_seq`] (folding a slice of
//! tokens; the output head runs only when logits are asked for). [`State`] is the fixed-size
//! recurrent state, saved and loaded as safetensors carrying the model fingerprint.
#![deny(missing_docs)]

pub mod error;
pub mod linalg;
pub mod loader;
mod model;
pub mod sample;
pub mod simd;
pub mod state;
pub mod tensor;
pub mod tokenizer;
pub mod v7;

pub use error::{Error, Result};
pub use model::{DEFAULT_CHUNK_LEN, Generation, Model};
pub use state::{State, StateInfo, StateSpec};
pub use v7::{Config, Logits};
