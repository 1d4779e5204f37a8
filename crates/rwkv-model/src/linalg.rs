//! The few numeric kernels the forward pass needs, on contiguous row-major f32 buffers.
//!
//! Projections go through [`linear`]: many rows (a fold chunk) use the `gemm` crate's blocked
//! kernels; one row (generation) uses a mat-vec that reads bf16 weights when the matrix has
//! them, halving the memory read per token. Everything accumulates in f32.

use rayon::prelude::*;

/// A weight matrix `[out, in]`, row-major, as the official checkpoints store projections.
#[derive(Debug, Clone)]
pub struct Mat {
    /// Output features (rows).
    pub rows: usize,
    /// Input features (columns).
    pub cols: usize,
    /// f32 weights, `rows * cols`.
    pub w: Vec<f32>,
    /// bf16 copy (raw bits), used by the one-row path when present.
    pub bf16: Option<Vec<u16>>,
}

impl Mat {
    /// A matrix from row-major `[rows, cols]` f32 data.
    pub fn new(rows: usize, cols: usize, w: Vec<f32>) -> Self {
        debug_assert_eq!(w.len(), rows * cols);
        Mat {
            rows,
            cols,
            w,
            bf16: None,
        }
    }

    /// A matrix from row-major `[cols, rows]` data (stored input-major), transposed.
    pub fn from_transposed(rows: usize, cols: usize, w_t: &[f32]) -> Self {
        let mut w = vec![0f32; rows * cols];
        for i in 0..cols {
            for o in 0..rows {
                w[o * cols + i] = w_t[i * rows + o];
            }
        }
        Mat::new(rows, cols, w)
    }

    /// Keep a bf16 copy for the one-row path (round to nearest even).
    pub fn enable_bf16(&mut self) {
        self.bf16 = Some(self.w.iter().map(|&x| f32_to_bf16(x)).collect());
    }

    /// Whether every weight is exactly representable in bf16 (then the bf16 path is exact).
    pub fn is_bf16_exact(&self) -> bool {
        self.w
            .iter()
            .all(|&x| bf16_to_f32(f32_to_bf16(x)).to_bits() == x.to_bits())
    }
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

/// Minimum multiply-adds before a kernel is worth splitting across threads.
const PAR_MIN_WORK: usize = 1 << 18;

/// `y[rows, m.rows] = x[rows, m.cols] · mᵀ`.
pub fn linear(x: &[f32], rows: usize, m: &Mat, y: &mut [f32]) {
    debug_assert_eq!(x.len(), rows * m.cols);
    debug_assert_eq!(y.len(), rows * m.rows);
    if rows == 0 {
        return;
    }
    if rows == 1 {
        return matvec(x, m, y);
    }
    let work = rows * m.rows * m.cols;
    let par = if work >= PAR_MIN_WORK && rayon::current_num_threads() > 1 {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: all three buffers are valid for the extents described by the strides:
    // x is rows×cols (row stride cols), mᵀ is cols×out read from m.w (out×cols, row stride
    // cols: element (k, n) at n*cols + k), y is rows×out (row stride out). The debug asserts
    // above state the lengths; callers size the buffers from the same dimensions.
    unsafe {
        gemm::gemm(
            rows,
            m.rows,
            m.cols,
            y.as_mut_ptr(),
            1,
            m.rows as isize,
            false,
            x.as_ptr(),
            1,
            m.cols as isize,
            m.w.as_ptr(),
            m.cols as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// One row: `y[o] = Σ_i m[o, i] · x[i]`, from bf16 weights when present.
fn matvec(x: &[f32], m: &Mat, y: &mut [f32]) {
    let cols = m.cols;
    let threads = if m.rows * cols >= PAR_MIN_WORK {
        rayon::current_num_threads()
    } else {
        1
    };
    let rows_per = m.rows.div_ceil(threads.max(1) * 4).max(16);
    match &m.bf16 {
        Some(wb) => {
            if threads > 1 {
                y.par_chunks_mut(rows_per).enumerate().for_each(|(c, ys)| {
                    let o0 = c * rows_per;
                    for (j, yo) in ys.iter_mut().enumerate() {
                        let o = o0 + j;
                        *yo = dot_bf16(&wb[o * cols..(o + 1) * cols], x);
                    }
                });
            } else {
                for (o, yo) in y.iter_mut().enumerate() {
                    *yo = dot_bf16(&wb[o * cols..(o + 1) * cols], x);
                }
            }
        }
        None => {
            if threads > 1 {
                y.par_chunks_mut(rows_per).enumerate().for_each(|(c, ys)| {
                    let o0 = c * rows_per;
                    for (j, yo) in ys.iter_mut().enumerate() {
                        let o = o0 + j;
                        *yo = dot(&m.w[o * cols..(o + 1) * cols], x);
                    }
                });
            } else {
                for (o, yo) in y.iter_mut().enumerate() {
                    *yo = dot(&m.w[o * cols..(o + 1) * cols], x);
                }
            }
        }
    }
}

/// f32 dot product with independent accumulators (vectorizes).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    simd::dot(a, b)
}

/// bf16 × f32 dot product.
#[inline]
pub fn dot_bf16(a: &[u16], b: &[f32]) -> f32 {
    simd::dot_bf16(a, b)
}

mod simd {
    //! Dot products compiled for AVX-512 / AVX2+FMA when the CPU has them (runtime dispatch),
    //! with a portable fallback. The bodies are plain Rust the compiler vectorizes.

    #[inline(always)]
    fn dot_generic(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [0f32; 16];
        let chunks = n / 16;
        for c in 0..chunks {
            let (aa, bb) = (&a[c * 16..c * 16 + 16], &b[c * 16..c * 16 + 16]);
            for l in 0..16 {
                acc[l] = aa[l].mul_add(bb[l], acc[l]);
            }
        }
        let mut s = 0f32;
        for i in chunks * 16..n {
            s = a[i].mul_add(b[i], s);
        }
        acc.iter().sum::<f32>() + s
    }

    #[inline(always)]
    fn dot_bf16_generic(a: &[u16], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [0f32; 16];
        let chunks = n / 16;
        for c in 0..chunks {
            let (aa, bb) = (&a[c * 16..c * 16 + 16], &b[c * 16..c * 16 + 16]);
            for l in 0..16 {
                acc[l] = super::bf16_to_f32(aa[l]).mul_add(bb[l], acc[l]);
            }
        }
        let mut s = 0f32;
        for i in chunks * 16..n {
            s = super::bf16_to_f32(a[i]).mul_add(b[i], s);
        }
        acc.iter().sum::<f32>() + s
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        dot_generic(a, b)
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        dot_generic(a, b)
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn dot_bf16_avx512(a: &[u16], b: &[f32]) -> f32 {
        dot_bf16_generic(a, b)
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn dot_bf16_avx2(a: &[u16], b: &[f32]) -> f32 {
        dot_bf16_generic(a, b)
    }

    /// Which instruction set the kernels use on this CPU.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Level {
        Avx512,
        Avx2,
        Portable,
    }

    fn level() -> Level {
        use std::sync::OnceLock;
        static L: OnceLock<Level> = OnceLock::new();
        *L.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") {
                    return Level::Avx512;
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    return Level::Avx2;
                }
            }
            Level::Portable
        })
    }

    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        match level() {
            // SAFETY: level() checked the CPU supports the enabled features.
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => unsafe { dot_avx512(a, b) },
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => unsafe { dot_avx2(a, b) },
            _ => dot_generic(a, b),
        }
    }

    pub fn dot_bf16(a: &[u16], b: &[f32]) -> f32 {
        match level() {
            // SAFETY: level() checked the CPU supports the enabled features.
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => unsafe { dot_bf16_avx512(a, b) },
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => unsafe { dot_bf16_avx2(a, b) },
            _ => dot_bf16_generic(a, b),
        }
    }
}

/// Layer norm of each `n`-wide row of `x` into `y` (eps 1e-5, as torch's default).
pub fn layer_norm_rows(x: &[f32], n: usize, w: &[f32], b: &[f32], y: &mut [f32]) {
    for (xr, yr) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)) {
        norm_into(xr, 1e-5, w, b, yr);
    }
}

/// `(x - mean) / sqrt(var + eps) * w + b` over one group.
#[inline]
pub fn norm_into(x: &[f32], eps: f32, w: &[f32], b: &[f32], y: &mut [f32]) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    for i in 0..x.len() {
        y[i] = (x[i] - mean) * inv * w[i] + b[i];
    }
}

/// Logistic sigmoid.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], rows: usize, m: &Mat) -> Vec<f32> {
        let mut y = vec![0f32; rows * m.rows];
        for r in 0..rows {
            for o in 0..m.rows {
                y[r * m.rows + o] = (0..m.cols).map(|i| x[r * m.cols + i] * m.w[o * m.cols + i]).sum();
            }
        }
        y
    }

    #[test]
    fn linear_matches_naive_for_one_and_many_rows() {
        let (out, inp) = (37, 53);
        let w: Vec<f32> = (0..out * inp)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let m = Mat::new(out, inp, w);
        for rows in [1usize, 2, 5, 64] {
            let x: Vec<f32> = (0..rows * inp)
                .map(|i| ((i * 104729 % 997) as f32 / 498.0) - 1.0)
                .collect();
            let mut y = vec![0f32; rows * out];
            linear(&x, rows, &m, &mut y);
            let r = naive(&x, rows, &m);
            for (a, b) in y.iter().zip(&r) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn bf16_round_trip_and_rounding() {
        for x in [0.0f32, 1.0, -2.5, 3.140625, 1e-30, 65504.0] {
            assert_eq!(bf16_to_f32(f32_to_bf16(x)), x);
        }
        // 1 + 2^-8 is halfway between two bf16 values: ties to even gives 1.0.
        assert_eq!(bf16_to_f32(f32_to_bf16(1.0 + 1.0 / 256.0)), 1.0);
        let mut m = Mat::new(2, 3, vec![1.0, 2.0, 3.0, -1.0, 0.5, 0.25]);
        assert!(m.is_bf16_exact());
        m.enable_bf16();
        let mut y = [0f32; 2];
        linear(&[1.0, 1.0, 1.0], 1, &m, &mut y);
        assert_eq!(y, [6.0, -0.25]);
    }
}
