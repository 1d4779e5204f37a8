//! Integer matrix products for the int8 fold (`rwkv_model::FoldPrecision::Int8`).
//!
//! A fold chunk's products take both operands as small integers and multiply them exactly:
//! - **weights**: one int8 per value with one f32 scale per output row (the row's largest
//!   magnitude / 127), the very values `--weights int8` holds ([`Panels`] of [`Kind::I8`] are
//!   repacked without rounding again; wider weights are rounded the same way);
//! - **activations**: each row rounded in blocks of [`BLOCK`] inputs to `q = round(x / d)` with
//!   `d` = the block's largest magnitude / [`QMAX`] (63: seven bits and a sign; why, below),
//!   ties to even, `d` kept in f32 — ggml's Q8_0 with one bit less;
//! - **sums**: each block's 32 products are summed exactly in 32-bit integers, and the blocks in
//!   input order in f32, `acc = acc + f32(Σ q_x·q_w) · d` (a product and a sum, each rounded: no
//!   fused multiply-add, so every path gives the same bits); the row scale multiplies the end.
//!
//! Each output's sum runs over the same blocks in the same order whatever the number of rows or
//! how the work is split, so a fold gives the same bits in chunks of any length (of two rows or
//! more: one row is a generated token and takes the f32 path) and on any thread count, and the
//! portable loop gives the AVX2 and AVX-512 VNNI kernels' bits (tested).
//!
//! AVX2 has no instruction that multiplies two signed bytes: `vpmaddubsw` multiplies unsigned by
//! signed bytes and adds adjacent pairs into 16 bits, saturating. The weights are therefore held
//! offset by 128 (`q_w + 128`, 1 ..= 255) and go in as the unsigned operand, the activation as
//! the signed one; a pair then sums to at most 2 · 255 · 63 = 32,130 < 2¹⁵, so it never
//! saturates — the reason activations keep seven bits (with eight, a pair could reach 64,770;
//! moving the sign onto the weight with `vpsignb` instead costs a fourth instruction per 32
//! products, measured 1.3x slower here). `vpmaddwd` against ones widens the pairs into 32-bit
//! sums of four, and the offset comes off once per block: `Σ (q_w + 128)·q_x − 128 · Σ q_x`.
//!
//! Layout ([`QuadPanels`]): outputs in panels of [`NR`] (as [`Panels`], so products split across
//! threads the same way); within a panel, for each group of four inputs `4g .. 4g+3`, the [`NR`]
//! outputs' four bytes side by side: 128 bytes, four 256-bit vectors of eight outputs each, the
//! operand order of `vpmaddubsw` + `vpmaddwd` (and of VNNI's `vpdpbusd`). Inputs are padded with
//! zeros to whole blocks.

use rayon::prelude::*;

use crate::panels::{Kind, NR, Out, Panels, Source, split};

/// Inputs per activation block (one scale each).
pub const BLOCK: usize = 32;
/// The largest activation integer: activations are rounded to `-QMAX ..= QMAX`.
pub const QMAX: i8 = 63;
/// What the weights' bytes are offset by (they are held as `q_w + 128`).
const OFFSET: i32 = 128;
/// Groups of four inputs per block.
const GROUPS: usize = BLOCK / 4;
/// Rows of activations a panel's block is used for while it is in L1.
const MR: usize = 16;

/// Int8 weights `W [n, k]` (`y = x · Wᵀ`) in the layout of the integer kernels, one scale per
/// output. The dimensions are fixed at packing: see [`QuadPanels::n`] and [`QuadPanels::k`].
#[derive(Debug, Clone)]
pub struct QuadPanels {
    n: usize,
    k: usize,
    /// Blocks of [`BLOCK`] inputs, `⌈k / 32⌉`.
    nb: usize,
    /// `[panel][nb · 8][NR][4]` bytes, each `q_w + 128` (padding: 128, a zero weight).
    q: Vec<u8>,
    /// One scale per output, padded to whole panels with zeros.
    scales: Vec<f32>,
}

impl QuadPanels {
    /// Round `W[o][i] = get(o, i)` to int8, each output row with its own scale (its largest
    /// magnitude / 127), exactly as [`Panels::pack`] does for [`Kind::I8`].
    pub fn quantize(n: usize, k: usize, get: impl Fn(usize, usize) -> f32 + Sync) -> QuadPanels {
        Self::quantize_rows(n, k, |o, row| {
            for (i, v) in row.iter_mut().enumerate() {
                *v = get(o, i);
            }
        })
    }

    /// [`QuadPanels::quantize`] with `fill(o, row)` writing output `o`'s `k` weights at once.
    fn quantize_rows(n: usize, k: usize, fill: impl Fn(usize, &mut [f32]) + Sync) -> QuadPanels {
        Self::build(n, k, |o, row, row_q| {
            fill(o, row);
            crate::panels::round_row_i8(row, row_q)
        })
    }

    /// The weights of a checkpoint tensor, rounded to int8 ([`QuadPanels::quantize`]).
    pub fn pack(src: &Source<'_>) -> QuadPanels {
        assert!(src.fits(), "source holds n × k elements");
        Self::quantize_rows(src.n, src.k, |o, row| src.row_f32(o, row))
    }

    /// Input-major f32 weights `wt` (`[k, n]` row-major), rounded to int8.
    pub fn from_f32_input_major(wt: &[f32], k: usize, n: usize) -> QuadPanels {
        assert_eq!(wt.len(), k * n, "weights are k × n");
        Self::quantize(n, k, |o, i| wt[i * n + o])
    }

    /// The same weights as `p`: int8 panels keep their integers and scales (no second
    /// rounding); 16-bit panels are rounded to int8.
    pub fn from_panels(p: &Panels) -> QuadPanels {
        if p.kind() != Kind::I8 {
            return Self::quantize(p.n(), p.k(), |o, i| p.get(o, i));
        }
        Self::build(p.n(), p.k(), |o, _, row_q| p.i8_row(o, row_q).expect("int8 panels"))
    }

    /// Lay out rows given by `row(o, scratch, q) -> scale`, which fills output `o`'s `k`
    /// integers (`scratch`: `k` floats it may use).
    fn build(n: usize, k: usize, row: impl Fn(usize, &mut [f32], &mut [i8]) -> f32 + Sync) -> QuadPanels {
        let nb = k.div_ceil(BLOCK);
        let kg = nb * GROUPS;
        let panels = n.div_ceil(NR);
        let mut q = vec![OFFSET as u8; panels * kg * NR * 4];
        let mut scales = vec![0f32; panels * NR];
        q.par_chunks_mut(kg * NR * 4)
            .zip(scales.par_chunks_mut(NR))
            .enumerate()
            .for_each(|(pi, (panel, sc))| {
                let mut row_q = vec![0i8; k];
                let mut scratch = vec![0f32; k];
                for (j, scale) in sc.iter_mut().enumerate().take(NR.min(n - pi * NR)) {
                    *scale = row(pi * NR + j, &mut scratch, &mut row_q);
                    // Four inputs at a time: group `g`'s bytes of output `j` sit together.
                    for (g, four) in row_q.chunks(4).enumerate() {
                        let at = (g * NR + j) * 4;
                        for (b, &v) in panel[at..at + four.len()].iter_mut().zip(four) {
                            *b = offset(v);
                        }
                    }
                }
            });
        QuadPanels { n, k, nb, q, scales }
    }

    /// Output features.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Input features.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.q.len() + self.scales.len() * 4
    }

    /// Output `o`'s integers into `out` (`k` of them); returns its scale.
    pub fn i8_row(&self, o: usize, out: &mut [i8]) -> f32 {
        let (pi, j) = (o / NR, o % NR);
        let panel = &self.q[pi * self.nb * GROUPS * NR * 4..];
        for (i, v) in out.iter_mut().enumerate().take(self.k) {
            *v = unoffset(panel[((i / 4) * NR + j) * 4 + i % 4]);
        }
        self.scales[o]
    }

    /// The same integers and scales as int8 [`Panels`] (what [`QuadPanels::from_panels`] took
    /// them from).
    pub fn to_panels(&self) -> Panels {
        Panels::from_i8_rows(self.n, self.k, |o, _, row_q| self.i8_row(o, row_q))
    }

    /// The integer of `W[o][i]` and the scale of row `o`.
    pub fn parts(&self, o: usize, i: usize) -> (i8, f32) {
        let (pi, j) = (o / NR, o % NR);
        let g = pi * self.nb * GROUPS + i / 4;
        (unoffset(self.q[(g * NR + j) * 4 + i % 4]), self.scales[o])
    }
}

/// A weight's byte as held: `q + 128`.
fn offset(q: i8) -> u8 {
    (i32::from(q) + OFFSET) as u8
}

/// A weight from its byte.
fn unoffset(b: u8) -> i8 {
    (i32::from(b) - OFFSET) as i8
}

/// Activation rows rounded to [`QMAX`] in blocks of [`BLOCK`], in the operand forms of the
/// kernels.
#[derive(Debug, Clone, Default)]
pub struct QuantRows {
    rows: usize,
    k: usize,
    nb: usize,
    /// `q`, `[rows][nb · 32]` (zero-padded).
    signed: Vec<i8>,
    /// Each block's scale `d`, `[rows][nb]`.
    d: Vec<f32>,
    /// Each block's `128 · Σ q` (what the weights' offset adds to its sum), `[rows][nb]`.
    offsets: Vec<i32>,
}

/// `y` rounded to the nearest integer, ties to even, for `|y| < 2²²`: adding 1.5 · 2²³ leaves no
/// fraction bits (every step rounds once, as IEEE arithmetic must), so no `roundf` call.
fn round_small(y: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (y + MAGIC) - MAGIC
}

impl QuantRows {
    /// Round `rows` rows of `x` (`[rows, k]`) into `self` (its buffers reused): per block of
    /// [`BLOCK`] inputs `d = amax / QMAX` and `q = round(x / d)`. A block of zeros, or one so
    /// small that `1 / d` overflows, is all zeros.
    pub fn quantize(&mut self, x: &[f32], rows: usize, k: usize) {
        assert_eq!(Some(x.len()), rows.checked_mul(k), "inputs are rows × k");
        let nb = k.div_ceil(BLOCK);
        let kpad = nb * BLOCK;
        self.rows = rows;
        self.k = k;
        self.nb = nb;
        self.signed.clear();
        self.signed.resize(rows * kpad, 0);
        self.d.clear();
        self.d.resize(rows * nb, 0.0);
        self.offsets.clear();
        self.offsets.resize(rows * nb, 0);
        let parts = self
            .signed
            .par_chunks_mut(kpad)
            .zip(self.d.par_chunks_mut(nb))
            .zip(self.offsets.par_chunks_mut(nb));
        x.par_chunks_exact(k.max(1))
            .zip(parts)
            .with_min_len(4)
            .for_each(|(xr, ((sr, dr), or))| {
                for (b, xb) in xr.chunks(BLOCK).enumerate() {
                    let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let d = amax / f32::from(QMAX);
                    let inv = 1.0f32 / d;
                    if d == 0.0 || !inv.is_finite() {
                        continue;
                    }
                    dr[b] = d;
                    let qb = &mut sr[b * BLOCK..b * BLOCK + xb.len()];
                    let lim = f32::from(QMAX);
                    for (q, v) in qb.iter_mut().zip(xb) {
                        *q = round_small(v * inv).clamp(-lim, lim) as i8;
                    }
                    or[b] = OFFSET * qb.iter().map(|&q| i32::from(q)).sum::<i32>();
                }
            });
    }

    /// Rows held.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// `y[rows, w.n()] = x · Wᵀ` for activations `x` rounded by [`QuantRows::quantize`].
///
/// # Panics
/// If `x` was not rounded for `w.k()` inputs or `y` does not hold `x.rows()` rows of `w.n()`.
pub fn matmul(x: &QuantRows, w: &QuadPanels, y: &mut [f32]) {
    assert_eq!(x.k, w.k, "activations have the weights' inputs");
    assert_eq!(Some(y.len()), x.rows.checked_mul(w.n), "outputs are rows × n");
    if x.rows == 0 || w.n == 0 {
        return;
    }
    let dst = Out(y.as_mut_ptr());
    split(x.rows, w.n, w.k, |r0, r1, p0, p1| {
        // SAFETY: `split` hands out disjoint parts (rows r0 .. r1 ≤ rows, panels p0 .. p1) of the
        // output, whose extent (`rows × n` floats) was asserted.
        unsafe { range(x, r0, r1, w, dst, p0, p1) };
    });
}

/// `y[rows, w.n()] = x · Wᵀ` with f32 inputs `x` (`[rows, w.k()]`): each output sums
/// `x[i] · q[i]` over its inputs in order, one fused multiply-add each, and multiplies the sum by
/// its row's scale — the very steps of int8 [`Panels`]' products (`crate::panels::matmul`, an
/// odd last input's zero partner included), so these weights decode a token to the same bits
/// whichever of the two layouts holds them.
///
/// # Panics
/// If `x` or `y` do not hold `rows` rows of `w.k()` / `w.n()` values.
pub fn matmul_f32(x: &[f32], rows: usize, w: &QuadPanels, y: &mut [f32]) {
    if !crate::panels::product_shape(x, rows, w.k, y, w.n) {
        return;
    }
    let dst = Out(y.as_mut_ptr());
    split(rows, w.n, w.k, |r0, r1, p0, p1| {
        for r in r0..r1 {
            let xr = &x[r * w.k..(r + 1) * w.k];
            // SAFETY: `split` hands out disjoint parts (rows r0 .. r1, panels p0 .. p1) of the
            // output, whose extent (`rows × n` floats) was asserted.
            unsafe { f32_row(xr, w, dst.offset(r * w.n).0, p0, p1) };
        }
    });
}

/// Panels one f32 row multiplies at once (two streams: three were no faster at 1.5B).
const ONE_ROW_PANELS: usize = 2;

/// One row's outputs of panels `p0 .. p1`.
///
/// # Safety
/// `y` points to the row's `w.n` floats, whose columns of these panels no other thread writes.
unsafe fn f32_row(x: &[f32], w: &QuadPanels, y: *mut f32, p0: usize, p1: usize) {
    /// A one-row kernel for [`ONE_ROW_PANELS`] panels and for one.
    type Kernel = unsafe fn(&[f32], &QuadPanels, usize, *mut f32);
    #[cfg(target_arch = "x86_64")]
    let kernels: Option<(Kernel, Kernel)> = match crate::simd::level() {
        crate::simd::Level::Avx512 => Some((avx512::f32_row::<2>, avx512::f32_row::<1>)),
        crate::simd::Level::Portable => None,
        _ => Some((avx2::f32_row::<2>, avx2::f32_row::<1>)),
    };
    #[cfg(not(target_arch = "x86_64"))]
    let kernels: Option<(Kernel, Kernel)> = None;
    let Some((pair, one)) = kernels else {
        // SAFETY: forwarded from the caller.
        return unsafe { f32_row_portable(x, w, y, p0, p1) };
    };
    let mut pi = p0;
    while pi < p1 {
        // SAFETY: `level` checked the kernel's instructions (AVX-512F/BW, or AVX2 and FMA) at
        // run time; panels pi .. pi + 2 (or pi alone) exist.
        unsafe {
            if p1 - pi >= ONE_ROW_PANELS {
                pair(x, w, pi, y)
            } else {
                one(x, w, pi, y)
            }
        };
        pi += ONE_ROW_PANELS;
    }
}

/// [`f32_row`]'s portable loop: the same steps in the same order.
///
/// # Safety
/// As [`f32_row`].
unsafe fn f32_row_portable(x: &[f32], w: &QuadPanels, y: *mut f32, p0: usize, p1: usize) {
    let k2 = w.k + w.k % 2;
    for pi in p0..p1 {
        let panel = &w.q[pi * w.nb * GROUPS * NR * 4..(pi + 1) * w.nb * GROUPS * NR * 4];
        for j in 0..NR.min(w.n - pi * NR) {
            let mut acc = 0f32;
            for i in 0..k2 {
                let xi = x.get(i).copied().unwrap_or(0.0);
                acc = xi.mul_add(f32::from(unoffset(panel[((i / 4) * NR + j) * 4 + i % 4])), acc);
            }
            // SAFETY: output pi · NR + j is inside the row (caller's contract).
            unsafe { *y.add(pi * NR + j) = acc * w.scales[pi * NR + j] };
        }
    }
}

/// Rows `r0 .. r1`, panels `p0 .. p1`.
///
/// # Safety
/// `dst` points to `x.rows` rows of `w.n` floats, and no other thread writes these rows' columns
/// of these panels.
unsafe fn range(x: &QuantRows, r0: usize, r1: usize, w: &QuadPanels, dst: Out, p0: usize, p1: usize) {
    #[cfg(target_arch = "x86_64")]
    if avx512::has_vnni() {
        // SAFETY: `has_vnni` checked AVX-512F/BW and VNNI at run time; the rest is the caller's.
        return unsafe { avx512::range(x, r0, r1, w, dst.0, p0, p1) };
    }
    #[cfg(target_arch = "x86_64")]
    if crate::simd::level() != crate::simd::Level::Portable {
        // SAFETY: `level` checked AVX2 at run time; the rest is the caller's contract.
        return unsafe { avx2::range(x, r0, r1, w, dst.0, p0, p1) };
    }
    // SAFETY: forwarded from the caller.
    unsafe { portable_range(x, r0, r1, w, dst.0, p0, p1) }
}

/// Write one row's sums over panel `pi`, each times its output's scale (the padding outputs of
/// the last panel left out).
///
/// # Safety
/// `dst` holds row `row` of `w.n` floats.
#[inline]
unsafe fn put_row(lanes: &[f32; NR], row: usize, pi: usize, w: &QuadPanels, dst: *mut f32) {
    let width = NR.min(w.n - pi * NR);
    for (j, l) in lanes.iter().enumerate().take(width) {
        let o = pi * NR + j;
        // SAFETY: output o of row `row` (caller's contract).
        unsafe { *dst.add(row * w.n + o) = l * w.scales[o] };
    }
}

/// The portable loop: the same integer block sums and the same f32 steps as the kernel.
///
/// # Safety
/// As [`range`].
unsafe fn portable_range(x: &QuantRows, r0: usize, r1: usize, w: &QuadPanels, dst: *mut f32, p0: usize, p1: usize) {
    let kpad = x.nb * BLOCK;
    for pi in p0..p1 {
        let panel = &w.q[pi * x.nb * GROUPS * NR * 4..(pi + 1) * x.nb * GROUPS * NR * 4];
        for j in 0..NR.min(w.n - pi * NR) {
            let o = pi * NR + j;
            for r in r0..r1 {
                let xs = &x.signed[r * kpad..(r + 1) * kpad];
                let mut acc = 0f32;
                for b in 0..x.nb {
                    let mut isum = 0i32;
                    for i in b * BLOCK..(b + 1) * BLOCK {
                        isum += i32::from(xs[i]) * i32::from(unoffset(panel[((i / 4) * NR + j) * 4 + i % 4]));
                    }
                    acc += isum as f32 * x.d[r * x.nb + b];
                }
                // SAFETY: row r and output o are inside the output (caller's contract).
                unsafe { *dst.add(r * w.n + o) = acc * w.scales[o] };
            }
        }
    }
}

/// The one-row f32 kernel over [`QuadPanels`] in one register width: `$lanes` outputs per
/// register, the intrinsics of that width. Each output sums `x[i] · q[i]` over its inputs in
/// order, one fused multiply-add each, then multiplies by its row scale (the steps of
/// [`matmul_f32`]); per group of four inputs and `$lanes` outputs one load, each input's bytes
/// sign-extended in place (`xor 0x80` undoes the offset, then shifts) and widened to f32.
#[cfg(target_arch = "x86_64")]
macro_rules! f32_row_kernel {
    ($features:literal, $lanes:literal, $setzero:ident, $set1_ps:ident, $set1_epi32:ident, $xor:ident,
     $load:ident, $fmadd:ident, $cvt:ident, $srai:ident, $slli:ident, $store:ident) => {
        /// One f32 row times panels `pi .. pi + P` (see [`super::matmul_f32`] and the macro
        /// that writes this kernel).
        ///
        /// # Safety
        /// The CPU has the features named; `x` holds `w.k` floats; panels `pi .. pi + P` exist;
        /// `y` points to the row's `w.n` floats.
        #[target_feature(enable = $features)]
        pub(super) unsafe fn f32_row<const P: usize>(x: &[f32], w: &QuadPanels, pi: usize, y: *mut f32) {
            /// How far ahead of its reads the row prefetches each panel, bytes.
            const PREFETCH_AHEAD: usize = 2048;
            const V: usize = NR / $lanes;
            let k2 = w.k + w.k % 2;
            let panel_bytes = w.nb * GROUPS * NR * 4;
            let base: [*const u8; P] = std::array::from_fn(|q| w.q[(pi + q) * panel_bytes..].as_ptr());
            let flip = $set1_epi32(0x8080_8080u32 as i32);
            let mut acc = [[$setzero(); V]; P];
            // Input `4g + t` of the outputs: byte t of each lane, sign-extended.
            macro_rules! widen {
                ($v:expr, $t:literal) => {
                    $cvt($srai::<24>($slli::<{ 24 - 8 * $t }>($v)))
                };
            }
            let full = k2 / 4;
            // Whole groups lie inside `x` (k2 ≤ k + 1 and 4 · full ≤ k2, so 4 · full ≤ k when k
            // is odd as well).
            let xp = x.as_ptr();
            for g in 0..full {
                // SAFETY: inputs 4g .. 4g + 4 < 4 · full ≤ k.
                let xv = unsafe {
                    [
                        $set1_ps(*xp.add(4 * g)),
                        $set1_ps(*xp.add(4 * g + 1)),
                        $set1_ps(*xp.add(4 * g + 2)),
                        $set1_ps(*xp.add(4 * g + 3)),
                    ]
                };
                for q in 0..P {
                    // SAFETY: group g of panel pi + q: NR · 4 bytes inside the panel; the
                    // prefetch address is only a hint.
                    unsafe {
                        let at = base[q].add(g * NR * 4);
                        // A group is two cache lines.
                        _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(PREFETCH_AHEAD).cast());
                        _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(PREFETCH_AHEAD + 64).cast());
                        for (c, a) in acc[q].iter_mut().enumerate() {
                            let v = $xor($load(at.add(4 * $lanes * c).cast()), flip);
                            *a = $fmadd(xv[0], widen!(v, 0), *a);
                            *a = $fmadd(xv[1], widen!(v, 1), *a);
                            *a = $fmadd(xv[2], widen!(v, 2), *a);
                            *a = $fmadd(xv[3], $cvt($srai::<24>(v)), *a);
                        }
                    }
                }
            }
            if k2 % 4 == 2 {
                // The last two inputs (the second a zero partner when k is odd).
                let g = full;
                let xv = [
                    $set1_ps(x.get(4 * g).copied().unwrap_or(0.0)),
                    $set1_ps(x.get(4 * g + 1).copied().unwrap_or(0.0)),
                ];
                for q in 0..P {
                    // SAFETY: as above (the group exists: inputs are padded to whole blocks).
                    unsafe {
                        let at = base[q].add(g * NR * 4);
                        for (c, a) in acc[q].iter_mut().enumerate() {
                            let v = $xor($load(at.add(4 * $lanes * c).cast()), flip);
                            *a = $fmadd(xv[0], widen!(v, 0), *a);
                            *a = $fmadd(xv[1], widen!(v, 1), *a);
                        }
                    }
                }
            }
            let mut lanes = [0f32; NR];
            for (q, accq) in acc.iter().enumerate() {
                let col0 = (pi + q) * NR;
                for (c, a) in accq.iter().enumerate() {
                    // SAFETY: `$lanes` floats into `lanes` at `$lanes · c`.
                    unsafe { $store(lanes[$lanes * c..].as_mut_ptr(), *a) };
                }
                for (j, &a) in lanes.iter().enumerate().take(NR.min(w.n - col0)) {
                    // SAFETY: output col0 + j is inside the row (caller's contract).
                    unsafe { *y.add(col0 + j) = a * w.scales[col0 + j] };
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK, GROUPS, MR, NR, QuadPanels, QuantRows};

    f32_row_kernel!(
        "avx2,fma",
        8,
        _mm256_setzero_ps,
        _mm256_set1_ps,
        _mm256_set1_epi32,
        _mm256_xor_si256,
        _mm256_loadu_si256,
        _mm256_fmadd_ps,
        _mm256_cvtepi32_ps,
        _mm256_srai_epi32,
        _mm256_slli_epi32,
        _mm256_storeu_ps
    );

    /// See [`super::range`]: panel by panel, rows in tiles of [`MR`] that use each block of the
    /// panel (1 KB) while it is in L1.
    ///
    /// # Safety
    /// The CPU has AVX2; as [`super::range`].
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn range(
        x: &QuantRows,
        r0: usize,
        r1: usize,
        w: &QuadPanels,
        dst: *mut f32,
        p0: usize,
        p1: usize,
    ) {
        let (nb, kpad) = (x.nb, x.nb * BLOCK);
        let ones = _mm256_set1_epi16(1);
        for pi in p0..p1 {
            let panel = w.q[pi * nb * GROUPS * NR * 4..(pi + 1) * nb * GROUPS * NR * 4].as_ptr();
            let mut t0 = r0;
            while t0 < r1 {
                let m = MR.min(r1 - t0);
                let mut acc = [[_mm256_setzero_ps(); 4]; MR];
                for b in 0..nb {
                    // SAFETY: block b of this panel: GROUPS groups of NR · 4 bytes.
                    let wb = unsafe { panel.add(b * GROUPS * NR * 4) };
                    for (r, accr) in acc.iter_mut().enumerate().take(m) {
                        let row = (t0 + r) * kpad + b * BLOCK;
                        let xs = x.signed[row..row + BLOCK].as_ptr();
                        let mut s = [_mm256_setzero_si256(); 4];
                        for g in 0..GROUPS {
                            // SAFETY: 4 bytes of group g of the block.
                            let a = unsafe { _mm256_set1_epi32(xs.add(4 * g).cast::<i32>().read_unaligned()) };
                            for (v, sv) in s.iter_mut().enumerate() {
                                // SAFETY: inside the block's weights (GROUPS × NR × 4 bytes).
                                let wv = unsafe { _mm256_loadu_si256(wb.add((g * NR + 8 * v) * 4).cast()) };
                                // Weights unsigned (q_w + 128), activations signed: see the module.
                                let p = _mm256_maddubs_epi16(wv, a);
                                *sv = _mm256_add_epi32(*sv, _mm256_madd_epi16(p, ones));
                            }
                        }
                        let blk = (t0 + r) * nb + b;
                        let (d, off) = (_mm256_set1_ps(x.d[blk]), _mm256_set1_epi32(x.offsets[blk]));
                        for (av, sv) in accr.iter_mut().zip(s) {
                            let isum = _mm256_sub_epi32(sv, off);
                            *av = _mm256_add_ps(*av, _mm256_mul_ps(_mm256_cvtepi32_ps(isum), d));
                        }
                    }
                }
                for (r, accr) in acc.iter().enumerate().take(m) {
                    let mut lanes = [0f32; NR];
                    for (v, a) in accr.iter().enumerate() {
                        // SAFETY: 8 floats into a 32-float array.
                        unsafe { _mm256_storeu_ps(lanes[8 * v..].as_mut_ptr(), *a) };
                    }
                    // SAFETY: row t0 + r is inside the output (caller's contract).
                    unsafe { super::put_row(&lanes, t0 + r, pi, w, dst) };
                }
                t0 += m;
            }
        }
    }
}

/// 512-bit kernels: a generated token's f32 products (AVX-512F/BW), and the fold's block sums
/// with AVX-512 VNNI: `vpdpbusd` multiplies the unsigned weight bytes by the
/// signed activation bytes and adds each lane's four products to its 32-bit sum in one
/// instruction (no 16-bit step, so nothing to saturate), sixteen outputs per register. The
/// integer sums are exact either way and the f32 steps are [`avx2::range`]'s, so both give the
/// same bits (tested).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{BLOCK, GROUPS, NR, QuadPanels, QuantRows};

    /// Whether the CPU has AVX-512F/BW and VNNI, and the SIMD level allows 512-bit kernels
    /// (`RWKV_SIMD` lowers it).
    pub(super) fn has_vnni() -> bool {
        use std::sync::OnceLock;
        static V: OnceLock<bool> = OnceLock::new();
        crate::simd::level() == crate::simd::Level::Avx512
            && *V.get_or_init(|| std::is_x86_feature_detected!("avx512vnni"))
    }

    f32_row_kernel!(
        "avx512f,avx512bw",
        16,
        _mm512_setzero_ps,
        _mm512_set1_ps,
        _mm512_set1_epi32,
        _mm512_xor_si512,
        _mm512_loadu_si512,
        _mm512_fmadd_ps,
        _mm512_cvtepi32_ps,
        _mm512_srai_epi32,
        _mm512_slli_epi32,
        _mm512_storeu_ps
    );

    /// Rows of a tile of [`range`]: each group's two weight vectors, loaded once, meet every row
    /// of the tile, whose integer sums (two registers a row: 16 independent `vpdpbusd` chains,
    /// enough to hide its latency) stay in registers; the f32 sums, touched once a block, may
    /// wait in L1. At 1.5B the int8 fold ran 93–98 tok/s with 6 rows, 99–110 with 8, 71–78 with
    /// 12 (spilling the integer sums), against 53–57 one row at a time.
    const TILE: usize = 8;

    /// See [`super::range`]: the same integer block sums (`vpdpbusd`) and the same f32 steps as
    /// [`super::avx2::range`], in tiles of [`TILE`] rows by a panel's [`NR`] outputs.
    ///
    /// # Safety
    /// The CPU has AVX-512F/BW and VNNI; as [`super::range`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn range(
        x: &QuantRows,
        r0: usize,
        r1: usize,
        w: &QuadPanels,
        dst: *mut f32,
        p0: usize,
        p1: usize,
    ) {
        let nb = x.nb;
        for pi in p0..p1 {
            let panel = w.q[pi * nb * GROUPS * NR * 4..(pi + 1) * nb * GROUPS * NR * 4].as_ptr();
            let mut t0 = r0;
            while t0 < r1 {
                let m = TILE.min(r1 - t0);
                // SAFETY: rows t0 .. t0 + m of the caller's range, panel pi (caller's contract).
                unsafe {
                    match m {
                        8 => tile::<8>(x, t0, w, panel, pi, dst),
                        7 => tile::<7>(x, t0, w, panel, pi, dst),
                        6 => tile::<6>(x, t0, w, panel, pi, dst),
                        5 => tile::<5>(x, t0, w, panel, pi, dst),
                        4 => tile::<4>(x, t0, w, panel, pi, dst),
                        3 => tile::<3>(x, t0, w, panel, pi, dst),
                        2 => tile::<2>(x, t0, w, panel, pi, dst),
                        _ => tile::<1>(x, t0, w, panel, pi, dst),
                    }
                }
                t0 += m;
            }
        }
    }

    /// Rows `t0 .. t0 + R` by panel `pi` (whose bytes start at `panel`).
    ///
    /// # Safety
    /// As [`range`], for these rows and this panel.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn tile<const R: usize>(
        x: &QuantRows,
        t0: usize,
        w: &QuadPanels,
        panel: *const u8,
        pi: usize,
        dst: *mut f32,
    ) {
        const V: usize = NR / 16;
        let (nb, kpad) = (x.nb, x.nb * BLOCK);
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for b in 0..nb {
            // SAFETY: block b of this panel: GROUPS groups of NR · 4 bytes.
            let wb = unsafe { panel.add(b * GROUPS * NR * 4) };
            let xs: [*const i8; R] = std::array::from_fn(|r| x.signed[(t0 + r) * kpad + b * BLOCK..].as_ptr());
            let mut s = [[_mm512_setzero_si512(); V]; R];
            for g in 0..GROUPS {
                // SAFETY: inside the block's weights (GROUPS × NR × 4 bytes).
                let wv: [__m512i; V] =
                    std::array::from_fn(|v| unsafe { _mm512_loadu_si512(wb.add((g * NR + 16 * v) * 4).cast()) });
                for (xr, sr) in xs.iter().zip(s.iter_mut()) {
                    // SAFETY: 4 bytes of group g of the row's block (rows are padded to blocks).
                    let a = unsafe { _mm512_set1_epi32(xr.add(4 * g).cast::<i32>().read_unaligned()) };
                    for (sv, wv) in sr.iter_mut().zip(wv) {
                        // Weights unsigned (q_w + 128), activations signed: see the module.
                        *sv = _mm512_dpbusd_epi32(*sv, wv, a);
                    }
                }
            }
            for (r, (accr, sr)) in acc.iter_mut().zip(s).enumerate() {
                let blk = (t0 + r) * nb + b;
                let (d, off) = (_mm512_set1_ps(x.d[blk]), _mm512_set1_epi32(x.offsets[blk]));
                for (av, sv) in accr.iter_mut().zip(sr) {
                    let isum = _mm512_sub_epi32(sv, off);
                    *av = _mm512_add_ps(*av, _mm512_mul_ps(_mm512_cvtepi32_ps(isum), d));
                }
            }
        }
        for (r, accr) in acc.iter().enumerate() {
            let mut lanes = [0f32; NR];
            for (v, a) in accr.iter().enumerate() {
                // SAFETY: 16 floats into a 32-float array.
                unsafe { _mm512_storeu_ps(lanes[16 * v..].as_mut_ptr(), *a) };
            }
            // SAFETY: row t0 + r is inside the output (caller's contract).
            unsafe { super::put_row(&lanes, t0 + r, pi, w, dst) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(n: usize, k: usize) -> Vec<f32> {
        (0..n * k).map(|i| ((i * 37 % 1009) as f32 / 504.0) - 1.0).collect()
    }

    fn inputs(rows: usize, k: usize) -> Vec<f32> {
        (0..rows * k)
            .map(|i| (i as f32 * 0.37).sin() * if i % 97 == 0 { 9.0 } else { 1.0 })
            .collect()
    }

    /// The product from the rounded values, in f64.
    fn reference(xq: &QuantRows, w: &QuadPanels, r: usize, o: usize) -> f64 {
        let kpad = xq.nb * BLOCK;
        (0..w.k)
            .map(|i| {
                let (q, s) = w.parts(o, i);
                f64::from(xq.signed[r * kpad + i])
                    * f64::from(xq.d[r * xq.nb + i / BLOCK])
                    * f64::from(q)
                    * f64::from(s)
            })
            .sum()
    }

    #[test]
    fn products_are_the_rounded_values_products_and_close_to_f32() {
        for (n, k, rows) in [(70, 131, 3), (32, 32, 2), (100, 258, 17), (5, 1, 4), (64, 96, 40)] {
            let wv = weights(n, k);
            let w = QuadPanels::quantize(n, k, |o, i| wv[o * k + i]);
            let x = inputs(rows, k);
            let mut xq = QuantRows::default();
            xq.quantize(&x, rows, k);
            let mut y = vec![0f32; rows * n];
            matmul(&xq, &w, &mut y);
            for r in 0..rows {
                for o in 0..n {
                    let want = reference(&xq, &w, r, o);
                    let got = f64::from(y[r * n + o]);
                    assert!(
                        (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                        "{n}x{k} r{r} o{o}: {got} vs {want}"
                    );
                    let exact: f64 = (0..k).map(|i| f64::from(x[r * k + i]) * f64::from(wv[o * k + i])).sum();
                    let norm: f64 = (0..k).map(|i| f64::from(x[r * k + i]).abs()).sum::<f64>();
                    assert!(
                        (got - exact).abs() <= 0.02 * norm + 1e-6,
                        "{n}x{k}: {got} vs exact {exact}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_portable_loop_gives_the_kernels_bits_whatever_the_rows() {
        for (n, k) in [(70, 131), (100, 258), (33, 64), (5, 1)] {
            let wv = weights(n, k);
            let w = QuadPanels::quantize(n, k, |o, i| wv[o * k + i]);
            let panels = n.div_ceil(NR);
            let x = inputs(37, k);
            let mut all = QuantRows::default();
            all.quantize(&x, 37, k);
            let mut whole = vec![0f32; 37 * n];
            matmul(&all, &w, &mut whole);
            // Every tile height of the VNNI kernel (8 rows) and its remainders.
            for rows in [2, 3, 6, 12, 15, 16, 17, 37] {
                let mut xq = QuantRows::default();
                xq.quantize(&x[..rows * k], rows, k);
                let mut fast = vec![0f32; rows * n];
                let mut slow = vec![0f32; rows * n];
                // SAFETY: both outputs hold rows × n floats; one thread writes all panels.
                unsafe {
                    range(&xq, 0, rows, &w, Out(fast.as_mut_ptr()), 0, panels);
                    portable_range(&xq, 0, rows, &w, slow.as_mut_ptr(), 0, panels);
                }
                assert_eq!(fast, slow, "{n}x{k} rows {rows}");
                // With AVX-512 VNNI the dispatch above took the VNNI kernel: the AVX2 one too.
                #[cfg(target_arch = "x86_64")]
                if crate::simd::level() != crate::simd::Level::Portable {
                    let mut avx2 = vec![0f32; rows * n];
                    // SAFETY: AVX2 checked; the output holds rows × n floats.
                    unsafe { avx2::range(&xq, 0, rows, &w, avx2.as_mut_ptr(), 0, panels) };
                    assert_eq!(avx2, slow, "{n}x{k} rows {rows}: AVX2");
                }
                assert_eq!(fast[..], whole[..rows * n], "{n}x{k}: {rows} rows and 37 rows");
            }
        }
    }

    #[test]
    fn the_largest_products_do_not_saturate() {
        // Every weight ±127 and every activation ±63 with the signs that make each pair of
        // `vpmaddubsw` as large as it gets, both ways: the sums must still be exact.
        let (n, k) = (40, 96);
        for flip in [1.0f32, -1.0] {
            let w = QuadPanels::quantize(n, k, |o, i| if (o + i) % 3 == 0 { -1.0 } else { 1.0 });
            let x: Vec<f32> = (0..2 * k)
                .map(|i| flip * if (i % k) % 3 == 0 { -1.0 } else { 1.0 })
                .collect();
            let mut xq = QuantRows::default();
            xq.quantize(&x, 2, k);
            let mut y = vec![0f32; 2 * n];
            matmul(&xq, &w, &mut y);
            for r in 0..2 {
                for o in 0..n {
                    let want = reference(&xq, &w, r, o);
                    assert!(
                        (f64::from(y[r * n + o]) - want).abs() <= 1e-4 * want.abs().max(1.0),
                        "{flip} r{r} o{o}"
                    );
                }
            }
            assert!(y[0].abs() > 30.0, "large sums were tested: {}", y[0]);
        }
    }

    #[test]
    fn int8_panels_are_repacked_without_a_second_rounding() {
        let (n, k) = (70, 131);
        let wv = weights(n, k);
        let bytes: Vec<u8> = wv.iter().flat_map(|v| v.to_le_bytes()).collect();
        let src = Source {
            bytes: &bytes,
            dtype: rwkv_formats::tensor::DType::F32,
            n,
            k,
            input_major: false,
        };
        let p = Panels::pack(&src, Kind::I8);
        let a = QuadPanels::from_panels(&p);
        let b = QuadPanels::pack(&src);
        for o in 0..n {
            for i in 0..k {
                assert_eq!(a.parts(o, i), p.i8_parts(o, i).unwrap());
                assert_eq!(a.parts(o, i), b.parts(o, i));
            }
        }
    }

    #[test]
    fn zero_and_tiny_blocks_are_zeros() {
        let mut xq = QuantRows::default();
        let mut x = vec![0f32; 64];
        x[40] = 1e-44;
        xq.quantize(&x, 1, 64);
        assert!(xq.signed.iter().all(|&q| q == 0));
        assert_eq!(xq.d, vec![0.0, 0.0]);
    }

    #[test]
    fn int8_weights_decode_to_the_same_bits_in_either_layout() {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (n, k, rows) in [
            (70, 131, 1),
            (32, 32, 1),
            (100, 258, 3),
            (5, 1, 2),
            (64, 97, 1),
            (33, 6, 2),
            (40, 2, 1),
        ] {
            let wf = weights(n, k);
            let bytes: Vec<u8> = wf.iter().flat_map(|v| v.to_le_bytes()).collect();
            let src = Source {
                bytes: &bytes,
                dtype: rwkv_formats::tensor::DType::F32,
                n,
                k,
                input_major: false,
            };
            let p = Panels::pack(&src, Kind::I8);
            let q = QuadPanels::from_panels(&p);
            let mut x = inputs(rows, k);
            // Some exact zeros of both signs: a sum of −0 products stays −0 in both.
            x[0] = -0.0;
            let (mut yp, mut yq, mut slow) = (vec![0f32; rows * n], vec![0f32; rows * n], vec![0f32; rows * n]);
            crate::panels::matmul(&x, rows, &p, &mut yp);
            matmul_f32(&x, rows, &q, &mut yq);
            assert_eq!(bits(&yq), bits(&yp), "n {n} k {k} rows {rows}");
            for r in 0..rows {
                // SAFETY: row r of `slow` holds n floats; all panels.
                unsafe {
                    f32_row_portable(
                        &x[r * k..(r + 1) * k],
                        &q,
                        slow[r * n..].as_mut_ptr(),
                        0,
                        n.div_ceil(NR),
                    )
                };
            }
            assert_eq!(bits(&slow), bits(&yp), "portable, n {n} k {k}");
            // Where the dispatch took the 512-bit kernel: the AVX2 one too.
            #[cfg(target_arch = "x86_64")]
            if crate::simd::level() != crate::simd::Level::Portable {
                let mut avx = vec![0f32; rows * n];
                for r in 0..rows {
                    for pi in 0..n.div_ceil(NR) {
                        // SAFETY: AVX2 and FMA checked; row r of `avx` holds n floats; panel pi.
                        unsafe { avx2::f32_row::<1>(&x[r * k..(r + 1) * k], &q, pi, avx[r * n..].as_mut_ptr()) };
                    }
                }
                assert_eq!(bits(&avx), bits(&yp), "AVX2, n {n} k {k}");
            }
            // Back to panels: the same integers and scales.
            let back = q.to_panels();
            for o in 0..n {
                for i in 0..k {
                    assert_eq!(back.get(o, i).to_bits(), p.get(o, i).to_bits());
                }
            }
            let mut yb = vec![0f32; rows * n];
            crate::panels::matmul(&x, rows, &back, &mut yb);
            assert_eq!(bits(&yb), bits(&yp));
        }
    }
}
