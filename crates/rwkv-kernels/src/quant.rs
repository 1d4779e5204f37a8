//! rwkv.cpp's quantized matrices held as their ggml blocks, and the product that decodes them
//! inside the dot product.
//!
//! A Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 matrix stays in memory as the file stores it: rows of the
//! official `[out, in]` layout, each a run of blocks of 32 inputs (18–34 bytes a block, so a
//! Q5_1 matrix holds 0.75 bytes a weight instead of four). A product does what ggml's quantized
//! mat-vec does: each input row is rounded to 8 bits per block of 32 (Q8_0, or Q8_1 with its
//! f16 `d · Σq` for the formats with an offset; see [`crate::linalg::ActQuant`]), and each output
//! is, over its blocks in order,
//!
//! `y += (d_w · d_x) · Σ_j q_w[j] · q_x[j]`, plus `m_w · s_x` for Q4_1/Q5_1,
//!
//! with the block's integer dot product exact (i32), summed in ggml's own float order (eight
//! lanes of fused multiply-adds across the blocks, ggml's `hsum_float_8`, then the offsets'
//! sum; see [`Acc`]). In exact arithmetic that is the rounded-activation emulation the
//! decoded-f32 path computes ([`crate::linalg::linear`] with `act_quant`):
//! `Σ q_x·d_x · (q_w·d_w + m) + m·(s − d_x·Σq_x) = d_w·d_x·Σ q_w·q_x + m·s`; each product of
//! the two paths differs by float rounding only (~1e-6 of its scale). A model's logits can move
//! more where that rounding takes an activation across one of the next product's 8-bit steps;
//! summing as ggml does keeps rwkv.cpp's own expected logits (`tests/rwkvcpp.rs`).
//!
//! Each output's sum runs over its blocks in one order whatever the number of rows, and the
//! integer dot products are exact, so token mode and sequence mode give bit-identical products,
//! and so do the AVX2 / AVX-512 VNNI kernels and the portable one (`RWKV_SIMD=portable`; its
//! fused multiply-adds are `f32::mul_add`, a library call on CPUs without FMA). A block of
//! inputs that cannot be rounded (non-finite values, or so small that `1 / d` overflows) is
//! multiplied unrounded with the decoded weights, as the emulation leaves it.

use rayon::prelude::*;

use crate::simd::{Arch, multiversion};
use rwkv_formats::ggml::ActQuant;
use rwkv_formats::ggml::{BLOCK as QK, Quant};

/// Rows per pass over the weights (their activations, `RT · k` bytes, stay in cache).
const RT: usize = 32;
/// Minimum multiply-adds before a product is split across threads.
const PAR_MIN_WORK: usize = 1 << 18;

/// A weight matrix `W [n, k]` (`y = x · Wᵀ`) held as ggml blocks, row-major.
#[derive(Debug, Clone)]
pub struct QuantMat {
    /// Output features.
    n: usize,
    /// Input features (a multiple of 32).
    k: usize,
    quant: Quant,
    /// `[n][k / 32]` blocks of `quant.block_bytes()` bytes.
    data: Vec<u8>,
}

impl QuantMat {
    /// Hold `data`, `n` rows of `k / 32` blocks. The error says what does not fit (the caller
    /// names the file and tensor).
    pub fn new(n: usize, k: usize, quant: Quant, data: Vec<u8>) -> std::result::Result<QuantMat, String> {
        if !k.is_multiple_of(QK) {
            return Err(format!(
                "{} rows of {k} values are not whole blocks of {QK}",
                quant.name()
            ));
        }
        match n.checked_mul(k).and_then(|e| quant.data_len(e)) {
            Some(need) if need == data.len() => Ok(QuantMat { n, k, quant, data }),
            need => Err(format!(
                "{} data of {} bytes for {n} × {k} values, which need {}",
                quant.name(),
                data.len(),
                need.map_or_else(|| "more than can be addressed".into(), |b| b.to_string())
            )),
        }
    }

    /// Output features (rows of `W`).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Input features (a multiple of 32).
    pub fn k(&self) -> usize {
        self.k
    }

    /// The block format.
    pub fn quant(&self) -> Quant {
        self.quant
    }

    /// How the inputs are rounded (ggml's pairing: Q8_1 for the formats with an offset).
    pub fn act(&self) -> ActQuant {
        if self.quant.has_offset() {
            ActQuant::Q8_1
        } else {
            ActQuant::Q8_0
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    fn blocks(&self) -> usize {
        self.k / QK
    }

    #[inline(always)]
    fn block(&self, o: usize, b: usize) -> &[u8] {
        let bb = self.quant.block_bytes();
        let at = (o * self.blocks() + b) * bb;
        &self.data[at..at + bb]
    }

    /// `W[o][i]` decoded (as [`Quant::dequantize`] decodes it).
    pub fn get(&self, o: usize, i: usize) -> f32 {
        let (q, d, m) = self.quant.decode_block(self.block(o, i / QK));
        self.quant.value(q[i % QK], d, m)
    }
}

/// Input rows rounded to 8 bits per block of 32, as ggml's `quantize_row_q8_0` / `q8_1` round
/// them (the same steps as [`crate::linalg::quantize_dequantize_q8`]).
struct Acts<'a> {
    /// The inputs, for blocks left unrounded.
    x: &'a [f32],
    /// `[rows][k]` rounded values.
    q: Vec<i8>,
    /// Per block: `f16(d)` widened.
    d: Vec<f32>,
    /// Per block (Q8_1): `f16(d · Σq)` widened.
    s: Vec<f32>,
    /// Per block: left unrounded.
    raw: Vec<bool>,
}

/// One block's inputs, rounded values, `d`, `s` and raw flag, as [`round_inputs`] visits them.
type Block<'a> = (((&'a [f32], &'a mut [i8]), &'a mut f32), (&'a mut f32, &'a mut bool));

fn round_inputs(x: &[f32], rows: usize, k: usize, act: ActQuant) -> Acts<'_> {
    let nb = k / QK;
    let mut a = Acts {
        x,
        q: vec![0; rows * k],
        d: vec![0.0; rows * nb],
        s: vec![0.0; rows * nb],
        raw: vec![false; rows * nb],
    };
    let each = |(((xb, qb), d), (s, raw)): Block<'_>| {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let dd = amax / 127.0;
        let id = if dd != 0.0 { 1.0 / dd } else { 0.0 };
        if !id.is_finite() || !xb.iter().all(|v| v.is_finite()) {
            *raw = true;
            return;
        }
        let mut sum = 0f32;
        for (qv, &v) in qb.iter_mut().zip(xb) {
            let r = (v * id).round();
            sum += r;
            *qv = r as i8;
        }
        *d = half::f16::from_f32(dd).to_f32();
        if act == ActQuant::Q8_1 {
            *s = half::f16::from_f32(dd * sum).to_f32();
        }
    };
    if rows * k >= 1 << 16 {
        x.par_chunks_exact(QK)
            .zip(a.q.par_chunks_exact_mut(QK))
            .zip(a.d.par_iter_mut())
            .zip(a.s.par_iter_mut().zip(a.raw.par_iter_mut()))
            .for_each(each);
    } else {
        x.chunks_exact(QK)
            .zip(a.q.chunks_exact_mut(QK))
            .zip(a.d.iter_mut())
            .zip(a.s.iter_mut().zip(a.raw.iter_mut()))
            .for_each(each);
    }
    a
}

/// `y[rows, w.n] = round(x)[rows, w.k] · Wᵀ` (see the module documentation).
///
/// # Panics
/// If `x` or `y` do not hold `rows` rows of `w.k` / `w.n` values.
pub fn matmul(x: &[f32], rows: usize, w: &QuantMat, y: &mut [f32]) {
    assert_eq!(Some(x.len()), rows.checked_mul(w.k), "inputs are rows × k");
    assert_eq!(Some(y.len()), rows.checked_mul(w.n), "outputs are rows × n");
    if rows == 0 || w.n == 0 {
        return;
    }
    let acts = round_inputs(x, rows, w.k, w.act());
    let threads = rayon::current_num_threads();
    let tasks = if rows * w.n * w.k >= PAR_MIN_WORK && threads > 1 {
        threads
    } else {
        1
    };
    if rows == 1 {
        // One row: the outputs are contiguous; split them (and so the weights) across tasks.
        let per = w.n.div_ceil(tasks);
        y.par_chunks_mut(per)
            .enumerate()
            .for_each(|(t, ys)| outputs(w, &acts, 1, t * per, ys));
        return;
    }
    // Many rows: each task makes a range of outputs for every row, output-major, then the
    // results are laid out row-major.
    let per = w.n.div_ceil(tasks);
    let mut yt = vec![0f32; rows * w.n];
    yt.par_chunks_mut(per * rows)
        .enumerate()
        .for_each(|(t, ys)| outputs(w, &acts, rows, t * per, ys));
    for (o, col) in yt.chunks_exact(rows).enumerate() {
        for (r, &v) in col.iter().enumerate() {
            y[r * w.n + o] = v;
        }
    }
}

/// Outputs `o0 .. o0 + out.len() / rows` for every row, into `out` (`[output][row]`).
fn outputs(w: &QuantMat, a: &Acts<'_>, rows: usize, o0: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::level() != crate::simd::Level::Portable && avx2::has_f16c() {
        if crate::simd::level() == crate::simd::Level::Avx512 && avx2::has_vnni() {
            // SAFETY: the CPU has AVX2, FMA, F16C, AVX-512 VL and VNNI (checked just now).
            return unsafe { avx2::outputs_vnni(w, a, rows, o0, out) };
        }
        // SAFETY: the CPU has AVX2 and FMA (checked by `level`) and F16C.
        return unsafe { avx2::outputs_avx2(w, a, rows, o0, out) };
    }
    outputs_portable(w, a, rows, o0, out);
}

/// One block of unrounded inputs times decoded weights, summed in order.
#[inline(always)]
fn raw_block(quant: Quant, xb: &[f32], q: &[i8; QK], d: f32, m: f32) -> f32 {
    let mut s = 0f32;
    for (&x, &v) in xb.iter().zip(q) {
        s += x * quant.value(v, d, m);
    }
    s
}

/// One output's running sum for one row, in ggml's order: eight lanes (lane `l` takes inputs
/// `4l .. 4l + 4` of every block) each accumulating `d_w · d_x · Σ q_w · q_x` with a fused
/// multiply-add, and the offsets' `m · s` summed apart; finished as ggml's `hsum_float_8` plus
/// the offsets.
#[derive(Clone, Copy, Default)]
struct Acc {
    lanes: [f32; 8],
    summs: f32,
}

impl Acc {
    /// Add block `ab`'s share (`lanes`: the integer dot product in eight partial sums).
    #[inline(always)]
    fn add(&mut self, a: &Acts<'_>, ab: usize, lanes: [i32; 8], dw: f32, m: f32, offset: bool) {
        let d = dw * a.d[ab];
        for (acc, &l) in self.lanes.iter_mut().zip(&lanes) {
            *acc = d.mul_add(l as f32, *acc);
        }
        if offset {
            self.summs += m * a.s[ab];
        }
    }

    #[inline(always)]
    fn finish(&self) -> f32 {
        let l = &self.lanes;
        let h = [l[4] + l[0], l[5] + l[1], l[6] + l[2], l[7] + l[3]];
        let (a, b) = (h[0] + h[2], h[1] + h[3]);
        (a + b) + self.summs
    }
}

// `A` is unused: the float steps are the same (fused where ggml fuses) in every kernel, so
// they all round alike; the parameter is what `multiversion!` compiles for.
#[allow(clippy::extra_unused_type_parameters)]
#[inline(always)]
fn outputs_g<A: Arch>(w: &QuantMat, a: &Acts<'_>, rows: usize, o0: usize, out: &mut [f32]) {
    let (k, nb, quant, offset) = (w.k, w.blocks(), w.quant, w.quant.has_offset());
    for r0 in (0..rows).step_by(RT) {
        let rt = RT.min(rows - r0);
        for (oi, col) in out.chunks_exact_mut(rows).enumerate() {
            let o = o0 + oi;
            let mut acc = [Acc::default(); RT];
            for b in 0..nb {
                let (q, dw, m) = quant.decode_block(w.block(o, b));
                for (r, acc) in acc.iter_mut().enumerate().take(rt) {
                    let ab = (r0 + r) * nb + b;
                    let at = (r0 + r) * k + b * QK;
                    if a.raw[ab] {
                        acc.summs += raw_block(quant, &a.x[at..at + QK], &q, dw, m);
                        continue;
                    }
                    let xq = &a.q[at..at + QK];
                    let mut lanes = [0i32; 8];
                    for (l, lane) in lanes.iter_mut().enumerate() {
                        for j in 4 * l..4 * l + 4 {
                            *lane += i32::from(q[j]) * i32::from(xq[j]);
                        }
                    }
                    acc.add(a, ab, lanes, dw, m, offset);
                }
            }
            for (c, acc) in col[r0..r0 + rt].iter_mut().zip(&acc) {
                *c = acc.finish();
            }
        }
    }
}
multiversion!(fn outputs_portable(w: &QuantMat, a: &Acts<'_>, rows: usize, o0: usize, out: &mut [f32]) => outputs_g);

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Acc, Acts, QK, QuantMat, RT, raw_block};
    use rwkv_formats::loader::Quant;

    /// Whether the CPU has F16C (every AVX2 CPU has so far).
    pub fn has_f16c() -> bool {
        use std::sync::OnceLock;
        static V: OnceLock<bool> = OnceLock::new();
        *V.get_or_init(|| std::is_x86_feature_detected!("f16c"))
    }

    /// Whether the CPU has AVX-512 VNNI (with VL, for 256-bit `vpdpbusd`).
    pub fn has_vnni() -> bool {
        use std::sync::OnceLock;
        static V: OnceLock<bool> = OnceLock::new();
        *V.get_or_init(|| std::is_x86_feature_detected!("avx512vnni") && std::is_x86_feature_detected!("avx512vl"))
    }

    /// A block's 32 weights as signed bytes (bias removed), its `d` and `m`.
    #[inline(always)]
    unsafe fn decode(quant: Quant, b: &[u8]) -> (__m256i, f32, f32) {
        // SAFETY: the caller has F16C (with AVX2).
        let h = |i: usize| unsafe {
            _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(u16::from_le_bytes([
                b[i],
                b[i + 1],
            ])))))
        };
        // SAFETY (whole body): `b` is one whole block (`block_bytes` long), so every load
        // below reads inside it; the caller has AVX2.
        unsafe {
            let nibbles = |at: usize| {
                let raw = _mm_loadu_si128(b.as_ptr().add(at) as *const __m128i);
                let both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
                _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
            };
            // Byte j of the result is 0x10 when bit j of the 32-bit word at `at` is set.
            let fifth = |at: usize| {
                let qh = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
                let spread = _mm256_shuffle_epi8(
                    _mm256_set1_epi32(qh as i32),
                    _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0),
                );
                let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
                let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
                _mm256_and_si256(set, _mm256_set1_epi8(0x10))
            };
            match quant {
                Quant::Q4_0 => (_mm256_sub_epi8(nibbles(2), _mm256_set1_epi8(8)), h(0), 0.0),
                Quant::Q4_1 => (nibbles(4), h(0), h(2)),
                Quant::Q5_0 => (
                    _mm256_sub_epi8(_mm256_or_si256(nibbles(6), fifth(2)), _mm256_set1_epi8(16)),
                    h(0),
                    0.0,
                ),
                Quant::Q5_1 => (_mm256_or_si256(nibbles(8), fifth(4)), h(0), h(2)),
                Quant::Q8_0 => (_mm256_loadu_si256(b.as_ptr().add(2) as *const __m256i), h(0), 0.0),
            }
        }
    }

    /// `Σ w[j] · x[j]` over 32 signed bytes in eight partial sums (lane `l`: bytes `4l .. 4l + 4`;
    /// exact: no pair sum reaches the i16 limit, since |x| ≤ 127).
    #[inline(always)]
    unsafe fn dot<const VNNI: bool>(w: __m256i, x: __m256i) -> __m256i {
        // SAFETY: the caller has AVX2 (and AVX-512 VNNI/VL with `VNNI`).
        unsafe {
            let aw = _mm256_sign_epi8(w, w);
            let sx = _mm256_sign_epi8(x, w);
            if VNNI {
                _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, sx)
            } else {
                _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), _mm256_set1_epi16(1))
            }
        }
    }

    /// [`super::outputs_g`] with the blocks decoded and multiplied in AVX2 registers.
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn outputs_avx2(w: &QuantMat, a: &Acts<'_>, rows: usize, o0: usize, out: &mut [f32]) {
        // SAFETY: forwarded.
        unsafe { body::<false>(w, a, rows, o0, out) }
    }

    /// The same with the byte dot products in `vpdpbusd`.
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA, F16C, AVX-512 VL and VNNI.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
    pub unsafe fn outputs_vnni(w: &QuantMat, a: &Acts<'_>, rows: usize, o0: usize, out: &mut [f32]) {
        // SAFETY: forwarded.
        unsafe { body::<true>(w, a, rows, o0, out) }
    }

    #[inline(always)]
    unsafe fn body<const VNNI: bool>(w: &QuantMat, a: &Acts<'_>, rows: usize, o0: usize, out: &mut [f32]) {
        let (k, nb, quant, offset) = (w.k, w.blocks(), w.quant, w.quant.has_offset());
        for r0 in (0..rows).step_by(RT) {
            let rt = RT.min(rows - r0);
            for (oi, col) in out.chunks_exact_mut(rows).enumerate() {
                let o = o0 + oi;
                // The eight lanes of each row's [`Acc`] in a register (the same fused
                // multiply-adds, lane by lane), its offsets' sum apart.
                // SAFETY: the caller has AVX.
                let mut lanes = [unsafe { _mm256_setzero_ps() }; RT];
                let mut summs = [0f32; RT];
                for b in 0..nb {
                    let blk = w.block(o, b);
                    // SAFETY: `blk` is one whole block; the CPU has AVX2 and F16C.
                    let (wv, dw, m) = unsafe { decode(quant, blk) };
                    for r in 0..rt {
                        let ab = (r0 + r) * nb + b;
                        let at = (r0 + r) * k + b * QK;
                        if a.raw[ab] {
                            let (q, d, m) = quant.decode_block(blk);
                            summs[r] += raw_block(quant, &a.x[at..at + QK], &q, d, m);
                            continue;
                        }
                        let xq = &a.q[at..at + QK];
                        // SAFETY: `xq` holds 32 bytes; features as documented.
                        let dot = unsafe { dot::<VNNI>(wv, _mm256_loadu_si256(xq.as_ptr() as *const __m256i)) };
                        // SAFETY: the caller has AVX2 and FMA.
                        lanes[r] =
                            unsafe { _mm256_fmadd_ps(_mm256_set1_ps(dw * a.d[ab]), _mm256_cvtepi32_ps(dot), lanes[r]) };
                        if offset {
                            summs[r] += m * a.s[ab];
                        }
                    }
                }
                let mut acc = [Acc::default(); RT];
                for r in 0..rt {
                    // SAFETY: `Acc::lanes` holds eight floats.
                    unsafe { _mm256_storeu_ps(acc[r].lanes.as_mut_ptr(), lanes[r]) };
                    acc[r].summs = summs[r];
                }
                for (c, acc) in col[r0..r0 + rt].iter_mut().zip(&acc) {
                    *c = acc.finish();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::quantize_dequantize_q8;

    /// Blocks of every format with varied scales, offsets and values.
    fn blocks(quant: Quant, n: usize, k: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for bi in 0..n * k / QK {
            let d = half::f16::from_f32(0.01 + (bi % 7) as f32 * 0.003).to_le_bytes();
            let m = half::f16::from_f32(-0.05 * (bi % 5) as f32).to_le_bytes();
            let byte = |j: usize| ((bi * 31 + j * 17) % 256) as u8;
            out.extend_from_slice(&d);
            if quant.has_offset() {
                out.extend_from_slice(&m);
            }
            let body = quant.block_bytes() - if quant.has_offset() { 4 } else { 2 };
            out.extend((0..body).map(byte));
        }
        out
    }

    /// The decoded-f32 emulation (`linalg::linear` with `act_quant` on decoded weights), in f64.
    fn emulated(x: &[f32], rows: usize, w: &QuantMat) -> Vec<f64> {
        let (n, k, nb) = (w.n, w.k, w.k / QK);
        let mut y = vec![0f64; rows * n];
        let mut e = Vec::new();
        for r in 0..rows {
            let mut xr = x[r * k..(r + 1) * k].to_vec();
            quantize_dequantize_q8(&mut xr, w.act(), &mut e);
            for o in 0..n {
                let mut s: f64 = (0..k).map(|i| f64::from(xr[i]) * f64::from(w.get(o, i))).sum();
                if w.act() == ActQuant::Q8_1 {
                    for (b, &err) in e.iter().enumerate().take(nb) {
                        // The block's offset (the emulation takes the block's minimum, which
                        // is `m` for ggml's quantizers; these blocks need not contain q = 0).
                        let (_, _, m) = w.quant.decode_block(w.block(o, b));
                        s += f64::from(m) * f64::from(err);
                    }
                }
                y[r * n + o] = s;
            }
        }
        y
    }

    #[test]
    fn products_match_the_decoded_emulation_and_every_mode_gives_the_same_bits() {
        let formats = [Quant::Q4_0, Quant::Q4_1, Quant::Q5_0, Quant::Q5_1, Quant::Q8_0];
        for quant in formats {
            for &(n, k, rows) in &[(1, 32, 1), (37, 64, 5), (70, 96, 40), (300, 256, 3)] {
                let w = QuantMat::new(n, k, quant, blocks(quant, n, k)).unwrap();
                let mut x: Vec<f32> = (0..rows * k)
                    .map(|i| ((i * 7919 % 997) as f32 / 498.0 - 1.0) * 3.0)
                    .collect();
                // One tiny block (left unrounded) and one zero block.
                if rows > 1 {
                    x[k..k + QK].iter_mut().for_each(|v| *v *= 1e-40);
                    x[2 * k - QK..2 * k].iter_mut().for_each(|v| *v = 0.0);
                }
                let mut y = vec![f32::NAN; rows * n];
                matmul(&x, rows, &w, &mut y);
                let want = emulated(&x, rows, &w);
                let scale = want.iter().fold(1f64, |m, v| m.max(v.abs()));
                for (i, (&g, &e)) in y.iter().zip(&want).enumerate() {
                    assert!(
                        (f64::from(g) - e).abs() <= 1e-6 * scale,
                        "{quant:?} {n}x{k} at {i}: {g} vs {e}"
                    );
                }
                // Row by row: the same bits.
                for r in 0..rows {
                    let mut one = vec![0f32; n];
                    matmul(&x[r * k..(r + 1) * k], 1, &w, &mut one);
                    assert_eq!(one, y[r * n..(r + 1) * n], "{quant:?} row {r}");
                }
                // The portable kernel, and AVX2 without VNNI: the same bits.
                let acts = round_inputs(&x, rows, k, w.act());
                let mut kernels: Vec<(&str, Vec<f32>)> = Vec::new();
                let mut yt = vec![0f32; rows * n];
                outputs_g::<crate::simd::Plain>(&w, &acts, rows, 0, &mut yt);
                kernels.push(("portable", yt));
                #[cfg(target_arch = "x86_64")]
                if std::is_x86_feature_detected!("avx2")
                    && std::is_x86_feature_detected!("fma")
                    && std::is_x86_feature_detected!("f16c")
                {
                    let mut yt = vec![0f32; rows * n];
                    // SAFETY: the CPU has AVX2, FMA and F16C (checked just now).
                    unsafe { avx2::outputs_avx2(&w, &acts, rows, 0, &mut yt) };
                    kernels.push(("avx2", yt));
                }
                for (name, yt) in kernels {
                    for o in 0..n {
                        for r in 0..rows {
                            assert_eq!(yt[o * rows + r].to_bits(), y[r * n + o].to_bits(), "{quant:?} {name}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn decoding_matches_the_loader() {
        for quant in [Quant::Q4_0, Quant::Q4_1, Quant::Q5_0, Quant::Q5_1, Quant::Q8_0] {
            let (n, k) = (3, 64);
            let data = blocks(quant, n, k);
            let mut all = Vec::new();
            quant.dequantize(&data, &mut all);
            let w = QuantMat::new(n, k, quant, data).unwrap();
            for o in 0..n {
                for i in 0..k {
                    assert_eq!(w.get(o, i).to_bits(), all[o * k + i].to_bits());
                }
            }
            assert_eq!(w.bytes(), n * k / QK * quant.block_bytes());
        }
    }

    #[test]
    fn inconsistent_blocks_are_refused() {
        let e = QuantMat::new(2, 48, Quant::Q5_1, vec![0; 72]).unwrap_err();
        assert!(e.contains("whole blocks"), "{e}");
        let e = QuantMat::new(2, 64, Quant::Q5_1, vec![0; 95]).unwrap_err();
        assert!(e.contains("95 bytes") && e.contains("96"), "{e}");
        let e = QuantMat::new(usize::MAX, 64, Quant::Q8_0, vec![]).unwrap_err();
        assert!(e.contains("addressed"), "{e}");
    }
}
