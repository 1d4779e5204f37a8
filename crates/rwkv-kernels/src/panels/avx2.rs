//! Panels with 256-bit registers: a panel's 32 columns are four registers. Each column sums
//! the same products in the same order as the portable loop and the 512-bit kernels, so
//! every path gives the same bits.

use std::arch::x86_64::*;

use super::{Kind, NR, Panels};

/// Rows per micro-kernel (three rows of four registers: twelve accumulators).
const MR2: usize = 3;
/// Panels one row multiplies at once (two streams read faster than three on Zen 3: 1.5B decode
/// 9.9–10.4 against 9.2–9.5 tok/s).
const ONE_ROW_PANELS: usize = 2;
/// How far ahead of its reads one row prefetches each panel, bytes.
const PREFETCH_AHEAD: usize = 1024;

/// Whether these kernels take weights of `kind` on this CPU (f16 needs F16C).
pub fn usable(kind: Kind) -> bool {
    use std::sync::OnceLock;
    static F16C: OnceLock<bool> = OnceLock::new();
    kind != Kind::F16 || *F16C.get_or_init(|| std::is_x86_feature_detected!("f16c"))
}

/// Columns of panels `p0 .. p1` for every row (see [`super::panels_range`]).
///
/// # Safety
/// The CPU must have AVX2 and FMA (and F16C for f16 weights); `x` holds `rows` rows of
/// `w.k` floats; `dst` points to `rows` rows of `w.n` floats that no other thread writes in
/// these panels' columns.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn range(x: &[f32], rows: usize, w: &Panels, dst: *mut f32, p0: usize, p1: usize) {
    // SAFETY (whole body): every call reads rows and panels that exist and writes the
    // caller's columns.
    unsafe {
        if rows == 1 {
            let mut pi = p0;
            while pi < p1 {
                match (p1 - pi).min(ONE_ROW_PANELS) {
                    1 => kernel::<1, 1>(x.as_ptr(), w, pi, dst, w.n, true),
                    _ => kernel::<1, 2>(x.as_ptr(), w, pi, dst, w.n, true),
                }
                pi += ONE_ROW_PANELS;
            }
            return;
        }
        for pi in p0..p1 {
            let mut r0 = 0;
            while r0 < rows {
                let (xr, y) = (x[r0 * w.k..].as_ptr(), dst.add(r0 * w.n));
                match (rows - r0).min(MR2) {
                    1 => kernel::<1, 1>(xr, w, pi, y, w.n, false),
                    2 => kernel::<2, 1>(xr, w, pi, y, w.n, false),
                    _ => kernel::<3, 1>(xr, w, pi, y, w.n, false),
                }
                r0 += MR2;
            }
        }
    }
}

/// Columns `8c .. 8c + 8` of panel `pi` for inputs `2p` and `2p + 1`, widened.
#[inline(always)]
unsafe fn load(w: &Panels, pi: usize, p: usize, c: usize) -> (__m256, __m256) {
    // SAFETY (whole body): p < kp, pi < panels and c < 4: inside the panel.
    unsafe {
        match w.kind {
            Kind::Bf16 => {
                let a = _mm256_loadu_si256(w.words.as_ptr().add((pi * w.kp + p) * NR + 8 * c).cast());
                (
                    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(a)),
                    _mm256_castsi256_ps(_mm256_and_si256(a, _mm256_set1_epi32(0xFFFF_0000u32 as i32))),
                )
            }
            Kind::F16 => {
                let a = _mm256_loadu_si256(w.words.as_ptr().add((pi * w.kp + p) * NR + 8 * c).cast());
                let lo = _mm256_and_si256(a, _mm256_set1_epi32(0xFFFF));
                let hi = _mm256_srli_epi32::<16>(a);
                // [l0-3 h0-3 | l4-7 h4-7] -> [l0-7 | h0-7].
                let v = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi32(lo, hi));
                (
                    _mm256_cvtph_ps(_mm256_castsi256_si128(v)),
                    _mm256_cvtph_ps(_mm256_extracti128_si256::<1>(v)),
                )
            }
            Kind::I8 => {
                let base = w.q.as_ptr().add((pi * w.kp + p) * 2 * NR + 8 * c);
                let v = |b: *const i8| _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(b.cast())));
                (v(base), v(base.add(NR)))
            }
        }
    }
}

/// `M` rows of `x` (row stride `w.k`) times panels `pi .. pi + P` into `y` (row stride
/// `ldy`, the panels' columns from `pi · NR`).
#[inline(always)]
unsafe fn kernel<const M: usize, const P: usize>(
    x: *const f32,
    w: &Panels,
    pi: usize,
    y: *mut f32,
    ldy: usize,
    prefetch: bool,
) {
    // SAFETY (whole body): x has M rows of k floats; panels pi .. pi + P exist; y's rows
    // hold the panels' columns up to w.n.
    unsafe {
        let k = w.k;
        let pairs = k.div_ceil(2);
        let mut acc = [[[_mm256_setzero_ps(); 4]; P]; M];
        let (step, bytes): (usize, *const u8) = match w.kind {
            Kind::I8 => (2 * NR, w.q.as_ptr().cast()),
            _ => (4 * NR, w.words.as_ptr().cast()),
        };
        for p in 0..pairs {
            if prefetch {
                for q in 0..P {
                    let at = ((pi + q) * w.kp + p) * step + PREFETCH_AHEAD;
                    _mm_prefetch::<_MM_HINT_T0>(bytes.wrapping_add(at).cast());
                }
            }
            let odd = 2 * p + 1 < k;
            for q in 0..P {
                for c in 0..4 {
                    let (lo, hi) = load(w, pi + q, p, c);
                    for (r, accr) in acc.iter_mut().enumerate() {
                        let xl = _mm256_set1_ps(*x.add(r * k + 2 * p));
                        let xh = if odd {
                            _mm256_set1_ps(*x.add(r * k + 2 * p + 1))
                        } else {
                            _mm256_setzero_ps()
                        };
                        accr[q][c] = _mm256_fmadd_ps(xl, lo, accr[q][c]);
                        accr[q][c] = _mm256_fmadd_ps(xh, hi, accr[q][c]);
                    }
                }
            }
        }
        let mut lanes = [0f32; NR];
        for (r, accr) in acc.iter().enumerate() {
            for (q, accq) in accr.iter().enumerate() {
                let col0 = (pi + q) * NR;
                let width = NR.min(w.n - col0);
                for (c, a) in accq.iter().enumerate() {
                    _mm256_storeu_ps(lanes[8 * c..].as_mut_ptr(), *a);
                }
                for (j, &a) in lanes.iter().enumerate().take(width) {
                    let v = if w.kind == Kind::I8 { a * w.scales[col0 + j] } else { a };
                    *y.add(r * ldy + col0 + j) = v;
                }
            }
        }
    }
}
