//! Runtime CPU dispatch for the element-wise and recurrence kernels.
//!
//! The crate is built for the baseline x86-64 target (so the binary runs anywhere), but the
//! hot loops are plain Rust written to vectorize: [`multiversion!`] compiles each kernel three
//! times — AVX-512, AVX2+FMA, portable — and picks one at run time. Kernels are generic over
//! [`Arch`], which decides whether `a·b + c` is a fused multiply-add, and are
//! `#[inline(always)]` so their whole body is compiled with the caller's target features.
//! Reductions keep 16 independent lanes, since the compiler may not reorder float sums.

/// Multiply-add flavour of an instruction set.
pub trait Arch: Copy {
    /// `a * b + c`.
    fn fma(a: f32, b: f32, c: f32) -> f32;
}

/// CPUs with FMA: one rounding.
#[derive(Clone, Copy)]
pub struct Fused;
impl Arch for Fused {
    #[inline(always)]
    fn fma(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

/// CPUs without FMA (`mul_add` would be a slow library call there).
#[derive(Clone, Copy)]
pub struct Plain;
impl Arch for Plain {
    #[inline(always)]
    fn fma(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// The instruction set kernels run with on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// AVX-512 F/BW/VL with AVX2 and FMA.
    Avx512,
    /// AVX2 with FMA.
    Avx2,
    /// Baseline (SSE2 on x86-64, or another architecture).
    Portable,
}

/// Detected once per process; `RWKV_SIMD=portable|avx2` lowers it (for testing the fallbacks).
pub fn level() -> Level {
    use std::sync::OnceLock;
    static L: OnceLock<Level> = OnceLock::new();
    *L.get_or_init(|| {
        let cap = std::env::var("RWKV_SIMD").unwrap_or_default();
        #[cfg(target_arch = "x86_64")]
        {
            if cap != "portable"
                && cap != "avx2"
                && std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vl")
                && std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma")
            {
                return Level::Avx512;
            }
            if cap != "portable" && std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Level::Avx2;
            }
        }
        let _ = cap;
        Level::Portable
    })
}

#[macro_export]
/// Define `pub fn NAME(args) -> R` that runs `GENERIC::<A>(args)` compiled for the best
/// instruction set available at run time. `unsafe fn NAME` defines an unsafe function over an
/// unsafe `GENERIC`, whose contract (the `# Safety` section given with it) each build inherits.
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis unsafe fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? => $generic:ident) => {
        $(#[$m])*
        $vis unsafe fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
                unsafe fn v4($($arg: $ty),*) $(-> $ret)? {
                    // SAFETY: the caller of the outer function upholds the generic's contract.
                    unsafe { $generic::<$crate::simd::Fused>($($arg),*) }
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3($($arg: $ty),*) $(-> $ret)? {
                    // SAFETY: as above.
                    unsafe { $generic::<$crate::simd::Fused>($($arg),*) }
                }
                match $crate::simd::level() {
                    // SAFETY: level() verified at run time that the CPU has these features; the
                    // caller upholds the function's contract.
                    $crate::simd::Level::Avx512 => return unsafe { v4($($arg),*) },
                    // SAFETY: as above.
                    $crate::simd::Level::Avx2 => return unsafe { v3($($arg),*) },
                    $crate::simd::Level::Portable => {}
                }
            }
            // SAFETY: the caller upholds the function's contract.
            unsafe { $generic::<$crate::simd::Plain>($($arg),*) }
        }
    };
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? => $generic:ident) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
                unsafe fn v4($($arg: $ty),*) $(-> $ret)? {
                    $generic::<$crate::simd::Fused>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3($($arg: $ty),*) $(-> $ret)? {
                    $generic::<$crate::simd::Fused>($($arg),*)
                }
                match $crate::simd::level() {
                    // SAFETY: level() verified at run time that the CPU has these features.
                    $crate::simd::Level::Avx512 => return unsafe { v4($($arg),*) },
                    // SAFETY: as above.
                    $crate::simd::Level::Avx2 => return unsafe { v3($($arg),*) },
                    $crate::simd::Level::Portable => {}
                }
            }
            $generic::<$crate::simd::Plain>($($arg),*)
        }
    };
}
pub use crate::multiversion;

/// Lanes of the independent accumulators in reductions.
pub const LANES: usize = 16;

/// Dot product with [`LANES`] independent accumulators (two banks, to hide FMA latency),
/// widening `a`'s elements to f32 with `widen`.
#[inline(always)]
pub fn dot_widen<A: Arch, W: Copy>(a: &[W], b: &[f32], widen: impl Fn(W) -> f32) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let mut acc2 = [0f32; LANES];
    let mut ca = a.chunks_exact(2 * LANES);
    let mut cb = b.chunks_exact(2 * LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..LANES {
            acc[l] = A::fma(widen(x[l]), y[l], acc[l]);
            acc2[l] = A::fma(widen(x[LANES + l]), y[LANES + l], acc2[l]);
        }
    }
    let mut s = 0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        s = A::fma(widen(*x), *y, s);
    }
    for l in 0..LANES {
        acc[l] += acc2[l];
    }
    acc.iter().sum::<f32>() + s
}

/// f32 dot product with [`LANES`] independent accumulators.
#[inline(always)]
pub fn dot_lanes<A: Arch>(a: &[f32], b: &[f32]) -> f32 {
    dot_widen::<A, f32>(a, b, |x| x)
}

/// Sum with [`LANES`] independent accumulators.
#[inline(always)]
pub fn sum_lanes(a: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let mut c = a.chunks_exact(LANES);
    for x in &mut c {
        for l in 0..LANES {
            acc[l] += x[l];
        }
    }
    acc.iter().sum::<f32>() + c.remainder().iter().sum::<f32>()
}

/// bf16 × f32 dot product.
#[inline(always)]
pub fn dot_bf16_lanes<A: Arch>(a: &[u16], b: &[f32]) -> f32 {
    dot_widen::<A, u16>(a, b, |x| f32::from_bits((x as u32) << 16))
}

/// `eˣ` in a form that vectorizes (no library call): Cody–Waite range reduction to
/// `r ∈ [-ln2/2, ln2/2]`, a degree-7 Taylor polynomial (relative error < 1e-8 before
/// rounding), and the exponent built from bits. Inputs are clamped to the finite range.
#[inline(always)]
pub fn exp<A: Arch>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2²³: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = A::fma(-n, LN2_LO, A::fma(-n, LN2_HI, x));
    let mut p = 1.0 / 5040.0;
    p = A::fma(p, r, 1.0 / 720.0);
    p = A::fma(p, r, 1.0 / 120.0);
    p = A::fma(p, r, 1.0 / 24.0);
    p = A::fma(p, r, 1.0 / 6.0);
    p = A::fma(p, r, 0.5);
    p = A::fma(p, r, 1.0);
    p = A::fma(p, r, 1.0);
    // `shifted` holds n in its low mantissa bits (|n| < 2²²): take it from there, since a
    // float-to-int cast (saturating in Rust) does not vectorize.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    p * scale
}

/// Logistic sigmoid through [`exp`].
#[inline(always)]
pub fn sigmoid<A: Arch>(x: f32) -> f32 {
    1.0 / (1.0 + exp::<A>(-x))
}

/// tanh through [`exp`] (absolute error ~1e-7).
#[inline(always)]
pub fn tanh<A: Arch>(x: f32) -> f32 {
    1.0 - 2.0 / (exp::<A>(2.0 * x) + 1.0)
}

/// Round an f32 to bf16 bits (nearest, ties to even; NaN stays NaN).
pub fn f32_to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    let round = 0x7FFF + ((b >> 16) & 1);
    ((b.wrapping_add(round)) >> 16) as u16
}

/// Widen bf16 bits to f32 (exact).
#[inline(always)]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_sigmoid_tanh_are_accurate() {
        let mut x = -80.0f32;
        while x < 80.0 {
            let (e, want) = (exp::<Plain>(x), x.exp());
            assert!(((e - want) / want).abs() < 3e-7, "exp({x}) = {e}, want {want}");
            assert!((sigmoid::<Fused>(x) - 1.0 / (1.0 + (-x).exp())).abs() < 1e-7);
            assert!((tanh::<Fused>(x) - x.tanh()).abs() < 2e-7, "tanh({x})");
            x += 0.0137;
        }
        assert_eq!(exp::<Plain>(-1000.0), exp::<Plain>(-87.0));
        assert!(exp::<Plain>(-87.0) > 0.0 && exp::<Plain>(-87.0) < 1e-37);
        assert!(exp::<Plain>(1000.0).is_finite());
        assert!(sigmoid::<Plain>(-1000.0) >= 0.0 && sigmoid::<Plain>(-1000.0) < 1e-37);
    }

    #[test]
    fn lane_reductions_match_sequential_sums() {
        let a: Vec<f32> = (0..77).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..77).map(|i| (i as f32 * 0.11).cos()).collect();
        let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot_lanes::<Plain>(&a, &b) - want).abs() < 1e-5);
        assert!((sum_lanes(&a) - a.iter().sum::<f32>()).abs() < 1e-5);
        let ab: Vec<u16> = a.iter().map(|&x| f32_to_bf16(x)).collect();
        let want: f32 = ab.iter().zip(&b).map(|(x, y)| bf16_to_f32(*x) * y).sum();
        assert!((dot_bf16_lanes::<Fused>(&ab, &b) - want).abs() < 1e-5);
    }
}
