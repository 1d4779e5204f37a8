//! The BERT encoder and its mean pooling.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use rwkv_formats::tensor::{DType, to_f32};
use rwkv_kernels::linalg::{Mat, linear};
use rwkv_kernels::simd::{Arch, LANES, bf16_to_f32, exp, multiversion, sum_lanes};

use crate::error::{Error, Result};
use crate::wordpiece::WordPiece;

/// Width of each attention head of the models `make-embedder.py` converts (BERT's 64 for the
/// base models; MiniLM-L6 has 12 heads of 32): taken from the file's `num_attention_heads`.
struct Layer {
    q: Mat,
    k: Mat,
    v: Mat,
    qb: Vec<f32>,
    kb: Vec<f32>,
    vb: Vec<f32>,
    o: Mat,
    ob: Vec<f32>,
    ln1: (Vec<f32>, Vec<f32>),
    up: Mat,
    upb: Vec<f32>,
    down: Mat,
    downb: Vec<f32>,
    ln2: (Vec<f32>, Vec<f32>),
}

/// A sentence encoder: text → a unit-length vector; texts that mean the same are near.
pub struct Embedder {
    path: PathBuf,
    tokenizer: WordPiece,
    /// Word-piece embeddings, `[vocab, dim]`.
    words: Words,
    positions: Vec<f32>,
    token_type: Vec<f32>,
    ln0: (Vec<f32>, Vec<f32>),
    layers: Vec<Layer>,
    dim: usize,
    heads: usize,
    eps: f32,
    max_len: usize,
    /// Embeddings of texts read before.
    cache: Mutex<HashMap<CacheKey, Arc<[f32]>>>,
}

/// The word-piece embedding table: bf16 as a bf16 file holds it, else f32.
enum Words {
    Bf16(Vec<u16>),
    F32(Vec<f32>),
}

impl Words {
    /// Row `id` (width `d`) into `out`.
    fn row(&self, id: usize, d: usize, out: &mut [f32]) {
        match self {
            Words::Bf16(w) => {
                for (o, &h) in out.iter_mut().zip(&w[id * d..(id + 1) * d]) {
                    *o = bf16_to_f32(h);
                }
            }
            Words::F32(w) => out.copy_from_slice(&w[id * d..(id + 1) * d]),
        }
    }
}

/// A cached embedding's text: its hash, its length and the word pieces read.
type CacheKey = (u64, usize, usize);

/// How many embeddings [`Embedder::embed`] keeps (384 floats each: about 25 MB), so that a server
/// or a benchmark asking many questions of one store reads each unit once. Past it, the cache
/// starts over.
pub const CACHE_ENTRIES: usize = 16_384;

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("path", &self.path)
            .field("dim", &self.dim)
            .field("layers", &self.layers.len())
            .field("heads", &self.heads)
            .finish()
    }
}

impl Embedder {
    /// Load an encoder file made by `scripts/make-embedder.py`.
    pub fn load(path: &Path) -> Result<Embedder> {
        let map = rwkv_formats::loader::read_safetensors(path)?;
        let not = |what: String| Error::NotAnEmbedder {
            path: path.to_path_buf(),
            what,
        };
        let meta = |key: &str| {
            map.metadata
                .get(key)
                .ok_or_else(|| not(format!("no `{key}` in its metadata")))
        };
        if !meta("format")?.starts_with("rwkv-embed bert") {
            return Err(not(format!(
                "format {:?}, not \"rwkv-embed bert\"",
                map.metadata["format"]
            )));
        }
        let vocab_text = meta("vocab")?;
        let vocab: Vec<&str> = vocab_text.split('\n').collect();
        let lower = meta("do_lower_case")? == "true";
        let tokenizer =
            WordPiece::new(&vocab, lower).ok_or_else(|| not("the vocabulary lacks [UNK], [CLS] or [SEP]".into()))?;
        let heads: usize = meta("num_attention_heads")?
            .parse()
            .map_err(|_| not("num_attention_heads is not a number".into()))?;
        let eps: f32 = meta("layer_norm_eps")?
            .parse()
            .map_err(|_| not("layer_norm_eps is not a number".into()))?;
        let max_len: usize = meta("max_seq_length")?
            .parse()
            .map_err(|_| not("max_seq_length is not a number".into()))?;
        let word_t = map.get("embeddings.word_embeddings.weight")?;
        let (n_vocab, dim) = match word_t.shape[..] {
            [n, d] => (n, d),
            _ => return Err(not("embeddings.word_embeddings.weight is not a matrix".into())),
        };
        if n_vocab != tokenizer.len() {
            return Err(not(format!(
                "{n_vocab} word embeddings for {} word pieces",
                tokenizer.len()
            )));
        }
        if heads == 0 || dim % heads != 0 {
            return Err(not(format!("{heads} heads do not divide width {dim}")));
        }
        let words = match word_t.dtype {
            // The largest table is kept as the file holds it (half the bytes of f32).
            DType::BF16 if word_t.data.len() == n_vocab * dim * 2 => Words::Bf16(
                word_t
                    .data
                    .chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]))
                    .collect(),
            ),
            _ => Words::F32(to_f32(path, "embeddings.word_embeddings.weight", word_t)?),
        };
        let positions = map
            .f32("embeddings.position_embeddings.weight", &[max_len.max(1), dim])
            .or_else(|_| {
                let t = map.get("embeddings.position_embeddings.weight")?;
                to_f32(path, "embeddings.position_embeddings.weight", t)
            })?;
        let max_len = max_len.min(positions.len() / dim);
        let token_type = map
            .f32("embeddings.token_type_embeddings.weight", &[2, dim])
            .or_else(|_| {
                let t = map.get("embeddings.token_type_embeddings.weight")?;
                to_f32(path, "embeddings.token_type_embeddings.weight", t)
            })?;
        if max_len < 2 || token_type.len() < dim {
            return Err(not(format!(
                "{max_len} positions and {} token-type values for width {dim}",
                token_type.len()
            )));
        }
        let ln = |name: &str| -> Result<(Vec<f32>, Vec<f32>)> {
            Ok((
                map.f32(&format!("{name}.weight"), &[dim])?,
                map.f32(&format!("{name}.bias"), &[dim])?,
            ))
        };
        let ln0 = ln("embeddings.LayerNorm")?;
        let mut layers = Vec::new();
        while map.contains(&format!("encoder.layer.{}.attention.self.query.weight", layers.len())) {
            let p = format!("encoder.layer.{}.", layers.len());
            let inner = map
                .get(&format!("{p}intermediate.dense.weight"))?
                .shape
                .first()
                .copied()
                .unwrap_or(0);
            let mat = |name: &str, rows: usize, cols: usize| -> Result<Mat> {
                Ok(Mat::new(
                    rows,
                    cols,
                    map.f32_exact(&format!("{p}{name}.weight"), &[rows, cols])?,
                ))
            };
            let bias = |name: &str, n: usize| map.f32(&format!("{p}{name}.bias"), &[n]);
            layers.push(Layer {
                q: mat("attention.self.query", dim, dim)?,
                k: mat("attention.self.key", dim, dim)?,
                v: mat("attention.self.value", dim, dim)?,
                qb: bias("attention.self.query", dim)?,
                kb: bias("attention.self.key", dim)?,
                vb: bias("attention.self.value", dim)?,
                o: mat("attention.output.dense", dim, dim)?,
                ob: bias("attention.output.dense", dim)?,
                ln1: ln(&format!("{p}attention.output.LayerNorm"))?,
                up: mat("intermediate.dense", inner, dim)?,
                upb: bias("intermediate.dense", inner)?,
                down: mat("output.dense", dim, inner)?,
                downb: bias("output.dense", dim)?,
                ln2: ln(&format!("{p}output.LayerNorm"))?,
            });
        }
        if layers.is_empty() {
            return Err(not("no encoder layers".into()));
        }
        Ok(Embedder {
            path: path.to_path_buf(),
            tokenizer,
            words,
            positions,
            token_type,
            ln0,
            layers,
            dim,
            heads,
            eps,
            max_len,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Width of the embeddings.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The most word pieces an input takes (`[CLS]` and `[SEP]` included).
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &WordPiece {
        &self.tokenizer
    }

    /// Unit-length embeddings of `texts`, each read up to `max_tokens` word pieces (at most
    /// [`Embedder::max_len`]), in parallel; a text read before comes from the cache
    /// ([`CACHE_ENTRIES`]).
    pub fn embed(&self, texts: &[&str], max_tokens: usize) -> Vec<Vec<f32>> {
        let max_tokens = max_tokens.min(self.max_len);
        let keys: Vec<CacheKey> = texts
            .iter()
            .map(|t| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                t.hash(&mut h);
                (h.finish(), t.len(), max_tokens)
            })
            .collect();
        let known: Vec<Option<Arc<[f32]>>> = {
            let cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            keys.iter().map(|k| cache.get(k).cloned()).collect()
        };
        let fresh: Vec<(usize, Arc<[f32]>)> = (0..texts.len())
            .into_par_iter()
            .filter(|&i| known[i].is_none())
            .map(|i| {
                (
                    i,
                    Arc::from(self.embed_ids(&self.tokenizer.encode(texts[i], max_tokens))),
                )
            })
            .collect();
        let mut out: Vec<Option<Arc<[f32]>>> = known;
        {
            let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (i, e) in fresh {
                if cache.len() >= CACHE_ENTRIES {
                    cache.clear();
                }
                cache.insert(keys[i], e.clone());
                out[i] = Some(e);
            }
        }
        out.into_iter()
            .map(|e| e.map(|e| e.to_vec()).unwrap_or_default())
            .collect()
    }

    /// Forget every cached embedding (a benchmark timing questions as separate processes
    /// would).
    pub fn clear_cache(&self) {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// How many embeddings the cache holds.
    pub fn cached(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// The pooled, unit-length embedding of one sequence of word-piece ids.
    fn embed_ids(&self, ids: &[u32]) -> Vec<f32> {
        let (d, t) = (self.dim, ids.len());
        let mut x = vec![0f32; t * d];
        for (i, &id) in ids.iter().enumerate() {
            let row = &mut x[i * d..(i + 1) * d];
            self.words.row(id as usize, d, row);
            let p = &self.positions[i * d..(i + 1) * d];
            for ((o, p), ty) in row.iter_mut().zip(p).zip(&self.token_type[..d]) {
                *o += p + ty;
            }
        }
        layer_norm(&mut x, d, &self.ln0, self.eps);
        let heads = self.heads;
        let hd = d / heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let (mut q, mut k, mut v) = (vec![0f32; t * d], vec![0f32; t * d], vec![0f32; t * d]);
        let mut ctx = vec![0f32; t * d];
        let mut tmp = vec![0f32; t * d];
        let inner = self.layers.iter().map(|l| l.upb.len()).max().unwrap_or(0);
        let mut up = vec![0f32; t * inner];
        let mut att = Attention::new(t, hd);
        for l in &self.layers {
            linear(&x, t, &l.q, &mut q);
            linear(&x, t, &l.k, &mut k);
            linear(&x, t, &l.v, &mut v);
            add_bias(&mut q, &l.qb);
            add_bias(&mut k, &l.kb);
            add_bias(&mut v, &l.vb);
            for h in 0..heads {
                attend(&q, &k, &v, (d, h * hd, hd), t, scale, &mut att, &mut ctx);
            }
            linear(&ctx, t, &l.o, &mut tmp);
            add_bias(&mut tmp, &l.ob);
            for (a, b) in x.iter_mut().zip(&tmp) {
                *a += b;
            }
            layer_norm(&mut x, d, &l.ln1, self.eps);
            linear(&x, t, &l.up, &mut up);
            add_bias(&mut up, &l.upb);
            gelu_inplace(&mut up);
            linear(&up, t, &l.down, &mut tmp);
            add_bias(&mut tmp, &l.downb);
            for (a, b) in x.iter_mut().zip(&tmp) {
                *a += b;
            }
            layer_norm(&mut x, d, &l.ln2, self.eps);
        }
        let mut pooled = vec![0f32; d];
        for row in x.chunks_exact(d) {
            for (p, v) in pooled.iter_mut().zip(row) {
                *p += v;
            }
        }
        let norm = pooled.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        for p in &mut pooled {
            *p /= norm;
        }
        pooled
    }
}

/// One head's buffers: its queries, scores and context.
struct Attention {
    q: Vec<f32>,
    scores: Vec<f32>,
    out: Vec<f32>,
}

impl Attention {
    fn new(t: usize, hd: usize) -> Attention {
        Attention {
            q: vec![0.0; t * hd],
            scores: vec![0.0; t * t],
            out: vec![0.0; t * hd],
        }
    }
}

/// Scaled dot-product attention of one head over `t` rows: the head's columns `(width, start,
/// len)` of `q`, `k` and `v` give its part of `ctx`. Both products go through
/// [`rwkv_kernels::linalg::linear`]: the keys are the rows (outputs) of one matrix, the values
/// the inputs of another, each laid out input-major as `Mat::from_transposed` takes it.
#[allow(clippy::too_many_arguments)]
fn attend(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    (d, start, hd): (usize, usize, usize),
    t: usize,
    scale: f32,
    a: &mut Attention,
    ctx: &mut [f32],
) {
    let mut keys = vec![0f32; hd * t];
    let mut values = vec![0f32; t * hd];
    for i in 0..t {
        let cols = i * d + start..i * d + start + hd;
        a.q[i * hd..(i + 1) * hd].copy_from_slice(&q[cols.clone()]);
        values[i * hd..(i + 1) * hd].copy_from_slice(&v[cols.clone()]);
        for (c, &x) in k[cols].iter().enumerate() {
            keys[c * t + i] = x;
        }
    }
    linear(&a.q, t, &Mat::from_transposed(t, hd, keys), &mut a.scores);
    softmax_rows(&mut a.scores, t, scale);
    linear(&a.scores, t, &Mat::from_transposed(hd, t, values), &mut a.out);
    for i in 0..t {
        ctx[i * d + start..i * d + start + hd].copy_from_slice(&a.out[i * hd..(i + 1) * hd]);
    }
}

fn add_bias(x: &mut [f32], b: &[f32]) {
    for row in x.chunks_exact_mut(b.len()) {
        for (v, b) in row.iter_mut().zip(b) {
            *v += b;
        }
    }
}

/// Layer norm of each row of `x` (width `d`) with weight and bias `wb`.
fn layer_norm(x: &mut [f32], d: usize, wb: &(Vec<f32>, Vec<f32>), eps: f32) {
    for row in x.chunks_exact_mut(d) {
        let mean = row.iter().sum::<f32>() / d as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, w), b) in row.iter_mut().zip(&wb.0).zip(&wb.1) {
            *v = (*v - mean) * inv * w + b;
        }
    }
}

/// Softmax of each row (width `t`) of `x` times `scale`: the attention weights.
#[inline(always)]
fn softmax_rows_g<A: Arch>(x: &mut [f32], t: usize, scale: f32) {
    for row in x.chunks_exact_mut(t) {
        let mut top = [f32::NEG_INFINITY; LANES];
        let mut chunks = row.chunks_exact(LANES);
        for c in &mut chunks {
            for l in 0..LANES {
                top[l] = top[l].max(c[l]);
            }
        }
        let max = chunks
            .remainder()
            .iter()
            .chain(&top)
            .fold(f32::NEG_INFINITY, |m, &s| m.max(s))
            * scale;
        for s in row.iter_mut() {
            *s = exp::<A>(A::fma(*s, scale, -max));
        }
        let inv = 1.0 / sum_lanes(row);
        for s in row.iter_mut() {
            *s *= inv;
        }
    }
}
multiversion!(fn softmax_rows(x: &mut [f32], t: usize, scale: f32) => softmax_rows_g);

/// GELU with the error function (BERT's `gelu`), element-wise.
#[inline(always)]
fn gelu_inplace_g<A: Arch>(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = 0.5 * *v * (1.0 + erf::<A>(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}
multiversion!(fn gelu_inplace(x: &mut [f32]) => gelu_inplace_g);

/// The error function, within 1.5e-7 (Abramowitz and Stegun 7.1.26), in a form that
/// vectorizes.
#[inline(always)]
fn erf<A: Arch>(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / A::fma(0.327_591_1, a, 1.0);
    let mut p = 1.061_405_4_f32;
    p = A::fma(p, t, -1.453_152_1);
    p = A::fma(p, t, 1.421_413_8);
    p = A::fma(p, t, -0.284_496_74);
    p = A::fma(p, t, 0.254_829_6);
    let y = 1.0 - p * t * exp::<A>(-a * a);
    y.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_is_close() {
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (-2.0, -0.995_322_3),
            (4.0, 1.0),
        ] {
            let got = erf::<rwkv_kernels::simd::Plain>(x);
            assert!((got - want).abs() < 1e-6, "erf({x}) = {got} not {want}");
        }
    }
}
