//! The RWKV model core: checkpoint loading, the forward pass, recurrent state, tokenizers and
//! sampling.
//!
//! A checkpoint is read into a [`tensor::TensorMap`] by [`loader::load_tensors`] (`.pth` or
//! `.safetensors`), turned into a [`Model`] by the architecture module, and run in two modes
//! with the same results: [`Model::forward_token`] (generation) and [`Model::forward_seq`]
//! (folding a slice of tokens; the output head runs only when logits are asked for).
#![deny(missing_docs)]

pub mod error;
pub mod loader;
pub mod sample;
pub mod tensor;
pub mod tokenizer;

pub use error::{Error, Result};
