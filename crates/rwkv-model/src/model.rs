//! The public model: load a checkpoint, check it is a generation we run, fingerprint it, and
//! run it on tokens in sequence mode or token by token.

use std::path::Path;

use crate::error::{Error, Result};
use crate::loader::load_tensors;
use crate::state::{State, StateSpec};
use crate::tensor::TensorMap;
use crate::v7::{Config, Logits, V7};

/// RWKV generations, told apart by their tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// RWKV-4: `att.time_decay`, no `ln_x`.
    V4,
    /// RWKV-5 (no gate) and 5.2 (gate): `ln_x` and `time_decay`, no `time_maa_*`.
    V5,
    /// RWKV-6: `time_maa_*`.
    V6,
    /// RWKV-7 (x070): `att.r_k`.
    V7,
}

impl Generation {
    /// Detect the generation from block 0's tensor names.
    pub fn detect(map: &TensorMap) -> Option<(Generation, &'static str)> {
        let has = |n: &str| map.contains(n);
        if has("blocks.0.att.r_k") {
            Some((Generation::V7, "blocks.0.att.r_k"))
        } else if has("blocks.0.att.time_maa_x") || has("blocks.0.att.time_maa_w1") {
            Some((Generation::V6, "blocks.0.att.time_maa_x"))
        } else if has("blocks.0.att.ln_x.weight") && has("blocks.0.att.time_decay") {
            Some((Generation::V5, "blocks.0.att.ln_x.weight"))
        } else if has("blocks.0.att.time_decay") {
            Some((Generation::V4, "blocks.0.att.time_decay"))
        } else {
            None
        }
    }

    /// Human name.
    pub fn name(self) -> &'static str {
        match self {
            Generation::V4 => "RWKV-4",
            Generation::V5 => "RWKV-5",
            Generation::V6 => "RWKV-6",
            Generation::V7 => "RWKV-7",
        }
    }
}

/// A loaded model, ready to run. Cheap to share across threads (`&Model` is all a forward
/// call needs; the state is the caller's).
#[derive(Debug)]
pub struct Model {
    v7: V7,
    fingerprint: String,
    chunk_len: usize,
}

/// Default number of tokens per sequence-mode chunk.
pub const DEFAULT_CHUNK_LEN: usize = 256;

impl Model {
    /// Load a `.pth` or `.safetensors` checkpoint.
    pub fn load(path: &Path) -> Result<Model> {
        let map = load_tensors(path)?;
        Self::from_tensors(&map)
    }

    /// Build a model from tensors already read.
    pub fn from_tensors(map: &TensorMap) -> Result<Model> {
        match Generation::detect(map) {
            Some((Generation::V7, _)) => {}
            Some((g, tensor)) => {
                return Err(Error::Generation {
                    path: map.path.clone(),
                    generation: g.name().into(),
                    tensor: tensor.into(),
                });
            }
            None => {
                if !map.contains("emb.weight") {
                    return Err(Error::format(
                        &map.path,
                        "no `emb.weight` tensor: not an RWKV checkpoint",
                    ));
                }
                return Err(Error::MissingTensor {
                    path: map.path.clone(),
                    tensor: "blocks.0.att.r_k".into(),
                });
            }
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"rwkv-reader model fingerprint v1\0x070\0");
        let v7 = V7::from_tensors(map, &mut hasher)?;
        let fingerprint = format!("x070-{}", &hasher.finalize().to_hex()[..32]);
        Ok(Model {
            v7,
            fingerprint,
            chunk_len: DEFAULT_CHUNK_LEN,
        })
    }

    /// Dimensions.
    pub fn config(&self) -> &Config {
        self.v7.config()
    }

    /// The generation (always RWKV-7 in this build).
    pub fn generation(&self) -> Generation {
        Generation::V7
    }

    /// Hash of the generation, tensor names, shapes and values: states carry it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Tokens per chunk in sequence mode.
    pub fn chunk_len(&self) -> usize {
        self.chunk_len
    }

    /// Set the tokens per chunk in sequence mode (at least 1). Results do not depend on it
    /// beyond float rounding.
    pub fn set_chunk_len(&mut self, t: usize) {
        self.chunk_len = t.max(1);
    }

    /// Keep bf16 copies of the projection matrices and use them when generating token by
    /// token (halves the memory read per token; exact for checkpoints stored in bf16).
    pub fn enable_bf16_generation(&mut self) {
        self.v7.enable_bf16();
    }

    /// What this model's states look like.
    pub fn state_spec(&self) -> StateSpec {
        let c = self.config();
        StateSpec {
            n_layer: c.n_layer,
            n_embd: c.n_embd,
            n_head: c.n_head,
            head_size: c.head_size,
            fingerprint: self.fingerprint.clone(),
        }
    }

    /// The zero state.
    pub fn new_state(&self) -> State {
        State::zeros(&self.state_spec())
    }

    fn check(&self, tokens: &[u32], state: &State) -> Result<()> {
        let vocab = self.config().vocab;
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::TokenOutOfRange { id, vocab });
        }
        let spec = self.state_spec();
        let ok = state.layers.len() == spec.n_layer
            && state.layers.iter().all(|l| {
                l.att_x.len() == spec.n_embd
                    && l.ffn_x.len() == spec.n_embd
                    && l.wkv.len() == spec.n_head * spec.head_size * spec.head_size
            });
        if !ok {
            return Err(Error::BadState {
                path: "<memory>".into(),
                reason: "state shape does not match the model".into(),
            });
        }
        Ok(())
    }

    /// Sequence mode: fold `tokens` into `state` in chunks; returns the logits asked for
    /// (`[vocab]` for [`Logits::Last`], `[T, vocab]` for [`Logits::All`], empty otherwise or
    /// when `tokens` is empty).
    pub fn forward_seq(&self, tokens: &[u32], state: &mut State, logits: Logits) -> Result<Vec<f32>> {
        self.check(tokens, state)?;
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.v7.forward(tokens, state, logits, self.chunk_len))
    }

    /// Token mode: one token, returns its logits.
    pub fn forward_token(&self, token: u32, state: &mut State) -> Result<Vec<f32>> {
        self.check(&[token], state)?;
        Ok(self.v7.forward(&[token], state, Logits::Last, 1))
    }
}
