//! safetensors checkpoints, memory-mapped.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::tensor::{Bytes, DType, RawTensor, TensorMap};

/// Read a safetensors file through a memory map. Tensors are not copied: each one refers to
/// its range of the map ([`crate::tensor::Bytes::Mapped`]), which lives as long as the tensors.
pub fn read_safetensors(path: &Path) -> Result<TensorMap> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the map is read-only. A file truncated by another process while mapped could
    // fault, which is the documented risk of memory-mapping any file (candle and safetensors
    // accept it too).
    let mmap = Arc::new(unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?);
    parse(path, &mmap, Some(&mmap))
}

/// Parse safetensors bytes; `path` is used in error messages only.
pub fn read_safetensors_bytes(path: &Path, bytes: &[u8]) -> Result<TensorMap> {
    parse(path, bytes, None)
}

/// Parse `bytes`; with `map` (whose contents `bytes` is), tensors refer to it instead of
/// copying their data.
fn parse(path: &Path, bytes: &[u8], mapped: Option<&Arc<memmap2::Mmap>>) -> Result<TensorMap> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| describe(path, bytes, e))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| describe(path, bytes, e))?;
    let mut map = TensorMap::new(path);
    if let Some(m) = meta.metadata() {
        map.metadata = m
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>();
    }
    for (name, view) in st.tensors() {
        let dtype = match view.dtype() {
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            Dtype::F64 => DType::F64,
            Dtype::I64 => DType::I64,
            other => {
                return Err(Error::DType {
                    path: path.to_path_buf(),
                    tensor: name,
                    dtype: format!("{other:?}"),
                });
            }
        };
        let shape = view.shape().to_vec();
        let data = match mapped {
            Some(m) => Bytes::Mapped {
                map: Arc::clone(m),
                start: view.data().as_ptr() as usize - bytes.as_ptr() as usize,
                len: view.data().len(),
            },
            None => Bytes::Owned(view.data().to_vec()),
        };
        let t = RawTensor { dtype, shape, data };
        if t.data.len() != t.numel() * dtype.size() {
            return Err(Error::corrupt(
                path,
                format!("tensor `{name}` has {} bytes for shape {:?}", t.data.len(), t.shape),
            ));
        }
        map.tensors.insert(name, t);
    }
    Ok(map)
}

fn describe(path: &Path, bytes: &[u8], e: safetensors::SafeTensorError) -> Error {
    use safetensors::SafeTensorError as E;
    match e {
        E::MetadataIncompleteBuffer | E::InvalidOffset(_) | E::TensorInvalidInfo => {
            Error::corrupt(path, format!("{e} (file is {} bytes; truncated?)", bytes.len()))
        }
        E::HeaderTooSmall
        | E::HeaderTooLarge
        | E::InvalidHeader(_)
        | E::InvalidHeaderLength
        | E::InvalidHeaderDeserialization(_) => Error::format(path, format!("not a safetensors file: {e}")),
        other => Error::corrupt(path, other.to_string()),
    }
}
