//! The RWKV World tokenizer (placeholder, being written).

use super::Tokenizer;

/// The RWKV World tokenizer.
#[derive(Debug)]
pub struct WorldTokenizer;

impl Tokenizer for WorldTokenizer {
    fn id(&self) -> &str {
        "world"
    }
    fn vocab_size(&self) -> usize {
        65536
    }
    fn encode_bytes(&self, _bytes: &[u8]) -> Vec<u32> {
        Vec::new()
    }
    fn token_bytes(&self, _id: u32) -> Option<&[u8]> {
        None
    }
}
