//! The BERT encoder and its mean pooling.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use rwkv_formats::tensor::to_f32;
use rwkv_kernels::linalg::{Mat, linear};

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
    /// Word-piece embeddings, `[vocab, dim]` (f32).
    words: Vec<f32>,
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
        let words = to_f32(path, "embeddings.word_embeddings.weight", word_t)?;
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
            let w = &self.words[id as usize * d..(id as usize + 1) * d];
            let p = &self.positions[i * d..(i + 1) * d];
            for (((o, w), p), ty) in row.iter_mut().zip(w).zip(p).zip(&self.token_type[..d]) {
                *o = w + p + ty;
            }
        }
        layer_norm(&mut x, d, &self.ln0, self.eps);
        let heads = self.heads;
        let hd = d / heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let (mut q, mut k, mut v) = (vec![0f32; t * d], vec![0f32; t * d], vec![0f32; t * d]);
        let mut ctx = vec![0f32; t * d];
        let mut tmp = vec![0f32; t * d];
        let mut scores = vec![0f32; t];
        for l in &self.layers {
            linear(&x, t, &l.q, &mut q);
            linear(&x, t, &l.k, &mut k);
            linear(&x, t, &l.v, &mut v);
            add_bias(&mut q, &l.qb);
            add_bias(&mut k, &l.kb);
            add_bias(&mut v, &l.vb);
            ctx.fill(0.0);
            for h in 0..heads {
                let cols = h * hd..(h + 1) * hd;
                for i in 0..t {
                    let qi = &q[i * d..][cols.clone()];
                    let mut max = f32::NEG_INFINITY;
                    for (j, s) in scores.iter_mut().enumerate() {
                        let kj = &k[j * d..][cols.clone()];
                        *s = qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f32>() * scale;
                        max = max.max(*s);
                    }
                    let mut sum = 0.0;
                    for s in scores.iter_mut() {
                        *s = (*s - max).exp();
                        sum += *s;
                    }
                    let out = &mut ctx[i * d..][cols.clone()];
                    for (j, s) in scores.iter().enumerate() {
                        let w = s / sum;
                        for (o, vj) in out.iter_mut().zip(&v[j * d..][cols.clone()]) {
                            *o += w * vj;
                        }
                    }
                }
            }
            linear(&ctx, t, &l.o, &mut tmp);
            add_bias(&mut tmp, &l.ob);
            for (a, b) in x.iter_mut().zip(&tmp) {
                *a += b;
            }
            layer_norm(&mut x, d, &l.ln1, self.eps);
            let inner = l.upb.len();
            let mut up = vec![0f32; t * inner];
            linear(&x, t, &l.up, &mut up);
            add_bias(&mut up, &l.upb);
            for u in &mut up {
                *u = gelu(*u);
            }
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

/// GELU with the error function (BERT's `gelu`).
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x / std::f32::consts::SQRT_2))
}

/// The error function, within 1.5e-7 (Abramowitz and Stegun 7.1.26).
fn erf(x: f32) -> f32 {
    let s = x.signum();
    let x = x.abs() as f64;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t + 0.254_829_592)
            * t
            * (-x * x).exp();
    s * y as f32
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
            assert!((erf(x) - want).abs() < 1e-6, "erf({x}) = {} not {want}", erf(x));
        }
    }
}
