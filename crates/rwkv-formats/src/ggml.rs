//! ggml's block-quantized formats, as rwkv.cpp files store them, decoded to f32.
//!
//! Every format packs 32 consecutive values (along a row) in one block with an f16 scale `d`
//! (and, for the `_1` formats, an f16 offset `m`); value `j` of a block is `q_j · d` or
//! `q_j · d + m`. The 4-bit formats keep value `j` in the low nibble of byte `j` and value
//! `j + 16` in its high nibble; the 5-bit formats add a 32-bit word whose bit `j` is the fifth
//! bit of value `j`. These are the block layouts of ggml since May 2023 (rwkv.cpp file version
//! 101).

use half::f16;

/// Values per block.
pub const BLOCK: usize = 32;

/// A ggml block format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quant {
    /// 4-bit, `(q − 8) · d`.
    Q4_0,
    /// 4-bit, `q · d + m`.
    Q4_1,
    /// 5-bit, `(q − 16) · d`.
    Q5_0,
    /// 5-bit, `q · d + m`.
    Q5_1,
    /// 8-bit signed, `q · d`.
    Q8_0,
}

impl Quant {
    /// Bytes per block of 32 values.
    pub fn block_bytes(self) -> usize {
        match self {
            Quant::Q4_0 => 2 + 16,
            Quant::Q4_1 => 2 + 2 + 16,
            Quant::Q5_0 => 2 + 4 + 16,
            Quant::Q5_1 => 2 + 2 + 4 + 16,
            Quant::Q8_0 => 2 + 32,
        }
    }

    /// The name rwkv.cpp uses.
    pub fn name(self) -> &'static str {
        match self {
            Quant::Q4_0 => "Q4_0",
            Quant::Q4_1 => "Q4_1",
            Quant::Q5_0 => "Q5_0",
            Quant::Q5_1 => "Q5_1",
            Quant::Q8_0 => "Q8_0",
        }
    }

    /// The lower-case name of the held kind (`q4_0`, `q5_1`, ...).
    pub fn key(self) -> &'static str {
        match self {
            Quant::Q4_0 => "q4_0",
            Quant::Q4_1 => "q4_1",
            Quant::Q5_0 => "q5_0",
            Quant::Q5_1 => "q5_1",
            Quant::Q8_0 => "q8_0",
        }
    }

    /// Whether blocks carry an offset `m` (the `_1` formats).
    pub fn has_offset(self) -> bool {
        matches!(self, Quant::Q4_1 | Quant::Q5_1)
    }

    /// Bytes of `numel` values: whole blocks only (`None` when `numel` is not a multiple of 32
    /// or the size overflows).
    pub fn data_len(self, numel: usize) -> Option<usize> {
        if !numel.is_multiple_of(BLOCK) {
            return None;
        }
        (numel / BLOCK).checked_mul(self.block_bytes())
    }

    /// One block (`b.len() == block_bytes()`) as its integer values `q` (bias removed: value
    /// `j` is `q[j] · d + m`), its scale `d` and its offset `m` (0 for the formats without).
    #[inline(always)]
    pub fn decode_block(self, b: &[u8]) -> ([i8; BLOCK], f32, f32) {
        let h = |i: usize| f16::from_le_bytes([b[i], b[i + 1]]).to_f32();
        let mut q = [0i8; BLOCK];
        match self {
            Quant::Q4_0 | Quant::Q4_1 => {
                let (m, at, bias) = if self == Quant::Q4_0 { (0.0, 2, 8) } else { (h(2), 4, 0) };
                let qs = &b[at..at + 16];
                for j in 0..16 {
                    q[j] = ((qs[j] & 0x0F) as i8) - bias;
                    q[j + 16] = ((qs[j] >> 4) as i8) - bias;
                }
                (q, h(0), m)
            }
            Quant::Q5_0 | Quant::Q5_1 => {
                let (m, hi, bias) = if self == Quant::Q5_0 {
                    (0.0, 2, 16)
                } else {
                    (h(2), 4, 0)
                };
                let qh = u32::from_le_bytes([b[hi], b[hi + 1], b[hi + 2], b[hi + 3]]);
                let qs = &b[hi + 4..hi + 20];
                for j in 0..16 {
                    let x0 = (qs[j] & 0x0F) | ((((qh >> j) & 1) as u8) << 4);
                    let x1 = (qs[j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
                    q[j] = x0 as i8 - bias;
                    q[j + 16] = x1 as i8 - bias;
                }
                (q, h(0), m)
            }
            Quant::Q8_0 => {
                for (v, &x) in q.iter_mut().zip(&b[2..34]) {
                    *v = x as i8;
                }
                (q, h(0), 0.0)
            }
        }
    }

    /// Value `j` of a decoded block, rounded as [`Quant::dequantize`] rounds it.
    #[inline(always)]
    pub fn value(self, q: i8, d: f32, m: f32) -> f32 {
        match self {
            // The formats without an offset add none (the 5-bit one adds its zero, as it
            // always has: the same bits, -0.0 included).
            Quant::Q4_0 | Quant::Q8_0 => q as f32 * d,
            _ => q as f32 * d + m,
        }
    }

    /// Decode whole blocks: `data.len()` must be a multiple of [`Quant::block_bytes`]; appends
    /// 32 values per block to `out`.
    pub fn dequantize(self, data: &[u8], out: &mut Vec<f32>) {
        for b in data.chunks_exact(self.block_bytes()) {
            let (q, d, m) = self.decode_block(b);
            out.extend(q.iter().map(|&v| self.value(v, d, m)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16b(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    /// Pack 32 quantized values the way ggml lays them out (low nibbles first half, high
    /// nibbles second half, fifth bits in a little-endian word).
    fn pack(q: &[u32; 32], five_bit: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if five_bit {
            let mut qh = 0u32;
            for (j, &v) in q.iter().enumerate() {
                qh |= ((v >> 4) & 1) << j;
            }
            out.extend_from_slice(&qh.to_le_bytes());
        }
        for j in 0..16 {
            out.push(((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4)) as u8);
        }
        out
    }

    #[test]
    fn every_format_decodes_its_layout() {
        let q4: [u32; 32] = std::array::from_fn(|j| (j * 7 % 16) as u32);
        let q5: [u32; 32] = std::array::from_fn(|j| (j * 11 % 32) as u32);
        let (d, m) = (0.5f32, -1.25f32);
        let cases: Vec<(Quant, Vec<u8>, Vec<f32>)> = vec![
            (
                Quant::Q4_0,
                [f16b(d).to_vec(), pack(&q4, false)].concat(),
                q4.iter().map(|&q| (q as f32 - 8.0) * d).collect(),
            ),
            (
                Quant::Q4_1,
                [f16b(d).to_vec(), f16b(m).to_vec(), pack(&q4, false)].concat(),
                q4.iter().map(|&q| q as f32 * d + m).collect(),
            ),
            (
                Quant::Q5_0,
                [f16b(d).to_vec(), pack(&q5, true)].concat(),
                q5.iter().map(|&q| (q as f32 - 16.0) * d).collect(),
            ),
            (
                Quant::Q5_1,
                [f16b(d).to_vec(), f16b(m).to_vec(), pack(&q5, true)].concat(),
                q5.iter().map(|&q| q as f32 * d + m).collect(),
            ),
            (
                Quant::Q8_0,
                [f16b(d).to_vec(), (0..32).map(|j| (j as i8 * 9 - 100) as u8).collect()].concat(),
                (0..32).map(|j| (j as i8 * 9 - 100) as f32 * d).collect(),
            ),
        ];
        for (quant, block, want) in cases {
            assert_eq!(block.len(), quant.block_bytes(), "{quant:?}");
            let mut got = Vec::new();
            quant.dequantize(&[block.clone(), block].concat(), &mut got);
            assert_eq!(got.len(), 64);
            assert_eq!(&got[..32], want.as_slice(), "{quant:?}");
            assert_eq!(&got[32..], want.as_slice(), "{quant:?}");
        }
    }
}

/// The 8-bit format ggml converts the activations to before a quantized mat-vec: Q8_0 for
/// Q4_0/Q5_0/Q8_0 weights, Q8_1 for Q4_1/Q5_1 (both round the same way: per block of 32,
/// `d = f16(max|x| / 127)`, `q = round(x / d)`; Q8_1 also keeps `s = f16(d · Σq)`, which the
/// dot product multiplies by the weights' block offset `m`). [`linear`] emulates this on the
/// decoded f32 weights: the rounded inputs, plus for Q8_1 `m · (s − f16(d) · Σq)` per block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActQuant {
    /// ggml's `GGML_TYPE_Q8_0`.
    Q8_0,
    /// ggml's `GGML_TYPE_Q8_1`.
    Q8_1,
}

impl ActQuant {
    /// The activation format ggml pairs with weights of the rwkv.cpp/ggml type `name`
    /// (`Q4_0`, `Q5_1`, ...); `None` for unquantized types.
    pub fn for_weights(name: &str) -> Option<ActQuant> {
        match name {
            "Q4_0" | "Q5_0" | "Q8_0" => Some(ActQuant::Q8_0),
            "Q4_1" | "Q5_1" => Some(ActQuant::Q8_1),
            _ => None,
        }
    }
}
