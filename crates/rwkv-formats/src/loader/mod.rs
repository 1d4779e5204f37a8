//! Reading checkpoint files into a [`TensorMap`].
//!
//! The format is recognised from the file's first bytes, not its extension: a zip archive is a
//! PyTorch `.pth`, rwkv.cpp's magic is rwkv.cpp's format, and anything else must parse as
//! safetensors. Every loader validates lengths against the file before trusting them.

mod pickle;
pub mod pth;
mod rwkvcpp;
mod safetensors_file;

use std::path::Path;

use crate::error::{Error, Result};
use crate::tensor::TensorMap;

pub use crate::ggml::{ActQuant, BLOCK as GGML_BLOCK, Quant};
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

/// RWKV generations, told apart by their tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Generation {
    /// RWKV-4 (and Raven): `att.time_decay`, no `ln_x`.
    V4,
    /// RWKV-5.0 (no gate), 5.1 and 5.2 (gate): `ln_x` and `time_decay`, no `time_maa_*`.
    V5,
    /// RWKV-6: `time_maa_*`.
    V6,
    /// RWKV-7 (x070): `att.r_k`.
    V7,
}

impl Generation {
    /// Detect the generation from block 0's tensor names; also returns the tensor that told.
    pub fn detect(map: &TensorMap) -> Option<(Generation, &'static str)> {
        let has = |n: &str| map.contains(n);
        if has("blocks.0.att.r_k") {
            Some((Generation::V7, "blocks.0.att.r_k"))
        } else if has("blocks.0.att.time_maa_x") {
            Some((Generation::V6, "blocks.0.att.time_maa_x"))
        } else if has("blocks.0.att.time_maa_w1") {
            Some((Generation::V6, "blocks.0.att.time_maa_w1"))
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

    /// The short stable key written in state files (`v4`, `v5`, `v6`, `v7`).
    pub fn key(self) -> &'static str {
        match self {
            Generation::V4 => "v4",
            Generation::V5 => "v5",
            Generation::V6 => "v6",
            Generation::V7 => "v7",
        }
    }

    /// The generation a state-file key names.
    pub fn from_key(key: &str) -> Option<Generation> {
        [Generation::V4, Generation::V5, Generation::V6, Generation::V7]
            .into_iter()
            .find(|g| g.key() == key)
    }
}
