//! Byte-level BPE tokenizers in Hugging Face's `tokenizer.json` format, through the
//! `tokenizers` crate — above all GPT-NeoX-20B's (`20B_tokenizer.json`), which RWKV-4 Pile and
//! Raven models use.
//!
//! Encoding is the `tokenizers` crate's own (NFC normalization, the added space-run tokens,
//! GPT-2 pre-tokenization, BPE). Two things are added around it: input that is not UTF-8 is
//! encoded valid run by valid run, each invalid byte as its own byte token — so it survives a
//! round trip, except the bytes that never occur in UTF-8 (`C0`, `C1`, `F5`–`FF`), which
//! NeoX's vocabulary lacks and which become U+FFFD; and long input is encoded in pieces cut only after a newline
//! followed by an ASCII letter, digit or punctuation mark — where neither the normalizer, the
//! added tokens nor the pre-tokenizer can join across the cut — so memory stays bounded and the
//! ids are the same as encoding the whole.
//!
//! [`Tokenizer::token_bytes`] returns a token's raw bytes: vocabulary strings are written in
//! GPT-2's byte-to-character alphabet, which is mapped back here; added tokens that are not
//! special (the space runs) are their text; special tokens (`<|endoftext|>`, `<|padding|>`) have
//! no bytes.

use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use super::Tokenizer;
use crate::error::{Error, Result};

/// GPT-NeoX-20B's tokenizer, shipped with the crate (Apache-2.0).
static EMBEDDED_20B: &str = include_str!("../vocab/20B_tokenizer.json");

/// Pieces of valid UTF-8 longer than this are encoded in parts (see the module docs).
const PIECE: usize = 64 * 1024;

/// A byte-level BPE tokenizer from a `tokenizer.json`.
pub struct HfTokenizer {
    inner: tokenizers::Tokenizer,
    id: String,
    /// Bytes of token `id` are `data[offsets[id]..offsets[id + 1]]` when `has_bytes[id]`.
    offsets: Vec<u32>,
    data: Vec<u8>,
    has_bytes: Vec<bool>,
    /// The single-byte token of each byte value, where the vocabulary has one.
    byte_ids: Vec<Option<u32>>,
    /// The ids of U+FFFD, for bytes without a token.
    replacement: Vec<u32>,
    /// Whether long input may be cut into pieces (GPT-2 pre-tokenization without an added
    /// prefix space, as NeoX's; otherwise every piece would gain a leading space).
    piecewise: bool,
}

impl fmt::Debug for HfTokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HfTokenizer")
            .field("id", &self.id)
            .field("vocab_size", &self.has_bytes.len())
            .finish_non_exhaustive()
    }
}

/// GPT-2's byte ↔ character alphabet: printable Latin-1 bytes stand for themselves, the other
/// 68 bytes for U+0100 onwards, in byte order.
fn byte_alphabet() -> [char; 256] {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        table[b as usize] = if printable(b) {
            b as char
        } else {
            next += 1;
            // 256..=323 are all valid scalar values.
            char::from_u32(next - 1).unwrap_or('\u{FFFD}')
        };
    }
    table
}

impl HfTokenizer {
    /// GPT-NeoX-20B's tokenizer (vocabulary 50,277), id `"20b"`. Parses the embedded JSON (about
    /// a tenth of a second); prefer [`HfTokenizer::neox_20b_shared`].
    pub fn neox_20b() -> Result<Self> {
        Self::from_json("20b", EMBEDDED_20B.as_bytes())
    }

    /// A shared instance of [`HfTokenizer::neox_20b`], parsed on first use.
    pub fn neox_20b_shared() -> &'static HfTokenizer {
        static SHARED: OnceLock<HfTokenizer> = OnceLock::new();
        // The embedded file is part of the crate and covered by tests.
        SHARED.get_or_init(|| Self::neox_20b().expect("the embedded 20B tokenizer is valid"))
    }

    /// A `tokenizer.json` file; its id is `hf-` and the first 16 hex digits of the file's blake3
    /// hash, so states record exactly which tokenizer made them.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let id = format!("hf-{}", &blake3::hash(&bytes).to_hex()[..16]);
        Self::from_json(&id, &bytes).map_err(|e| match e {
            Error::Tokenizer { reason, .. } => Error::Tokenizer {
                name: path.display().to_string(),
                reason,
            },
            e => e,
        })
    }

    /// Parse `tokenizer.json` bytes; `id` is what [`Tokenizer::id`] reports.
    pub fn from_json(id: &str, json: &[u8]) -> Result<Self> {
        let bad = |reason: String| Error::Tokenizer {
            name: id.to_string(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| bad(format!("not a tokenizer.json: {e}")))?;
        if value["decoder"]["type"] != "ByteLevel" {
            return Err(bad(format!(
                "only byte-level BPE tokenizers are supported (decoder is {})",
                value["decoder"]["type"]
            )));
        }
        let pre = &value["pre_tokenizer"];
        let piecewise = pre["type"] == "ByteLevel" && pre["add_prefix_space"] == false;
        let inner = tokenizers::Tokenizer::from_bytes(json).map_err(|e| bad(e.to_string()))?;
        let vocab = inner.get_vocab(true);
        let n = vocab.values().map(|&i| i as usize + 1).max().unwrap_or(0);
        if n == 0 || n > 1 << 24 {
            return Err(bad(format!("vocabulary of {n} ids")));
        }
        let alphabet = byte_alphabet();
        let mut from_char = std::collections::HashMap::with_capacity(256);
        for (b, &c) in alphabet.iter().enumerate() {
            from_char.insert(c, b as u8);
        }
        let added = inner.get_added_tokens_decoder();
        let mut bytes_of: Vec<Option<Vec<u8>>> = vec![None; n];
        for (token, &tid) in &vocab {
            let b = match added.get(&tid) {
                Some(a) if a.special => None,
                Some(a) => Some(a.content.as_bytes().to_vec()),
                None => Some(
                    token
                        .chars()
                        .flat_map(|c| match from_char.get(&c) {
                            Some(&b) => vec![b],
                            // Not in the alphabet: keep the character's own UTF-8.
                            None => c.to_string().into_bytes(),
                        })
                        .collect(),
                ),
            };
            bytes_of[tid as usize] = b;
        }
        let byte_ids: Vec<Option<u32>> = alphabet.iter().map(|c| vocab.get(&c.to_string()).copied()).collect();
        // Every byte that occurs in UTF-8 text (all but C0, C1, F5–FF) must have a token.
        if (0..=255u8).any(|b| byte_ids[b as usize].is_none() && !matches!(b, 0xC0 | 0xC1 | 0xF5..=0xFF)) {
            return Err(bad("a single-byte token is missing from the vocabulary".into()));
        }
        let replacement = inner
            .encode("\u{FFFD}", false)
            .map_err(|e| bad(e.to_string()))?
            .get_ids()
            .to_vec();
        let mut offsets = Vec::with_capacity(n + 1);
        let mut data = Vec::new();
        offsets.push(0);
        for b in &bytes_of {
            data.extend_from_slice(b.as_deref().unwrap_or_default());
            offsets.push(data.len() as u32);
        }
        Ok(HfTokenizer {
            inner,
            id: id.to_string(),
            offsets,
            data,
            has_bytes: bytes_of.iter().map(Option::is_some).collect(),
            byte_ids,
            replacement,
            piecewise,
        })
    }

    /// The `tokenizers` crate's tokenizer underneath.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    fn encode_str(&self, text: &str, out: &mut Vec<u32>) {
        let mut rest = text;
        while !rest.is_empty() {
            let cut = if self.piecewise {
                cut_point(rest.as_bytes())
            } else {
                rest.len()
            };
            let (piece, tail) = rest.split_at(cut);
            match self.inner.encode(piece, false) {
                Ok(enc) => out.extend_from_slice(enc.get_ids()),
                // Byte-level BPE has no failure mode for valid text; never lose input anyway.
                Err(_) => self.push_raw(piece.as_bytes(), out),
            }
            rest = tail;
        }
    }
}

impl HfTokenizer {
    /// Bytes outside valid UTF-8, one token each (U+FFFD for those without a token).
    fn push_raw(&self, bytes: &[u8], out: &mut Vec<u32>) {
        for &b in bytes {
            match self.byte_ids[b as usize] {
                Some(id) => out.push(id),
                None => out.extend_from_slice(&self.replacement),
            }
        }
    }
}

/// Where to end the next piece of `s`: its length if short, else just after a newline that is
/// followed by an ASCII letter, digit or punctuation mark, at or past [`PIECE`] bytes.
fn cut_point(s: &[u8]) -> usize {
    if s.len() <= PIECE {
        return s.len();
    }
    (PIECE..s.len())
        .find(|&i| s[i - 1] == b'\n' && s[i].is_ascii_graphic())
        .unwrap_or(s.len())
}

impl Tokenizer for HfTokenizer {
    fn id(&self) -> &str {
        &self.id
    }

    fn vocab_size(&self) -> usize {
        self.has_bytes.len()
    }

    fn encode_bytes(&self, bytes: &[u8]) -> Vec<u32> {
        let mut out = Vec::with_capacity(bytes.len() / 3);
        let mut rest = bytes;
        while !rest.is_empty() {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    self.encode_str(s, &mut out);
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // `valid_up_to` marks a valid prefix.
                    self.encode_str(std::str::from_utf8(valid).unwrap_or_default(), &mut out);
                    let bad = e.error_len().unwrap_or(after.len());
                    self.push_raw(&after[..bad], &mut out);
                    rest = &after[bad..];
                }
            }
        }
        out
    }

    fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        let i = id as usize;
        if !*self.has_bytes.get(i)? {
            return None;
        }
        Some(&self.data[self.offsets[i] as usize..self.offsets[i + 1] as usize])
    }
}
