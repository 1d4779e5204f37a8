//! bf16 or f16 weight matrices used where the checkpoint keeps them: `[out, in]` rows, read
//! straight from the file's memory map, and the products that widen them inside the kernel.
//!
//! Official checkpoints store every projection as `nn.Linear` does, `W [out, in]` row-major,
//! in bf16. Holding those bytes as they are (a range of the map, [`rwkv_formats::tensor::Bytes`])
//! means loading copies nothing: a model costs its file's pages, which the page cache already
//! holds, and starts in the time it takes to fingerprint them.
//!
//! The product is the dot-product form: output `o` of row `r` is `Σᵢ x[r][i] · W[o][i]`, summed
//! in 16 lanes (lane `(i mod 32) / 2`: inputs `2l` and `2l + 1` of each block of 32, each lane
//! in input order, zero past the end), then the lanes are added in one fixed tree
//! ([`reduce`]). Pairing neighbours lets a 32-bit lane of bf16 weights widen to two floats
//! with one shift and one mask, no shuffle. That order depends only on `in`, never on how many rows
//! a call has or which tile an output falls in, so folding in chunks of any length gives the
//! same products bit for bit, and a generated token (one row) sums exactly as a fold would.
//!
//! On a CPU with AMX (and bf16 rows of whole blocks of 32), a fold's products ([`matmul`]), one
//! row included, run on AMX's bf16 tiles instead, at f32 accuracy ([`amx`]): their own fixed
//! order, so chunk lengths still change no bit. Generated tokens keep the FMA kernels
//! ([`matmul_tokens`]), which stream one row's weights faster. `RWKV_AMX=0` (or `RWKV_SIMD`
//! below AVX-512) keeps the FMA kernels for both.

mod amx;

use rayon::prelude::*;

use crate::panels::{Kind, Out};
use crate::simd::Arch;
use rwkv_formats::tensor::Bytes;

/// Lanes of each dot product.
const L: usize = 16;
/// Rows per tile.
const MR: usize = 4;
/// Outputs per tile.
const NO: usize = 6;
/// Rows whose inputs one pass over a task's weights reuses (their inputs stay in L2).
const ROW_BLOCK: usize = 32;
/// Minimum multiply-adds before a product is split across threads.
const PAR_MIN_WORK: usize = 1 << 18;

/// A `[n, k]` row-major matrix of bf16 or f16 values (`y = x · Wᵀ`), held as the checkpoint's
/// own bytes. The dimensions are fixed at construction (the kernels read the bytes by them):
/// see [`Rows16::n`] and [`Rows16::k`].
#[derive(Debug, Clone)]
pub struct Rows16 {
    /// Output features (rows of `W`).
    n: usize,
    /// Input features.
    k: usize,
    kind: Kind,
    bytes: Bytes,
}

impl Rows16 {
    /// `W [n, k]` from `bytes`, `n · k` little-endian values of `kind` (`Bf16` or `F16`).
    ///
    /// # Panics
    /// If `bytes` does not hold `n · k` 16-bit values or `kind` is not 16-bit (callers check
    /// the tensor first and report a named error).
    pub fn new(bytes: Bytes, kind: Kind, n: usize, k: usize) -> Self {
        assert!(matches!(kind, Kind::Bf16 | Kind::F16), "16-bit weights");
        assert_eq!(
            Some(bytes.len()),
            n.checked_mul(k).and_then(|e| e.checked_mul(2)),
            "W holds n × k 16-bit values"
        );
        Rows16 { n, k, kind, bytes }
    }

    /// Let the checkpoint's pages of these rows leave memory (a file-backed map drops them; a
    /// later read faults them back in from the file). For when another holding serves the
    /// products for a while: the bf16 fold's packed panels.
    pub fn release(&self) {
        self.bytes.release();
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

    /// Bytes held (mapped from the file or owned).
    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The raw 16-bit value `W[o][i]`.
    pub fn bits(&self, o: usize, i: usize) -> u16 {
        let e = 2 * (o * self.k + i);
        u16::from_le_bytes([self.bytes[e], self.bytes[e + 1]])
    }

    /// `W[o][i]` widened to f32.
    pub fn get(&self, o: usize, i: usize) -> f32 {
        widen(self.kind, self.bits(o, i))
    }

    /// The weights as a packing source (for a panel copy: the bf16 fold, int8).
    pub fn source(&self) -> crate::panels::Source<'_> {
        crate::panels::Source {
            bytes: &self.bytes,
            dtype: match self.kind {
                Kind::F16 => rwkv_formats::tensor::DType::F16,
                _ => rwkv_formats::tensor::DType::BF16,
            },
            n: self.n,
            k: self.k,
            input_major: false,
        }
    }

    /// The bytes of rows `o0 .. o1`.
    pub(crate) fn row_bytes(&self, o0: usize, o1: usize) -> &[u8] {
        &self.bytes[2 * o0 * self.k..2 * o1 * self.k]
    }

    fn row(&self, o: usize) -> &[u8] {
        &self.bytes[2 * o * self.k..2 * (o + 1) * self.k]
    }
}

#[inline(always)]
fn widen(kind: Kind, h: u16) -> f32 {
    match kind {
        Kind::F16 => half::f16::from_bits(h).to_f32(),
        _ => f32::from_bits(u32::from(h) << 16),
    }
}

/// The lanes' sum, in the one order every kernel uses.
#[inline(always)]
fn reduce(a: &[f32; L]) -> f32 {
    let mut b = [0f32; 8];
    for (j, v) in b.iter_mut().enumerate() {
        *v = a[j] + a[j + 8];
    }
    let c = [b[0] + b[4], b[1] + b[5], b[2] + b[6], b[3] + b[7]];
    let d = [c[0] + c[2], c[1] + c[3]];
    d[0] + d[1]
}

/// `y[rows, w.n] = x[rows, w.k] · Wᵀ` with f32 inputs and f32 sums: a fold's products. On a
/// CPU with AMX, bf16 rows of whole blocks of 32 run there ([`amx`]), any row count giving the
/// same bits; elsewhere as [`matmul_tokens`].
///
/// # Panics
/// If `x` or `y` do not hold `rows` rows of `w.k` / `w.n` values.
pub fn matmul(x: &[f32], rows: usize, w: &Rows16, y: &mut [f32]) {
    if w.kind == Kind::Bf16 && w.k.is_multiple_of(32) && rows > 0 && amx::available() {
        return amx::matmul(x, rows, w, y);
    }
    matmul_tokens(x, rows, w, y)
}

/// [`matmul`] with the FMA kernels whatever the CPU: each row summed as a generated token is
/// (one row streams the weights at the read bandwidth, where AMX's tile loads fall short).
///
/// # Panics
/// As [`matmul`].
pub fn matmul_tokens(x: &[f32], rows: usize, w: &Rows16, y: &mut [f32]) {
    assert_eq!(Some(x.len()), rows.checked_mul(w.k), "inputs are rows × k");
    assert_eq!(Some(y.len()), rows.checked_mul(w.n), "outputs are rows × n");
    if rows == 0 || w.n == 0 {
        return;
    }
    // The inputs in the kernels' order, in a buffer this thread keeps between calls (taken
    // out while in use: a call nested in this one's pool work gets a fresh one).
    thread_local! {
        static PAIRS: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
    }
    let mut pairs = PAIRS.with(std::cell::Cell::take);
    pair_order(x, rows, w.k, &mut pairs);
    let xs = Inputs {
        x,
        pairs: &pairs,
        k: w.k,
    };
    let threads = rayon::current_num_threads();
    let blocks = w.n.div_ceil(NO);
    let tasks = if rows * w.n * w.k >= PAR_MIN_WORK && threads > 1 {
        (threads * 4).min(blocks)
    } else {
        1
    };
    let dst = Out(y.as_mut_ptr());
    if tasks <= 1 {
        // SAFETY: one task writes all of the output, whose extent was asserted.
        unsafe { range(&xs, rows, w, dst, 0, w.n) };
    } else {
        let per = blocks.div_ceil(tasks) * NO;
        (0..w.n.div_ceil(per)).into_par_iter().for_each(|t| {
            let (o0, o1) = (t * per, ((t + 1) * per).min(w.n));
            // SAFETY: tasks cover disjoint output ranges, so each writes disjoint columns.
            unsafe { range(&xs, rows, w, dst, o0, o1) };
        });
    }
    PAIRS.with(|c| c.set(pairs));
}

/// The inputs of a product: as given (`rows × k`), and in pair order (see [`pair_order`]).
struct Inputs<'a> {
    x: &'a [f32],
    pairs: &'a [f32],
    k: usize,
}

impl Inputs<'_> {
    /// Length of a row in pair order: `k` rounded up to a block of 32.
    fn kp(&self) -> usize {
        self.k.next_multiple_of(2 * L)
    }
}

/// `x` (`rows × k`) rearranged for the kernels: each row padded with zeros to whole blocks
/// of 32, each block as its 16 even inputs, then its 16 odd ones (lane `l` sums inputs `2l` and
/// `2l + 1` of a block, which is how a 32-bit lane holds two bf16 weights).
fn pair_order(x: &[f32], rows: usize, k: usize, out: &mut Vec<f32>) {
    let kp = k.next_multiple_of(2 * L);
    out.clear();
    out.resize(rows * kp, 0.0);
    for (src, dst) in x.chunks_exact(k).zip(out.chunks_exact_mut(kp)) {
        for (b, block) in src.chunks(2 * L).enumerate() {
            let d = &mut dst[b * 2 * L..(b + 1) * 2 * L];
            for (j, &v) in block.iter().enumerate() {
                d[(j % 2) * L + j / 2] = v;
            }
        }
    }
}

/// Outputs `o0 .. o1` of every row.
///
/// # Safety
/// `dst` must point to `rows` rows of `w.n` floats that no other thread writes in these columns.
unsafe fn range(x: &Inputs<'_>, rows: usize, w: &Rows16, dst: Out, o0: usize, o1: usize) {
    for r0 in (0..rows).step_by(ROW_BLOCK) {
        let r1 = (r0 + ROW_BLOCK).min(rows);
        for ob in (o0..o1).step_by(NO) {
            let ow = NO.min(o1 - ob);
            for rb in (r0..r1).step_by(MR) {
                let m = MR.min(r1 - rb);
                let mut out = [[0f32; NO]; MR];
                tile(x, rb, m, w, ob, ow, &mut out);
                for (r, row) in out.iter().enumerate().take(m) {
                    for (j, &v) in row.iter().enumerate().take(ow) {
                        // SAFETY: row rb + r and column ob + j lie in the output (caller's
                        // contract), in this task's columns.
                        unsafe { *dst.0.add((rb + r) * w.n + ob + j) = v };
                    }
                }
            }
        }
    }
}

/// One tile: rows `rb .. rb + m` (`m ≤ MR`) times outputs `ob .. ob + ow` (`ow ≤ NO`).
fn tile(x: &Inputs<'_>, rb: usize, m: usize, w: &Rows16, ob: usize, ow: usize, out: &mut [[f32; NO]; MR]) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::level() == crate::simd::Level::Avx512 {
        // SAFETY: the CPU has AVX-512F/BW/VL (checked by `level`); the rows and outputs exist.
        return unsafe { avx512::tile(x.pairs, x.kp(), rb, m, w, ob, ow, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if crate::simd::level() == crate::simd::Level::Avx2 && (w.kind != Kind::F16 || avx2::has_f16c()) {
        // SAFETY: the CPU has AVX2 and FMA (checked by `level`), F16C for f16 weights; the
        // rows and outputs exist.
        return unsafe { avx2::tile(x.pairs, x.kp(), rb, m, w, ob, ow, out) };
    }
    portable_tile(x.x, rb, m, w, ob, ow, out);
}

#[inline(always)]
fn portable_tile_g<A: Arch>(
    x: &[f32],
    rb: usize,
    m: usize,
    w: &Rows16,
    ob: usize,
    ow: usize,
    out: &mut [[f32; NO]; MR],
) {
    let k = w.k;
    for (r, orow) in out.iter_mut().enumerate().take(m) {
        let xr = &x[(rb + r) * k..(rb + r + 1) * k];
        for (j, o) in orow.iter_mut().enumerate().take(ow) {
            let wr = w.row(ob + j);
            let mut acc = [0f32; L];
            for b in (0..k).step_by(2 * L) {
                for (l, a) in acc.iter_mut().enumerate() {
                    // Lane l takes inputs 2l and 2l + 1 of each block of 32, in that order;
                    // past the end both are zero (as the kernels' masked loads read them).
                    for i in [b + 2 * l, b + 2 * l + 1] {
                        let (xv, wv) = if i < k {
                            (xr[i], widen(w.kind, u16::from_le_bytes([wr[2 * i], wr[2 * i + 1]])))
                        } else {
                            (0.0, 0.0)
                        };
                        *a = A::fma(xv, wv, *a);
                    }
                }
            }
            *o = reduce(&acc);
        }
    }
}
crate::simd::multiversion!(fn portable_tile(x: &[f32], rb: usize, m: usize, w: &Rows16, ob: usize, ow: usize, out: &mut [[f32; NO]; MR]) => portable_tile_g);

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Kind, L, MR, NO, Rows16, reduce};

    /// Rows of inputs in pair order ([`super::pair_order`]), `kp` apart.
    #[derive(Clone, Copy)]
    struct Pairs<'a>(&'a [f32], usize);

    /// See [`super::tile`].
    ///
    /// # Safety
    /// The CPU must have AVX-512F/BW/VL; rows `rb .. rb + m` of `x` (in pair order, rows `kp`
    /// apart, `kp` a multiple of 32 covering `w.k`) and outputs `ob .. ob + ow` of `w` exist.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    pub unsafe fn tile(
        x: &[f32],
        kp: usize,
        rb: usize,
        m: usize,
        w: &Rows16,
        ob: usize,
        ow: usize,
        out: &mut [[f32; NO]; MR],
    ) {
        let x = Pairs(x, kp);
        macro_rules! dispatch {
            ($($mm:literal)*) => {
                match m {
                    // SAFETY: forwarded from the caller.
                    $($mm => unsafe { kernel::<$mm>(x, rb, w, ob, ow, out) },)*
                    _ => unreachable!("tile rows 1..=MR"),
                }
            };
        }
        const _: () = assert!(MR == 4);
        dispatch!(1 2 3 4)
    }

    #[inline(always)]
    unsafe fn kernel<const M: usize>(
        x: Pairs<'_>,
        rb: usize,
        w: &Rows16,
        ob: usize,
        ow: usize,
        out: &mut [[f32; NO]; MR],
    ) {
        // SAFETY (whole body): every pointer below stays inside row rb + r of `x` or row
        // ob + j (j < ow; rows past ow repeat row ob and are discarded) of `w`, reading at most
        // the elements the masks allow.
        unsafe {
            let k = w.k;
            let kp = x.1;
            let xp = x.0.as_ptr().add(rb * kp);
            let wrow: [*const u16; NO] = std::array::from_fn(|j| {
                let o = ob + if j < ow { j } else { 0 };
                w.bytes.as_ptr().add(2 * o * k).cast::<u16>()
            });
            let mut acc = [[_mm512_setzero_ps(); NO]; M];
            let f16 = w.kind == Kind::F16;
            let high = _mm512_set1_epi32(0xFFFF_0000u32 as i32);
            // The next tile's rows follow this tile's in memory: fetch them ahead as one
            // sequential run, a tile's worth of lines over this tile's steps (short rows are
            // too short for the hardware's per-stream prefetch to ramp up).
            let ahead = w.bytes.as_ptr().wrapping_add(2 * (ob + NO) * k);
            let mut i = 0;
            while i < k {
                // Only for one row (a generated token): a fold's tile reuses its weights for
                // many rows, and its products are not bound by memory.
                if M == 1 {
                    let step = i / (2 * L);
                    for c in 0..NO {
                        _mm_prefetch::<_MM_HINT_T1>(ahead.wrapping_add((step * NO + c) * 64).cast());
                    }
                }
                let left = k - i;
                let mask: __mmask32 = if left >= 2 * L { !0 } else { (1u32 << left) - 1 };
                // Each block of 32 weights as inputs 2l (`we`) and 2l + 1 (`wo`) in lane l.
                let mut we = [_mm512_setzero_ps(); NO];
                let mut wo = [_mm512_setzero_ps(); NO];
                for j in 0..NO {
                    let h = _mm512_maskz_loadu_epi16(mask, wrow[j].add(i).cast());
                    if f16 {
                        we[j] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(h));
                        wo[j] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(h)));
                    } else {
                        we[j] = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(h));
                        wo[j] = _mm512_castsi512_ps(_mm512_and_si512(h, high));
                    }
                }
                for (r, accr) in acc.iter_mut().enumerate() {
                    // Padded with zeros to whole blocks: no mask.
                    let xe = _mm512_loadu_ps(xp.add(r * kp + i));
                    let xo = _mm512_loadu_ps(xp.add(r * kp + i + L));
                    for j in 0..NO {
                        accr[j] = _mm512_fmadd_ps(xe, we[j], accr[j]);
                        accr[j] = _mm512_fmadd_ps(xo, wo[j], accr[j]);
                    }
                }
                i += 2 * L;
            }
            let mut lanes = [0f32; L];
            for (r, accr) in acc.iter().enumerate() {
                for j in 0..ow {
                    _mm512_storeu_ps(lanes.as_mut_ptr(), accr[j]);
                    out[r][j] = reduce(&lanes);
                }
            }
        }
    }
}

/// The same tile with 256-bit registers: lanes 0–7 of a block (its inputs 0–15) are one
/// register, lanes 8–15 (inputs 16–31) another; each lane sums the same products in the same
/// order as the 512-bit kernel's, so both give the same bits. Sixteen registers hold at most
/// twelve accumulators, so a tile of `m` rows is done in passes over groups of its outputs
/// and halves of its lanes.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Kind, L, MR, NO, Rows16, reduce};

    /// Inputs a tile of several rows multiplies before its next pass (a multiple of 32): 4 KB
    /// of each row, measured best among 256 to 2,048 on a 2-core Zen 2 at 1.5B.
    const K_CHUNK: usize = 1024;

    /// Whether the CPU has F16C (for f16 weights).
    pub fn has_f16c() -> bool {
        use std::sync::OnceLock;
        static V: OnceLock<bool> = OnceLock::new();
        *V.get_or_init(|| std::is_x86_feature_detected!("f16c"))
    }

    /// See [`super::tile`].
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA (and F16C for f16 weights); rows `rb .. rb + m` of `x`
    /// (in pair order, rows `kp` apart, `kp` a multiple of 32 covering `w.k`) and outputs
    /// `ob .. ob + ow` of `w` exist.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn tile(
        x: &[f32],
        kp: usize,
        rb: usize,
        m: usize,
        w: &Rows16,
        ob: usize,
        ow: usize,
        out: &mut [[f32; NO]; MR],
    ) {
        // Lanes of every accumulator, [row][output][lane].
        let mut lanes = [[[0f32; L]; NO]; MR];
        const _: () = assert!(MR == 4 && NO == 6 && L == 16);
        // The weights' bytes once per tile (a mapped range's bounds are checked on each look,
        // and a tile makes several passes per chunk).
        let wb = w.bytes.as_ptr();
        // SAFETY (every pass): forwarded from the caller; outputs j0 .. j0 + J and halves
        // h0 .. h0 + H lie in the tile.
        unsafe {
            if m == 1 {
                pass::<1, 6, 2>(x, kp, rb, w, wb, ob, ow, 0, 0, (0, w.k), &mut lanes);
            }
            // Several rows: inputs in chunks whose rows stay in L1 across the passes (each
            // pass reads its rows' inputs again), the sums carried from chunk to chunk.
            let mut i0 = 0;
            while m > 1 && i0 < w.k {
                let span = (i0, (i0 + K_CHUNK).min(w.k));
                match m {
                    3 => {
                        for j0 in [0, 2, 4] {
                            for h0 in [0, 1] {
                                pass::<3, 2, 1>(x, kp, rb, w, wb, ob, ow, j0, h0, span, &mut lanes);
                            }
                        }
                    }
                    4 => {
                        for j0 in [0, 2, 4] {
                            for h0 in [0, 1] {
                                pass::<4, 2, 1>(x, kp, rb, w, wb, ob, ow, j0, h0, span, &mut lanes);
                            }
                        }
                    }
                    _ => {
                        for j0 in [0, 3] {
                            for h0 in [0, 1] {
                                pass::<2, 3, 1>(x, kp, rb, w, wb, ob, ow, j0, h0, span, &mut lanes);
                            }
                        }
                    }
                }
                i0 += K_CHUNK;
            }
        }
        for (r, row) in out.iter_mut().enumerate().take(m) {
            for (j, o) in row.iter_mut().enumerate().take(ow) {
                *o = reduce(&lanes[r][j]);
            }
        }
    }

    /// Sixteen 16-bit weights at `at` as lanes 0–7 of inputs `2t` (first) and `2t + 1`.
    ///
    /// # Safety
    /// AVX2 (and F16C for f16); 32 readable bytes at `at`.
    #[inline(always)]
    unsafe fn widen(at: *const u16, f16: bool, low: __m256i, high: __m256i) -> (__m256, __m256) {
        // SAFETY: the caller's contract.
        unsafe {
            // Lane t: weights 2t (low half) and 2t + 1 (high half).
            let v = _mm256_loadu_si256(at.cast());
            if f16 {
                let even = _mm256_and_si256(v, low);
                let odd = _mm256_srli_epi32::<16>(v);
                // [e0-3 o0-3 | e4-7 o4-7] -> [e0-7 | o0-7].
                let p = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi32(even, odd));
                (
                    _mm256_cvtph_ps(_mm256_castsi256_si128(p)),
                    _mm256_cvtph_ps(_mm256_extracti128_si256::<1>(p)),
                )
            } else {
                (
                    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(v)),
                    _mm256_castsi256_ps(_mm256_and_si256(v, high)),
                )
            }
        }
    }

    /// Rows `0 .. M` of the tile times its outputs `j0 .. j0 + J`, lanes of halves
    /// `h0 .. h0 + H` (half `h`: lanes `8h .. 8h + 8`), into `lanes`; `wb` is `w`'s bytes.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn pass<const M: usize, const J: usize, const H: usize>(
        x: &[f32],
        kp: usize,
        rb: usize,
        w: &Rows16,
        wb: *const u8,
        ob: usize,
        ow: usize,
        j0: usize,
        h0: usize,
        (i0, i1): (usize, usize),
        lanes: &mut [[[f32; L]; NO]],
    ) {
        // SAFETY (whole body): pointers stay inside rows rb .. rb + M of `x` (kp floats each)
        // and rows ob + j (j < ow; others repeat row ob and are discarded) of `w`; a block's
        // weights past `k` are read from a zero-padded copy.
        unsafe {
            let k = w.k;
            let xp = x.as_ptr().add(rb * kp);
            let wrow: [*const u16; J] = std::array::from_fn(|j| {
                let o = ob + if j0 + j < ow { j0 + j } else { 0 };
                wb.add(2 * o * k).cast::<u16>()
            });
            let f16 = w.kind == Kind::F16;
            let high = _mm256_set1_epi32(0xFFFF_0000u32 as i32);
            let low = _mm256_set1_epi32(0xFFFF);
            // The sums so far (zero before the first inputs): a pass over inputs i0 .. i1
            // continues them, each lane in input order.
            let mut acc = [[[_mm256_setzero_ps(); H]; J]; M];
            for (r, accr) in acc.iter_mut().enumerate() {
                for (j, accj) in accr.iter_mut().enumerate() {
                    for (hh, a) in accj.iter_mut().enumerate() {
                        *a = _mm256_loadu_ps(lanes[r][j0 + j][8 * (h0 + hh)..].as_ptr());
                    }
                }
            }
            let mut tail = [[0u16; 2 * L]; J];
            // One row (a generated token) fetches the next tile's rows ahead, as the 512-bit
            // kernel does: its passes together cover a tile's lines over this tile's steps.
            let ahead = wb.wrapping_add(2 * (ob + NO) * k);
            let mut i = i0;
            while i < i1 {
                if M == 1 {
                    let step = i / (2 * L);
                    for c in 0..J {
                        _mm_prefetch::<_MM_HINT_T1>(ahead.wrapping_add((step * NO + j0 + c) * 64).cast());
                    }
                }
                let base: [*const u16; J] = if i + 2 * L <= k {
                    std::array::from_fn(|j| wrow[j].add(i))
                } else {
                    for (j, t) in tail.iter_mut().enumerate() {
                        *t = [0; 2 * L];
                        std::ptr::copy_nonoverlapping(wrow[j].add(i), t.as_mut_ptr(), k - i);
                    }
                    std::array::from_fn(|j| tail[j].as_ptr())
                };
                if M == 1 {
                    // One row: each weight vector meets the row as soon as it is widened
                    // (twelve sums in flight, two registers of weights).
                    for (j, accj) in acc[0].iter_mut().enumerate() {
                        for (hh, a) in accj.iter_mut().enumerate() {
                            let (we, wo) = widen(base[j].add(16 * (h0 + hh)), f16, low, high);
                            let xr = xp.add(i + 8 * (h0 + hh));
                            let e = _mm256_fmadd_ps(_mm256_loadu_ps(xr), we, *a);
                            *a = _mm256_fmadd_ps(_mm256_loadu_ps(xr.add(L)), wo, e);
                        }
                    }
                    i += 2 * L;
                    continue;
                }
                let mut we = [[_mm256_setzero_ps(); H]; J];
                let mut wo = [[_mm256_setzero_ps(); H]; J];
                for j in 0..J {
                    for hh in 0..H {
                        (we[j][hh], wo[j][hh]) = widen(base[j].add(16 * (h0 + hh)), f16, low, high);
                    }
                }
                // Each row's inputs are loaded once and meet every weight vector.
                for (r, accr) in acc.iter_mut().enumerate() {
                    for hh in 0..H {
                        let xr = xp.add(r * kp + i + 8 * (h0 + hh));
                        let (xe, xo) = (_mm256_loadu_ps(xr), _mm256_loadu_ps(xr.add(L)));
                        for j in 0..J {
                            let a = _mm256_fmadd_ps(xe, we[j][hh], accr[j][hh]);
                            accr[j][hh] = _mm256_fmadd_ps(xo, wo[j][hh], a);
                        }
                    }
                }
                i += 2 * L;
            }
            for (r, accr) in acc.iter().enumerate() {
                for (j, accj) in accr.iter().enumerate() {
                    for (hh, a) in accj.iter().enumerate() {
                        let h = h0 + hh;
                        _mm256_storeu_ps(lanes[r][j0 + j][8 * h..].as_mut_ptr(), *a);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::f32_to_bf16;

    pub(super) fn random(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn matrix(n: usize, k: usize, kind: Kind) -> (Rows16, Vec<f32>) {
        let v = random(n * k, 7);
        let bits: Vec<u16> = v
            .iter()
            .map(|&x| match kind {
                Kind::F16 => half::f16::from_f32(x).to_bits(),
                _ => f32_to_bf16(x),
            })
            .collect();
        let bytes: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        let w = Rows16::new(bytes.into(), kind, n, k);
        let vals = (0..n * k).map(|e| w.get(e / k, e % k)).collect();
        (w, vals)
    }

    #[test]
    fn the_portable_tile_gives_the_fast_tiles_bits() {
        for kind in [Kind::Bf16, Kind::F16] {
            for k in [1, 15, 16, 17, 31, 32, 33, 37, 64, 100, 300, 545, 1100] {
                let (w, _) = matrix(NO + 3, k, kind);
                let x = random(MR * k, 11);
                let mut pairs = Vec::new();
                pair_order(&x, MR, k, &mut pairs);
                let xs = Inputs {
                    x: &x,
                    pairs: &pairs,
                    k,
                };
                for m in 1..=MR {
                    for (ob, ow) in [(0, NO), (3, 2), (NO, 3)] {
                        let mut fast = [[0f32; NO]; MR];
                        let mut slow = [[0f32; NO]; MR];
                        tile(&xs, 0, m, &w, ob, ow, &mut fast);
                        portable_tile(&x, 0, m, &w, ob, ow, &mut slow);
                        let bits = |t: &[[f32; NO]; MR]| -> Vec<u32> {
                            t.iter()
                                .take(m)
                                .flat_map(|r| r.iter().take(ow).map(|v| v.to_bits()))
                                .collect()
                        };
                        assert_eq!(bits(&fast), bits(&slow), "{kind:?} k {k} rows {m} outputs {ob}+{ow}");
                        // The 256-bit tile too, where the CPU has it (whatever `tile` chose).
                        #[cfg(target_arch = "x86_64")]
                        if std::is_x86_feature_detected!("avx2")
                            && std::is_x86_feature_detected!("fma")
                            && avx2::has_f16c()
                        {
                            let mut narrow = [[0f32; NO]; MR];
                            // SAFETY: the features were detected; the rows and outputs exist.
                            unsafe { avx2::tile(&pairs, xs.kp(), 0, m, &w, ob, ow, &mut narrow) };
                            assert_eq!(
                                bits(&narrow),
                                bits(&slow),
                                "avx2 {kind:?} k {k} rows {m} outputs {ob}+{ow}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn products_match_f64_and_do_not_depend_on_the_row_count() {
        for kind in [Kind::Bf16, Kind::F16] {
            for (n, k, rows) in [(13, 37, 9), (64, 256, 33), (7, 16, 1), (100, 300, 70)] {
                let (w, vals) = matrix(n, k, kind);
                let x = random(rows * k, 3);
                // The fold's products (on AMX where the CPU has it) and the tokens' (FMA).
                for product in [matmul, matmul_tokens] {
                    let mut y = vec![0f32; rows * n];
                    product(&x, rows, &w, &mut y);
                    for r in 0..rows {
                        for o in 0..n {
                            let want: f64 = (0..k)
                                .map(|i| f64::from(x[r * k + i]) * f64::from(vals[o * k + i]))
                                .sum();
                            assert!(
                                (f64::from(y[r * n + o]) - want).abs() < 1e-4,
                                "{kind:?} {n}x{k} r{r} o{o}"
                            );
                        }
                        // One row alone gives the same bits as inside a batch.
                        let mut one = vec![0f32; n];
                        product(&x[r * k..(r + 1) * k], 1, &w, &mut one);
                        assert_eq!(one, y[r * n..(r + 1) * n], "{kind:?} {n}x{k} row {r}");
                    }
                }
            }
        }
    }
}
