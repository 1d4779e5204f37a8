//! Pieces shared by RWKV-4, 5 and 6: reading weights while fingerprinting them, the embedding
//! and output head, and the channel mix (the feed-forward block all three use).
//!
//! Every weight the model uses passes through [`WeightReader`], which checks its shape, feeds its
//! name, shape, element type and stored bytes' digest to the fingerprint hasher in load order,
//! and holds matrices in the precision asked for (RWKV-7's loader uses it too).

use crate::error::{Error, Result};
use crate::kernels::{Wkv5Inputs, add_into, mul_into, relu_sq, shift_mix, sigmoid_inplace, wkv5_head};
use crate::linalg::{Kind, Mat, Rows16, Source, layer_norm_rows, linear};
use crate::tensor::{DType, TensorMap};
use crate::types::Logits;

/// Reads weights from a [`TensorMap`], hashing each one for the fingerprint (rule 2, see
/// [`crate::fingerprint::hash_tensor`]) and holding matrices as [`crate::Weights`] says.
pub(crate) struct WeightReader<'a> {
    /// The tensors.
    pub map: &'a TensorMap,
    hash: &'a mut blake3::Hasher,
    hold: crate::Weights,
}

impl<'a> WeightReader<'a> {
    /// Read from `map`, feeding `hash`, holding matrices as `hold`.
    pub fn new(map: &'a TensorMap, hash: &'a mut blake3::Hasher, hold: crate::Weights) -> Self {
        WeightReader { map, hash, hold }
    }

    fn record(&mut self, name: &str, shape: &[usize]) -> Result<()> {
        let t = self.map.get(name)?;
        crate::fingerprint::hash_tensor(self.hash, name, shape, t, self.map.act_quant(name));
        Ok(())
    }

    /// Mix extra settings that change the model's outputs (e.g. an epsilon) into the fingerprint.
    pub fn note(&mut self, what: &str, bytes: &[u8]) {
        self.hash.update(what.as_bytes());
        self.hash.update(bytes);
    }

    /// A tensor of `len` elements in any shape (`[C]`, `[1, 1, C]`, ...).
    pub fn vec(&mut self, name: &str, len: usize) -> Result<Vec<f32>> {
        self.vec_shaped(name, &[len])
    }

    /// A tensor of `shape.product()` elements in any shape, recorded as `shape`.
    pub fn vec_shaped(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let v = self.map.f32(name, shape)?;
        self.record(name, shape)?;
        Ok(v)
    }

    /// A tensor of exactly `shape`.
    pub fn exact(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let v = self.map.f32_exact(name, shape)?;
        self.record(name, shape)?;
        Ok(v)
    }

    /// The raw tensor `name`, which must have exactly `shape` and a floating-point type whose
    /// bytes fill it, recorded for the fingerprint.
    pub fn raw(&mut self, name: &str, shape: &[usize]) -> Result<&'a crate::tensor::RawTensor> {
        let map = self.map;
        let t = map.get(name)?;
        if t.shape != shape {
            return Err(shape_error(map, name, shape.to_vec()));
        }
        if !matches!(t.dtype, DType::F32 | DType::F16 | DType::BF16 | DType::Ggml(_)) {
            return Err(Error::File(rwkv_formats::Error::DType {
                path: map.path.clone(),
                tensor: name.to_string(),
                dtype: t.dtype.name().into(),
            }));
        }
        crate::tensor::check_len(&map.path, name, t)?;
        self.record(name, shape)?;
        Ok(t)
    }

    fn matrix(&mut self, name: &str, rows: usize, cols: usize, input_major: bool) -> Result<Mat> {
        let shape = if input_major { [cols, rows] } else { [rows, cols] };
        let t = self.raw(name, &shape)?;
        let act = self.map.act_quant(name);
        let m = match t.dtype {
            // ggml blocks run along the inputs of an `[out, in]` matrix: held as they are.
            DType::Ggml(q) if !input_major && self.hold.keeps_blocks() => {
                let held = crate::quant::QuantMat::new(rows, cols, q, t.data.to_vec())
                    .map_err(|why| Error::corrupt(&self.map.path, format!("tensor `{name}`: {why}")))?;
                Mat::from_quant(held)
            }
            DType::Ggml(_) => {
                let bytes: Vec<u8> = crate::tensor::to_f32(&self.map.path, name, t)?
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect();
                let src = Source {
                    bytes: &bytes,
                    dtype: DType::F32,
                    n: rows,
                    k: cols,
                    input_major,
                };
                let mut m = Mat::from_source(&src, None);
                m.set_act_quant(act);
                m
            }
            _ => {
                let kind = self.hold.hold(t.dtype, act.is_some());
                let own16 = match (t.dtype, kind) {
                    (DType::BF16, Some(k @ Kind::Bf16)) | (DType::F16, Some(k @ Kind::F16)) => Some(k),
                    _ => None,
                };
                if let Some(k) = own16.filter(|_| !input_major && act.is_none()) {
                    // Held as the checkpoint stores it: the file's own pages, nothing copied.
                    return Ok(Mat::from_rows(Rows16::new(t.data.clone(), k, rows, cols)));
                }
                let src = Source {
                    bytes: &t.data,
                    dtype: t.dtype,
                    n: rows,
                    k: cols,
                    input_major,
                };
                let mut m = Mat::from_source(&src, kind);
                m.set_act_quant(act);
                m
            }
        };
        // The model has its own copy now: the file's pages need not stay resident.
        t.data.release();
        Ok(m)
    }

    /// A projection stored `[out, in]`, as official checkpoints store `nn.Linear` weights.
    pub fn mat(&mut self, name: &str, rows: usize, cols: usize) -> Result<Mat> {
        self.matrix(name, rows, cols, false)
    }

    /// A matrix stored input-major (`[in, out]`, as the LoRA factors are), turned to `[out, in]`.
    pub fn mat_t(&mut self, name: &str, rows: usize, cols: usize) -> Result<Mat> {
        self.matrix(name, rows, cols, true)
    }
}

/// The shape of `name` in `map`, which must have `rank` dimensions.
pub(crate) fn dims(map: &TensorMap, name: &str, rank: usize) -> Result<Vec<usize>> {
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

/// A shape error for `tensor` in `map`'s file.
pub(crate) fn shape_error(map: &TensorMap, tensor: &str, expected: Vec<usize>) -> Error {
    Error::File(rwkv_formats::Error::Shape {
        path: map.path.clone(),
        tensor: tensor.to_string(),
        found: map.tensors.get(tensor).map(|t| t.shape.clone()).unwrap_or_default(),
        expected,
    })
}

pub(crate) use crate::tensor::head_shape;

/// The number of blocks: `blocks.N.<probe>` for N = 0, 1, ... (at least one).
pub(crate) fn count_layers(map: &TensorMap, probe: &str) -> Result<usize> {
    let mut n = 0;
    while map.contains(&format!("blocks.{n}.{probe}")) {
        n += 1;
    }
    if n == 0 {
        return Err(Error::File(rwkv_formats::Error::MissingTensor {
            path: map.path.clone(),
            tensor: format!("blocks.0.{probe}"),
        }));
    }
    Ok(n)
}

/// `(vocab, C)` from `emb.weight`, both non-zero.
pub(crate) fn embedding_dims(map: &TensorMap) -> Result<(usize, usize)> {
    let d = dims(map, "emb.weight", 2)?;
    if d[0] == 0 || d[1] == 0 {
        return Err(shape_error(map, "emb.weight", vec![256, 64]));
    }
    Ok((d[0], d[1]))
}

/// Embedding (with `blocks.0.ln0` folded in, as the official package does) and output head.
#[derive(Debug)]
pub(crate) struct EmbedHead {
    /// `[vocab, C]`, each row already layer-normed by `ln0`.
    pub emb: Vec<f32>,
    ln_out_w: Vec<f32>,
    ln_out_b: Vec<f32>,
    head: Mat,
    c: usize,
}

impl EmbedHead {
    /// The embedding and `ln0` (read first, so they lead the fingerprint).
    pub fn load_embedding(w: &mut WeightReader<'_>, vocab: usize, c: usize) -> Result<Vec<f32>> {
        let raw = w.exact("emb.weight", &[vocab, c])?;
        let ln0_w = w.vec("blocks.0.ln0.weight", c)?;
        let ln0_b = w.vec("blocks.0.ln0.bias", c)?;
        let mut emb = vec![0f32; raw.len()];
        layer_norm_rows(&raw, c, &ln0_w, &ln0_b, &mut emb);
        Ok(emb)
    }

    /// `ln_out` and `head` (read last).
    pub fn load_head(w: &mut WeightReader<'_>, emb: Vec<f32>, vocab: usize, c: usize) -> Result<Self> {
        Ok(EmbedHead {
            emb,
            ln_out_w: w.vec("ln_out.weight", c)?,
            ln_out_b: w.vec("ln_out.bias", c)?,
            head: w.mat("head.weight", vocab, c)?,
            c,
        })
    }

    /// Copy the embeddings of `toks` into the rows of `x`.
    pub fn embed(&self, toks: &[u32], x: &mut [f32]) {
        let c = self.c;
        for (row, &tok) in x.chunks_exact_mut(c).zip(toks) {
            let e = tok as usize * c;
            row.copy_from_slice(&self.emb[e..e + c]);
        }
    }

    /// Logits of `rows` rows of `x` into `out` (`[rows, vocab]`); `tmp` holds at least `rows · C`.
    pub fn logits(&self, x: &[f32], rows: usize, tmp: &mut [f32], out: &mut [f32]) {
        let tmp = &mut tmp[..rows * self.c];
        layer_norm_rows(x, self.c, &self.ln_out_w, &self.ln_out_b, tmp);
        linear(tmp, rows, &self.head, out);
    }

    /// Visit the head matrix.
    pub fn for_each_mat(&mut self, f: &mut dyn FnMut(&mut Mat)) {
        f(&mut self.head);
    }
}

/// The channel mix of RWKV-4/5/6: `σ(r) · (relu(k)² Wv)` from token-shifted inputs.
#[derive(Debug)]
pub(crate) struct ChannelMix {
    ln_w: Vec<f32>,
    ln_b: Vec<f32>,
    /// Shift mixes for k and r in the `x + (prev − x) · mix` form.
    mix_k: Vec<f32>,
    mix_r: Vec<f32>,
    key: Mat,
    value: Mat,
    receptance: Mat,
}

/// Buffers a channel mix needs for `T` rows.
pub(crate) struct FfnScratch {
    xx: Vec<f32>,
    xk: Vec<f32>,
    xr: Vec<f32>,
    r: Vec<f32>,
    hidden: Vec<f32>,
    out: Vec<f32>,
}

impl FfnScratch {
    /// Buffers for up to `t` rows of width `c` with hidden width `f`.
    pub fn new(t: usize, c: usize, f: usize) -> Self {
        let z = || vec![0f32; t * c];
        FfnScratch {
            xx: z(),
            xk: z(),
            xr: z(),
            r: z(),
            hidden: vec![0f32; t * f],
            out: z(),
        }
    }
}

/// How a generation stores the channel mix's token-shift weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MixForm {
    /// RWKV-4/5 `time_mix_*`: `x · m + prev · (1 − m)`.
    TimeMix,
    /// RWKV-6 `time_maa_*`: `x + (prev − x) · m`.
    Maa,
}

impl ChannelMix {
    /// Read block `i`'s channel mix (`ln2` and `ffn.*`), hidden width `f`.
    pub fn load(w: &mut WeightReader<'_>, i: usize, c: usize, f: usize, form: MixForm) -> Result<Self> {
        let p = format!("blocks.{i}.");
        let ln_w = w.vec(&format!("{p}ln2.weight"), c)?;
        let ln_b = w.vec(&format!("{p}ln2.bias"), c)?;
        let (mk, mr) = match form {
            MixForm::TimeMix => ("time_mix_k", "time_mix_r"),
            MixForm::Maa => ("time_maa_k", "time_maa_r"),
        };
        let mut mix_k = w.vec(&format!("{p}ffn.{mk}"), c)?;
        let mut mix_r = w.vec(&format!("{p}ffn.{mr}"), c)?;
        if form == MixForm::TimeMix {
            // x·m + prev·(1 − m) = x + (prev − x)·(1 − m).
            mix_k.iter_mut().for_each(|m| *m = 1.0 - *m);
            mix_r.iter_mut().for_each(|m| *m = 1.0 - *m);
        }
        Ok(ChannelMix {
            ln_w,
            ln_b,
            mix_k,
            mix_r,
            key: w.mat(&format!("{p}ffn.key.weight"), f, c)?,
            receptance: w.mat(&format!("{p}ffn.receptance.weight"), c, c)?,
            value: w.mat(&format!("{p}ffn.value.weight"), c, f)?,
        })
    }

    /// The hidden width of block `i` (rows of `ffn.key.weight`).
    pub fn hidden_width(map: &TensorMap, i: usize, c: usize) -> Result<usize> {
        let name = format!("blocks.{i}.ffn.key.weight");
        let d = dims(map, &name, 2)?;
        if d[0] == 0 || d[1] != c {
            return Err(shape_error(map, &name, vec![4 * c, c]));
        }
        Ok(d[0])
    }

    /// The hidden width.
    pub fn hidden(&self) -> usize {
        self.key.rows()
    }

    /// `x += ChannelMix(x)` over `t` rows; `prev` is the layer's shift state.
    pub fn forward(&self, x: &mut [f32], prev: &mut [f32], t: usize, sc: &mut FfnScratch) {
        let c = self.ln_w.len();
        let tc = t * c;
        let f = self.key.rows();
        layer_norm_rows(&x[..tc], c, &self.ln_w, &self.ln_b, &mut sc.xx[..tc]);
        shift_mix(
            &sc.xx[..tc],
            prev,
            &[&self.mix_k, &self.mix_r],
            &mut [&mut sc.xk[..tc], &mut sc.xr[..tc]],
        );
        linear(&sc.xr[..tc], t, &self.receptance, &mut sc.r[..tc]);
        sigmoid_inplace(&mut sc.r[..tc]);
        linear(&sc.xk[..tc], t, &self.key, &mut sc.hidden[..t * f]);
        relu_sq(&mut sc.hidden[..t * f]);
        linear(&sc.hidden[..t * f], t, &self.value, &mut sc.out[..tc]);
        mul_into(&mut sc.out[..tc], &sc.r[..tc]);
        add_into(&mut x[..tc], &sc.out[..tc]);
    }

    /// Visit every matrix.
    pub fn for_each_mat(&mut self, f: &mut dyn FnMut(&mut Mat)) {
        for m in [&mut self.key, &mut self.value, &mut self.receptance] {
            f(m);
        }
    }
}

/// The chunk loop every generation shares: embed each chunk of at most `chunk` tokens into
/// `[t, C]` rows, let `layers` run the blocks over them in place, and produce the logits asked
/// for. Returns `[vocab]` for [`Logits::Last`], `[T, vocab]` for [`Logits::All`], else nothing.
pub(crate) fn run_chunks(
    tokens: &[u32],
    logits: Logits,
    chunk: usize,
    io: &EmbedHead,
    vocab: usize,
    mut layers: impl FnMut(&mut [f32], usize),
) -> Vec<f32> {
    let c = io.c;
    let chunk = chunk.max(1).min(tokens.len().max(1));
    let mut x = vec![0f32; chunk * c];
    let mut tmp = vec![0f32; chunk * c];
    let mut out = match logits {
        Logits::All => Vec::with_capacity(tokens.len() * vocab),
        _ => Vec::new(),
    };
    let n_chunks = tokens.len().div_ceil(chunk);
    for (ci, toks) in tokens.chunks(chunk).enumerate() {
        let t = toks.len();
        io.embed(toks, &mut x[..t * c]);
        layers(&mut x[..t * c], t);
        match logits {
            Logits::None => {}
            Logits::All => {
                let start = out.len();
                out.resize(start + t * vocab, 0.0);
                io.logits(&x[..t * c], t, &mut tmp, &mut out[start..]);
            }
            Logits::Last if ci + 1 == n_chunks => {
                out.resize(vocab, 0.0);
                io.logits(&x[(t - 1) * c..t * c], 1, &mut tmp, &mut out);
            }
            Logits::Last => {}
        }
    }
    out
}

/// Run the RWKV-5/6 recurrence for every head over a chunk (in parallel when the work is large),
/// advancing `wkv` (`[H, N, N]`) and writing the outputs to `o_heads` (`[H, T, N]`).
pub(crate) fn wkv5_heads(inp: &Wkv5Inputs<'_>, wkv: &mut [f32], o_heads: &mut [f32]) {
    use rayon::prelude::*;
    let (n, t) = (inp.n, inp.t);
    let h = inp.c / n;
    let o_heads = &mut o_heads[..h * t * n];
    if h > 1 && t * n * n * h >= 1 << 16 && rayon::current_num_threads() > 1 {
        o_heads
            .par_chunks_mut(t * n)
            .zip(wkv.par_chunks_mut(n * n))
            .enumerate()
            .for_each(|(hi, (o, s))| wkv5_head(inp, hi, s, o));
    } else {
        for (hi, (o, s)) in o_heads.chunks_mut(t * n).zip(wkv.chunks_mut(n * n)).enumerate() {
            wkv5_head(inp, hi, s, o);
        }
    }
}
