//! The model fingerprint: a hash of the generation, tensor names, shapes and values, which
//! states and stores carry so that a state is never resumed by another model.

/// Feed one tensor to the fingerprint (rule 2): its name, the shape the model reads it as, and
/// a digest of its values, whatever type stores them (so a lossless conversion of a checkpoint
/// is the same model). The values are cut into blocks of [`HASH_BLOCK`] elements and each
/// block is hashed on its own (blocks in parallel) in a canonical form: when every value of the
/// block is a bf16 value, its bf16 bytes (a bf16 checkpoint's own bytes, hashed straight from
/// the file's pages), else its f32 bytes; then the block digests are hashed in order. Plus the
/// activation rounding of rwkv.cpp's quantized matrices. No f32 copy of a tensor is made.
pub(crate) fn hash_tensor(
    hash: &mut blake3::Hasher,
    name: &str,
    shape: &[usize],
    t: &crate::tensor::RawTensor,
    act: Option<crate::loader::ActQuant>,
) {
    use crate::tensor::DType;
    use rayon::prelude::*;
    hash.update(name.as_bytes());
    hash.update(&[0]);
    for d in shape {
        hash.update(&(*d as u64).to_le_bytes());
    }
    let size = t.dtype.size();
    let per = match t.dtype {
        // ggml blocks: `size` bytes per 32 values.
        DType::Ggml(_) => crate::loader::GGML_BLOCK,
        _ => 1,
    };
    let n = t.data.len() / size * per;
    let block = |b: usize| -> [u8; 32] {
        let (e0, e1) = (b * HASH_BLOCK, ((b + 1) * HASH_BLOCK).min(n));
        // HASH_BLOCK is a multiple of 32: ggml blocks are cut whole.
        let bytes = &t.data[e0 / per * size..e1 / per * size];
        let f32_bytes: Vec<u8> = match t.dtype {
            DType::BF16 => return block_digest(b"bf16", bytes),
            DType::I64 | DType::F64 => return block_digest(b"raw", bytes),
            DType::F32 => return canonical_f32(bytes),
            DType::F16 => {
                let mut out = vec![0u8; bytes.len() * 2];
                for (o, b) in out.chunks_exact_mut(4).zip(bytes.chunks_exact(2)) {
                    o.copy_from_slice(&half::f16::from_le_bytes([b[0], b[1]]).to_f32().to_le_bytes());
                }
                out
            }
            DType::Ggml(q) => {
                let mut v = Vec::with_capacity(e1 - e0);
                q.dequantize(bytes, &mut v);
                v.iter().flat_map(|x| x.to_le_bytes()).collect()
            }
        };
        canonical_f32(&f32_bytes)
    };
    let blocks = n.div_ceil(HASH_BLOCK);
    let digests: Vec<[u8; 32]> = if blocks > 1 {
        (0..blocks).into_par_iter().map(block).collect()
    } else {
        (0..blocks).map(block).collect()
    };
    hash.update(&(n as u64).to_le_bytes());
    for d in &digests {
        hash.update(d);
    }
    // Rounded activations change the outputs: the same values stored f32 are another model.
    if let Some(q) = act {
        hash.update(format!("act_quant {q:?}").as_bytes());
    }
}

/// The digest of one block of the fingerprint: its form's tag, then its bytes.
fn block_digest(tag: &[u8], bytes: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(tag);
    h.update(&[0]);
    h.update(bytes);
    *h.finalize().as_bytes()
}

/// The digest of a block of f32 little-endian values in canonical form: as bf16 bytes when
/// every value is a bf16 value (its low 16 bits are zero), else as they are.
fn canonical_f32(bytes: &[u8]) -> [u8; 32] {
    let narrow = bytes.chunks_exact(4).all(|v| v[0] == 0 && v[1] == 0);
    if !narrow {
        return block_digest(b"f32", bytes);
    }
    let halves: Vec<u8> = bytes.chunks_exact(4).flat_map(|v| [v[2], v[3]]).collect();
    block_digest(b"bf16", &halves)
}

/// Elements per block of the fingerprint's tensor digests ([`hash_tensor`]).
const HASH_BLOCK: usize = 1 << 18;
const _: () = assert!(HASH_BLOCK.is_multiple_of(crate::loader::GGML_BLOCK));

/// The rule that makes fingerprints, named in them (`x070-f2-…`): rule 2 hashes each tensor's
/// values in blocks ([`hash_tensor`]). Fingerprints without it were made by rule 1 (one
/// sequential hash over an f32 copy of every tensor), before 2026-12.
pub const FINGERPRINT_RULE: &str = "f2";

/// Whether `fingerprint` (possibly with `+…` suffixes) was made by the current rule.
pub fn fingerprint_is_current(fingerprint: &str) -> bool {
    fingerprint
        .split('+')
        .next()
        .and_then(|f| f.split('-').nth(1))
        .is_some_and(|r| r == FINGERPRINT_RULE)
}
