//! The few numeric kernels the forward pass needs, on contiguous row-major f32 buffers.
//!
//! Projections go through [`linear`]: many rows (a fold chunk) use the `gemm` crate's blocked
//! kernels; one row (generation) uses a mat-vec that reads bf16 weights when the matrix has
//! them, halving the memory read per token. Everything accumulates in f32.

use rayon::prelude::*;

use crate::simd::{Arch, LANES, dot_bf16_lanes, dot_lanes, multiversion, sum_lanes};

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

/// One row: `y[o] = Σ_i m[o, i] · x[i]`, from bf16 weights when present; rows are split
/// across threads when the matrix is large.
fn matvec(x: &[f32], m: &Mat, y: &mut [f32]) {
    let cols = m.cols;
    let threads = if m.rows * cols >= PAR_MIN_WORK { rayon::current_num_threads() } else { 1 };
    if threads <= 1 {
        return match &m.bf16 {
            Some(wb) => rows_bf16(wb, cols, x, y),
            None => rows_f32(&m.w, cols, x, y),
        };
    }
    let rows_per = m.rows.div_ceil(threads * 4).max(16);
    y.par_chunks_mut(rows_per).enumerate().for_each(|(c, ys)| {
        let o0 = c * rows_per * cols;
        let o1 = o0 + ys.len() * cols;
        match &m.bf16 {
            Some(wb) => rows_bf16(&wb[o0..o1], cols, x, ys),
            None => rows_f32(&m.w[o0..o1], cols, x, ys),
        }
    });
}

#[inline(always)]
fn rows_f32_g<A: Arch>(w: &[f32], cols: usize, x: &[f32], y: &mut [f32]) {
    for (row, yo) in w.chunks_exact(cols).zip(y.iter_mut()) {
        *yo = dot_lanes::<A>(row, x);
    }
}
multiversion!(fn rows_f32(w: &[f32], cols: usize, x: &[f32], y: &mut [f32]) => rows_f32_g);

#[inline(always)]
fn rows_bf16_g<A: Arch>(w: &[u16], cols: usize, x: &[f32], y: &mut [f32]) {
    for (row, yo) in w.chunks_exact(cols).zip(y.iter_mut()) {
        *yo = dot_bf16_lanes::<A>(row, x);
    }
}
multiversion!(fn rows_bf16(w: &[u16], cols: usize, x: &[f32], y: &mut [f32]) => rows_bf16_g);

#[inline(always)]
fn dot_g<A: Arch>(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes::<A>(a, b)
}
multiversion!(
    /// f32 dot product.
    pub fn dot(a: &[f32], b: &[f32]) -> f32 => dot_g
);

#[inline(always)]
fn layer_norm_rows_g<A: Arch>(x: &[f32], n: usize, w: &[f32], b: &[f32], y: &mut [f32]) {
    for (xr, yr) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)) {
        norm_into::<A>(xr, 1e-5, w, b, yr);
    }
}
multiversion!(
    /// Layer norm of each `n`-wide row of `x` into `y` (eps 1e-5, as torch's default).
    pub fn layer_norm_rows(x: &[f32], n: usize, w: &[f32], b: &[f32], y: &mut [f32]) => layer_norm_rows_g
);

/// `(x - mean) / sqrt(var + eps) * w + b` over one group.
#[inline(always)]
pub fn norm_into<A: Arch>(x: &[f32], eps: f32, w: &[f32], b: &[f32], y: &mut [f32]) {
    let n = x.len() as f32;
    let mean = sum_lanes(x) / n;
    let mut acc = [0f32; LANES];
    let mut c = x.chunks_exact(LANES);
    for xs in &mut c {
        for l in 0..LANES {
            let d = xs[l] - mean;
            acc[l] = A::fma(d, d, acc[l]);
        }
    }
    let tail: f32 = c.remainder().iter().map(|&v| (v - mean) * (v - mean)).sum();
    let var = (acc.iter().sum::<f32>() + tail) / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((yo, &xi), (&wi, &bi)) in y.iter_mut().zip(x).zip(w.iter().zip(b)) {
        *yo = A::fma((xi - mean) * inv, wi, bi);
    }
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
        for x in [0.0f32, 1.0, -2.5, 3.140625, 2f32.powi(-100), 65536.0] {
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
