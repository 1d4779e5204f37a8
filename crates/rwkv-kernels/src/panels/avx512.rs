//! Panels with 512-bit registers.

use std::arch::x86_64::*;

use super::{Kind, MR, NR, Panels};

/// Four vectors of widened weights for one input pair: inputs `2p` then `2p + 1`, each as
/// columns 0–15 and 16–31.
#[inline(always)]
unsafe fn load(w: &Panels, pi: usize, p: usize) -> [__m512; 4] {
    // SAFETY (whole body): p < kp and pi < panels, so these reads are inside the panel.
    unsafe {
        match w.kind {
            Kind::Bf16 => {
                let base = w.words.as_ptr().add((pi * w.kp + p) * NR);
                let a = _mm512_loadu_si512(base.cast());
                let b = _mm512_loadu_si512(base.add(16).cast());
                let mask = _mm512_set1_epi32(0xFFFF_0000u32 as i32);
                [
                    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(a)),
                    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(b)),
                    _mm512_castsi512_ps(_mm512_and_si512(a, mask)),
                    _mm512_castsi512_ps(_mm512_and_si512(b, mask)),
                ]
            }
            Kind::F16 => {
                let base = w.words.as_ptr().add((pi * w.kp + p) * NR);
                let a = _mm512_loadu_si512(base.cast());
                let b = _mm512_loadu_si512(base.add(16).cast());
                [
                    _mm512_cvtph_ps(_mm512_cvtepi32_epi16(a)),
                    _mm512_cvtph_ps(_mm512_cvtepi32_epi16(b)),
                    _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(a))),
                    _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(b))),
                ]
            }
            Kind::I8 => {
                let base = w.q.as_ptr().add((pi * w.kp + p) * 2 * NR);
                let v = |o: usize| _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(base.add(o).cast())));
                [v(0), v(16), v(NR), v(NR + 16)]
            }
        }
    }
}

/// `m ≤ MR` rows of `x` (row stride `w.k`) times panel `pi` into `y` (row stride `ldy`,
/// `width ≤ NR` columns written).
///
/// # Safety
/// The CPU must have AVX-512F; `x` holds `m` rows of `w.k` floats; `y` has `m` rows of
/// `width` writable floats.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
pub unsafe fn micro(m: usize, x: *const f32, w: &Panels, pi: usize, y: *mut f32, ldy: usize, width: usize) {
    macro_rules! dispatch {
        ($($n:literal)*) => {
            match m {
                // SAFETY: forwarded from the caller.
                $($n => unsafe { kernel::<$n>(x, w, pi, y, ldy, width) },)*
                _ => unreachable!("micro-kernel rows 1..=MR"),
            }
        };
    }
    const _: () = assert!(MR == 12);
    dispatch!(1 2 3 4 5 6 7 8 9 10 11 12)
}

/// Panels [`one_row`] multiplies at once.
pub const ONE_ROW_PANELS: usize = 4;
/// How far ahead of its reads [`one_row`] prefetches each panel, bytes.
const PREFETCH_AHEAD: usize = 2048;

/// One row `x` (`w.k` floats) times panels `pi .. pi + np` (`np ≤ ONE_ROW_PANELS`) into
/// `y` (the output row, `w.n` floats): the sums of [`kernel`]`::<1>` in the same order,
/// bit for bit, for several panels at a time.
///
/// # Safety
/// The CPU must have AVX-512F; `x` holds `w.k` floats, the panels exist, and `y` holds
/// `w.n` writable floats.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
pub unsafe fn one_row(x: *const f32, w: &Panels, pi: usize, np: usize, y: *mut f32) {
    macro_rules! dispatch {
        ($($n:literal)*) => {
            match np {
                // SAFETY: forwarded from the caller.
                $($n => unsafe { one_row_n::<$n>(x, w, pi, y) },)*
                _ => unreachable!("1..=ONE_ROW_PANELS panels"),
            }
        };
    }
    const _: () = assert!(ONE_ROW_PANELS == 4);
    dispatch!(1 2 3 4)
}

#[inline(always)]
unsafe fn one_row_n<const P: usize>(x: *const f32, w: &Panels, pi: usize, y: *mut f32) {
    // SAFETY (whole body): bounds as documented on `one_row`.
    unsafe {
        let k = w.k;
        let full = k / 2;
        let mut acc0 = [_mm512_setzero_ps(); P];
        let mut acc1 = [_mm512_setzero_ps(); P];
        // Bytes of one input pair in a panel, and where each panel's pairs start.
        let (step, bases): (usize, [*const u8; P]) = match w.kind {
            Kind::I8 => (
                2 * NR,
                std::array::from_fn(|q| w.q.as_ptr().add((pi + q) * w.kp * 2 * NR).cast()),
            ),
            _ => (
                4 * NR,
                std::array::from_fn(|q| w.words.as_ptr().add((pi + q) * w.kp * NR).cast()),
            ),
        };
        for p in 0..full {
            let xl = _mm512_set1_ps(*x.add(2 * p));
            let xh = _mm512_set1_ps(*x.add(2 * p + 1));
            for base in bases {
                _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(p * step + PREFETCH_AHEAD).cast());
            }
            for q in 0..P {
                let [l0, l1, h0, h1] = load(w, pi + q, p);
                acc0[q] = _mm512_fmadd_ps(xl, l0, acc0[q]);
                acc1[q] = _mm512_fmadd_ps(xl, l1, acc1[q]);
                acc0[q] = _mm512_fmadd_ps(xh, h0, acc0[q]);
                acc1[q] = _mm512_fmadd_ps(xh, h1, acc1[q]);
            }
        }
        if k % 2 == 1 {
            let xl = _mm512_set1_ps(*x.add(2 * full));
            let zero = _mm512_setzero_ps();
            for q in 0..P {
                let [l0, l1, h0, h1] = load(w, pi + q, full);
                acc0[q] = _mm512_fmadd_ps(xl, l0, acc0[q]);
                acc1[q] = _mm512_fmadd_ps(xl, l1, acc1[q]);
                acc0[q] = _mm512_fmadd_ps(zero, h0, acc0[q]);
                acc1[q] = _mm512_fmadd_ps(zero, h1, acc1[q]);
            }
        }
        for q in 0..P {
            let col0 = (pi + q) * NR;
            if w.kind == Kind::I8 {
                let s = w.scales.as_ptr().add(col0);
                acc0[q] = _mm512_mul_ps(acc0[q], _mm512_loadu_ps(s));
                acc1[q] = _mm512_mul_ps(acc1[q], _mm512_loadu_ps(s.add(16)));
            }
            let width = NR.min(w.n - col0);
            let mask = if width >= 32 { u32::MAX } else { (1u32 << width) - 1 };
            _mm512_mask_storeu_ps(y.add(col0), mask as u16, acc0[q]);
            _mm512_mask_storeu_ps(y.add(col0 + 16), (mask >> 16) as u16, acc1[q]);
        }
    }
}

#[inline(always)]
unsafe fn kernel<const M: usize>(x: *const f32, w: &Panels, pi: usize, y: *mut f32, ldy: usize, width: usize) {
    // SAFETY (whole body): bounds as documented on `micro`.
    unsafe {
        let k = w.k;
        let full = k / 2;
        let mut acc0 = [_mm512_setzero_ps(); M];
        let mut acc1 = [_mm512_setzero_ps(); M];
        for p in 0..full {
            let [l0, l1, h0, h1] = load(w, pi, p);
            for r in 0..M {
                let xl = _mm512_set1_ps(*x.add(r * k + 2 * p));
                let xh = _mm512_set1_ps(*x.add(r * k + 2 * p + 1));
                acc0[r] = _mm512_fmadd_ps(xl, l0, acc0[r]);
                acc1[r] = _mm512_fmadd_ps(xl, l1, acc1[r]);
                acc0[r] = _mm512_fmadd_ps(xh, h0, acc0[r]);
                acc1[r] = _mm512_fmadd_ps(xh, h1, acc1[r]);
            }
        }
        if k % 2 == 1 {
            // The odd last input: its pair's high half is zero padding, and so is its
            // product (the portable loop adds the same zero).
            let [l0, l1, h0, h1] = load(w, pi, full);
            let zero = _mm512_setzero_ps();
            for r in 0..M {
                let xl = _mm512_set1_ps(*x.add(r * k + 2 * full));
                acc0[r] = _mm512_fmadd_ps(xl, l0, acc0[r]);
                acc1[r] = _mm512_fmadd_ps(xl, l1, acc1[r]);
                acc0[r] = _mm512_fmadd_ps(zero, h0, acc0[r]);
                acc1[r] = _mm512_fmadd_ps(zero, h1, acc1[r]);
            }
        }
        if w.kind == Kind::I8 {
            let s = w.scales.as_ptr().add(pi * NR);
            let (s0, s1) = (_mm512_loadu_ps(s), _mm512_loadu_ps(s.add(16)));
            for r in 0..M {
                acc0[r] = _mm512_mul_ps(acc0[r], s0);
                acc1[r] = _mm512_mul_ps(acc1[r], s1);
            }
        }
        let mask = if width >= 32 { u32::MAX } else { (1u32 << width) - 1 };
        let (m0, m1) = (mask as u16, (mask >> 16) as u16);
        for r in 0..M {
            _mm512_mask_storeu_ps(y.add(r * ldy), m0, acc0[r]);
            _mm512_mask_storeu_ps(y.add(r * ldy + 16), m1, acc1[r]);
        }
    }
}
