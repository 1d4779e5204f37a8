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

    /// Decode whole blocks: `data.len()` must be a multiple of [`Quant::block_bytes`]; appends
    /// 32 values per block to `out`.
    pub fn dequantize(self, data: &[u8], out: &mut Vec<f32>) {
        let bs = self.block_bytes();
        let h = |b: &[u8], i: usize| f16::from_le_bytes([b[i], b[i + 1]]).to_f32();
        for b in data.chunks_exact(bs) {
            let mut y = [0f32; BLOCK];
            match self {
                Quant::Q4_0 => {
                    let d = h(b, 0);
                    for (j, &q) in b[2..18].iter().enumerate() {
                        y[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
                        y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
                    }
                }
                Quant::Q4_1 => {
                    let (d, m) = (h(b, 0), h(b, 2));
                    for (j, &q) in b[4..20].iter().enumerate() {
                        y[j] = (q & 0x0F) as f32 * d + m;
                        y[j + 16] = (q >> 4) as f32 * d + m;
                    }
                }
                Quant::Q5_0 | Quant::Q5_1 => {
                    let (d, m, hi) = match self {
                        Quant::Q5_0 => (h(b, 0), 0.0, 2),
                        _ => (h(b, 0), h(b, 2), 4),
                    };
                    let qh = u32::from_le_bytes([b[hi], b[hi + 1], b[hi + 2], b[hi + 3]]);
                    let bias = if self == Quant::Q5_0 { 16 } else { 0 };
                    for (j, &q) in b[hi + 4..hi + 20].iter().enumerate() {
                        let x0 = (q & 0x0F) as u32 | (((qh >> j) & 1) << 4);
                        let x1 = (q >> 4) as u32 | (((qh >> (j + 16)) & 1) << 4);
                        y[j] = (x0 as i32 - bias) as f32 * d + m;
                        y[j + 16] = (x1 as i32 - bias) as f32 * d + m;
                    }
                }
                Quant::Q8_0 => {
                    let d = h(b, 0);
                    for (j, &q) in b[2..34].iter().enumerate() {
                        y[j] = q as i8 as f32 * d;
                    }
                }
            }
            out.extend_from_slice(&y);
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
