//! Reading checkpoint files into a [`TensorMap`].
//!
//! The format is recognised from the file's first bytes, not its extension: a zip archive is a
//! PyTorch `.pth`, rwkv.cpp's magic is rwkv.cpp's format, and anything else must parse as
//! safetensors. Every loader validates lengths against the file before trusting them.

mod ggml;
mod pickle;
pub mod pth;
mod rwkvcpp;
mod safetensors_file;

use std::path::Path;

use crate::error::{Error, Result};
use crate::tensor::TensorMap;

pub use ggml::{BLOCK as GGML_BLOCK, Quant};
pub use rwkvcpp::{RWKVCPP_FORMAT, read_rwkvcpp, read_rwkvcpp_bytes};
pub use safetensors_file::{read_safetensors, read_safetensors_bytes};

/// The container formats we recognise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// PyTorch zip archive (`torch.save`).
    Pth,
    /// safetensors.
    Safetensors,
    /// rwkv.cpp's own binary format (`ggmf` magic).
    RwkvCpp,
}

/// Guess the container format from the first bytes of a file.
pub fn sniff(bytes: &[u8]) -> Option<FileFormat> {
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return Some(FileFormat::Pth);
    }
    if bytes.len() >= 4 && u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) == rwkvcpp::MAGIC {
        return Some(FileFormat::RwkvCpp);
    }
    if bytes.len() >= 9 && bytes[8] == b'{' {
        return Some(FileFormat::Safetensors);
    }
    None
}

/// Read every tensor of a checkpoint file (`.pth`, `.safetensors` or rwkv.cpp `.bin`), in the
/// official layout.
pub fn load_tensors(path: &Path) -> Result<TensorMap> {
    let mut head = [0u8; 16];
    let n = {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        n
    };
    match sniff(&head[..n]) {
        Some(FileFormat::Pth) => pth::read_pth(path),
        Some(FileFormat::Safetensors) => read_safetensors(path),
        Some(FileFormat::RwkvCpp) => read_rwkvcpp(path),
        None if n == 0 => Err(Error::format(path, "the file is empty")),
        None => Err(Error::format(
            path,
            "neither a PyTorch zip archive, a safetensors file nor an rwkv.cpp file",
        )),
    }
}
