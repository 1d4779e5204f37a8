//! Tokenizers behind one trait, and a streaming decoder that never splits a UTF-8 character.
//!
//! RWKV vocabularies are byte-level: every token is a byte string, and a character may be spread
//! over several tokens. [`StreamDecoder`] therefore holds back incomplete UTF-8 until the token
//! that completes it arrives.
#![deny(missing_docs)]

mod bytes;
pub mod error;
mod neox;
mod world;

pub use bytes::BytesTokenizer;
pub use error::{Error, Result};
pub use neox::HfTokenizer;
pub use world::WorldTokenizer;

/// A tokenizer: text (as bytes) to token ids and back.
pub trait Tokenizer: Send + Sync {
    /// A short stable name saved in state files and stores (`"bytes"`, `"world"`, `"20b"`).
    fn id(&self) -> &str;
    /// Number of token ids (the model's vocabulary may be larger, e.g. padded to 65536).
    fn vocab_size(&self) -> usize;
    /// Token ids for `bytes`.
    fn encode_bytes(&self, bytes: &[u8]) -> Vec<u32>;
    /// The bytes of one token, or `None` for an id without bytes (e.g. the World end token 0).
    fn token_bytes(&self, id: u32) -> Option<&[u8]>;

    /// Token ids for `text`.
    fn encode(&self, text: &str) -> Vec<u32> {
        self.encode_bytes(text.as_bytes())
    }
    /// The bytes of a token sequence; ids without bytes contribute nothing.
    fn decode_bytes(&self, ids: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        for &id in ids {
            if let Some(b) = self.token_bytes(id) {
                out.extend_from_slice(b);
            }
        }
        out
    }
    /// The text of a token sequence (invalid UTF-8 becomes U+FFFD).
    fn decode(&self, ids: &[u32]) -> String {
        String::from_utf8_lossy(&self.decode_bytes(ids)).into_owned()
    }
}

/// The tokenizers that ship with the crate, as a checkpoint or a user names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnownTokenizer {
    /// Token id = byte value (vocabulary 256).
    Bytes,
    /// The RWKV World tokenizer (vocabulary 65,536): RWKV-5 and later World models.
    World,
    /// GPT-NeoX-20B's BPE (vocabulary 50,277): RWKV-4 Pile and Raven models.
    Neox20B,
}

impl KnownTokenizer {
    /// `bytes`, `world` or `20b` (also `neox`, `gpt-neox-20b`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "bytes" => Some(Self::Bytes),
            "world" => Some(Self::World),
            "20b" | "neox" | "gpt-neox-20b" => Some(Self::Neox20B),
            _ => None,
        }
    }

    /// The tokenizer a checkpoint was trained with: from its metadata when it says (a
    /// `tokenizer` or `vocab` entry naming bytes, world / `rwkv_vocab…`, or 20b / neox), else from
    /// its vocabulary size (256 bytes; 50,277 or the padded 50,304 → 20B; 65,525–65,536 → World).
    pub fn for_model(vocab: usize, metadata: &std::collections::BTreeMap<String, String>) -> Option<Self> {
        for key in ["tokenizer", "vocab"] {
            let Some(v) = metadata.get(key) else { continue };
            let v = v.to_ascii_lowercase();
            if v.contains("world") || v.contains("rwkv_vocab") {
                return Some(Self::World);
            }
            if v.contains("20b") || v.contains("neox") {
                return Some(Self::Neox20B);
            }
            if v.starts_with("bytes") {
                return Some(Self::Bytes);
            }
        }
        match vocab {
            256 => Some(Self::Bytes),
            50277 | 50304 => Some(Self::Neox20B),
            65525..=65536 => Some(Self::World),
            _ => None,
        }
    }

    /// Build it.
    pub fn load(self) -> crate::Result<std::sync::Arc<dyn Tokenizer>> {
        Ok(match self {
            Self::Bytes => std::sync::Arc::new(BytesTokenizer),
            Self::World => std::sync::Arc::new(WorldTokenizer::new()?),
            Self::Neox20B => std::sync::Arc::new(HfTokenizer::neox_20b()?),
        })
    }
}

/// Turns a stream of tokens into text, one piece per token, never emitting half a character.
///
/// A token that ends inside a UTF-8 sequence yields `""` until a later token completes it. Bytes
/// that can never become valid UTF-8 are emitted as U+FFFD as soon as that is certain.
#[derive(Debug, Default, Clone)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    /// A decoder with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one token; returns the text it completes (possibly empty).
    pub fn push(&mut self, tokenizer: &dyn Tokenizer, id: u32) -> String {
        if let Some(b) = tokenizer.token_bytes(id) {
            self.pending.extend_from_slice(b);
        }
        self.take_complete()
    }

    /// Feed raw bytes; returns the text they complete.
    pub fn push_bytes(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        self.take_complete()
    }

    /// Whatever is still pending, decoded lossily; the decoder is empty afterwards.
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }

    fn take_complete(&mut self) -> String {
        let mut out = String::new();
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // SAFETY-free: from_utf8 just told us this prefix is valid.
                    out.push_str(std::str::from_utf8(&self.pending[start..start + valid]).unwrap_or_default());
                    start += valid;
                    match e.error_len() {
                        // Invalid bytes: they can never complete, emit a replacement.
                        Some(n) => {
                            out.push('\u{FFFD}');
                            start += n;
                        }
                        // Incomplete sequence at the end: wait for more.
                        None => break,
                    }
                }
            }
        }
        self.pending.drain(..start);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_decoder_holds_back_split_characters() {
        let t = BytesTokenizer;
        let text = "a€😀b";
        let mut d = StreamDecoder::new();
        let mut pieces = Vec::new();
        for &b in text.as_bytes() {
            pieces.push(d.push(&t, b as u32));
        }
        assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')));
        assert_eq!(pieces.concat(), text);
        // '€' is 3 bytes: the first two yield nothing.
        assert_eq!(pieces[1], "");
        assert_eq!(pieces[2], "");
        assert_eq!(pieces[3], "€");
        assert_eq!(d.finish(), "");
    }

    #[test]
    fn stream_decoder_replaces_invalid_bytes_once_certain() {
        let mut d = StreamDecoder::new();
        assert_eq!(d.push_bytes(&[b'x', 0xFF, b'y']), "x\u{FFFD}y");
        assert_eq!(d.push_bytes(&[0xE2, 0x82]), "");
        assert_eq!(d.finish(), "\u{FFFD}");
    }
}
