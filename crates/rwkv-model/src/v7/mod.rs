//! RWKV-7 ("Goose", x070): weights in the official layout and the forward pass.
//!
//! One code path serves both modes: a chunk of `T` tokens runs every projection as a `T`-row
//! matrix product and only the WKV recurrence token by token (per head, in place, over
//! contiguous f32 buffers); generation is the same path with `T = 1`, where the projections
//! become mat-vecs. So sequence mode and token mode differ only in float rounding.
//!
//! Formulas follow the official `rwkv` package (0.8.32, `RWKV_x070`): token shift mixes,
//! LoRAs for decay `w`, in-context learning rate `a`, value residual `v` and gate `g`;
//! `w = exp(-0.606531 · σ(w0 + lora_w))`; the state update
//! `S ← S·diag(w) + (S·(−k̂)) ⊗ (k̂·a) + v ⊗ k`; group norm with eps 64e-5.

use rayon::prelude::*;

use crate::error::{Error, Result};
mod kernels;
/// The CUDA WKV kernel's source and its CPU reference.
pub(crate) mod wkv_ref;

use crate::blocks::WeightReader;
use crate::gemm_bf16::round_into;
use crate::kernels::{add_into, relu_sq, sigmoid_inplace, tanh_inplace};
use crate::linalg::{
    Kind, Mat, Source, layer_norm_rows, linear_decode, linear_fold, linear_rounded, linear_rounded_relu_sq,
};
use crate::state::{LayerState, State};
use crate::tensor::{DType, RawTensor, TensorMap};
pub use crate::types::Logits;
use kernels::{HeadOut, WkvInputs, shift_mix, shift_mix_words, wkv_head};

/// Dimensions of an RWKV-7 model, all inferred from tensor shapes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Config {
    /// Vocabulary size (rows of `emb.weight`).
    pub vocab: usize,
    /// Width `C`.
    pub n_embd: usize,
    /// Number of blocks.
    pub n_layer: usize,
    /// Heads `H`.
    pub n_head: usize,
    /// Head size `N` (`H · N = C`).
    pub head_size: usize,
    /// Decay LoRA rank.
    pub d_decay: usize,
    /// In-context learning rate LoRA rank.
    pub d_aaa: usize,
    /// Value-residual LoRA rank (0 for a one-layer model).
    pub d_mv: usize,
    /// Gate LoRA rank.
    pub d_gate: usize,
    /// Channel-mix hidden width.
    pub d_ffn: usize,
}

impl Config {
    /// The dimensions every backend reports for this model.
    pub(crate) fn info(&self) -> crate::types::ModelInfo {
        crate::types::ModelInfo {
            generation: crate::types::Generation::V7,
            arch: "x070",
            vocab: self.vocab,
            n_embd: self.n_embd,
            n_layer: self.n_layer,
            n_head: self.n_head,
            head_size: self.head_size,
            d_ffn: self.d_ffn,
            group_norm_eps: Some(64e-5),
        }
    }

    /// The shape of one layer's WKV state, `[H, N, N]`.
    pub(crate) fn wkv_shape(&self) -> Vec<usize> {
        vec![self.n_head, self.head_size, self.head_size]
    }
}

#[derive(Debug)]
struct Layer {
    ln1_w: Vec<f32>,
    ln1_b: Vec<f32>,
    ln2_w: Vec<f32>,
    ln2_b: Vec<f32>,
    /// Shift mixes for r, w, k, v, a, g.
    mix: [Vec<f32>; 6],
    w0: Vec<f32>,
    a0: Vec<f32>,
    k_k: Vec<f32>,
    k_a: Vec<f32>,
    r_k: Vec<f32>,
    w1: Mat,
    w2: Mat,
    a1: Mat,
    a2: Mat,
    /// Value residual (absent in layer 0): v0, v1, v2.
    vres: Option<(Vec<f32>, Mat, Mat)>,
    g1: Mat,
    g2: Mat,
    wr: Mat,
    wk: Mat,
    wv: Mat,
    wo: Mat,
    lnx_w: Vec<f32>,
    lnx_b: Vec<f32>,
    ffn_mix: Vec<f32>,
    ffn_key: Mat,
    ffn_value: Mat,
}

/// The embedding table.
#[derive(Debug)]
enum Emb {
    /// f32 rows with `blocks.0.ln0` already applied (as the official package does).
    Normed(Vec<f32>),
    /// 16-bit rows as stored (or rounded to bf16), normalized by `ln0` when looked up: the same
    /// f32 layer norm of the same widened row, so the same values.
    Raw16 {
        /// `[vocab, C]` little-endian 16-bit values: the checkpoint's own bytes (its mapped
        /// pages) when it stores them in `kind`, else a converted copy.
        bits: crate::tensor::Bytes,
        /// bf16 or f16.
        kind: Kind,
    },
}

impl Emb {
    fn new(t: &RawTensor, vocab: usize, c: usize, weights: crate::Weights, ln0_w: &[f32], ln0_b: &[f32]) -> Emb {
        // An embedding of ggml blocks (rwkv.cpp never writes one) is looked up decoded.
        let decoded: Vec<u8>;
        let (bytes, dtype) = match t.dtype {
            DType::Ggml(q) => {
                let mut v = Vec::with_capacity(vocab * c);
                q.dequantize(&t.data, &mut v);
                decoded = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                (&decoded[..], DType::F32)
            }
            d => (&t.data[..], d),
        };
        let src = Source {
            bytes,
            dtype,
            n: vocab,
            k: c,
            input_major: false,
        };
        let kind = match weights.hold(dtype, false) {
            None => {
                let mut raw = vec![0f32; vocab * c];
                raw.par_chunks_mut(c).enumerate().for_each(|(o, row)| {
                    for (i, v) in row.iter_mut().enumerate() {
                        *v = src.get(o, i);
                    }
                });
                let mut emb = vec![0f32; vocab * c];
                layer_norm_rows(&raw, c, ln0_w, ln0_b, &mut emb);
                return Emb::Normed(emb);
            }
            Some(Kind::F16) => Kind::F16,
            Some(Kind::I8) if dtype == DType::F16 => Kind::F16,
            Some(_) => Kind::Bf16,
        };
        if matches!((dtype, kind), (DType::BF16, Kind::Bf16) | (DType::F16, Kind::F16)) {
            return Emb::Raw16 {
                bits: t.data.clone(),
                kind,
            };
        }
        let mut bits = vec![0u8; vocab * c * 2];
        bits.par_chunks_mut(2 * c).enumerate().for_each(|(o, row)| {
            for (i, v) in row.chunks_exact_mut(2).enumerate() {
                v.copy_from_slice(&src.half_bits(o, i, kind).to_le_bytes());
            }
        });
        Emb::Raw16 {
            bits: bits.into(),
            kind,
        }
    }
}

/// An RWKV-7 model's weights: matrices held as loaded ([`crate::Weights`]), vectors as f32.
#[derive(Debug)]
pub struct V7 {
    cfg: Config,
    emb: Emb,
    ln0_w: Vec<f32>,
    ln0_b: Vec<f32>,
    layers: Vec<Layer>,
    ln_out_w: Vec<f32>,
    ln_out_b: Vec<f32>,
    head: Mat,
    /// Chunk buffers of finished forward calls, reused by the next ones (no allocation, no
    /// page faults per call: generation calls `forward` once per token).
    pool: std::sync::Mutex<Vec<Scratch>>,
}

/// Most idle chunk buffers kept per model (one per concurrent caller is what helps).
const POOL_MAX: usize = 4;

fn dims(map: &TensorMap, name: &str, rank: usize) -> Result<Vec<usize>> {
    let t = map.get(name)?;
    if t.shape.len() != rank {
        return Err(Error::File(rwkv_formats::Error::Shape {
            path: map.path.clone(),
            tensor: name.to_string(),
            found: t.shape.clone(),
            expected: vec![0; rank],
        }));
    }
    Ok(t.shape.clone())
}

impl V7 {
    /// Infer the dimensions of an x070 checkpoint from its tensor shapes.
    pub fn config_of(map: &TensorMap) -> Result<Config> {
        let emb = dims(map, "emb.weight", 2)?;
        let (vocab, n_embd) = (emb[0], emb[1]);
        let mut n_layer = 0;
        while map.contains(&format!("blocks.{n_layer}.att.r_k")) {
            n_layer += 1;
        }
        if n_layer == 0 {
            return Err(Error::File(rwkv_formats::Error::MissingTensor {
                path: map.path.clone(),
                tensor: "blocks.0.att.r_k".into(),
            }));
        }
        let rk = map.get("blocks.0.att.r_k")?;
        let (n_head, head_size) = match rk.shape.as_slice() {
            [h, n] => (*h, *n),
            _ => {
                return Err(Error::File(rwkv_formats::Error::Shape {
                    path: map.path.clone(),
                    tensor: "blocks.0.att.r_k".into(),
                    found: rk.shape.clone(),
                    expected: vec![n_embd / 64, 64],
                }));
            }
        };
        if n_head * head_size != n_embd || n_head == 0 {
            return Err(Error::File(rwkv_formats::Error::Shape {
                path: map.path.clone(),
                tensor: "blocks.0.att.r_k".into(),
                found: rk.shape.clone(),
                expected: vec![n_embd / head_size.max(1), head_size],
            }));
        }
        let rank = |name: &str| -> Result<usize> {
            let d = dims(map, name, 2)?;
            Ok(d[1])
        };
        let d_mv = if n_layer > 1 { rank("blocks.1.att.v1")? } else { 0 };
        Ok(Config {
            vocab,
            n_embd,
            n_layer,
            n_head,
            head_size,
            d_decay: rank("blocks.0.att.w1")?,
            d_aaa: rank("blocks.0.att.a1")?,
            d_mv,
            d_gate: rank("blocks.0.att.g1")?,
            d_ffn: dims(map, "blocks.0.ffn.key.weight", 2)?[0],
        })
    }

    /// Build the model from a tensor map, feeding every tensor it uses to `hash` (in a fixed
    /// order, see [`crate::fingerprint::hash_tensor`]) for the fingerprint; matrices are held as
    /// `weights` says.
    pub fn from_tensors(map: &TensorMap, weights: crate::Weights, hash: &mut blake3::Hasher) -> Result<V7> {
        let cfg = Self::config_of(map)?;
        let c = cfg.n_embd;
        let mut w = WeightReader::new(map, hash, weights);
        let emb_t = w.raw("emb.weight", &[cfg.vocab, c])?;
        let ln0_w = w.vec("blocks.0.ln0.weight", c)?;
        let ln0_b = w.vec("blocks.0.ln0.bias", c)?;
        let emb = Emb::new(emb_t, cfg.vocab, c, weights, &ln0_w, &ln0_b);
        emb_t.data.release();

        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let p = format!("blocks.{i}.");
            let a = format!("{p}att.");
            let f = format!("{p}ffn.");
            let ln1_w = w.vec(&format!("{p}ln1.weight"), c)?;
            let ln1_b = w.vec(&format!("{p}ln1.bias"), c)?;
            let ln2_w = w.vec(&format!("{p}ln2.weight"), c)?;
            let ln2_b = w.vec(&format!("{p}ln2.bias"), c)?;
            let mix = [
                w.vec(&format!("{a}x_r"), c)?,
                w.vec(&format!("{a}x_w"), c)?,
                w.vec(&format!("{a}x_k"), c)?,
                w.vec(&format!("{a}x_v"), c)?,
                w.vec(&format!("{a}x_a"), c)?,
                w.vec(&format!("{a}x_g"), c)?,
            ];
            let w0 = w.vec(&format!("{a}w0"), c)?;
            let a0 = w.vec(&format!("{a}a0"), c)?;
            let k_k = w.vec(&format!("{a}k_k"), c)?;
            let k_a = w.vec(&format!("{a}k_a"), c)?;
            let r_k = w.vec_shaped(&format!("{a}r_k"), &[cfg.n_head, cfg.head_size])?;
            let lnx_w = w.vec(&format!("{a}ln_x.weight"), c)?;
            let lnx_b = w.vec(&format!("{a}ln_x.bias"), c)?;
            let ffn_mix = w.vec(&format!("{f}x_k"), c)?;
            // LoRA factors are stored input-major ([C, D] then [D, C]); keep them as [out, in].
            let lora = |w: &mut WeightReader<'_>, n: &str, d: usize| -> Result<(Mat, Mat)> {
                Ok((w.mat_t(&format!("{a}{n}1"), d, c)?, w.mat_t(&format!("{a}{n}2"), c, d)?))
            };
            let (w1, w2) = lora(&mut w, "w", cfg.d_decay)?;
            let (a1, a2) = lora(&mut w, "a", cfg.d_aaa)?;
            let (g1, g2) = lora(&mut w, "g", cfg.d_gate)?;
            let vres = if i == 0 {
                None
            } else {
                let (v1, v2) = lora(&mut w, "v", cfg.d_mv)?;
                Some((w.vec(&format!("{a}v0"), c)?, v1, v2))
            };
            let wr = w.mat(&format!("{a}receptance.weight"), c, c)?;
            let wk = w.mat(&format!("{a}key.weight"), c, c)?;
            let wv = w.mat(&format!("{a}value.weight"), c, c)?;
            let wo = w.mat(&format!("{a}output.weight"), c, c)?;
            let ffn_key = w.mat(&format!("{f}key.weight"), cfg.d_ffn, c)?;
            let ffn_value = w.mat(&format!("{f}value.weight"), c, cfg.d_ffn)?;
            layers.push(Layer {
                ln1_w,
                ln1_b,
                ln2_w,
                ln2_b,
                mix,
                w0,
                a0,
                k_k,
                k_a,
                r_k,
                w1,
                w2,
                a1,
                a2,
                vres,
                g1,
                g2,
                wr,
                wk,
                wv,
                wo,
                lnx_w,
                lnx_b,
                ffn_mix,
                ffn_key,
                ffn_value,
            });
        }
        let ln_out_w = w.vec("ln_out.weight", c)?;
        let ln_out_b = w.vec("ln_out.bias", c)?;
        let head = w.mat("head.weight", cfg.vocab, c)?;
        Ok(V7 {
            cfg,
            emb,
            ln0_w,
            ln0_b,
            layers,
            ln_out_w,
            ln_out_b,
            head,
            pool: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Bytes the embedding holds.
    pub fn embedding_bytes(&self) -> usize {
        match &self.emb {
            Emb::Normed(e) => e.len() * 4,
            Emb::Raw16 { bits, .. } => bits.len(),
        }
    }

    /// The model's dimensions.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Visit every matrix (for the bf16 copies of generation and of the bf16 fold).
    pub fn for_each_mat(&mut self, f: &mut dyn FnMut(&mut Mat)) {
        for l in &mut self.layers {
            for m in [
                &mut l.wr,
                &mut l.wk,
                &mut l.wv,
                &mut l.wo,
                &mut l.ffn_key,
                &mut l.ffn_value,
                &mut l.w1,
                &mut l.w2,
                &mut l.a1,
                &mut l.a2,
                &mut l.g1,
                &mut l.g2,
            ] {
                f(m);
            }
            if let Some((_, v1, v2)) = &mut l.vres {
                f(v1);
                f(v2);
            }
        }
        f(&mut self.head);
    }

    /// Run `tokens` (already range-checked) through the model from `state`, which is advanced.
    /// Tokens are processed in chunks of at most `chunk` rows.
    pub fn forward(&self, tokens: &[u32], state: &mut State, logits: Logits, chunk: usize) -> Vec<f32> {
        let chunk = chunk.max(1);
        // The bf16 fold covers sequence mode only: one token (generation) stays f32.
        let bf16 = tokens.len() > 1 && self.layers.first().is_some_and(|l| l.wr.bf16_fold().is_some());
        let rows = chunk.min(tokens.len().max(1));
        let mut sc = self.take_scratch(rows, bf16);
        let vocab = self.cfg.vocab;
        let mut out = match logits {
            Logits::All => Vec::with_capacity(tokens.len() * vocab),
            _ => Vec::new(),
        };
        let n_chunks = tokens.len().div_ceil(chunk);
        for (ci, toks) in tokens.chunks(chunk).enumerate() {
            self.forward_chunk(toks, &mut [(toks.len(), &mut *state)], &mut sc);
            let t = toks.len();
            match logits {
                Logits::None => {}
                Logits::All => {
                    let start = out.len();
                    out.resize(start + t * vocab, 0.0);
                    self.head_rows(&sc.x[..t * self.cfg.n_embd], t, &mut sc.xx, &mut out[start..]);
                }
                Logits::Last if ci + 1 == n_chunks => {
                    let c = self.cfg.n_embd;
                    out.resize(vocab, 0.0);
                    self.head_rows(&sc.x[(t - 1) * c..t * c], 1, &mut sc.xx, &mut out);
                }
                Logits::Last => {}
            }
        }
        state.tokens += tokens.len() as u64;
        self.give_scratch(sc);
        out
    }

    /// Chunk buffers for `rows` rows: an idle set from the pool if one fits, else new ones.
    fn take_scratch(&self, rows: usize, bf16: bool) -> Scratch {
        let mut pool = self.pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match pool.iter().position(|s| s.bf16 == bf16 && s.rows >= rows) {
            Some(i) => pool.swap_remove(i),
            None => {
                drop(pool);
                Scratch::new(&self.cfg, rows, bf16)
            }
        }
    }

    fn give_scratch(&self, sc: Scratch) {
        let mut pool = self.pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if pool.len() >= POOL_MAX {
            // Keep the larger sets: they serve every smaller call too.
            if let Some((i, _)) = pool.iter().enumerate().min_by_key(|(_, s)| s.rows)
                && pool[i].rows < sc.rows
            {
                pool[i] = sc;
            }
            return;
        }
        pool.push(sc);
    }

    fn head_rows(&self, x: &[f32], rows: usize, tmp: &mut [f32], out: &mut [f32]) {
        let c = self.cfg.n_embd;
        let tmp = &mut tmp[..rows * c];
        layer_norm_rows(x, c, &self.ln_out_w, &self.ln_out_b, tmp);
        linear_fold(tmp, rows, &self.head, out);
    }

    /// One token for each lane, every lane's row in one set of products (f32, as token mode
    /// is); returns the logits of every lane one after another. A row's products do not depend
    /// on the other rows, so each lane ends exactly as [`V7::forward`] of its token alone.
    pub fn decode_lanes(&self, lanes: &mut [(u32, &mut State)]) -> Vec<f32> {
        let n = lanes.len();
        if n == 0 {
            return Vec::new();
        }
        let mut sc = self.take_scratch(n, false);
        sc.decode = true;
        let toks: Vec<u32> = lanes.iter().map(|l| l.0).collect();
        let mut segs: Vec<(usize, &mut State)> = lanes.iter_mut().map(|l| (1, &mut *l.1)).collect();
        self.forward_chunk(&toks, &mut segs, &mut sc);
        for (_, s) in segs.iter_mut() {
            s.tokens += 1;
        }
        let mut out = vec![0.0; n * self.cfg.vocab];
        let c = self.cfg.n_embd;
        let tmp = &mut sc.xx[..n * c];
        layer_norm_rows(&sc.x[..n * c], c, &self.ln_out_w, &self.ln_out_b, tmp);
        linear_decode(tmp, n, &self.head, &mut out);
        sc.decode = false;
        self.give_scratch(sc);
        out
    }

    /// Folds every lane's tokens into its own state (no logits) in lockstep steps of up to
    /// `chunk` tokens per lane: a step's rows, every lane's next tokens one after another, go
    /// through each matrix product together; token shifts and the WKV recurrence stay per lane.
    /// A step holds at most [`LANE_STEP_ROWS`] rows (or `chunk`, if more): with many lanes the
    /// tokens per lane per step shrink, which changes no result (each row's products are the
    /// same whatever rows share the product, and chunk boundaries only cut the work).
    ///
    /// A lane of one token is token mode, as `forward` has it (f32 even in the bf16 fold), so it
    /// is folded on its own.
    pub fn forward_lanes(&self, lanes: &mut [crate::state::Lane<'_>], chunk: usize) {
        self.lanes(lanes, chunk, false);
    }

    /// [`V7::forward_lanes`], returning each lane's logits after every one of its tokens
    /// (`[T, vocab]`, empty for a lane with no tokens): each equals [`V7::forward`] of the
    /// lane alone with [`Logits::All`], bit for bit.
    pub fn forward_lanes_logits(&self, lanes: &mut [crate::state::Lane<'_>], chunk: usize) -> Vec<Vec<f32>> {
        self.lanes(lanes, chunk, true)
    }

    fn lanes(&self, lanes: &mut [crate::state::Lane<'_>], chunk: usize, logits: bool) -> Vec<Vec<f32>> {
        let mut out = vec![Vec::new(); lanes.len()];
        let ask = if logits { Logits::All } else { Logits::None };
        for (lane, o) in lanes
            .iter_mut()
            .zip(out.iter_mut())
            .filter(|(l, _)| l.tokens.len() == 1)
        {
            *o = self.forward(lane.tokens, lane.state, ask, chunk);
        }
        let (mut rest, slots): (Vec<crate::state::Lane<'_>>, Vec<usize>) = lanes
            .iter_mut()
            .enumerate()
            .filter(|(_, l)| l.tokens.len() > 1)
            .map(|(i, l)| {
                (
                    crate::state::Lane {
                        tokens: l.tokens,
                        state: &mut *l.state,
                    },
                    i,
                )
            })
            .unzip();
        let rest_out = self.forward_lanes_seq(&mut rest, chunk, logits);
        for (i, o) in slots.into_iter().zip(rest_out) {
            out[i] = o;
        }
        out
    }

    /// Lanes of two tokens or more in lockstep; with `logits`, each lane's logits after every
    /// token (else empty vectors).
    fn forward_lanes_seq(&self, lanes: &mut [crate::state::Lane<'_>], chunk: usize, logits: bool) -> Vec<Vec<f32>> {
        let live = lanes.len();
        let vocab = self.cfg.vocab;
        let mut out: Vec<Vec<f32>> = lanes
            .iter()
            .map(|l| {
                if logits {
                    Vec::with_capacity(l.tokens.len() * vocab)
                } else {
                    Vec::new()
                }
            })
            .collect();
        if live == 0 {
            return out;
        }
        let per_lane = chunk.max(1).min((LANE_STEP_ROWS.max(chunk) / live).max(1));
        let longest = lanes.iter().map(|l| l.tokens.len()).max().unwrap_or(0);
        let rows = (per_lane * live).min(lanes.iter().map(|l| l.tokens.len().min(per_lane)).sum());
        let bf16 = self.layers.first().is_some_and(|l| l.wr.bf16_fold().is_some());
        let mut sc = self.take_scratch(rows, bf16);
        let mut toks: Vec<u32> = Vec::with_capacity(rows);
        for step in 0..longest.div_ceil(per_lane) {
            let range = |l: &crate::state::Lane<'_>| {
                let a = (step * per_lane).min(l.tokens.len());
                a..(a + per_lane).min(l.tokens.len())
            };
            toks.clear();
            let mut segs: Vec<(usize, &mut State)> = Vec::with_capacity(live);
            let mut owners: Vec<usize> = Vec::with_capacity(live);
            for (li, lane) in lanes.iter_mut().enumerate() {
                let r = range(lane);
                if !r.is_empty() {
                    toks.extend_from_slice(&lane.tokens[r.clone()]);
                    segs.push((r.len(), &mut *lane.state));
                    owners.push(li);
                }
            }
            self.forward_chunk(&toks, &mut segs, &mut sc);
            if logits {
                // The step's rows are its lanes' rows one after another.
                let (c, t) = (self.cfg.n_embd, toks.len());
                let mut step = vec![0f32; t * vocab];
                self.head_rows(&sc.x[..t * c], t, &mut sc.xx, &mut step);
                let mut at = 0;
                for (&li, (rows, _)) in owners.iter().zip(&segs) {
                    out[li].extend_from_slice(&step[at * vocab..(at + rows) * vocab]);
                    at += rows;
                }
            }
        }
        for lane in lanes.iter_mut() {
            lane.state.tokens += lane.tokens.len() as u64;
        }
        self.give_scratch(sc);
        out
    }

    /// One chunk: `toks` are the rows of every segment one after another, segment `s` having
    /// `segs[s].0` rows folded into state `segs[s].1`.
    fn forward_chunk(&self, toks: &[u32], segs: &mut [(usize, &mut State)], sc: &mut Scratch) {
        let lin = if sc.decode { linear_decode } else { linear_fold };
        let cfg = &self.cfg;
        let (c, t) = (cfg.n_embd, toks.len());
        let tc = t * c;
        debug_assert_eq!(segs.iter().map(|s| s.0).sum::<usize>(), t);
        match &self.emb {
            Emb::Normed(emb) => {
                for (row, &tok) in sc.x.chunks_exact_mut(c).zip(toks) {
                    let e = tok as usize * c;
                    row.copy_from_slice(&emb[e..e + c]);
                }
            }
            Emb::Raw16 { bits, kind } => {
                for ((row, raw), &tok) in sc.x.chunks_exact_mut(c).zip(sc.xx.chunks_exact_mut(c)).zip(toks) {
                    let e = tok as usize * c;
                    for (v, b) in raw.iter_mut().zip(bits[2 * e..2 * (e + c)].chunks_exact(2)) {
                        let b = u16::from_le_bytes([b[0], b[1]]);
                        *v = match kind {
                            Kind::F16 => half::f16::from_bits(b).to_f32(),
                            _ => crate::linalg::bf16_to_f32(b),
                        };
                    }
                    layer_norm_rows(raw, c, &self.ln0_w, &self.ln0_b, row);
                }
            }
        }
        let rp = rows_per_task(t, c);
        let (kc, f) = (c.div_ceil(2), cfg.d_ffn);
        for (li, layer) in self.layers.iter().enumerate() {
            let mut lanes = lane_rows(segs, li);
            self.time_mix(li, layer, &mut lanes, t, sc);
            // Channel mix.
            par_layer_norm(&sc.x[..tc], c, rp, &layer.ln2_w, &layer.ln2_b, &mut sc.xx[..tc]);
            let xx = &sc.xx[..tc];
            for lane in lanes.iter_mut() {
                let (r0, lt) = (lane.row, lane.rows);
                let lx = &xx[r0 * c..(r0 + lt) * c];
                let lrp = rows_per_task(lt, c);
                let prev: &[f32] = &lane.ls.ffn_x;
                if sc.bf16 {
                    // bf16 fold: inputs of the products rounded where they are made.
                    sc.words[0][r0 * kc..(r0 + lt) * kc]
                        .par_chunks_mut(lrp * kc)
                        .enumerate()
                        .for_each(|(bi, out)| {
                            shift_mix_words(lx, bi * lrp, prev, &[&layer.ffn_mix], &mut [out]);
                        });
                } else {
                    sc.mix[0][r0 * c..(r0 + lt) * c]
                        .par_chunks_mut(lrp * c)
                        .enumerate()
                        .for_each(|(bi, out)| {
                            shift_mix(lx, bi * lrp, prev, &[&layer.ffn_mix], &mut [out]);
                        });
                }
                lane.ls.ffn_x.copy_from_slice(&lx[(lt - 1) * c..]);
            }
            if sc.bf16 {
                let kf = f.div_ceil(2);
                // relu² and the rounding happen in the product's last step.
                linear_rounded_relu_sq(&sc.words[0][..t * kc], t, &layer.ffn_key, &mut sc.ffn_words[..t * kf]);
                linear_rounded(&sc.ffn_words[..t * kf], t, &layer.ffn_value, &mut sc.tmp[..tc]);
            } else {
                lin(&sc.mix[0][..tc], t, &layer.ffn_key, &mut sc.ffn[..t * f]);
                sc.ffn[..t * f].par_chunks_mut(rp * f).for_each(relu_sq);
                lin(&sc.ffn[..t * f], t, &layer.ffn_value, &mut sc.tmp[..tc]);
            }
            par_add(&mut sc.x[..tc], &sc.tmp[..tc], rp * c);
        }
    }

    fn time_mix(&self, li: usize, l: &Layer, lanes: &mut [LaneRows<'_>], t: usize, sc: &mut Scratch) {
        let lin = if sc.decode { linear_decode } else { linear_fold };
        let cfg = &self.cfg;
        let (c, h, n) = (cfg.n_embd, cfg.n_head, cfg.head_size);
        let tc = t * c;
        let rp = rows_per_task(t, c);
        let bc = rp * c;
        par_layer_norm(&sc.x[..tc], c, rp, &l.ln1_w, &l.ln1_b, &mut sc.xx[..tc]);
        let mixes: [&[f32]; 6] = [&l.mix[0], &l.mix[1], &l.mix[2], &l.mix[3], &l.mix[4], &l.mix[5]];
        // Token shift per lane: a lane's first row mixes with its own state's last row.
        for lane in lanes.iter_mut() {
            let (r0, lt) = (lane.row, lane.rows);
            let xx = &sc.xx[r0 * c..(r0 + lt) * c];
            let lrp = rows_per_task(lt, c);
            let prev: &[f32] = &lane.ls.att_x;
            if sc.bf16 {
                // bf16 fold: the mixes are rounded to bf16 words as they are made.
                let kc = c.div_ceil(2);
                let [m0, m1, m2, m3, m4, m5] = &mut sc.words;
                let (bw, w) = (lrp * kc, r0 * kc..(r0 + lt) * kc);
                (
                    m0[w.clone()].par_chunks_mut(bw),
                    m1[w.clone()].par_chunks_mut(bw),
                    m2[w.clone()].par_chunks_mut(bw),
                    m3[w.clone()].par_chunks_mut(bw),
                    m4[w.clone()].par_chunks_mut(bw),
                    m5[w].par_chunks_mut(bw),
                )
                    .into_par_iter()
                    .enumerate()
                    .for_each(|(bi, (a, b, c_, d, e, f))| {
                        shift_mix_words(xx, bi * lrp, prev, &mixes, &mut [a, b, c_, d, e, f])
                    });
            } else {
                let [m0, m1, m2, m3, m4, m5] = &mut sc.mix;
                let (bl, w) = (lrp * c, r0 * c..(r0 + lt) * c);
                (
                    m0[w.clone()].par_chunks_mut(bl),
                    m1[w.clone()].par_chunks_mut(bl),
                    m2[w.clone()].par_chunks_mut(bl),
                    m3[w.clone()].par_chunks_mut(bl),
                    m4[w.clone()].par_chunks_mut(bl),
                    m5[w].par_chunks_mut(bl),
                )
                    .into_par_iter()
                    .enumerate()
                    .for_each(|(bi, (a, b, c_, d, e, f))| {
                        shift_mix(xx, bi * lrp, prev, &mixes, &mut [a, b, c_, d, e, f])
                    });
            }
            lane.ls.att_x.copy_from_slice(&xx[(lt - 1) * c..]);
        }
        // The products of the mixes (index into `l.mix`: r, w, k, v, a, g), from f32 rows or,
        // in the bf16 fold, from the rounded words.
        let (mix, words, bf16) = (&sc.mix, &sc.words, sc.bf16);
        let project = |which: usize, m: &Mat, out: &mut [f32]| {
            if bf16 {
                linear_rounded(&words[which][..t * c.div_ceil(2)], t, m, out);
            } else {
                lin(&mix[which][..tc], t, m, out);
            }
        };
        project(0, &l.wr, &mut sc.r[..tc]);
        project(2, &l.wk, &mut sc.k[..tc]);
        project(3, &l.wv, &mut sc.v[..tc]);

        // The LoRAs. Decay: w = exp(-0.606531 · σ(w0 + tanh(xw W1) W2)); in-context learning
        // rate: a = σ(a0 + xa A1 A2); gate: g = σ(xg G1) G2; value residual gate: v0 + xv V1 V2.
        let lo = &mut sc.lora[..t * cfg.d_decay];
        project(1, &l.w1, lo);
        lo.par_chunks_mut(rp * cfg.d_decay).for_each(tanh_inplace);
        lin(lo, t, &l.w2, &mut sc.w[..tc]);
        let lo = &mut sc.lora[..t * cfg.d_aaa];
        project(4, &l.a1, lo);
        lin(lo, t, &l.a2, &mut sc.a[..tc]);
        let lo = &mut sc.lora[..t * cfg.d_gate];
        project(5, &l.g1, lo);
        lo.par_chunks_mut(rp * cfg.d_gate).for_each(sigmoid_inplace);
        lin(lo, t, &l.g2, &mut sc.g[..tc]);
        if let Some((_, v1, v2)) = &l.vres {
            let lo = &mut sc.lora[..t * cfg.d_mv];
            project(3, v1, lo);
            lin(lo, t, v2, &mut sc.tmp[..tc]);
        }
        debug_assert!(li > 0 || l.vres.is_none());

        // WKV recurrence: heads are independent over the whole chunk. Each head task makes its
        // inputs from the projections token by token (decay and `a` activations, keys, value
        // residual), and finishes its outputs (group norm, bonus, gate) into its columns of
        // `o`; in the bf16 fold it also rounds them for the output product (into `words[0]`,
        // free again once the mixes were used).
        let kc = c.div_ceil(2);
        let bf16 = sc.bf16;
        // Words per head need an even head size (heads then start on a word).
        let words = bf16 && n % 2 == 0;
        let (o_ptr, w_ptr, vf_ptr) = (
            sc.o[..tc].as_mut_ptr(),
            if words {
                sc.words[0][..t * kc].as_mut_ptr()
            } else {
                std::ptr::null_mut()
            },
            sc.v_first[..tc].as_mut_ptr(),
        );
        // One task per (lane, head): each lane's inputs are its own rows.
        let mut tasks: Vec<(WkvInputs<'_>, HeadOut, usize, &mut [f32])> = Vec::with_capacity(lanes.len() * h);
        for lane in lanes.iter_mut() {
            let rows = lane.row * c..(lane.row + lane.rows) * c;
            let inputs = WkvInputs {
                r: &sc.r[rows.clone()],
                w: &sc.w[rows.clone()],
                k: &sc.k[rows.clone()],
                v: &sc.v[rows.clone()],
                a: &sc.a[rows.clone()],
                v_gate: &sc.tmp[rows.clone()],
                g: &sc.g[rows],
                w0: &l.w0,
                a0: &l.a0,
                k_k: &l.k_k,
                k_a: &l.k_a,
                v0: l.vres.as_ref().map(|(v0, _, _)| v0.as_slice()),
                r_k: &l.r_k,
                lnx: (&l.lnx_w, &l.lnx_b),
                c,
                n,
                t: lane.rows,
            };
            // SAFETY: the offsets stay inside the buffers (the lane's rows are rows of `t`);
            // every task writes only its own lane's rows, its own head's columns.
            let out = unsafe {
                HeadOut {
                    rows: o_ptr.add(lane.row * c),
                    words: if words { w_ptr.add(lane.row * kc) } else { w_ptr },
                    v_first: vf_ptr.add(lane.row * c),
                }
            };
            for (hi, s) in lane.ls.wkv.chunks_mut(n * n).enumerate() {
                tasks.push((inputs, out, hi, s));
            }
        }
        // SAFETY (both loops): `out` points at the lane's first row of `o`, `v_first` (`[t, C]`
        // each) and, in the bf16 fold, `words[0]` (`[t, ⌈C/2⌉]`, head size even), which hold the
        // lane's `inputs.t` rows; `hi < h`, so head `hi`'s columns lie in a row; each task is one
        // (lane, head) pair, so no two tasks touch the same rows' same columns, and nothing else
        // uses these buffers until `tasks` is dropped.
        if tasks.len() > 1 && t * n * n * h >= 1 << 16 && rayon::current_num_threads() > 1 {
            tasks
                .par_iter_mut()
                .for_each(|(inputs, out, hi, s)| unsafe { wkv_head(inputs, *hi, s, *out) });
        } else {
            for (inputs, out, hi, s) in tasks.iter_mut() {
                unsafe { wkv_head(inputs, *hi, s, *out) };
            }
        }
        drop(tasks);
        if bf16 && n % 2 == 1 {
            sc.o[..tc]
                .par_chunks(bc)
                .zip(sc.words[0][..t * kc].par_chunks_mut(rp * kc))
                .for_each(|(o, w)| {
                    for (row, wr) in o.chunks_exact(c).zip(w.chunks_exact_mut(kc)) {
                        round_into(row, wr);
                    }
                });
        }
        if bf16 {
            linear_rounded(&sc.words[0][..t * kc], t, &l.wo, &mut sc.tmp[..tc]);
        } else {
            lin(&sc.o[..tc], t, &l.wo, &mut sc.tmp[..tc]);
        }
        par_add(&mut sc.x[..tc], &sc.tmp[..tc], bc);
    }
}

/// Most rows one batched step of [`V7::forward_lanes`] holds (unless the chunk is longer): the
/// scratch buffers grow with it, ~100 floats of width per row.
pub const LANE_STEP_ROWS: usize = 1024;

/// One lane's rows of a chunk (`row .. row + rows`) and its state of the current layer.
struct LaneRows<'a> {
    row: usize,
    rows: usize,
    ls: &'a mut LayerState,
}

/// Each segment's rows and layer `li` of its state.
fn lane_rows<'a>(segs: &'a mut [(usize, &mut State)], li: usize) -> Vec<LaneRows<'a>> {
    let mut row = 0;
    segs.iter_mut()
        .map(|(rows, st)| {
            let lane = LaneRows {
                row,
                rows: *rows,
                ls: &mut st.layers[li],
            };
            row += *rows;
            lane
        })
        .collect()
}

/// Rows per parallel task for element-wise work on `t` rows of width `c`: all rows in one task
/// when the work is too small to be worth a thread hand-off.
fn rows_per_task(t: usize, c: usize) -> usize {
    let threads = rayon::current_num_threads();
    if threads <= 1 || t * c < 32 * 1024 {
        t.max(1)
    } else {
        t.div_ceil(threads).max(1)
    }
}

fn par_layer_norm(x: &[f32], c: usize, rp: usize, w: &[f32], b: &[f32], y: &mut [f32]) {
    x.par_chunks(rp * c)
        .zip(y.par_chunks_mut(rp * c))
        .for_each(|(x, y)| layer_norm_rows(x, c, w, b, y));
}

fn par_add(x: &mut [f32], y: &[f32], block: usize) {
    x.par_chunks_mut(block)
        .zip(y.par_chunks(block))
        .for_each(|(x, y)| add_into(x, y));
}

/// Buffers for chunks of up to `rows` rows, reused for every chunk of a forward call and
/// kept in the model's pool between calls. Every buffer is written before it is read within
/// a chunk, so what a previous call left there never matters.
#[derive(Debug)]
struct Scratch {
    /// Rows the buffers hold.
    rows: usize,
    /// The bf16 fold: product inputs go through `words` / `ffn_words` instead of `mix`.
    bf16: bool,
    /// A batched decode step: products through [`linear_decode`] (each row as token mode).
    decode: bool,
    /// The six time-mix inputs (or the channel mix's, in `words[0]`) as bf16 words.
    words: [Vec<u32>; 6],
    /// The channel mix's hidden rows as bf16 words.
    ffn_words: Vec<u32>,
    x: Vec<f32>,
    xx: Vec<f32>,
    mix: [Vec<f32>; 6],
    r: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    w: Vec<f32>,
    a: Vec<f32>,
    g: Vec<f32>,
    v_first: Vec<f32>,
    lora: Vec<f32>,
    o: Vec<f32>,
    tmp: Vec<f32>,
    ffn: Vec<f32>,
}

impl Scratch {
    fn new(cfg: &Config, t: usize, bf16: bool) -> Self {
        let tc = t * cfg.n_embd;
        let z = || vec![0f32; tc];
        let d = cfg.d_decay.max(cfg.d_aaa).max(cfg.d_mv).max(cfg.d_gate);
        let (wc, wf) = if bf16 {
            (t * cfg.n_embd.div_ceil(2), t * cfg.d_ffn.div_ceil(2))
        } else {
            (0, 0)
        };
        let w = || vec![0u32; wc];
        // The f32 mixes are only used by the f32 fold.
        let zm = || if bf16 { Vec::new() } else { z() };
        Scratch {
            decode: false,
            rows: t,
            bf16,
            words: [w(), w(), w(), w(), w(), w()],
            ffn_words: vec![0u32; wf],
            x: z(),
            // Also holds ln_out rows for the head, up to T rows.
            xx: z(),
            mix: [zm(), zm(), zm(), zm(), zm(), zm()],
            r: z(),
            k: z(),
            v: z(),
            w: z(),
            a: z(),
            g: z(),
            v_first: z(),
            lora: vec![0f32; t * d],
            o: z(),
            tmp: z(),
            ffn: vec![0f32; t * cfg.d_ffn],
        }
    }
}
