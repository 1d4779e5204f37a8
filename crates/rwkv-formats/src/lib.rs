//! RWKV checkpoint files, read into raw tensors before any architecture gives them meaning.
//!
//! [`loader::load_tensors`] recognises the container from the file's first bytes (a PyTorch
//! `.pth` zip, safetensors, or rwkv.cpp's `.bin`) and returns a [`tensor::TensorMap`]: each
//! tensor's name, shape, element type and bytes, mapped in place from the file where the layout
//! allows. [`ggml`] decodes rwkv.cpp's block-quantized formats. Every length in a file is checked
//! against the file before it is trusted, so a damaged or hostile file is an [`Error`] naming
//! the file and the tensor, never a panic.
#![deny(missing_docs)]

pub mod error;
pub mod ggml;
pub mod loader;
pub mod tensor;

pub use error::{Error, Result};
