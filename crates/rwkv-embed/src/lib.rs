//! Sentence embeddings for retrieval.
//!
//! A question in words and the code that answers it often share no word: "how close a mistyped
//! word is" is answered by `editDistance`. A sentence encoder trained on pairs of text (and on
//! docstring–code pairs) puts both near each other. [`Embedder`] runs one: a BERT encoder as
//! sentence-transformers ships it (all-MiniLM-L6-v2: 6 layers, 384 wide, mean pooling, unit
//! length), with its WordPiece tokenizer ([`wordpiece`]), its products on the CPU kernels of
//! `rwkv-kernels`.
//!
//! The file is one safetensors file made by `scripts/make-embedder.py`: the encoder's tensors
//! (bf16) and, in the metadata, the vocabulary and settings.

mod bert;
mod error;
pub mod wordpiece;

pub use bert::{CACHE_ENTRIES, Embedder};
pub use error::{Error, Result};

/// Cosine similarity of two embeddings of unit length (their dot product).
pub fn similarity(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
