//! The byte tokenizer: vocabulary 256, token id = byte value.

use super::Tokenizer;

/// Token id = byte value (the tiny and demo models use it).
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesTokenizer;

static BYTES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i as u8;
        i += 1;
    }
    t
};

impl Tokenizer for BytesTokenizer {
    fn id(&self) -> &str {
        "bytes"
    }
    fn vocab_size(&self) -> usize {
        256
    }
    fn encode_bytes(&self, bytes: &[u8]) -> Vec<u32> {
        bytes.iter().map(|&b| b as u32).collect()
    }
    fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        let i = id as usize;
        (i < 256).then(|| &BYTES[i..i + 1])
    }
}
