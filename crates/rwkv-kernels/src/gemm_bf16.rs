//! Matrix products with bf16 inputs and f32 accumulation, for the optional bf16 fold
//! (`rwkv_model::FoldPrecision::Bf16`).
//!
//! On CPUs with AVX512-BF16, `vdpbf16ps` multiplies 32 bf16 pairs per instruction into 16 f32
//! sums — twice the multiply-adds of an f32 FMA — so a fold whose products take bf16 inputs can
//! run past the f32 compute limit. Inputs are rounded to bf16 (8-bit mantissa): exact for
//! weights that come from bf16 checkpoints, a relative error of at most 2⁻⁹ per activation.
//! Products of two bf16 values are exact in f32 and every sum is f32, so the only error is
//! that rounding. Without AVX512-BF16 the same arithmetic runs in a portable loop (slow:
//! the mode is only worth choosing where the instruction exists, see [`available`]).
//!
//! Layout: the weights are bf16 [`Panels`] (see [`crate::panels`]): within a panel of [`NR`]
//! output columns, for each pair of inputs `(2p, 2p+1)`, [`NR`] 32-bit words hold
//! `(W[o][2p], W[o][2p+1])` as two bf16 (low half first), which is the operand order of
//! `vdpbf16ps`: a bf16 checkpoint's panels serve this fold and the exact one alike. Activations need no
//! repacking beyond rounding each row to bf16: the pair `(x[2p], x[2p+1])` of a row is already
//! one 32-bit word, broadcast to all lanes.

use crate::simd::f32_to_bf16;

pub use crate::panels::NR;
use crate::panels::{Kind, Panels};
/// Rows per micro-kernel call.
const MR: usize = 12;

/// Whether this CPU runs [`matmul`] with `vdpbf16ps` (AVX512-BF16); otherwise it runs a
/// portable loop with the same rounding. `RWKV_SIMD=portable|avx2` also selects the loop.
pub fn available() -> bool {
    use std::sync::OnceLock;
    static A: OnceLock<bool> = OnceLock::new();
    *A.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            crate::simd::level() == crate::simd::Level::Avx512
                && std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bf16")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// Round `rows` rows of `x` (`[rows, k]`) to bf16 pairs, `[rows, ⌈k / 2⌉]` words, into `out`
/// (resized).
pub fn round_rows(x: &[f32], rows: usize, k: usize, out: &mut Vec<u32>) {
    let kp = k.div_ceil(2);
    out.resize(rows * kp, 0);
    if k.is_multiple_of(2) {
        return round_into(&x[..rows * k], &mut out[..rows * kp]);
    }
    for (xr, or) in x.chunks_exact(k).zip(out.chunks_exact_mut(kp)).take(rows) {
        round_into(xr, or);
    }
}

/// Round `x` to bf16 pairs into `out` (`⌈x.len() / 2⌉` words; an odd last element is paired
/// with zero). Rows of even width can be rounded many at a time.
pub fn round_into(x: &[f32], out: &mut [u32]) {
    assert_eq!(out.len(), x.len().div_ceil(2), "one word per pair");
    let even = x.len() / 2;
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: `available()` checked AVX512-F and AVX512-BF16 at run time; 2 · even floats
        // and `even` words are in bounds.
        unsafe { avx512::round_even_rows(&x[..2 * even], &mut out[..even]) };
    } else {
        round_pairs(&x[..2 * even], &mut out[..even]);
    }
    #[cfg(not(target_arch = "x86_64"))]
    round_pairs(&x[..2 * even], &mut out[..even]);
    if x.len() % 2 == 1 {
        out[even] = u32::from(f32_to_bf16(x[2 * even]));
    }
}

fn round_pairs(x: &[f32], out: &mut [u32]) {
    for (o, p) in out.iter_mut().zip(x.chunks_exact(2)) {
        *o = (u32::from(f32_to_bf16(p[1])) << 16) | u32::from(f32_to_bf16(p[0]));
    }
}

/// `y[rows, w.n()] = a · Wᵀ` where `a` holds rows already rounded by [`round_rows`].
///
/// # Panics
/// If the panels are not bf16 or the buffers do not match the dimensions.
pub fn matmul(a: &[u32], rows: usize, w: &Panels, y: &mut [f32]) {
    assert_eq!(
        Some(a.len()),
        rows.checked_mul(w.kp),
        "activations are rows × ⌈k/2⌉ words"
    );
    assert_eq!(Some(y.len()), rows.checked_mul(w.n()), "outputs are rows × n");
    // SAFETY: `y` holds `rows × n` floats (asserted) and is borrowed mutably for the call.
    unsafe { run(a, rows, w, Dst::F32(y.as_mut_ptr())) };
}

/// `relu(a · Wᵀ)²` rounded to bf16 pairs, `⌈w.n() / 2⌉` words per row, into `out`: the channel
/// mix's hidden layer made straight into the next product's input format.
pub fn matmul_relu_sq_words(a: &[u32], rows: usize, w: &Panels, out: &mut [u32]) {
    assert_eq!(
        Some(a.len()),
        rows.checked_mul(w.kp),
        "activations are rows × ⌈k/2⌉ words"
    );
    assert_eq!(
        Some(out.len()),
        rows.checked_mul(w.n().div_ceil(2)),
        "outputs are rows × ⌈n/2⌉ words"
    );
    // SAFETY: `out` holds `rows × ⌈n/2⌉` words (asserted) and is borrowed mutably for the call.
    unsafe { run(a, rows, w, Dst::ReluSqWords(out.as_mut_ptr())) };
}

/// Where a product's outputs go (the buffer's first row).
#[derive(Clone, Copy)]
enum Dst {
    /// f32 values, row stride `n`.
    F32(*mut f32),
    /// `relu(y)²` rounded to bf16 pairs, row stride `⌈n / 2⌉` words.
    ReluSqWords(*mut u32),
}
// SAFETY: used only to hand disjoint parts of one output buffer to worker threads.
unsafe impl Send for Dst {}
// SAFETY: as above.
unsafe impl Sync for Dst {}

impl Dst {
    /// The same buffer from row `r` on (rows of `n` outputs).
    ///
    /// # Safety
    /// Row `r` must start inside the buffer the pointer came from, or at its end: the buffer
    /// holds at least `r` rows of `n` floats (`⌈n / 2⌉` words).
    unsafe fn row(self, r: usize, n: usize) -> Dst {
        match self {
            // SAFETY: the caller keeps row `r` inside the buffer (or one past its end).
            Dst::F32(p) => Dst::F32(unsafe { p.add(r * n) }),
            // SAFETY: as above, in words.
            Dst::ReluSqWords(p) => Dst::ReluSqWords(unsafe { p.add(r * n.div_ceil(2)) }),
        }
    }
}

/// `rows` rows of `a` times the panels into `dst`, split across the pool.
///
/// # Safety
/// `dst` must point to `rows` writable rows of `w.n()` floats (`⌈w.n() / 2⌉` words for
/// [`Dst::ReluSqWords`]) that nothing else reads or writes during the call; `a` holds `rows`
/// rows of `w.kp` words.
unsafe fn run(a: &[u32], rows: usize, w: &Panels, dst: Dst) {
    assert_eq!(w.kind(), Kind::Bf16, "vdpbf16ps multiplies bf16 panels");
    if rows == 0 || w.n() == 0 {
        return;
    }
    crate::panels::split(rows, w.n(), w.k(), |r0, r1, p0, p1| {
        // SAFETY: `split` hands out disjoint parts (rows r0 .. r1 ≤ rows, panels p0 .. p1) of
        // the output, which holds `rows` rows (caller's contract): row r0 starts inside it or at
        // its end, and these rows of these panels' columns are this task's alone.
        unsafe { panels_range(&a[r0 * w.kp..r1 * w.kp], r1 - r0, w, dst.row(r0, w.n()), p0, p1) };
    });
}

/// Compute the columns of panels `p0 .. p1` for every row.
///
/// # Safety
/// `dst` must point to `rows` output rows, and no other thread may write those columns.
unsafe fn panels_range(a: &[u32], rows: usize, w: &Panels, dst: Dst, p0: usize, p1: usize) {
    for pi in p0..p1 {
        let panel = &w.words[pi * w.kp * NR..(pi + 1) * w.kp * NR];
        let col0 = pi * NR;
        let n = w.n();
        let width = NR.min(n - col0);
        #[cfg(target_arch = "x86_64")]
        if available() {
            let mut r0 = 0;
            while r0 < rows {
                let m = MR.min(rows - r0);
                // SAFETY: r0 < rows, and the output holds `rows` rows (caller's contract).
                let out = match unsafe { dst.row(r0, n) } {
                    // SAFETY: column col0 of these rows is inside the output.
                    Dst::F32(p) => avx512::Out::F32(unsafe { p.add(col0) }, n),
                    // SAFETY: as above, in words (col0 is even).
                    Dst::ReluSqWords(p) => avx512::Out::ReluSqWords(unsafe { p.add(col0 / 2) }, n.div_ceil(2)),
                };
                // SAFETY: `available()` checked the CPU; rows r0 .. r0 + m exist in `a` and in
                // the output, and so do the panel's `width` columns.
                unsafe { avx512::micro(m, a[r0 * w.kp..].as_ptr(), w.kp, panel.as_ptr(), out, width) };
                r0 += m;
            }
            continue;
        }
        for r in 0..rows {
            let ar = &a[r * w.kp..(r + 1) * w.kp];
            let mut acc = [0f32; NR];
            for (p, &x) in ar.iter().enumerate() {
                let (xl, xh) = (bf16_lo(x), bf16_hi(x));
                for (j, s) in acc.iter_mut().enumerate() {
                    // As `vdpbf16ps` does: the odd product first, each added with its own
                    // rounding (products of two bf16 are exact in f32).
                    let wp = panel[p * NR + j];
                    *s += xh * bf16_hi(wp);
                    *s += xl * bf16_lo(wp);
                }
            }
            // SAFETY: r < rows, and the output holds `rows` rows (caller's contract).
            match unsafe { dst.row(r, n) } {
                Dst::F32(p) => {
                    // SAFETY: row r, columns col0 .. col0 + width are inside `y` and ours alone.
                    let out = unsafe { std::slice::from_raw_parts_mut(p.add(col0), width) };
                    out.copy_from_slice(&acc[..width]);
                }
                Dst::ReluSqWords(p) => {
                    for v in &mut acc {
                        *v = v.max(0.0) * v.max(0.0);
                    }
                    let words = width.div_ceil(2);
                    // SAFETY: as above, in words.
                    let out = unsafe { std::slice::from_raw_parts_mut(p.add(col0 / 2), words) };
                    round_into(&acc[..2 * words], out);
                }
            }
        }
    }
}

#[inline(always)]
fn bf16_lo(x: u32) -> f32 {
    f32::from_bits(x << 16)
}

#[inline(always)]
fn bf16_hi(x: u32) -> f32 {
    f32::from_bits(x & 0xFFFF_0000)
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{MR, NR};

    /// Round pairs of floats to bf16 words (`vcvtne2ps2bf16`: nearest, ties to even).
    ///
    /// # Safety
    /// The CPU must have AVX512-F and AVX512-BF16; `out.len() · 2 == x.len()`.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn round_even_rows(x: &[f32], out: &mut [u32]) {
        debug_assert_eq!(x.len(), out.len() * 2);
        let n = out.len();
        let mut i = 0;
        while i + 16 <= n {
            // SAFETY: 32 floats from 2i and 16 words from i are in bounds.
            unsafe {
                let lo = _mm512_loadu_ps(x.as_ptr().add(2 * i));
                let hi = _mm512_loadu_ps(x.as_ptr().add(2 * i + 16));
                let h: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                _mm512_storeu_si512(out.as_mut_ptr().add(i).cast(), h);
            }
            i += 16;
        }
        for j in i..n {
            let lo = crate::simd::f32_to_bf16(x[2 * j]);
            let hi = crate::simd::f32_to_bf16(x[2 * j + 1]);
            out[j] = (u32::from(hi) << 16) | u32::from(lo);
        }
    }

    /// Where one micro-kernel call writes: f32 values, or `relu(y)²` as bf16 pairs; each with
    /// its row stride (floats or words).
    #[derive(Clone, Copy)]
    pub enum Out {
        /// f32 values.
        F32(*mut f32, usize),
        /// `relu(y)²` rounded to bf16 pairs.
        ReluSqWords(*mut u32, usize),
    }

    /// `m ≤ MR` rows times one panel: `y[r][0..width] = Σ_p a[r][p] · panel[p]`.
    ///
    /// # Safety
    /// The CPU must have AVX512-F and AVX512-BF16; `a` holds `m` rows of `kp` words with row
    /// stride `kp`; `panel` holds `kp · NR` words; `out` has `m` rows of `width ≤ NR` writable
    /// floats (or `⌈width / 2⌉` words).
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn micro(m: usize, a: *const u32, kp: usize, panel: *const u32, out: Out, width: usize) {
        macro_rules! dispatch {
            ($($n:literal)*) => {
                match m {
                    // SAFETY: forwarded from the caller.
                    $($n => unsafe { kernel::<$n>(a, kp, panel, out, width) },)*
                    _ => unreachable!("micro-kernel rows 1..=MR"),
                }
            };
        }
        const _: () = assert!(MR == 12);
        dispatch!(1 2 3 4 5 6 7 8 9 10 11 12)
    }

    #[inline(always)]
    unsafe fn kernel<const M: usize>(a: *const u32, kp: usize, panel: *const u32, out: Out, width: usize) {
        // SAFETY (whole body): bounds as documented on `micro`.
        unsafe {
            let mut acc0 = [_mm512_setzero_ps(); M];
            let mut acc1 = [_mm512_setzero_ps(); M];
            for p in 0..kp {
                let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(panel.add(p * NR).cast()));
                let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(panel.add(p * NR + 16).cast()));
                for r in 0..M {
                    let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(r * kp + p) as i32));
                    acc0[r] = _mm512_dpbf16_ps(acc0[r], x, b0);
                    acc1[r] = _mm512_dpbf16_ps(acc1[r], x, b1);
                }
            }
            match out {
                Out::F32(y, ldy) => {
                    let mask = if width >= 32 { u32::MAX } else { (1u32 << width) - 1 };
                    let (m0, m1) = (mask as u16, (mask >> 16) as u16);
                    for r in 0..M {
                        _mm512_mask_storeu_ps(y.add(r * ldy), m0, acc0[r]);
                        _mm512_mask_storeu_ps(y.add(r * ldy + 16), m1, acc1[r]);
                    }
                }
                Out::ReluSqWords(y, ldy) => {
                    let words = width.div_ceil(2);
                    let mask = if words >= 16 { u16::MAX } else { (1u16 << words) - 1 };
                    let zero = _mm512_setzero_ps();
                    for r in 0..M {
                        let v0 = _mm512_max_ps(acc0[r], zero);
                        let v1 = _mm512_max_ps(acc1[r], zero);
                        let h: __m512i =
                            std::mem::transmute(_mm512_cvtne2ps_pbh(_mm512_mul_ps(v1, v1), _mm512_mul_ps(v0, v0)));
                        _mm512_mask_storeu_epi32(y.add(r * ldy).cast(), mask, h);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::bf16_to_f32;

    fn reference(x: &[f32], rows: usize, k: usize, wt: &[f32], n: usize) -> Vec<f64> {
        let r = |v: f32| f64::from(bf16_to_f32(f32_to_bf16(v)));
        let mut y = vec![0f64; rows * n];
        for t in 0..rows {
            for o in 0..n {
                y[t * n + o] = (0..k).map(|i| r(x[t * k + i]) * r(wt[i * n + o])).sum();
            }
        }
        y
    }

    /// Inputs `[rows, k]`, input-major weights `[k, n]`, the weights packed and the inputs rounded.
    fn case(rows: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>, Panels, Vec<u32>) {
        let x: Vec<f32> = (0..rows * k)
            .map(|i| ((i * 7919 % 1009) as f32 / 504.0) - 1.0)
            .collect();
        let wt: Vec<f32> = (0..k * n).map(|i| ((i * 104_729 % 997) as f32 / 498.0) - 1.0).collect();
        let w = Panels::from_f32_input_major(&wt, k, n, Kind::Bf16);
        let mut a = Vec::new();
        round_rows(&x, rows, k, &mut a);
        (x, wt, w, a)
    }

    #[test]
    fn matches_a_bf16_rounded_reference_for_every_edge() {
        for (rows, k, n) in [
            (1, 2, 1),
            (13, 7, 33),
            (12, 64, 32),
            (25, 96, 70),
            (3, 130, 64),
            (40, 768, 96),
        ] {
            let (x, wt, w, a) = case(rows, k, n);
            let mut y = vec![f32::NAN; rows * n];
            matmul(&a, rows, &w, &mut y);
            let want = reference(&x, rows, k, &wt, n);
            for (i, (&g, &e)) in y.iter().zip(&want).enumerate() {
                // Only the f32 sums round: k terms of magnitude ≤ 1.
                let tol = 1e-6 * k as f64 + 1e-6;
                assert!((f64::from(g) - e).abs() <= tol, "{rows}x{k}x{n} at {i}: {g} vs {e}");
            }
        }
    }

    #[test]
    fn relu_sq_words_equal_the_product_then_relu_sq_then_rounding() {
        for (rows, k, n) in [
            (1, 4, 1),
            (13, 7, 33),
            (25, 96, 70),
            (40, 768, 96),
            (64, 768, 20),
            (5, 64, 31),
        ] {
            let (_, _, w, a) = case(rows, k, n);
            let mut y = vec![0f32; rows * n];
            matmul(&a, rows, &w, &mut y);
            let np = n.div_ceil(2);
            let mut want = vec![0u32; rows * np];
            for (yr, wr) in y.chunks_exact(n).zip(want.chunks_exact_mut(np)) {
                let h: Vec<f32> = yr.iter().map(|v| v.max(0.0) * v.max(0.0)).collect();
                round_into(&h, wr);
            }
            let mut got = vec![0xDEAD_BEEFu32; rows * np];
            matmul_relu_sq_words(&a, rows, &w, &mut got);
            assert_eq!(got, want, "{rows}x{k}x{n}");
        }
    }

    #[test]
    fn rounding_rows_matches_the_scalar_rounding() {
        let x: Vec<f32> = (0..3 * 40).map(|i| (i as f32 * 0.731).sin() * 3.7).collect();
        let mut a = Vec::new();
        round_rows(&x, 3, 40, &mut a);
        for (i, &word) in a.iter().enumerate() {
            assert_eq!(word & 0xFFFF, u32::from(f32_to_bf16(x[2 * i])));
            assert_eq!(word >> 16, u32::from(f32_to_bf16(x[2 * i + 1])));
        }
    }
}
