//! Recurrent state: what a model has folded so far, in a fixed size however long the input.
//!
//! A [`State`] is plain f32 buffers per layer (the WKV state stays f32 whatever the weights
//! are). It is saved as safetensors with metadata naming the format version, the generation, the
//! model fingerprint, the tokenizer and the number of tokens consumed; loading checks all of
//! them, so a state can never be resumed on a model it was not made with.
//!
//! Every generation has the same three buffers per layer; only the WKV buffer's shape differs:
//! `[H, N, N]` for RWKV-5, 6 and 7 (each in its official index order) and `[3, C]` for RWKV-4
//! (`aa`, `bb`, `pp`). Files keep format version 1: RWKV-7 files are laid out as before, and the
//! metadata adds `generation` and `wkv_shape` (a file without `generation` is RWKV-7).
//!
//! A state is stored at a [`StatePrecision`]: `f32` (exact, every tensor `F32`) or `bf16` (each
//! float rounded to nearest bf16, ties to even: half the bytes, every tensor `BF16`). A bf16
//! file says so twice: metadata `state_precision = "bf16"` and the tensors' dtype, and reading
//! checks the two agree (a file without the key is f32, as every file written before it was);
//! reading widens bf16 to f32 exactly, so the loaded [`State`] is always f32.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::linalg::{bf16_to_f32, f32_to_bf16};
use crate::types::Generation;

/// The initial `pp` of every channel (official: `-1e30`).
pub const PP_INIT: f32 = -1e30;

/// The format written in state files' `format` metadata.
pub const STATE_FORMAT: &str = "rwkv-reader-state";
/// Metadata key holding the blake3 of a state file's tensor data.
pub const DATA_CHECKSUM_KEY: &str = "data_blake3";
/// The current state file version.
pub const STATE_FORMAT_VERSION: u32 = 1;

/// Metadata key naming the precision of a state file's tensors (absent: `f32`).
pub const STATE_PRECISION_KEY: &str = "state_precision";

/// How a state's floats are stored in a file; in memory a state is always f32.
///
/// The default, for checkpoint blobs, is bf16: resuming from a bf16 state changed the bits per
/// token of the next 256 tokens by less than 0.001 on the demo model and every tiny fixture
/// (RWKV-4 to 7; the table is in docs/guide.md, made by `examples/state_precision.rs`), for half
/// the bytes. Files written with [`State::save`] / [`State::to_bytes_with`] stay f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatePrecision {
    /// Every float as is: resuming is exact.
    F32,
    /// Every float rounded to bf16 (nearest, ties to even): half the bytes.
    #[default]
    Bf16,
}

impl StatePrecision {
    /// Bytes one stored float takes.
    pub fn bytes_per_value(self) -> usize {
        match self {
            StatePrecision::F32 => 4,
            StatePrecision::Bf16 => 2,
        }
    }

    fn dtype(self) -> Dtype {
        match self {
            StatePrecision::F32 => Dtype::F32,
            StatePrecision::Bf16 => Dtype::BF16,
        }
    }
}

named_options!(StatePrecision, "state precision", "f32 or bf16", {
    F32 => "f32",
    Bf16 => "bf16",
});

/// One layer's state.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerState {
    /// Time-mix token shift: the previous token's normalised input, `[C]`.
    pub att_x: Vec<f32>,
    /// The WKV state, [`StateSpec::wkv_shape`]: for RWKV-7 `[H, N, N]` with row = value index,
    /// column = key index; for RWKV-5/6 `[H, N, N]` with row = key index, column = value index
    /// (each generation's official layout); for RWKV-4 `[3, C]` holding `aa`, `bb`, `pp`.
    pub wkv: Vec<f32>,
    /// Channel-mix token shift, `[C]`.
    pub ffn_x: Vec<f32>,
}

/// The shapes a model's state has, plus what identifies the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSpec {
    /// The generation of the model.
    pub generation: Generation,
    /// Layers.
    pub n_layer: usize,
    /// Width `C`.
    pub n_embd: usize,
    /// Heads `H`.
    pub n_head: usize,
    /// Head size `N`.
    pub head_size: usize,
    /// Shape of each layer's WKV buffer.
    pub wkv_shape: Vec<usize>,
    /// The model fingerprint states must carry.
    pub fingerprint: String,
}

impl StateSpec {
    /// Elements of each layer's WKV buffer.
    pub fn wkv_len(&self) -> usize {
        self.wkv_shape.iter().product()
    }

    /// Floats in a whole state (every layer's three buffers).
    pub fn values(&self) -> usize {
        self.n_layer * (2 * self.n_embd + self.wkv_len())
    }

    /// Bytes of tensor data a state file of this model holds at `precision` (the header, a
    /// few hundred bytes, not counted).
    pub fn stored_bytes(&self, precision: StatePrecision) -> usize {
        self.values() * precision.bytes_per_value()
    }
}

/// A model's recurrent state after some tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// Per-layer buffers.
    pub layers: Vec<LayerState>,
    /// Tokens folded into this state since the zero state.
    pub tokens: u64,
}

/// What a state file says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateInfo {
    /// Model fingerprint.
    pub fingerprint: String,
    /// Tokenizer id.
    pub tokenizer: String,
    /// Tokens consumed.
    pub tokens: u64,
    /// How the file stores its floats.
    pub precision: StatePrecision,
    /// File format version.
    pub format_version: u32,
    /// blake3 of the tensor data, when the file records it.
    pub data_checksum: Option<String>,
    /// Every metadata entry of the file (including the ones above).
    pub metadata: BTreeMap<String, String>,
    /// The generation of the model (RWKV-7 for files written before the metadata said).
    pub generation: Generation,
}

impl State {
    /// The zero state for `spec`.
    /// RWKV-4's `pp` starts at −1e30 (as in the official package and rwkv.cpp), all else at 0.
    pub fn zeros(spec: &StateSpec) -> Self {
        let c = spec.n_embd;
        let wkv = match spec.generation {
            Generation::V4 => {
                let mut w = vec![0.0; spec.wkv_len()];
                let pp = (2 * c).min(w.len());
                w[pp..].iter_mut().for_each(|x| *x = PP_INIT);
                w
            }
            _ => vec![0.0; spec.wkv_len()],
        };
        State {
            layers: (0..spec.n_layer)
                .map(|_| LayerState {
                    att_x: vec![0.0; c],
                    wkv: wkv.clone(),
                    ffn_x: vec![0.0; c],
                })
                .collect(),
            tokens: 0,
        }
    }

    /// Largest absolute difference between two states of the same shape (`inf` if shapes differ).
    pub fn max_abs_diff(&self, other: &State) -> f32 {
        if self.layers.len() != other.layers.len() {
            return f32::INFINITY;
        }
        let mut m = 0f32;
        for (a, b) in self.layers.iter().zip(&other.layers) {
            for (x, y) in [(&a.att_x, &b.att_x), (&a.wkv, &b.wkv), (&a.ffn_x, &b.ffn_x)] {
                if x.len() != y.len() {
                    return f32::INFINITY;
                }
                for (p, q) in x.iter().zip(y.iter()) {
                    m = m.max((p - q).abs());
                }
            }
        }
        m
    }

    /// Bit-exact equality (NaN-safe: compares bits).
    pub fn bit_eq(&self, other: &State) -> bool {
        let bits = |v: &Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        self.tokens == other.tokens
            && self.layers.len() == other.layers.len()
            && self.layers.iter().zip(&other.layers).all(|(a, b)| {
                bits(&a.att_x) == bits(&b.att_x) && bits(&a.wkv) == bits(&b.wkv) && bits(&a.ffn_x) == bits(&b.ffn_x)
            })
    }

    /// The state as a file at `precision` gives it back: itself for f32, every float rounded
    /// to bf16 (nearest, ties to even) and widened again for bf16.
    pub fn stored_as(&self, precision: StatePrecision) -> State {
        let mut s = self.clone();
        if precision == StatePrecision::Bf16 {
            for l in &mut s.layers {
                for v in [&mut l.att_x, &mut l.wkv, &mut l.ffn_x] {
                    v.iter_mut().for_each(|x| *x = bf16_to_f32(f32_to_bf16(*x)));
                }
            }
        }
        s
    }

    /// Size of the state in bytes of f32 data.
    pub fn byte_len(&self) -> usize {
        self.layers
            .iter()
            .map(|l| 4 * (l.att_x.len() + l.wkv.len() + l.ffn_x.len()))
            .sum()
    }

    /// Serialize as safetensors bytes with metadata.
    pub fn to_bytes(&self, spec: &StateSpec, tokenizer: &str) -> Vec<u8> {
        self.to_bytes_with(spec, tokenizer, &[])
    }

    /// Like [`State::to_bytes`], with extra string metadata (e.g. where in a document the
    /// state was taken). Extra keys never override the state's own keys.
    pub fn to_bytes_with(&self, spec: &StateSpec, tokenizer: &str, extra: &[(String, String)]) -> Vec<u8> {
        self.to_bytes_as(spec, tokenizer, extra, StatePrecision::F32)
    }

    /// Like [`State::to_bytes_with`], storing the floats at `precision`. An f32 file is byte for
    /// byte what files were before precisions existed (no `state_precision` key); a bf16 file
    /// adds `state_precision = "bf16"` and `BF16` tensors.
    pub fn to_bytes_as(
        &self,
        spec: &StateSpec,
        tokenizer: &str,
        extra: &[(String, String)],
        precision: StatePrecision,
    ) -> Vec<u8> {
        let mut tensors: Vec<(String, Vec<usize>, &[f32])> = Vec::with_capacity(self.layers.len() * 3);
        for (i, l) in self.layers.iter().enumerate() {
            tensors.push((format!("blocks.{i}.att_x_prev"), vec![l.att_x.len()], &l.att_x));
            tensors.push((format!("blocks.{i}.att_kv"), spec.wkv_shape.clone(), &l.wkv));
            tensors.push((format!("blocks.{i}.ffn_x_prev"), vec![l.ffn_x.len()], &l.ffn_x));
        }
        let width = precision.bytes_per_value();
        let mut data = Vec::with_capacity(self.byte_len() / 4 * width);
        for (_, _, v) in &tensors {
            match precision {
                StatePrecision::F32 => data.extend(v.iter().flat_map(|x| x.to_le_bytes())),
                StatePrecision::Bf16 => data.extend(v.iter().flat_map(|x| f32_to_bf16(*x).to_le_bytes())),
            }
        }
        let mut meta: BTreeMap<String, String> = [
            ("format", STATE_FORMAT.to_string()),
            ("format_version", STATE_FORMAT_VERSION.to_string()),
            ("model", spec.fingerprint.clone()),
            ("tokenizer", tokenizer.to_string()),
            ("tokens", self.tokens.to_string()),
            ("n_layer", spec.n_layer.to_string()),
            ("n_embd", spec.n_embd.to_string()),
            ("n_head", spec.n_head.to_string()),
            ("head_size", spec.head_size.to_string()),
            (DATA_CHECKSUM_KEY, blake3::hash(&data).to_hex().to_string()),
            ("generation", spec.generation.key().to_string()),
            (
                "wkv_shape",
                spec.wkv_shape
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if precision != StatePrecision::F32 {
            meta.insert(STATE_PRECISION_KEY.to_string(), precision.to_string());
        }
        for (k, v) in extra {
            meta.entry(k.clone()).or_insert_with(|| v.clone());
        }
        // The safetensors layout, written by hand so the bytes are deterministic (the
        // safetensors crate orders metadata by hash map): u64 header length, a JSON header with
        // `__metadata__` first (sorted keys) and the tensors in file order, padded with spaces
        // to a multiple of 8, then the data.
        let js = |x: &str| serde_json::to_string(x).unwrap_or_else(|_| "\"\"".into());
        let mut header = String::from("{\"__metadata__\":{");
        for (i, (k, v)) in meta.iter().enumerate() {
            if i > 0 {
                header.push(',');
            }
            header.push_str(&format!("{}:{}", js(k), js(v)));
        }
        header.push('}');
        let mut offset = 0usize;
        for (name, shape, v) in &tensors {
            let end = offset + v.len() * width;
            let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            let dtype = match precision {
                StatePrecision::F32 => "F32",
                StatePrecision::Bf16 => "BF16",
            };
            header.push_str(&format!(
                ",{}:{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
                js(name),
                dims.join(",")
            ));
            offset = end;
        }
        header.push('}');
        while (header.len() + 8) % 8 != 0 {
            header.push(' ');
        }
        let mut out = Vec::with_capacity(8 + header.len() + data.len());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&data);
        out
    }

    /// Read only the metadata of a state file's bytes.
    pub fn read_info(path: &Path, bytes: &[u8]) -> Result<StateInfo> {
        let bad = |reason: String| Error::BadState {
            path: path.to_path_buf(),
            reason,
        };
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a safetensors state: {e}")))?;
        let md = meta.metadata().clone().unwrap_or_default();
        let get = |k: &str| md.get(k).cloned().ok_or_else(|| bad(format!("metadata `{k}` missing")));
        if get("format")? != STATE_FORMAT {
            return Err(bad("not an rwkv-reader state (metadata `format`)".into()));
        }
        let format_version: u32 = get("format_version")?
            .parse()
            .map_err(|_| bad("bad `format_version`".into()))?;
        if format_version != STATE_FORMAT_VERSION {
            return Err(bad(format!(
                "state format version {format_version}, this build reads {STATE_FORMAT_VERSION}"
            )));
        }
        let generation = match md.get("generation") {
            None => Generation::V7,
            Some(g) => Generation::from_key(g).ok_or_else(|| bad(format!("unknown generation `{g}`")))?,
        };
        let precision = match md.get(STATE_PRECISION_KEY) {
            None => StatePrecision::F32,
            Some(p) => p
                .parse()
                .map_err(|e: String| bad(format!("metadata `{STATE_PRECISION_KEY}`: {e}")))?,
        };
        Ok(StateInfo {
            generation,
            precision,
            fingerprint: get("model")?,
            tokenizer: get("tokenizer")?,
            tokens: get("tokens")?.parse().map_err(|_| bad("bad `tokens`".into()))?,
            format_version,
            data_checksum: md.get(DATA_CHECKSUM_KEY).cloned(),
            metadata: md.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        })
    }

    /// Parse state bytes saved by [`State::to_bytes`], checking they belong to `spec`'s model
    /// (and to `tokenizer`, when given). `path` names the source in errors.
    pub fn from_bytes(
        path: &Path,
        bytes: &[u8],
        spec: &StateSpec,
        tokenizer: Option<&str>,
    ) -> Result<(State, StateInfo)> {
        let info = Self::read_info(path, bytes)?;
        if info.fingerprint != spec.fingerprint {
            return Err(Error::StateMismatch {
                path: path.to_path_buf(),
                found: info.fingerprint,
                expected: spec.fingerprint.clone(),
            });
        }
        let bad = |reason: String| Error::BadState {
            path: path.to_path_buf(),
            reason,
        };
        if info.generation != spec.generation {
            return Err(bad(format!(
                "state is for an {} model, not {}",
                info.generation.name(),
                spec.generation.name()
            )));
        }
        if let Some(t) = tokenizer
            && t != info.tokenizer
        {
            return Err(bad(format!(
                "state was made with tokenizer `{}`, not `{t}`",
                info.tokenizer
            )));
        }
        let st = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("damaged state: {e}")))?;
        if let Some(want) = &info.data_checksum {
            let (n, _) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("damaged state: {e}")))?;
            let data = bytes.get(8 + n..).unwrap_or_default();
            if blake3::hash(data).to_hex().as_str() != want {
                return Err(bad("tensor data does not match its checksum (damaged file)".into()));
            }
        }
        let mut state = State::zeros(spec);
        state.tokens = info.tokens;
        for (i, l) in state.layers.iter_mut().enumerate() {
            for (name, buf) in [
                ("att_x_prev", &mut l.att_x),
                ("att_kv", &mut l.wkv),
                ("ffn_x_prev", &mut l.ffn_x),
            ] {
                let key = format!("blocks.{i}.{name}");
                let t = st.tensor(&key).map_err(|_| bad(format!("tensor `{key}` missing")))?;
                let p = info.precision;
                if t.dtype() != p.dtype() || t.data().len() != buf.len() * p.bytes_per_value() {
                    return Err(bad(format!(
                        "tensor `{key}` has dtype {:?} and shape {:?} (the file says its state is {p})",
                        t.dtype(),
                        t.shape()
                    )));
                }
                match p {
                    StatePrecision::F32 => {
                        for (dst, b) in buf.iter_mut().zip(t.data().chunks_exact(4)) {
                            *dst = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                        }
                    }
                    StatePrecision::Bf16 => {
                        for (dst, b) in buf.iter_mut().zip(t.data().chunks_exact(2)) {
                            *dst = bf16_to_f32(u16::from_le_bytes([b[0], b[1]]));
                        }
                    }
                }
            }
        }
        if st.len() != spec.n_layer * 3 {
            return Err(bad(format!(
                "{} tensors, the model's state has {}",
                st.len(),
                spec.n_layer * 3
            )));
        }
        Ok((state, info))
    }

    /// Save to `path` atomically (write a temporary file beside it, fsync, rename).
    pub fn save(&self, path: &Path, spec: &StateSpec, tokenizer: &str) -> Result<()> {
        use std::io::Write;
        let bytes = self.to_bytes(spec, tokenizer);
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(path, e)
        })
    }

    /// Load from `path`, checking it belongs to `spec`'s model.
    pub fn load(path: &Path, spec: &StateSpec, tokenizer: Option<&str>) -> Result<(State, StateInfo)> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(path, &bytes, spec, tokenizer)
    }
}
/// One lane of a batched fold ([`crate::Model::forward_lanes`]): a document's next tokens and
/// the state they are folded into.
#[derive(Debug)]
pub struct Lane<'a> {
    /// The tokens to fold (may be empty: the lane sits this call out).
    pub tokens: &'a [u32],
    /// The lane's own state, advanced by `tokens`.
    pub state: &'a mut State,
}
