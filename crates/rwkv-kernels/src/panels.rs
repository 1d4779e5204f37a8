//! Weight matrices held in 16 or 8 bits, packed once into panels, and the products that widen
//! them to f32 inside the kernel.
//!
//! Panels hold what cannot be read where the checkpoint keeps it ([`crate::rows16`] reads a
//! bf16/f16 file's `[out, in]` rows in place): f32 weights rounded to bf16, int8 quantized at
//! load, 16-bit factors stored input-major, and the bf16 fold's operands. No f32 copy, no
//! second copy for generation. Every product — a fold chunk of many rows or one generated token — reads the
//! same panels, widens each weight to f32 in registers and accumulates in f32, so with f32
//! activations the result is the f32 product of the checkpoint's own values (exact, as the f32
//! path is), and a weight costs two bytes (one for int8) of memory traffic instead of four.
//!
//! Layout: outputs in panels of [`NR`] columns. Within a panel, for each pair of inputs
//! `(2p, 2p+1)`:
//! - [`Kind::Bf16`] / [`Kind::F16`]: [`NR`] 32-bit words `(W[o][2p], W[o][2p+1])`, low half
//!   first. This is also the operand order of `vdpbf16ps`, so the bf16 fold
//!   ([`crate::gemm_bf16`]) multiplies the very same panels with rounded activations.
//! - [`Kind::I8`]: [`NR`] bytes of input `2p`, then [`NR`] of input `2p + 1`; one f32 scale per
//!   output (the row's largest magnitude / 127), applied to the finished sum.
//!
//! Padding columns and the odd last input are zero. Each output's sum runs over the inputs in
//! one fixed order whatever the number of rows, so folding in chunks of any length and
//! generating token by token give bit-identical products.

use rayon::prelude::*;

use crate::simd::{bf16_to_f32, f32_to_bf16, multiversion};
use rwkv_formats::tensor::DType;

/// Output columns per panel (two 16-lane vectors).
pub const NR: usize = 32;
/// Rows per micro-kernel call.
const MR: usize = 12;
/// Minimum multiply-adds before a product is split across threads.
const PAR_MIN_WORK: usize = 1 << 18;

/// The element type of packed weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// bfloat16 pairs.
    Bf16,
    /// IEEE binary16 pairs.
    F16,
    /// int8 with one scale per output.
    I8,
}

impl Kind {
    /// Lower-case name (`bf16`, `f16`, `int8`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Bf16 => "bf16",
            Kind::F16 => "f16",
            Kind::I8 => "int8",
        }
    }
}

/// A weight matrix `W [n, k]` (`y = x · Wᵀ`) packed into panels. The dimensions are fixed at
/// packing (the kernels read the panels by them): see [`Panels::n`] and [`Panels::k`].
#[derive(Debug, Clone)]
pub struct Panels {
    /// Output features.
    n: usize,
    /// Input features.
    k: usize,
    /// Input pairs, `⌈k / 2⌉`.
    pub(crate) kp: usize,
    kind: Kind,
    /// Bf16/F16: `[panel][kp][NR]` words.
    pub(crate) words: Vec<u32>,
    /// I8: `[panel][kp][2][NR]` values.
    q: Vec<i8>,
    /// I8: one scale per output, padded to whole panels with zeros.
    scales: Vec<f32>,
}

/// Where a matrix's values come from: a checkpoint tensor's little-endian bytes, official
/// `[out, in]` layout or input-major `[in, out]` (as the LoRA factors are stored).
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The tensor's bytes.
    pub bytes: &'a [u8],
    /// Their element type (F32, F16 or BF16).
    pub dtype: DType,
    /// Outputs.
    pub n: usize,
    /// Inputs.
    pub k: usize,
    /// `[k, n]` instead of `[n, k]`.
    pub input_major: bool,
}

impl Source<'_> {
    /// Number of bytes the source must hold.
    pub fn needed(&self) -> usize {
        self.n * self.k * self.dtype.size()
    }

    /// Whether `bytes` holds exactly `n · k` elements of `dtype` (false where that size
    /// overflows).
    pub fn fits(&self) -> bool {
        self.n
            .checked_mul(self.k)
            .and_then(|e| e.checked_mul(self.dtype.size()))
            == Some(self.bytes.len())
    }

    #[inline(always)]
    fn index(&self, o: usize, i: usize) -> usize {
        if self.input_major {
            i * self.n + o
        } else {
            o * self.k + i
        }
    }

    #[inline(always)]
    fn bits16(&self, e: usize) -> u16 {
        u16::from_le_bytes([self.bytes[2 * e], self.bytes[2 * e + 1]])
    }

    /// `W[o][i]` as f32 (exact for every supported type).
    #[inline(always)]
    pub fn get(&self, o: usize, i: usize) -> f32 {
        let e = self.index(o, i);
        match self.dtype {
            DType::BF16 => bf16_to_f32(self.bits16(e)),
            DType::F16 => half::f16::from_bits(self.bits16(e)).to_f32(),
            _ => {
                let b = &self.bytes[4 * e..4 * e + 4];
                f32::from_le_bytes([b[0], b[1], b[2], b[3]])
            }
        }
    }

    /// Row `o` of `W` as f32 into `out` (`k` values): [`Source::get`] of each input, read in
    /// one pass over the row's bytes when the source is output-major.
    pub fn row_f32(&self, o: usize, out: &mut [f32]) {
        assert_eq!(out.len(), self.k, "a row holds k values");
        if self.input_major {
            for (i, v) in out.iter_mut().enumerate() {
                *v = self.get(o, i);
            }
            return;
        }
        let size = self.dtype.size();
        let bytes = &self.bytes[o * self.k * size..(o + 1) * self.k * size];
        match self.dtype {
            DType::BF16 => {
                for (v, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *v = bf16_to_f32(u16::from_le_bytes([b[0], b[1]]));
                }
            }
            DType::F16 => {
                for (v, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *v = half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
                }
            }
            _ => {
                for (v, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
        }
    }

    /// `W[o][i]` as 16-bit `kind` (the stored bits when the types agree, else rounded to
    /// nearest even).
    #[inline(always)]
    pub fn half_bits(&self, o: usize, i: usize, kind: Kind) -> u16 {
        let e = self.index(o, i);
        match (self.dtype, kind) {
            (DType::BF16, Kind::Bf16) | (DType::F16, Kind::F16) => self.bits16(e),
            (_, Kind::F16) => half::f16::from_f32(self.get(o, i)).to_bits(),
            _ => f32_to_bf16(self.get(o, i)),
        }
    }
}

impl Panels {
    /// Pack `src` as `kind`: 16-bit types keep the stored bits when they match (else round to
    /// nearest even); [`Kind::I8`] quantizes each output row to its own scale.
    ///
    /// # Panics
    /// If `src.bytes` does not hold `n · k` elements of `src.dtype` (callers check the tensor
    /// first and report a named error).
    pub fn pack(src: &Source<'_>, kind: Kind) -> Panels {
        assert!(src.fits(), "source holds n × k elements");
        let (n, k) = (src.n, src.k);
        let kp = k.div_ceil(2);
        let panels = n.div_ceil(NR);
        let mut p = Panels {
            n,
            k,
            kp,
            kind,
            words: Vec::new(),
            q: Vec::new(),
            scales: Vec::new(),
        };
        match kind {
            Kind::Bf16 | Kind::F16 => {
                let mut words = vec![0u32; panels * kp * NR];
                let fast = !src.input_major
                    && k % 2 == 0
                    && matches!((src.dtype, kind), (DType::BF16, Kind::Bf16) | (DType::F16, Kind::F16));
                words.par_chunks_mut(kp * NR).enumerate().for_each(|(pi, panel)| {
                    let o0 = pi * NR;
                    let width = NR.min(n - o0);
                    if fast {
                        // Both halves of a pair are adjacent in the row: one word. Tiles of
                        // TILE words per row: each row is read a cache line at a time and the
                        // panel is written in order.
                        const TILE: usize = 16;
                        let rows = &src.bytes[o0 * k * 2..(o0 + width) * k * 2];
                        for w0 in (0..kp).step_by(TILE) {
                            let w1 = (w0 + TILE).min(kp);
                            for (j, row) in rows.chunks_exact(k * 2).enumerate() {
                                let words = &row[w0 * 4..w1 * 4];
                                for (pw, b) in (w0..w1).zip(words.chunks_exact(4)) {
                                    panel[pw * NR + j] = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                                }
                            }
                        }
                        return;
                    }
                    for j in 0..width {
                        let o = o0 + j;
                        for pw in 0..kp {
                            let lo = src.half_bits(o, 2 * pw, kind);
                            let hi = if 2 * pw + 1 < k {
                                src.half_bits(o, 2 * pw + 1, kind)
                            } else {
                                0
                            };
                            panel[pw * NR + j] = (u32::from(hi) << 16) | u32::from(lo);
                        }
                    }
                });
                p.words = words;
            }
            Kind::I8 => {
                return Panels::from_i8_rows(n, k, |o, row, row_q| {
                    src.row_f32(o, row);
                    round_row_i8(row, row_q)
                });
            }
        }
        p
    }

    /// Int8 panels of rows given by `row(o, scratch, q) -> scale`, which fills output `o`'s `k`
    /// integers (`scratch`: `k` floats it may use) and returns its scale.
    pub(crate) fn from_i8_rows(n: usize, k: usize, row: impl Fn(usize, &mut [f32], &mut [i8]) -> f32 + Sync) -> Panels {
        let kp = k.div_ceil(2);
        let panels = n.div_ceil(NR);
        let mut q = vec![0i8; panels * kp * 2 * NR];
        let mut scales = vec![0f32; panels * NR];
        q.par_chunks_mut(kp * 2 * NR)
            .zip(scales.par_chunks_mut(NR))
            .enumerate()
            .for_each(|(pi, (panel, sc))| {
                let o0 = pi * NR;
                let mut scratch = vec![0f32; k];
                let mut row_q = vec![0i8; k];
                for j in 0..NR.min(n - o0) {
                    sc[j] = row(o0 + j, &mut scratch, &mut row_q);
                    // Input `i` at `i · NR + j` (see `i8_row`).
                    for (b, &v) in panel[j..].iter_mut().step_by(NR).zip(&row_q) {
                        *b = v;
                    }
                }
            });
        Panels {
            n,
            k,
            kp,
            kind: Kind::I8,
            words: Vec::new(),
            q,
            scales,
        }
    }

    /// Pack input-major f32 weights `wt` (`[k, n]` row-major) as `kind`.
    pub fn from_f32_input_major(wt: &[f32], k: usize, n: usize, kind: Kind) -> Panels {
        let bytes: Vec<u8> = wt.iter().flat_map(|x| x.to_le_bytes()).collect();
        Panels::pack(
            &Source {
                bytes: &bytes,
                dtype: DType::F32,
                n,
                k,
                input_major: true,
            },
            kind,
        )
    }

    /// Output features (rows of `W`).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Input features.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The element type.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.words.len() * 4 + self.q.len() + self.scales.len() * 4
    }

    /// `W[o][i]` as f32 (the held value: for int8, `q · scale`).
    pub fn get(&self, o: usize, i: usize) -> f32 {
        let (pi, j, pw) = (o / NR, o % NR, i / 2);
        match self.kind {
            Kind::Bf16 | Kind::F16 => {
                let w = self.words[(pi * self.kp + pw) * NR + j];
                let h = if i.is_multiple_of(2) {
                    w as u16
                } else {
                    (w >> 16) as u16
                };
                widen16(self.kind, h)
            }
            Kind::I8 => f32::from(self.q[((pi * self.kp + pw) * 2 + i % 2) * NR + j]) * self.scales[o],
        }
    }

    /// For [`Kind::I8`]: `W[o][i]`'s integer and the scale of row `o` (`W[o][i] = q · scale`).
    #[cfg(test)]
    pub(crate) fn i8_parts(&self, o: usize, i: usize) -> Option<(i8, f32)> {
        (self.kind == Kind::I8).then(|| {
            let (pi, j, pw) = (o / NR, o % NR, i / 2);
            (self.q[((pi * self.kp + pw) * 2 + i % 2) * NR + j], self.scales[o])
        })
    }

    /// For [`Kind::I8`]: row `o`'s integers into `q` (`k` of them) and its scale.
    pub(crate) fn i8_row(&self, o: usize, q: &mut [i8]) -> Option<f32> {
        (self.kind == Kind::I8).then(|| {
            // Input `i` of output `j` of a panel sits at `i · NR + j` (pairs of inputs, each
            // pair's NR outputs side by side).
            let (pi, j) = (o / NR, o % NR);
            let panel = &self.q[pi * self.kp * 2 * NR..(pi + 1) * self.kp * 2 * NR];
            for (v, &b) in q.iter_mut().zip(panel[j..].iter().step_by(NR)) {
                *v = b;
            }
            self.scales[o]
        })
    }
}

multiversion!(
    /// Round one output row to int8 with its own scale (its largest magnitude / 127, NaN
    /// ignored) into `q`: `q = round(v / scale)`, ties away from zero, clamped to ±127 (NaN
    /// gives 0); returns the scale. The rule of [`Kind::I8`] panels and of the int8 fold's
    /// weights.
    pub(crate) fn round_row_i8(row: &[f32], q: &mut [i8]) -> f32 => round_row_i8_g
);

/// [`round_row_i8`]'s body, written to vectorize: the largest magnitude in eight lanes (`>`
/// skips NaN as `f32::max` does), and rounding as `floor(|y|)` plus one when the fraction is at
/// least a half (both exact for `|y| < 2²³`), so no `roundf` call.
// `multiversion!` passes the multiply-add flavour, which rounding does not use.
#[allow(clippy::extra_unused_type_parameters)]
#[inline(always)]
fn round_row_i8_g<A: crate::simd::Arch>(row: &[f32], q: &mut [i8]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (m, v) in lanes.iter_mut().zip(c) {
            let a = v.abs();
            *m = if a > *m { a } else { *m };
        }
    }
    let mut amax = 0f32;
    for a in lanes.into_iter().chain(chunks.remainder().iter().map(|v| v.abs())) {
        amax = if a > amax { a } else { amax };
    }
    let d = amax / 127.0;
    let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
    for (q, v) in q.iter_mut().zip(row) {
        *q = round_away_i8(v * inv);
    }
    d
}

/// `y.round().clamp(-127.0, 127.0) as i8` (ties away from zero; NaN gives 0).
#[inline(always)]
fn round_away_i8(y: f32) -> i8 {
    let a = y.abs();
    let f = a.floor();
    let r = if a - f >= 0.5 { f + 1.0 } else { f };
    // NaN fails both comparisons and becomes 0.
    let r = if r >= 0.0 { r } else { 0.0 };
    let r = if r > 127.0 { 127.0 } else { r };
    // SAFETY: `r` is a whole number in 0 ..= 127 here, which an i32 holds.
    let r = unsafe { r.to_int_unchecked::<i32>() };
    (if y < 0.0 { -r } else { r }) as i8
}

#[inline(always)]
fn widen16(kind: Kind, h: u16) -> f32 {
    match kind {
        Kind::F16 => half::f16::from_bits(h).to_f32(),
        _ => bf16_to_f32(h),
    }
}

/// `y[rows, w.n] = x[rows, w.k] · Wᵀ` with f32 inputs: the weights are widened to f32 inside
/// the kernel, every sum is f32.
///
/// # Panics
/// If `x` or `y` do not hold `rows` rows of `w.k` / `w.n` values.
pub fn matmul(x: &[f32], rows: usize, w: &Panels, y: &mut [f32]) {
    if !product_shape(x, rows, w.k, y, w.n) {
        return;
    }
    let dst = Out(y.as_mut_ptr());
    split(rows, w.n, w.k, |r0, r1, p0, p1| {
        // SAFETY: `split` hands out disjoint parts (rows r0 .. r1 ≤ rows, panels p0 .. p1) of
        // the output, whose extent (`rows × n` floats) was asserted: row r0 starts inside it or
        // at its end, and rows r0 .. r1 of these panels' columns are this task's alone.
        unsafe { panels_range(&x[r0 * w.k..r1 * w.k], r1 - r0, w, dst.offset(r0 * w.n), p0, p1) };
    });
}

/// Check that `x` holds `rows` rows of `k` inputs and `y` `rows` rows of `n` outputs; whether
/// there is anything to compute.
///
/// # Panics
/// If either does not.
pub(crate) fn product_shape(x: &[f32], rows: usize, k: usize, y: &[f32], n: usize) -> bool {
    assert_eq!(Some(x.len()), rows.checked_mul(k), "inputs are rows × k");
    assert_eq!(Some(y.len()), rows.checked_mul(n), "outputs are rows × n");
    rows != 0 && n != 0
}

/// Split a product of `rows` × `n` outputs over `k` inputs, in panels of [`NR`] columns, into
/// tasks on the pool and call `f(r0, r1, p0, p1)` for each: rows `r0 .. r1`, panels `p0 .. p1`,
/// the parts disjoint. Small products are one task; wide outputs split their panels (with one
/// row, generation, this splits the weights, which is what a bandwidth-bound mat-vec wants);
/// narrow ones (a LoRA factor) split their rows in blocks of [`MR`].
pub(crate) fn split(rows: usize, n: usize, k: usize, f: impl Fn(usize, usize, usize, usize) + Sync) {
    let panels = n.div_ceil(NR);
    let threads = rayon::current_num_threads();
    let tasks = if rows * n * k >= PAR_MIN_WORK && threads > 1 {
        threads
    } else {
        1
    };
    if tasks == 1 {
        f(0, rows, 0, panels);
    } else if panels >= tasks {
        let per = panels.div_ceil(tasks);
        (0..tasks).into_par_iter().for_each(|t| {
            f(0, rows, (t * per).min(panels), ((t + 1) * per).min(panels));
        });
    } else {
        let per = rows.div_ceil(tasks).next_multiple_of(MR);
        (0..rows.div_ceil(per)).into_par_iter().for_each(|b| {
            f(b * per, ((b + 1) * per).min(rows), 0, panels);
        });
    }
}

/// An output buffer's first element, to hand disjoint parts of it to worker threads.
#[derive(Clone, Copy)]
pub(crate) struct Out(pub(crate) *mut f32);
impl Out {
    /// The same buffer from element `e` on.
    ///
    /// # Safety
    /// `e` must lie inside the buffer the pointer came from, or be its length (one past the end).
    pub(crate) unsafe fn offset(self, e: usize) -> Out {
        // SAFETY: the caller keeps `e` inside the buffer (or one past its end).
        Out(unsafe { self.0.add(e) })
    }
}
// SAFETY: used only to hand disjoint parts of one output buffer to worker threads.
unsafe impl Send for Out {}
// SAFETY: as above.
unsafe impl Sync for Out {}

/// Columns of panels `p0 .. p1` for every row.
///
/// # Safety
/// `dst` must point to `rows` rows of `w.n` floats that no other thread writes in these columns.
unsafe fn panels_range(x: &[f32], rows: usize, w: &Panels, dst: Out, p0: usize, p1: usize) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::level() == crate::simd::Level::Avx512 {
        if rows == 1 {
            // One row (a generated token): several panels at once, so that enough independent
            // sums are in flight to read the weights at memory speed.
            let mut pi = p0;
            while pi < p1 {
                let np = avx512::ONE_ROW_PANELS.min(p1 - pi);
                // SAFETY: as below, for panels pi .. pi + np.
                unsafe { avx512::one_row(x.as_ptr(), w, pi, np, dst.0) };
                pi += np;
            }
            return;
        }
        for pi in p0..p1 {
            let col0 = pi * NR;
            let width = NR.min(w.n - col0);
            let mut r0 = 0;
            while r0 < rows {
                let m = MR.min(rows - r0);
                // SAFETY: the CPU has AVX-512F (checked by `level`); rows r0 .. r0 + m exist in
                // `x` and in the output, and the panel has `kp` steps.
                unsafe { avx512::micro(m, x[r0 * w.k..].as_ptr(), w, pi, dst.0.add(r0 * w.n + col0), w.n, width) };
                r0 += m;
            }
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::simd::level() == crate::simd::Level::Avx2 && avx2::usable(w.kind) {
        // SAFETY: the CPU has AVX2 and FMA (checked by `level`) and F16C where f16 weights
        // need it; the rest is the caller's contract.
        return unsafe { avx2::range(x, rows, w, dst.0, p0, p1) };
    }
    // SAFETY: forwarded from the caller.
    unsafe { portable_range(x, rows, w, dst.0, p0, p1) };
}

/// See [`portable_range`].
///
/// # Safety
/// As [`portable_range`].
#[inline(always)]
unsafe fn portable_range_g<A: crate::simd::Arch>(
    x: &[f32],
    rows: usize,
    w: &Panels,
    dst: *mut f32,
    p0: usize,
    p1: usize,
) {
    let (k, kp) = (w.k, w.kp);
    let mut lo = [0f32; NR];
    let mut hi = [0f32; NR];
    for pi in p0..p1 {
        let col0 = pi * NR;
        let width = NR.min(w.n - col0);
        let mut r0 = 0;
        while r0 < rows {
            let m = MR.min(rows - r0);
            let mut acc = [[0f32; NR]; MR];
            for p in 0..kp {
                match w.kind {
                    Kind::Bf16 | Kind::F16 => {
                        let ws = &w.words[(pi * kp + p) * NR..(pi * kp + p + 1) * NR];
                        for ((l, h), &word) in lo.iter_mut().zip(hi.iter_mut()).zip(ws) {
                            *l = widen16(w.kind, word as u16);
                            *h = widen16(w.kind, (word >> 16) as u16);
                        }
                    }
                    Kind::I8 => {
                        let base = (pi * kp + p) * 2 * NR;
                        for j in 0..NR {
                            lo[j] = f32::from(w.q[base + j]);
                            hi[j] = f32::from(w.q[base + NR + j]);
                        }
                    }
                }
                let odd = 2 * p + 1 < k;
                for (r, acc) in acc.iter_mut().enumerate().take(m) {
                    let xr = &x[(r0 + r) * k..(r0 + r + 1) * k];
                    let xl = xr[2 * p];
                    let xh = if odd { xr[2 * p + 1] } else { 0.0 };
                    for j in 0..NR {
                        acc[j] = A::fma(xl, lo[j], acc[j]);
                        acc[j] = A::fma(xh, hi[j], acc[j]);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate().take(m) {
                for (j, &a) in acc.iter().enumerate().take(width) {
                    let v = if w.kind == Kind::I8 { a * w.scales[col0 + j] } else { a };
                    // SAFETY: row r0 + r, column col0 + j lies in the output (caller's contract).
                    unsafe { *dst.add((r0 + r) * w.n + col0 + j) = v };
                }
            }
            r0 += m;
        }
    }
}
crate::simd::multiversion!(
    /// Columns of panels `p0 .. p1` for every row, without AVX-512 ([`panels_range`]).
    ///
    /// # Safety
    /// `dst` must point to `rows` rows of `w.n` floats (row stride `w.n`), writable, that no
    /// other thread reads or writes in the columns of panels `p0 .. p1`.
    unsafe fn portable_range(x: &[f32], rows: usize, w: &Panels, dst: *mut f32, p0: usize, p1: usize) => portable_range_g
);

#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(target_arch = "x86_64")]
mod avx2;

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(kind: DType, v: &[f32]) -> Vec<u8> {
        match kind {
            DType::BF16 => v.iter().flat_map(|&x| f32_to_bf16(x).to_le_bytes()).collect(),
            DType::F16 => v.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect(),
            _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    #[test]
    fn rounding_to_int8_is_round_then_clamp() {
        let mut ys = vec![
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            0.49999997,
            -0.49999997,
        ];
        for i in -300_000..=300_000 {
            ys.push(i as f32 / 1000.0);
            ys.push(i as f32 / 1000.0 + 0.0005);
        }
        for h in -300..=300 {
            ys.push(h as f32 + 0.5);
            ys.push(f32::from_bits((h as f32 + 0.5).to_bits() - 1));
            ys.push(f32::from_bits((h as f32 + 0.5).to_bits() + 1));
        }
        for y in ys {
            assert_eq!(round_away_i8(y), y.round().clamp(-127.0, 127.0) as i8, "{y}");
        }
    }

    #[test]
    fn a_row_reads_as_its_elements() {
        let (n, k) = (5, 37);
        let vals: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        for dtype in [DType::BF16, DType::F16, DType::F32] {
            let bytes = bytes_of(dtype, &vals);
            for input_major in [false, true] {
                let src = Source {
                    bytes: &bytes,
                    dtype,
                    n,
                    k,
                    input_major,
                };
                let mut row = vec![0f32; k];
                for o in 0..n {
                    src.row_f32(o, &mut row);
                    for (i, &v) in row.iter().enumerate() {
                        assert_eq!(v.to_bits(), src.get(o, i).to_bits());
                    }
                }
            }
        }
    }

    fn check(n: usize, k: usize, rows: usize, dtype: DType, kind: Kind, input_major: bool) {
        let vals: Vec<f32> = (0..n * k).map(|i| ((i * 7919 % 1009) as f32 / 504.0) - 1.0).collect();
        let bytes = bytes_of(dtype, &vals);
        let src = Source {
            bytes: &bytes,
            dtype,
            n,
            k,
            input_major,
        };
        let p = Panels::pack(&src, kind);
        let x: Vec<f32> = (0..rows * k)
            .map(|i| ((i * 104_729 % 997) as f32 / 498.0) - 1.0)
            .collect();
        let mut y = vec![f32::NAN; rows * n];
        matmul(&x, rows, &p, &mut y);
        for r in 0..rows {
            for o in 0..n {
                let want: f64 = (0..k).map(|i| f64::from(x[r * k + i]) * f64::from(p.get(o, i))).sum();
                let got = f64::from(y[r * n + o]);
                assert!(
                    (got - want).abs() <= 1e-5 * k as f64,
                    "{n}x{k} r{rows} {kind:?} at ({r},{o}): {got} vs {want}"
                );
            }
        }
        // The held values: exact for matching 16-bit types, within half a step for int8.
        for o in 0..n {
            let amax = (0..k).map(|i| src.get(o, i).abs()).fold(0f32, f32::max);
            for i in 0..k {
                let (h, s) = (p.get(o, i), src.get(o, i));
                match kind {
                    Kind::I8 => assert!((h - s).abs() <= amax / 254.0 * 1.0001 + 1e-7, "{h} vs {s}"),
                    _ if (dtype == DType::BF16) == (kind == Kind::Bf16) && dtype != DType::F32 => assert_eq!(h, s),
                    _ => assert!((h - s).abs() <= s.abs() / 128.0 + 1e-7),
                }
            }
        }
    }

    #[test]
    fn products_match_the_held_values_for_every_kind_and_edge() {
        for &(n, k, rows) in &[
            (1, 2, 1),
            (33, 7, 13),
            (32, 64, 12),
            (70, 96, 25),
            (64, 130, 3),
            (96, 768, 40),
            (5, 1, 2),
        ] {
            for input_major in [false, true] {
                check(n, k, rows, DType::BF16, Kind::Bf16, input_major);
                check(n, k, rows, DType::F16, Kind::F16, input_major);
                check(n, k, rows, DType::F32, Kind::Bf16, input_major);
                check(n, k, rows, DType::BF16, Kind::I8, input_major);
                check(n, k, rows, DType::F32, Kind::I8, input_major);
            }
        }
    }

    #[test]
    fn the_portable_loop_gives_the_fast_kernels_bits() {
        for (n, k, kind) in [
            (100, 258, Kind::Bf16),
            (70, 131, Kind::I8),
            (33, 7, Kind::F16),
            (200, 64, Kind::I8),
            (5, 1, Kind::Bf16),
        ] {
            let vals: Vec<f32> = (0..n * k).map(|i| ((i * 31 % 997) as f32 / 498.0) - 1.0).collect();
            let dtype = if kind == Kind::F16 { DType::F16 } else { DType::BF16 };
            let bytes = bytes_of(dtype, &vals);
            let src = Source {
                bytes: &bytes,
                dtype,
                n,
                k,
                input_major: false,
            };
            let p = Panels::pack(&src, kind);
            let panels = n.div_ceil(NR);
            for rows in [1, 2, 3, 4, 7, 12, 13] {
                let x: Vec<f32> = (0..rows * k).map(|i| (i as f32 * 0.37).sin()).collect();
                let mut fast = vec![0f32; rows * n];
                let mut slow = vec![0f32; rows * n];
                // SAFETY: both outputs hold rows × n floats; one thread writes all panels.
                unsafe {
                    panels_range(&x, rows, &p, Out(fast.as_mut_ptr()), 0, panels);
                    portable_range(&x, rows, &p, slow.as_mut_ptr(), 0, panels);
                }
                assert_eq!(fast, slow, "{kind:?} {n}x{k} rows {rows}");
                #[cfg(target_arch = "x86_64")]
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") && avx2::usable(kind) {
                    let mut narrow = vec![0f32; rows * n];
                    // SAFETY: the features were detected; as above.
                    unsafe { avx2::range(&x, rows, &p, narrow.as_mut_ptr(), 0, panels) };
                    assert_eq!(narrow, slow, "avx2 {kind:?} {n}x{k} rows {rows}");
                }
            }
        }
    }

    #[test]
    fn one_row_and_many_rows_give_the_same_bits() {
        // One row takes several panels at once (up to four, the last partly padded).
        for (n, k, kind) in [
            (100, 258, Kind::Bf16),
            (100, 258, Kind::I8),
            (200, 131, Kind::Bf16),
            (200, 131, Kind::I8),
            (40, 131, Kind::F16),
        ] {
            let vals: Vec<f32> = (0..n * k).map(|i| ((i * 31 % 997) as f32 / 498.0) - 1.0).collect();
            let dtype = if kind == Kind::F16 { DType::F16 } else { DType::BF16 };
            let bytes = bytes_of(dtype, &vals);
            let p = Panels::pack(
                &Source {
                    bytes: &bytes,
                    dtype,
                    n,
                    k,
                    input_major: false,
                },
                kind,
            );
            let rows = 29;
            let x: Vec<f32> = (0..rows * k).map(|i| (i as f32 * 0.37).sin()).collect();
            let mut all = vec![0f32; rows * n];
            matmul(&x, rows, &p, &mut all);
            for r in 0..rows {
                let mut one = vec![0f32; n];
                matmul(&x[r * k..(r + 1) * k], 1, &p, &mut one);
                assert_eq!(one, all[r * n..(r + 1) * n], "{kind:?} {n}x{k} row {r}");
            }
        }
    }
}
