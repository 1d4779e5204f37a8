//! RWKV-7's element-wise steps and the WKV recurrence, as [`multiversion!`] kernels.
//!
//! Each `*_g` function is the generic body; the public name dispatches to the AVX-512,
//! AVX2 or portable build of it. Rows are `[T, C]` row-major unless said otherwise.

use crate::linalg::norm_into;
use crate::simd::{Arch, LANES, dot_lanes, exp, multiversion, sigmoid, sum_lanes};

/// `w = exp(-0.606531 · σ(w0 + w))` (0.606531 = e^-0.5), per row.
#[inline(always)]
fn decay_g<A: Arch>(w: &mut [f32], w0: &[f32]) {
    for row in w.chunks_exact_mut(w0.len()) {
        for (v, &b) in row.iter_mut().zip(w0) {
            *v = exp::<A>(-0.606531 * sigmoid::<A>(b + *v));
        }
    }
}
multiversion!(pub fn decay(w: &mut [f32], w0: &[f32]) => decay_g);

/// `a = σ(a0 + a)`, per row.
#[inline(always)]
fn sigmoid_bias_g<A: Arch>(a: &mut [f32], a0: &[f32]) {
    for row in a.chunks_exact_mut(a0.len()) {
        for (v, &b) in row.iter_mut().zip(a0) {
            *v = sigmoid::<A>(b + *v);
        }
    }
}
multiversion!(pub fn sigmoid_bias(a: &mut [f32], a0: &[f32]) => sigmoid_bias_g);

/// Per row: `k̂ = normalize_per_head(k · k_k)`, `k ← k · (1 + (a − 1) · k_a)`, `b = k̂ · a`.
#[inline(always)]
fn prep_keys_g<A: Arch>(k: &mut [f32], kk: &mut [f32], a: &[f32], b: &mut [f32], k_k: &[f32], k_a: &[f32], n: usize) {
    let c = k_k.len();
    for (((k, kk), a), b) in k
        .chunks_exact_mut(c)
        .zip(kk.chunks_exact_mut(c))
        .zip(a.chunks_exact(c))
        .zip(b.chunks_exact_mut(c))
    {
        for ((d, &x), &s) in kk.iter_mut().zip(k.iter()).zip(k_k) {
            *d = x * s;
        }
        for hk in kk.chunks_exact_mut(n) {
            let norm = dot_lanes::<A>(hk, hk).sqrt().max(1e-12);
            // Divide (not multiply by the inverse) to round as the reference does.
            hk.iter_mut().for_each(|v| *v /= norm);
        }
        for j in 0..c {
            k[j] *= A::fma(a[j] - 1.0, k_a[j], 1.0);
            b[j] = kk[j] * a[j];
        }
    }
}
multiversion!(
    pub fn prep_keys(k: &mut [f32], kk: &mut [f32], a: &[f32], b: &mut [f32], k_k: &[f32], k_a: &[f32], n: usize) => prep_keys_g
);

/// Value residual: `v += (v_first − v) · σ(v0 + gate)`, per row.
#[inline(always)]
fn value_residual_g<A: Arch>(v: &mut [f32], v_first: &[f32], gate: &[f32], v0: &[f32]) {
    let c = v0.len();
    for ((v, vf), g) in v
        .chunks_exact_mut(c)
        .zip(v_first.chunks_exact(c))
        .zip(gate.chunks_exact(c))
    {
        for j in 0..c {
            v[j] += (vf[j] - v[j]) * sigmoid::<A>(v0[j] + g[j]);
        }
    }
}
multiversion!(pub fn value_residual(v: &mut [f32], v_first: &[f32], gate: &[f32], v0: &[f32]) => value_residual_g);

/// Per-chunk inputs of the WKV recurrence, `[T, C]` each.
pub struct WkvInputs<'a> {
    /// Receptance.
    pub r: &'a [f32],
    /// Decay.
    pub w: &'a [f32],
    /// Key (after the `k_a` update).
    pub k: &'a [f32],
    /// Value (after the value residual).
    pub v: &'a [f32],
    /// Normalised removal key k̂.
    pub kk: &'a [f32],
    /// `k̂ · a`.
    pub b: &'a [f32],
    /// Width.
    pub c: usize,
    /// Head size.
    pub n: usize,
    /// Tokens.
    pub t: usize,
}

/// Advance head `hi`'s state `s` (`[N, N]`, row = value index) over the chunk, writing the
/// head's outputs to `o` (`[T, N]`). Each state row needs only its own dot product with k̂:
/// `row ← row · w + (−row·k̂) · b + v_i · k`, then `o_i = row · r`, all in one pass.
#[inline(always)]
fn wkv_head_g<A: Arch>(inp: &WkvInputs<'_>, hi: usize, s: &mut [f32], o: &mut [f32]) {
    let (c, n) = (inp.c, inp.n);
    for ti in 0..inp.t {
        let base = ti * c + hi * n;
        let r = &inp.r[base..base + n];
        let w = &inp.w[base..base + n];
        let k = &inp.k[base..base + n];
        let v = &inp.v[base..base + n];
        let kk = &inp.kk[base..base + n];
        let b = &inp.b[base..base + n];
        let out = &mut o[ti * n..(ti + 1) * n];
        for (row, (&vi, oi)) in s.chunks_exact_mut(n).zip(v.iter().zip(out.iter_mut())) {
            let sa = -dot_lanes::<A>(row, kk);
            let mut acc = [0f32; LANES];
            let mut rows = row.chunks_exact_mut(LANES);
            let mut j0 = 0;
            for seg in &mut rows {
                for l in 0..LANES {
                    let j = j0 + l;
                    let nv = A::fma(vi, k[j], A::fma(sa, b[j], seg[l] * w[j]));
                    seg[l] = nv;
                    acc[l] = A::fma(nv, r[j], acc[l]);
                }
                j0 += LANES;
            }
            let mut tail = 0f32;
            for (l, x) in rows.into_remainder().iter_mut().enumerate() {
                let j = j0 + l;
                let nv = A::fma(vi, k[j], A::fma(sa, b[j], *x * w[j]));
                *x = nv;
                tail = A::fma(nv, r[j], tail);
            }
            *oi = acc.iter().sum::<f32>() + tail;
        }
    }
}
multiversion!(pub fn wkv_head(inp: &WkvInputs<'_>, hi: usize, s: &mut [f32], o: &mut [f32]) => wkv_head_g);

/// Group norm per head (eps 64e-5) of the WKV outputs `o_heads` (`[H, T, N]`), plus the bonus
/// `(Σ r·k·r_k) · v` per head, times the gate, into `out` (`[T, C]`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn mix_heads_g<A: Arch>(
    o_heads: &[f32],
    r: &[f32],
    k: &[f32],
    v: &[f32],
    g: &[f32],
    r_k: &[f32],
    lnx: (&[f32], &[f32]),
    n: usize,
    out: &mut [f32],
) {
    let c = r_k.len();
    let h = c / n;
    let t = out.len() / c;
    for ti in 0..t {
        for hi in 0..h {
            let cols = ti * c + hi * n..ti * c + (hi + 1) * n;
            let hc = hi * n..(hi + 1) * n;
            let src = &o_heads[(hi * t + ti) * n..(hi * t + ti + 1) * n];
            let dst = &mut out[cols.clone()];
            norm_into::<A>(src, 64e-5, &lnx.0[hc.clone()], &lnx.1[hc.clone()], dst);
            let (r, k, v, g) = (&r[cols.clone()], &k[cols.clone()], &v[cols.clone()], &g[cols]);
            let rk = &r_k[hc];
            let mut acc = [0f32; LANES];
            let mut tail = 0f32;
            for j in 0..n {
                let p = r[j] * k[j] * rk[j];
                if j < n - n % LANES {
                    acc[j % LANES] += p;
                } else {
                    tail += p;
                }
            }
            let bonus = sum_lanes(&acc) + tail;
            for j in 0..n {
                dst[j] = A::fma(bonus, v[j], dst[j]) * g[j];
            }
        }
    }
}
multiversion!(
    #[allow(clippy::too_many_arguments)]
    pub fn mix_heads(
        o_heads: &[f32],
        r: &[f32],
        k: &[f32],
        v: &[f32],
        g: &[f32],
        r_k: &[f32],
        lnx: (&[f32], &[f32]),
        n: usize,
        out: &mut [f32],
    ) => mix_heads_g
);
