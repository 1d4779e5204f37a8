//! Element-wise steps and recurrences shared by the generations, as [`multiversion!`] kernels.
//!
//! Each `*_g` function is the generic body; the public name dispatches to the AVX-512, AVX2 or
//! portable build of it. Rows are `[T, C]` row-major unless said otherwise. RWKV-7's own steps
//! live in `v7/kernels.rs`; the WKV recurrences of RWKV-4 and RWKV-5/6 are here.
// Kernels without multiply-adds still take the `Arch` parameter `multiversion!` passes.
#![allow(clippy::extra_unused_type_parameters)]

use crate::simd::{Arch, LANES, exp, multiversion, sigmoid, sum_lanes, tanh};

#[inline(always)]
fn tanh_inplace_g<A: Arch>(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = tanh::<A>(*x));
}
multiversion!(
    /// `v = tanh(v)`, element-wise.
    pub fn tanh_inplace(v: &mut [f32]) => tanh_inplace_g
);

#[inline(always)]
fn sigmoid_inplace_g<A: Arch>(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = sigmoid::<A>(*x));
}
multiversion!(
    /// `v = σ(v)`, element-wise.
    pub fn sigmoid_inplace(v: &mut [f32]) => sigmoid_inplace_g
);

/// `v = max(v, 0)²`.
#[inline(always)]
fn relu_sq_g<A: Arch>(v: &mut [f32]) {
    v.iter_mut().for_each(|x| {
        let r = x.max(0.0);
        *x = r * r;
    });
}
multiversion!(
    /// `v = max(v, 0)²`.
    pub fn relu_sq(v: &mut [f32]) => relu_sq_g
);

/// `x += y`.
#[inline(always)]
fn add_into_g<A: Arch>(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}
multiversion!(
    /// `x += y`.
    pub fn add_into(x: &mut [f32], y: &[f32]) => add_into_g
);

/// Token shift for up to six mixes: for row `t`, `out[t] = x[t] + (prev − x[t]) · mix` where
/// prev is the state's row for `t = 0`; the state then keeps the last row.
#[inline(always)]
fn shift_mix_g<A: Arch>(x: &[f32], prev: &mut [f32], mixes: &[&[f32]], outs: &mut [&mut [f32]]) {
    let c = prev.len();
    let t = x.len() / c;
    for ti in 0..t {
        let cur = &x[ti * c..(ti + 1) * c];
        let p: &[f32] = if ti == 0 { prev } else { &x[(ti - 1) * c..ti * c] };
        for (mix, out) in mixes.iter().zip(outs.iter_mut()) {
            let out = &mut out[ti * c..(ti + 1) * c];
            for j in 0..c {
                out[j] = A::fma(p[j] - cur[j], mix[j], cur[j]);
            }
        }
    }
    if t > 0 {
        prev.copy_from_slice(&x[(t - 1) * c..t * c]);
    }
}
multiversion!(
    /// Token shift for up to six mixes: for row `t`, `out[t] = x[t] + (prev − x[t]) · mix` where
    /// prev is the state's row for `t = 0`; the state then keeps the last row.
    pub fn shift_mix(x: &[f32], prev: &mut [f32], mixes: &[&[f32]], outs: &mut [&mut [f32]]) => shift_mix_g
);

/// `v = v · σ(v)` (SiLU).
#[inline(always)]
fn silu_inplace_g<A: Arch>(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x *= sigmoid::<A>(*x));
}
multiversion!(
    /// `v = v · σ(v)` (SiLU).
    pub fn silu_inplace(v: &mut [f32]) => silu_inplace_g
);

/// `x *= y`.
#[inline(always)]
fn mul_into_g<A: Arch>(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a *= b);
}
multiversion!(
    /// `x *= y`.
    pub fn mul_into(x: &mut [f32], y: &[f32]) => mul_into_g
);

/// Token shift as a difference: `delta[t] = prev_row(t) − x[t]`, where the previous row of
/// `t = 0` is the state's; the state then keeps the last row.
#[inline(always)]
fn shift_delta_g<A: Arch>(x: &[f32], prev: &mut [f32], delta: &mut [f32]) {
    let c = prev.len();
    let t = x.len() / c;
    for ti in 0..t {
        let cur = &x[ti * c..(ti + 1) * c];
        let p: &[f32] = if ti == 0 { prev } else { &x[(ti - 1) * c..ti * c] };
        for ((d, &a), &b) in delta[ti * c..(ti + 1) * c].iter_mut().zip(p).zip(cur) {
            *d = a - b;
        }
    }
    if t > 0 {
        prev.copy_from_slice(&x[(t - 1) * c..t * c]);
    }
}
multiversion!(
    /// Token shift as a difference: `delta[t] = prev_row(t) − x[t]`, where the previous row of
    /// `t = 0` is the state's; the state then keeps the last row.
    pub fn shift_delta(x: &[f32], prev: &mut [f32], delta: &mut [f32]) => shift_delta_g
);

/// RWKV-6's data-dependent mix: `out = xx + delta · (maa + m)`, with `m` per row (`[T, C]`) or
/// absent.
#[inline(always)]
fn mix_delta_g<A: Arch>(xx: &[f32], delta: &[f32], maa: &[f32], m: Option<&[f32]>, out: &mut [f32]) {
    let c = maa.len();
    for (ti, o) in out.chunks_exact_mut(c).enumerate() {
        let r = ti * c..(ti + 1) * c;
        let (x, d) = (&xx[r.clone()], &delta[r.clone()]);
        match m {
            Some(m) => {
                let m = &m[r];
                for j in 0..c {
                    o[j] = A::fma(d[j], maa[j] + m[j], x[j]);
                }
            }
            None => {
                for j in 0..c {
                    o[j] = A::fma(d[j], maa[j], x[j]);
                }
            }
        }
    }
}
multiversion!(
    /// RWKV-6's data-dependent mix: `out = xx + delta · (maa + m)`, with `m` per row (`[T, C]`) or
    /// absent.
    pub fn mix_delta(xx: &[f32], delta: &[f32], maa: &[f32], m: Option<&[f32]>, out: &mut [f32]) => mix_delta_g
);

/// RWKV-6's decay: `w = exp(−exp(w0 + w))`, per row.
#[inline(always)]
fn decay_v6_g<A: Arch>(w: &mut [f32], w0: &[f32]) {
    for row in w.chunks_exact_mut(w0.len()) {
        for (v, &b) in row.iter_mut().zip(w0) {
            *v = exp::<A>(-exp::<A>(b + *v));
        }
    }
}
multiversion!(
    /// RWKV-6's decay: `w = exp(−exp(w0 + w))`, per row.
    pub fn decay_v6(w: &mut [f32], w0: &[f32]) => decay_v6_g
);

/// Group norm of each head's outputs: `o_heads` is `[H, T, N]`, `out` is `[T, H·N]`.
#[inline(always)]
fn group_norm_heads_g<A: Arch>(o_heads: &[f32], n: usize, eps: f32, w: &[f32], b: &[f32], out: &mut [f32]) {
    let c = w.len();
    let h = c / n;
    let t = out.len() / c;
    for ti in 0..t {
        for hi in 0..h {
            let src = &o_heads[(hi * t + ti) * n..(hi * t + ti + 1) * n];
            let hc = hi * n..(hi + 1) * n;
            norm_into::<A>(
                src,
                eps,
                &w[hc.clone()],
                &b[hc.clone()],
                &mut out[ti * c + hi * n..ti * c + (hi + 1) * n],
            );
        }
    }
}
multiversion!(
    /// Group norm of each head's outputs: `o_heads` is `[H, T, N]`, `out` is `[T, H·N]`.
    pub fn group_norm_heads(o_heads: &[f32], n: usize, eps: f32, w: &[f32], b: &[f32], out: &mut [f32]) => group_norm_heads_g
);

/// RWKV-4's state for one layer: numerator `aa`, denominator `bb` and their common exponent
/// `pp`, each `[C]`.
pub struct Wkv4State<'a> {
    /// Σ e^(k+decay) · v, scaled by e^-pp.
    pub aa: &'a mut [f32],
    /// Σ e^(k+decay), scaled by e^-pp.
    pub bb: &'a mut [f32],
    /// The exponent both are scaled by.
    pub pp: &'a mut [f32],
}

/// RWKV-4's WKV over a chunk, per channel, in the official numerically safe form:
/// `out = (e^(pp−p)·aa + e^(u+k−p)·v) / (e^(pp−p)·bb + e^(u+k−p))` with `p = max(pp, u+k)`,
/// then the state decays by `w` (already `−exp(time_decay)`) and takes in `k, v`.
#[inline(always)]
fn wkv4_g<A: Arch>(k: &[f32], v: &[f32], u: &[f32], w: &[f32], s: Wkv4State<'_>, out: &mut [f32]) {
    let c = u.len();
    let (aa, bb, pp) = (s.aa, s.bb, s.pp);
    for ((kr, vr), o) in k.chunks_exact(c).zip(v.chunks_exact(c)).zip(out.chunks_exact_mut(c)) {
        for j in 0..c {
            let (kk, vv) = (kr[j], vr[j]);
            let ww = u[j] + kk;
            let p = pp[j].max(ww);
            let e1 = exp::<A>(pp[j] - p);
            let e2 = exp::<A>(ww - p);
            o[j] = A::fma(e1, aa[j], e2 * vv) / A::fma(e1, bb[j], e2);
            let ww = w[j] + pp[j];
            let p = ww.max(kk);
            let e1 = exp::<A>(ww - p);
            let e2 = exp::<A>(kk - p);
            aa[j] = A::fma(e1, aa[j], e2 * vv);
            bb[j] = A::fma(e1, bb[j], e2);
            pp[j] = p;
        }
    }
}
multiversion!(
    /// RWKV-4's WKV over a chunk, per channel, in the official numerically safe form:
    /// `out = (e^(pp−p)·aa + e^(u+k−p)·v) / (e^(pp−p)·bb + e^(u+k−p))` with `p = max(pp, u+k)`,
    /// then the state decays by `w` (already `−exp(time_decay)`) and takes in `k, v`.
    pub fn wkv4(k: &[f32], v: &[f32], u: &[f32], w: &[f32], s: Wkv4State<'_>, out: &mut [f32]) => wkv4_g
);

/// Per-chunk inputs of the RWKV-5/6 recurrence, `[T, C]` each.
pub struct Wkv5Inputs<'a> {
    /// Receptance.
    pub r: &'a [f32],
    /// Key.
    pub k: &'a [f32],
    /// Value.
    pub v: &'a [f32],
    /// Decay factors in (0, 1): `[T, C]` when `w_per_token`, else `[C]` for every token.
    pub w: &'a [f32],
    /// Whether `w` has a row per token (RWKV-6) or one row for all (RWKV-5).
    pub w_per_token: bool,
    /// Bonus of the current token, `[C]`.
    pub u: &'a [f32],
    /// Width.
    pub c: usize,
    /// Head size.
    pub n: usize,
    /// Tokens.
    pub t: usize,
}

/// Advance head `hi`'s state `s` (`[N, N]`, row = key index, column = value index, the
/// official layout) over the chunk, writing its outputs to `o` (`[T, N]`):
/// `o_j = Σ_i r_i (u_i k_i v_j + s_ij)`, then `s_ij ← w_i s_ij + k_i v_j`.
#[inline(always)]
fn wkv5_head_g<A: Arch>(inp: &Wkv5Inputs<'_>, hi: usize, s: &mut [f32], o: &mut [f32]) {
    let (c, n) = (inp.c, inp.n);
    let hc = hi * n..(hi + 1) * n;
    let u = &inp.u[hc.clone()];
    for ti in 0..inp.t {
        let base = ti * c + hi * n;
        let r = &inp.r[base..base + n];
        let k = &inp.k[base..base + n];
        let v = &inp.v[base..base + n];
        let w = if inp.w_per_token {
            &inp.w[base..base + n]
        } else {
            &inp.w[hc.clone()]
        };
        let out = &mut o[ti * n..(ti + 1) * n];
        out.iter_mut().for_each(|x| *x = 0.0);
        let mut bonus = 0f32;
        for (i, row) in s.chunks_exact_mut(n).enumerate() {
            let (ri, ki, wi) = (r[i], k[i], w[i]);
            bonus = A::fma(ri * u[i], ki, bonus);
            for j in 0..n {
                out[j] = A::fma(ri, row[j], out[j]);
                row[j] = A::fma(row[j], wi, ki * v[j]);
            }
        }
        for j in 0..n {
            out[j] = A::fma(bonus, v[j], out[j]);
        }
    }
}
multiversion!(
    /// Advance head `hi`'s state `s` (`[N, N]`, row = key index, column = value index, the
    /// official layout) over the chunk, writing its outputs to `o` (`[T, N]`):
    /// `o_j = Σ_i r_i (u_i k_i v_j + s_ij)`, then `s_ij ← w_i s_ij + k_i v_j`.
    pub fn wkv5_head(inp: &Wkv5Inputs<'_>, hi: usize, s: &mut [f32], o: &mut [f32]) => wkv5_head_g
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

    #[test]
    fn wkv4_matches_the_plain_formula() {
        // Without the scaling trick: wkv_t = (Σ_{i<t} e^{(t-1-i)w + k_i} v_i + e^{u+k_t} v_t) / (same with 1).
        let (c, t) = (3, 5);
        let k: Vec<f32> = (0..t * c).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.3).collect();
        let v: Vec<f32> = (0..t * c).map(|i| ((i * 5 % 13) as f32 - 6.0) * 0.2).collect();
        let u = [0.3f32, -0.2, 0.5];
        let w = [-0.1f32, -1.0, -0.01];
        let (mut aa, mut bb, mut pp) = (vec![0f32; c], vec![0f32; c], vec![-1e30f32; c]);
        let mut out = vec![0f32; t * c];
        let s = Wkv4State {
            aa: &mut aa,
            bb: &mut bb,
            pp: &mut pp,
        };
        wkv4(&k, &v, &u, &w, s, &mut out);
        for ti in 0..t {
            for j in 0..c {
                let (mut num, mut den) = (0f64, 0f64);
                for i in 0..ti {
                    let e = (((ti - 1 - i) as f32 * w[j]) + k[i * c + j]) as f64;
                    num += e.exp() * v[i * c + j] as f64;
                    den += e.exp();
                }
                let e = (u[j] + k[ti * c + j]) as f64;
                num += e.exp() * v[ti * c + j] as f64;
                den += e.exp();
                assert!((out[ti * c + j] as f64 - num / den).abs() < 1e-5, "t{ti} c{j}");
            }
        }
    }

    #[test]
    fn wkv5_matches_the_matrix_formula() {
        let (c, n, t) = (4, 2, 3);
        let f = |i: usize, m: usize| ((i * m % 17) as f32 - 8.0) / 8.0;
        let r: Vec<f32> = (0..t * c).map(|i| f(i, 3)).collect();
        let k: Vec<f32> = (0..t * c).map(|i| f(i, 5)).collect();
        let v: Vec<f32> = (0..t * c).map(|i| f(i, 7)).collect();
        let w: Vec<f32> = (0..c).map(|i| 0.5 + 0.1 * i as f32).collect();
        let u: Vec<f32> = (0..c).map(|i| 0.2 * i as f32 - 0.3).collect();
        let inp = Wkv5Inputs {
            r: &r,
            k: &k,
            v: &v,
            w: &w,
            w_per_token: false,
            u: &u,
            c,
            n,
            t,
        };
        for hi in 0..c / n {
            let mut s = vec![0f32; n * n];
            let mut o = vec![0f32; t * n];
            wkv5_head(&inp, hi, &mut s, &mut o);
            let mut sr = vec![0f32; n * n];
            for ti in 0..t {
                let at = |x: &[f32], i: usize| x[ti * c + hi * n + i];
                for j in 0..n {
                    let want: f32 = (0..n)
                        .map(|i| at(&r, i) * (u[hi * n + i] * at(&k, i) * at(&v, j) + sr[i * n + j]))
                        .sum();
                    assert!((o[ti * n + j] - want).abs() < 1e-6);
                }
                for i in 0..n {
                    for j in 0..n {
                        sr[i * n + j] = at(&k, i) * at(&v, j) + w[hi * n + i] * sr[i * n + j];
                    }
                }
            }
            assert!(s.iter().zip(&sr).all(|(a, b)| (a - b).abs() < 1e-6));
        }
    }
}
