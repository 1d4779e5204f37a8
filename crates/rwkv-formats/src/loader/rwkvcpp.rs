//! rwkv.cpp's `.bin` checkpoints, read back into the official tensor layout.
//!
//! The file is a header of six little-endian i32 — magic `0x67676d66`, file version (100 or
//! 101), `n_vocab`, `n_embed`, `n_layer`, and the model's data type — then tensors until the end:
//! three i32 (`n_dims`, key length, data type), the dimensions innermost first (ggml order), the
//! UTF-8 key, and the data. Data types: 0 f32, 1 f16, 2 Q4_0, 3 Q4_1, 7 Q5_0, 8 Q5_1, 9 Q8_0
//! (4–6 were formats rwkv.cpp has removed); quantized data only in version-101 files, as rwkv.cpp
//! itself requires. Quantized tensors keep their blocks ([`DType::Ggml`], decoded by
//! [`super::ggml`] where f32 values are asked for; held as they are by [`crate::quant`]).
//!
//! rwkv.cpp's converter rewrites some tensors; [`to_official`] undoes that, so the result runs
//! through the same model code as a `.pth`: RWKV-4 `time_decay` is stored as `−exp(td)`; RWKV-5
//! `time_decay` as `exp(−exp(td))` and `time_first` as `exp(tf)`; RWKV-6 `time_maa_w1`,
//! `time_decay_w1` and `time_decay_w2` are transposed and `time_maa_w2` has axes 1 and 2
//! swapped; RWKV-7's LoRA factors are transposed and `x_r … x_g` concatenated into
//! `att.x_rwkvag`. The inverses are computed in f64.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::Generation;
use crate::error::{Error, Result};
use crate::ggml::{BLOCK, Quant};
use crate::tensor::{Bytes, DType, GGML_TYPE_PREFIX, RawTensor, TensorMap, to_f32};

/// The magic number rwkv.cpp files start with (`ggmf`).
pub const MAGIC: u32 = 0x6767_6d66;
/// What [`TensorMap::metadata`] `format` says of tensors read from an rwkv.cpp file.
pub const RWKVCPP_FORMAT: &str = "rwkv.cpp";

/// Longest tensor key accepted.
const MAX_KEY_LEN: usize = 1024;
/// Most dimensions a tensor may have (rwkv.cpp writes at most 3).
const MAX_DIMS: usize = 4;

/// How one tensor's data is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    F32,
    F16,
    Quant(Quant),
}

/// rwkv.cpp's data-type numbers.
fn data_type(code: i32) -> std::result::Result<Stored, &'static str> {
    match code {
        0 => Ok(Stored::F32),
        1 => Ok(Stored::F16),
        2 => Ok(Stored::Quant(Quant::Q4_0)),
        3 => Ok(Stored::Quant(Quant::Q4_1)),
        7 => Ok(Stored::Quant(Quant::Q5_0)),
        8 => Ok(Stored::Quant(Quant::Q5_1)),
        9 => Ok(Stored::Quant(Quant::Q8_0)),
        4 => Err("Q4_1_O, a format rwkv.cpp has removed"),
        5 => Err("Q4_2, a format rwkv.cpp has removed"),
        6 => Err("Q4_3, a format rwkv.cpp has removed"),
        _ => Err("unknown"),
    }
}

fn type_name(code: i32) -> String {
    match data_type(code) {
        Ok(Stored::F32) => "FP32".into(),
        Ok(Stored::F16) => "FP16".into(),
        Ok(Stored::Quant(q)) => q.name().into(),
        Err(_) => format!("type {code}"),
    }
}

/// Read an rwkv.cpp `.bin` file through a memory map, in the official layout. Quantized tensors
/// stay ranges of the map (their blocks as stored, [`DType::Ggml`]); the rest are copied out.
pub fn read_rwkvcpp(path: &Path) -> Result<TensorMap> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the map is read-only. A file truncated by another process while mapped could
    // fault, which is the documented risk of memory-mapping any file (as for safetensors).
    let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    let mmap = Arc::new(mmap);
    let raw = parse(path, &mmap, Some(&mmap))?;
    to_official(raw)
}

/// Parse rwkv.cpp file bytes into official-layout tensors; `path` is used in error messages and
/// as [`TensorMap::path`].
pub fn read_rwkvcpp_bytes(path: &Path, bytes: &[u8]) -> Result<TensorMap> {
    let raw = parse(path, bytes, None)?;
    to_official(raw)
}

/// A little-endian reader that never reads past the end.
struct Cursor<'a> {
    bytes: &'a [u8],
    off: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.off.checked_add(n)?;
        let s = self.bytes.get(self.off..end)?;
        self.off = end;
        Some(s)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn remaining(&self) -> usize {
        self.bytes.len() - self.off
    }
}

/// Read the header and every tensor as stored (ggml dimension order reversed to row-major);
/// quantized data are ranges of `map` (which `bytes` is) when given, else copied.
fn parse(path: &Path, bytes: &[u8], map_of: Option<&Arc<memmap2::Mmap>>) -> Result<TensorMap> {
    let corrupt = |reason: String| Error::corrupt(path, reason);
    let mut cur = Cursor { bytes, off: 0 };
    let mut header = [0i32; 6];
    for h in &mut header {
        *h = cur.i32().ok_or_else(|| {
            corrupt(format!(
                "the rwkv.cpp header needs 24 bytes, the file has {}",
                bytes.len()
            ))
        })?;
    }
    let [magic, version, n_vocab, n_embed, n_layer, model_type] = header;
    if magic as u32 != MAGIC {
        return Err(Error::format(
            path,
            format!("magic {:#x} is not rwkv.cpp's", magic as u32),
        ));
    }
    if version != 100 && version != 101 {
        return Err(Error::format(
            path,
            format!("rwkv.cpp file version {version}; this build reads versions 100 and 101"),
        ));
    }
    if n_vocab <= 0 || n_embed <= 0 || n_layer <= 0 {
        return Err(corrupt(format!(
            "header says n_vocab {n_vocab}, n_embed {n_embed}, n_layer {n_layer}"
        )));
    }
    let check_type = |code: i32, tensor: &str| -> Result<Stored> {
        let dtype_err = |what: String| Error::DType {
            path: path.to_path_buf(),
            tensor: tensor.to_string(),
            dtype: what,
        };
        let stored = data_type(code).map_err(|why| dtype_err(format!("rwkv.cpp data type {code} ({why})")))?;
        if matches!(stored, Stored::Quant(_)) && version != 101 {
            return Err(dtype_err(format!(
                "{} in a version-{version} file: quantized with an old rwkv.cpp whose block layout \
                 has changed; quantize the model again",
                type_name(code)
            )));
        }
        Ok(stored)
    };
    check_type(model_type, "<header>")?;

    let mut map = TensorMap::new(path);
    // The stored type of each quantized tensor: ggml rounds the activations it multiplies.
    let mut quantized = Vec::new();
    while cur.remaining() > 0 {
        let at = cur.off;
        let short = |what: &str| corrupt(format!("tensor header at byte {at}: {what} (truncated?)"));
        let n_dims = cur.i32().ok_or_else(|| short("no dimension count"))?;
        let key_len = cur.i32().ok_or_else(|| short("no key length"))?;
        let code = cur.i32().ok_or_else(|| short("no data type"))?;
        if !(1..=MAX_DIMS as i32).contains(&n_dims) {
            return Err(corrupt(format!("tensor at byte {at} has {n_dims} dimensions")));
        }
        if !(1..=MAX_KEY_LEN as i32).contains(&key_len) {
            return Err(corrupt(format!("tensor at byte {at} has a key of {key_len} bytes")));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let d = cur.i32().ok_or_else(|| short("dimensions cut off"))?;
            dims.push(d);
        }
        let key_bytes = cur.take(key_len as usize).ok_or_else(|| short("key cut off"))?;
        let key = std::str::from_utf8(key_bytes)
            .map_err(|_| corrupt(format!("tensor at byte {at} has a key that is not UTF-8")))?
            .to_string();
        if dims.iter().any(|&d| d <= 0) {
            return Err(corrupt(format!("tensor `{key}` has dimensions {dims:?}")));
        }
        let numel = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d as usize))
            .ok_or_else(|| corrupt(format!("tensor `{key}` has dimensions {dims:?}")))?;
        let stored = check_type(code, &key)?;
        let nbytes = match stored {
            Stored::F32 => numel.checked_mul(4),
            Stored::F16 => numel.checked_mul(2),
            Stored::Quant(q) => {
                if !(dims[0] as usize).is_multiple_of(BLOCK) {
                    return Err(corrupt(format!(
                        "tensor `{key}` is {} with rows of {} values, not a multiple of {BLOCK}",
                        q.name(),
                        dims[0]
                    )));
                }
                (numel / BLOCK).checked_mul(q.block_bytes())
            }
        };
        let nbytes = nbytes.ok_or_else(|| corrupt(format!("tensor `{key}` has dimensions {dims:?}")))?;
        let data = cur.take(nbytes).ok_or_else(|| {
            corrupt(format!(
                "tensor `{key}` needs {nbytes} bytes, {} remain (truncated?)",
                bytes.len() - cur.off
            ))
        })?;
        let (dtype, data): (DType, Bytes) = match stored {
            Stored::F32 => (DType::F32, data.to_vec().into()),
            Stored::F16 => (DType::F16, data.to_vec().into()),
            Stored::Quant(q) => {
                quantized.push((format!("{GGML_TYPE_PREFIX}{key}"), q.name().to_string()));
                let data = match map_of {
                    Some(map) => Bytes::Mapped {
                        map: Arc::clone(map),
                        start: cur.off - nbytes,
                        len: nbytes,
                    },
                    None => data.to_vec().into(),
                };
                (DType::Ggml(q), data)
            }
        };
        let shape: Vec<usize> = dims.iter().rev().map(|&d| d as usize).collect();
        if map
            .tensors
            .insert(key.clone(), RawTensor { dtype, shape, data })
            .is_some()
        {
            return Err(corrupt(format!("tensor `{key}` appears twice")));
        }
    }
    let emb = map.get("emb.weight")?;
    if emb.shape != [n_vocab as usize, n_embed as usize] {
        return Err(Error::Shape {
            path: path.to_path_buf(),
            tensor: "emb.weight".into(),
            found: emb.shape.clone(),
            expected: vec![n_vocab as usize, n_embed as usize],
        });
    }
    map.metadata = BTreeMap::from([
        ("format".to_string(), RWKVCPP_FORMAT.to_string()),
        ("rwkvcpp_version".to_string(), version.to_string()),
        ("rwkvcpp_data_type".to_string(), type_name(model_type)),
        ("rwkvcpp_n_layer".to_string(), n_layer.to_string()),
    ]);
    map.metadata.extend(quantized);
    Ok(map)
}

/// Undo rwkv.cpp's converter so the tensors are in the official layout.
pub fn to_official(mut map: TensorMap) -> Result<TensorMap> {
    let Some((generation, _)) = Generation::detect(&map) else {
        return Ok(map);
    };
    let names: Vec<String> = map.tensors.keys().cloned().collect();
    for name in names {
        // `att.time_decay`, `ffn.time_mix_k`, ...: the name below `blocks.N.`.
        let Some((_, leaf)) = name.strip_prefix("blocks.").and_then(|r| r.split_once('.')) else {
            continue;
        };
        let Some(leaf) = leaf.strip_prefix("att.").or_else(|| leaf.strip_prefix("ffn.")) else {
            continue;
        };
        match (generation, leaf) {
            (Generation::V4, "time_decay") => map_values(&mut map, &name, None, |x| {
                // −exp(td) → td.
                (x <= 0.0).then(|| (-x).ln())
            })?,
            (Generation::V5, "time_decay") => map_values(&mut map, &name, Some(per_head), |x| {
                // exp(−exp(td)) → td.
                (0.0..=1.0).contains(&x).then(|| (-x.ln()).ln())
            })?,
            (Generation::V5, "time_first") => map_values(&mut map, &name, Some(per_head), |x| {
                // exp(tf) → tf.
                (x >= 0.0).then(|| x.ln())
            })?,
            (Generation::V5 | Generation::V6, "time_faaaa") => reshape(&mut map, &name, per_head),
            (Generation::V6, "time_decay") => reshape(&mut map, &name, channel_vector),
            (_, l) if l.starts_with("time_mix_") || (l.starts_with("time_maa_") && l.len() == "time_maa_x".len()) => {
                reshape(&mut map, &name, channel_vector)
            }
            (Generation::V6, "time_maa_w1" | "time_decay_w1" | "time_decay_w2") => transpose(&mut map, &name)?,
            (Generation::V6, "time_maa_w2") => swap_last_axes(&mut map, &name)?,
            (Generation::V7, "w1" | "w2" | "a1" | "a2" | "v1" | "v2" | "g1" | "g2") => transpose(&mut map, &name)?,
            (Generation::V7, "x_rwkvag") => split_rwkvag(&mut map, &name)?,
            _ => {}
        }
    }
    Ok(map)
}

/// A per-head tensor's official shape: `[H]` or `[H, N]` (see [`crate::tensor::head_shape`]).
fn per_head(shape: &[usize]) -> Vec<usize> {
    let s = crate::tensor::head_shape(shape);
    if s.is_empty() { vec![1] } else { s }
}

/// A per-channel vector's official shape, `[1, 1, C]`.
fn channel_vector(shape: &[usize]) -> Vec<usize> {
    vec![1, 1, shape.iter().product()]
}

/// A rule giving a tensor its official shape.
type ShapeFn = fn(&[usize]) -> Vec<usize>;

fn reshape(map: &mut TensorMap, name: &str, shape: ShapeFn) {
    if let Some(t) = map.tensors.get_mut(name) {
        t.shape = shape(&t.shape);
    }
}

fn values(map: &TensorMap, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    let t = map.get(name)?;
    Ok((t.shape.clone(), to_f32(&map.path, name, t)?))
}

fn put(map: &mut TensorMap, name: &str, shape: Vec<usize>, v: &[f32]) {
    let data = v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>().into();
    map.tensors.insert(
        name.to_string(),
        RawTensor {
            dtype: DType::F32,
            shape,
            data,
        },
    );
}

/// Replace every value `x` of `name` by `f(x)` (computed in f64); `None` means the stored value
/// cannot come from rwkv.cpp's converter.
fn map_values(map: &mut TensorMap, name: &str, shape: Option<ShapeFn>, f: impl Fn(f64) -> Option<f64>) -> Result<()> {
    let (s, v) = values(map, name)?;
    let mut out = Vec::with_capacity(v.len());
    for x in v {
        let y = f(x as f64).ok_or_else(|| {
            Error::corrupt(
                &map.path,
                format!("tensor `{name}` holds {x}, which rwkv.cpp's converter cannot have written"),
            )
        })?;
        out.push(y as f32);
    }
    put(map, name, shape.map_or(s.clone(), |f| f(&s)), &out);
    Ok(())
}

fn two_dims(map: &TensorMap, name: &str, shape: &[usize], rank: usize) -> Result<()> {
    if shape.len() != rank {
        return Err(Error::Shape {
            path: map.path.clone(),
            tensor: name.to_string(),
            found: shape.to_vec(),
            expected: vec![0; rank],
        });
    }
    Ok(())
}

fn transpose(map: &mut TensorMap, name: &str) -> Result<()> {
    let (s, v) = values(map, name)?;
    two_dims(map, name, &s, 2)?;
    let (r, c) = (s[0], s[1]);
    let mut out = vec![0f32; v.len()];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = v[i * c + j];
        }
    }
    put(map, name, vec![c, r], &out);
    Ok(())
}

fn swap_last_axes(map: &mut TensorMap, name: &str) -> Result<()> {
    let (s, v) = values(map, name)?;
    two_dims(map, name, &s, 3)?;
    let (a, b, c) = (s[0], s[1], s[2]);
    let mut out = vec![0f32; v.len()];
    for i in 0..a {
        for j in 0..b {
            for k in 0..c {
                out[(i * c + k) * b + j] = v[(i * b + j) * c + k];
            }
        }
    }
    put(map, name, vec![a, c, b], &out);
    Ok(())
}

/// `att.x_rwkvag` (`[6, 1, C]`) → `att.x_r`, `x_w`, `x_k`, `x_v`, `x_a`, `x_g` (`[1, 1, C]` each).
fn split_rwkvag(map: &mut TensorMap, name: &str) -> Result<()> {
    let (s, v) = values(map, name)?;
    if s.first() != Some(&6) || v.len() % 6 != 0 {
        return Err(Error::Shape {
            path: map.path.clone(),
            tensor: name.to_string(),
            found: s,
            expected: vec![6, 1, 0],
        });
    }
    let c = v.len() / 6;
    let prefix = &name[..name.len() - "x_rwkvag".len()];
    for (i, part) in ["r", "w", "k", "v", "a", "g"].iter().enumerate() {
        put(map, &format!("{prefix}x_{part}"), vec![1, 1, c], &v[i * c..(i + 1) * c]);
    }
    map.tensors.remove(name);
    Ok(())
}
