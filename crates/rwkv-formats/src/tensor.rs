//! Raw tensors as a checkpoint file stores them, before the architecture gives them meaning.
//!
//! Both loaders (`.pth` and `.safetensors`) produce a [`TensorMap`]; the architecture code
//! only ever sees f32 data converted from it, so every element type is handled in one place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};

/// Element types a checkpoint may store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// IEEE 754 binary32.
    F32,
    /// IEEE 754 binary16.
    F16,
    /// bfloat16.
    BF16,
    /// IEEE 754 binary64.
    F64,
    /// Signed 64-bit integers (seen in reference files, never in weights).
    I64,
    /// ggml's blocks of 32 quantized values (rwkv.cpp files), along the last dimension.
    Ggml(crate::ggml::Quant),
}

impl DType {
    /// Bytes per element; for [`DType::Ggml`], bytes per block of 32 (use
    /// [`DType::data_len`] for a tensor's length).
    pub fn size(self) -> usize {
        match self {
            DType::F16 | DType::BF16 => 2,
            DType::F32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::Ggml(q) => q.block_bytes(),
        }
    }

    /// Bytes `numel` elements take (`None` if that overflows or, for ggml blocks, `numel` is
    /// not a whole number of blocks).
    pub fn data_len(self, numel: usize) -> Option<usize> {
        match self {
            DType::Ggml(q) => q.data_len(numel),
            _ => numel.checked_mul(self.size()),
        }
    }
    /// The name safetensors uses.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::F64 => "F64",
            DType::I64 => "I64",
            DType::Ggml(q) => q.name(),
        }
    }
}

/// A tensor's bytes: owned, or a range of a memory-mapped checkpoint (safetensors files and
/// the stored entries of `.pth` archives are not copied when read).
#[derive(Clone)]
pub enum Bytes {
    /// Bytes in memory.
    Owned(Vec<u8>),
    /// `len` bytes from `start` of a read-only file map.
    Mapped {
        /// The whole file's map, shared by every tensor of the file.
        map: Arc<memmap2::Mmap>,
        /// Offset of the first byte.
        start: usize,
        /// Length in bytes.
        len: usize,
    },
}

impl Bytes {
    /// Hand a mapped range's pages back to the page cache (they stop counting towards this
    /// process's resident memory; reading them again faults them back in). Called once a
    /// tensor has been turned into the model's own copy, so that loading a checkpoint never
    /// holds the file and the model in memory together. A no-op for owned bytes.
    pub fn release(&self) {
        #[cfg(unix)]
        if let Bytes::Mapped { map, start, len } = self {
            // Only whole pages inside the range: its neighbours may still be needed.
            const PAGE: usize = 4096;
            let first = start.next_multiple_of(PAGE);
            let end = (start + len) / PAGE * PAGE;
            if end > first {
                // SAFETY: the map is read-only and file-backed, so dropping its pages loses
                // nothing: a later read refaults them from the file. No reference into the
                // released range is used afterwards for anything but such reads.
                let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, first, end - first) };
            }
        }
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v,
            Bytes::Mapped { map, start, len } => &map[*start..*start + *len],
        }
    }
}

impl FromIterator<u8> for Bytes {
    fn from_iter<I: IntoIterator<Item = u8>>(iter: I) -> Self {
        Bytes::Owned(iter.into_iter().collect())
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes::Owned(v)
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bytes::Owned(v) => write!(f, "Owned({} bytes)", v.len()),
            Bytes::Mapped { start, len, .. } => write!(f, "Mapped({len} bytes at {start})"),
        }
    }
}

/// One tensor: contiguous little-endian bytes in row-major order.
#[derive(Debug, Clone)]
pub struct RawTensor {
    /// Element type.
    pub dtype: DType,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// `shape.product() * dtype.size()` bytes.
    pub data: Bytes,
}

impl RawTensor {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Metadata key prefix recording the stored ggml type of each tensor an rwkv.cpp file holds
/// quantized (`ggml_type.blocks.0.att.key.weight` = `Q5_1`).
pub const GGML_TYPE_PREFIX: &str = "ggml_type.";

/// All tensors of one file, by name, with the file they came from (for error messages).
#[derive(Debug, Clone)]
pub struct TensorMap {
    /// The file the tensors were read from.
    pub path: PathBuf,
    /// Tensors by name, sorted (so fingerprints do not depend on file order).
    pub tensors: BTreeMap<String, RawTensor>,
    /// String metadata the file carried (safetensors `__metadata__`), if any.
    pub metadata: BTreeMap<String, String>,
}

impl TensorMap {
    /// An empty map for `path`.
    pub fn new(path: &Path) -> Self {
        TensorMap {
            path: path.to_path_buf(),
            tensors: BTreeMap::new(),
            metadata: BTreeMap::new(),
        }
    }

    /// The tensor `name`, or a [`Error::MissingTensor`].
    pub fn get(&self, name: &str) -> Result<&RawTensor> {
        self.tensors.get(name).ok_or_else(|| Error::MissingTensor {
            path: self.path.clone(),
            tensor: name.to_string(),
        })
    }

    /// How ggml would round the activations multiplied by `name`: set when the tensor was
    /// stored quantized in an rwkv.cpp file (metadata `ggml_type.<name>`), `None` otherwise.
    pub fn act_quant(&self, name: &str) -> Option<crate::ggml::ActQuant> {
        if let Some(RawTensor {
            dtype: DType::Ggml(q), ..
        }) = self.tensors.get(name)
        {
            return crate::ggml::ActQuant::for_weights(q.name());
        }
        self.metadata
            .get(&format!("{GGML_TYPE_PREFIX}{name}"))
            .and_then(|t| crate::ggml::ActQuant::for_weights(t))
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The tensor `name` as f32, after checking it has `numel` elements; `expected` is the
    /// shape reported in the error (any shape with that many elements is accepted, since the
    /// official files store vectors as `[1, 1, C]` or `[C]` interchangeably).
    pub fn f32(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>> {
        let t = self.get(name)?;
        let numel: usize = expected.iter().product();
        if t.numel() != numel {
            return Err(Error::Shape {
                path: self.path.clone(),
                tensor: name.to_string(),
                found: t.shape.clone(),
                expected: expected.to_vec(),
            });
        }
        to_f32(&self.path, name, t)
    }

    /// Like [`TensorMap::f32`], but the shape must match exactly (for matrices, where a
    /// transposed tensor has the same number of elements).
    pub fn f32_exact(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>> {
        let t = self.get(name)?;
        if t.shape != expected {
            return Err(Error::Shape {
                path: self.path.clone(),
                tensor: name.to_string(),
                found: t.shape.clone(),
                expected: expected.to_vec(),
            });
        }
        to_f32(&self.path, name, t)
    }
}

/// A [`Error::Corrupt`] naming `name` unless `t` holds exactly the bytes its shape and type need
/// (for ggml blocks: a shape whose last dimension is a whole number of blocks).
pub fn check_len(path: &Path, name: &str, t: &RawTensor) -> Result<()> {
    let n = t.numel();
    if let DType::Ggml(q) = t.dtype
        && !t.shape.last().is_some_and(|&c| c.is_multiple_of(crate::ggml::BLOCK))
    {
        return Err(Error::corrupt(
            path,
            format!(
                "tensor `{name}` is {} of shape {:?}: its rows are not whole blocks of {}",
                q.name(),
                t.shape,
                crate::ggml::BLOCK
            ),
        ));
    }
    match t.dtype.data_len(n) {
        Some(need) if need == t.data.len() => Ok(()),
        need => Err(Error::corrupt(
            path,
            format!(
                "tensor `{name}` holds {} bytes, its shape {:?} needs {}",
                t.data.len(),
                t.shape,
                need.map_or_else(|| "more than can be addressed".to_string(), |n| n.to_string())
            ),
        )),
    }
}

/// Convert a raw tensor's bytes to f32 values.
pub fn to_f32(path: &Path, name: &str, t: &RawTensor) -> Result<Vec<f32>> {
    let n = t.numel();
    check_len(path, name, t)?;
    let d = &t.data;
    Ok(match t.dtype {
        DType::Ggml(q) => {
            let mut v = Vec::with_capacity(n);
            q.dequantize(d, &mut v);
            v
        }
        DType::F32 => d
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        DType::BF16 => d
            .chunks_exact(2)
            .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
            .collect(),
        DType::F16 => d
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        DType::F64 => d
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        DType::I64 => {
            return Err(Error::DType {
                path: path.to_path_buf(),
                tensor: name.to_string(),
                dtype: "I64".into(),
            });
        }
    })
}

/// A per-head tensor's shape without padding unit dimensions: trailing ones are dropped
/// (`[H, N, 1]` → `[H, N]`), and so is a leading one of a three-dimensional shape
/// (`[1, H, N]` → `[H, N]`). Official checkpoints store `[H]` or `[H, N]`.
pub fn head_shape(shape: &[usize]) -> Vec<usize> {
    let mut s = shape.to_vec();
    while s.last() == Some(&1) {
        s.pop();
    }
    if s.len() == 3 && s[0] == 1 {
        s.remove(0);
    }
    s
}
