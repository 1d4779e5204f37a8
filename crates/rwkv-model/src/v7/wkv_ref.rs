//! The CPU reference of the CUDA WKV-7 kernel (`wkv7.cu`): the same inputs, the same loops in
//! the same order (step numbers as in the kernel), in plain Rust. It is what the kernel is
//! checked against without a GPU: its tests hold it to the CPU backend's own recurrence
//! (`kernels::wkv_head`); `scripts/gpu-check.sh` then holds the GPU to the CPU backend.
// The loops are the kernel's threads and keep its index order on purpose.
#![allow(clippy::needless_range_loop)]

/// The kernel's source, compiled at run time by the CUDA backend.
#[cfg(feature = "cuda")]
pub(crate) const SOURCE: &str = include_str!("wkv7.cu");

/// One layer's inputs, as the kernel takes them (`[R, C]` rows of every lane one after another;
/// `v` with the value residual already applied).
#[cfg_attr(not(feature = "candle"), allow(dead_code))]
pub(crate) struct KernelInputs<'a> {
    pub c: usize,
    pub n: usize,
    /// First row, rows and state slot of each lane.
    pub lanes: &'a [(usize, usize, usize)],
    pub r: &'a [f32],
    pub w_raw: &'a [f32],
    pub k_raw: &'a [f32],
    pub v: &'a [f32],
    pub a_raw: &'a [f32],
    pub g: &'a [f32],
    pub w0: &'a [f32],
    pub a0: &'a [f32],
    pub k_k: &'a [f32],
    pub k_a: &'a [f32],
    pub r_k: &'a [f32],
    pub lnx_w: &'a [f32],
    pub lnx_b: &'a [f32],
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn ordered_sum(s: &[f32]) -> f32 {
    s.iter().fold(0.0, |acc, &x| acc + x)
}

/// Runs the kernel's grid on the CPU: `state` is `[slots, H, N, N]`, `out` `[R, C]`.
#[cfg_attr(not(feature = "candle"), allow(dead_code))]
pub(crate) fn wkv7_lanes(inp: &KernelInputs<'_>, state: &mut [f32], out: &mut [f32]) {
    let (c, n) = (inp.c, inp.n);
    let heads = c / n;
    for &(t0, tn, slot) in inp.lanes {
        for h in 0..heads {
            let st = &mut state[(slot * heads + h) * n * n..(slot * heads + h + 1) * n * n];
            let (mut sw, mut sk, mut skk, mut sb, mut sr) = (
                vec![0f32; n],
                vec![0f32; n],
                vec![0f32; n],
                vec![0f32; n],
                vec![0f32; n],
            );
            let mut red = vec![0f32; n];
            for t in 0..tn {
                let base = (t0 + t) * c + h * n;
                // 1. and 2., thread i preparing key index i.
                let mut kkj = vec![0f32; n];
                for i in 0..n {
                    let hc = h * n + i;
                    kkj[i] = inp.k_raw[base + i] * inp.k_k[hc];
                    red[i] = kkj[i] * kkj[i];
                }
                let norm = ordered_sum(&red).sqrt().max(1e-12);
                for i in 0..n {
                    let (hc, col) = (h * n + i, base + i);
                    let wj = (-0.606531 * sigmoid(inp.w0[hc] + inp.w_raw[col])).exp();
                    let aj = sigmoid(inp.a0[hc] + inp.a_raw[col]);
                    let kn = kkj[i] / norm;
                    sw[i] = wj;
                    sk[i] = inp.k_raw[col] * (aj - 1.0).mul_add(inp.k_a[hc], 1.0);
                    skk[i] = kn;
                    sb[i] = kn * aj;
                    sr[i] = inp.r[col];
                }
                // 3., thread i owning state row i.
                let mut y = vec![0f32; n];
                for i in 0..n {
                    let row = &mut st[i * n..(i + 1) * n];
                    let vi = inp.v[base + i];
                    let sa = (0..n).fold(0f32, |acc, j| row[j].mul_add(skk[j], acc));
                    let mut yi = 0f32;
                    for j in 0..n {
                        let nv = vi.mul_add(sk[j], sa.mul_add(-sb[j], row[j] * sw[j]));
                        row[j] = nv;
                        yi = nv.mul_add(sr[j], yi);
                    }
                    y[i] = yi;
                }
                // 4.
                let mean = ordered_sum(&y) / n as f32;
                for i in 0..n {
                    let d = y[i] - mean;
                    red[i] = d * d;
                }
                let var = ordered_sum(&red) / n as f32;
                for i in 0..n {
                    red[i] = sr[i] * sk[i] * inp.r_k[h * n + i];
                }
                let bonus = ordered_sum(&red);
                for i in 0..n {
                    let (hc, col) = (h * n + i, base + i);
                    let d = y[i] - mean;
                    let normed = (d * (1.0 / (var + 64e-5).sqrt())).mul_add(inp.lnx_w[hc], inp.lnx_b[hc]);
                    out[col] = bonus.mul_add(inp.v[col], normed) * inp.g[col];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v7::kernels::{HeadOut, WkvInputs, wkv_head};

    fn rand(seed: &mut u64, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                ((*seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale
            })
            .collect()
    }

    /// The reference and the CPU backend's recurrence agree on random layers: several lanes of
    /// different lengths, heads of 64 and 16, with and without the value residual (the reference
    /// gets `v` mixed as the CUDA backend mixes it before the kernel).
    #[test]
    fn the_kernel_reference_matches_the_cpu_recurrence() {
        let mut seed = 0x1234_5678_9abc_def1u64;
        for (n, heads, residual) in [(64usize, 3usize, false), (64, 2, true), (16, 4, true)] {
            let c = n * heads;
            let lanes = [(0usize, 5usize, 0usize), (5, 1, 1), (6, 17, 2)];
            let rows: usize = lanes.iter().map(|l| l.1).sum();
            let rc = rows * c;
            let mut v = |len: usize, s: f32| rand(&mut seed, len, s);
            let (r, w_raw, k_raw, v_raw, a_raw, g, v_gate) = (
                v(rc, 1.0),
                v(rc, 2.0),
                v(rc, 1.0),
                v(rc, 1.0),
                v(rc, 2.0),
                v(rc, 1.0),
                v(rc, 2.0),
            );
            let (w0, a0, k_k, k_a, r_k, lnw, lnb, v0) = (
                v(c, 1.0),
                v(c, 1.0),
                v(c, 1.0),
                v(c, 1.0),
                v(c, 1.0),
                v(c, 1.0),
                v(c, 0.1),
                v(c, 1.0),
            );
            let v_first = v(rc, 1.0);
            let state0 = v(lanes.len() * heads * n * n, 0.5);

            // The CPU backend, lane by lane.
            let mut cpu_state = state0.clone();
            let mut cpu_out = vec![0f32; rc];
            let mut vf = v_first.clone();
            for &(t0, tn, li) in &lanes {
                let rows_ = t0 * c..(t0 + tn) * c;
                let inputs = WkvInputs {
                    r: &r[rows_.clone()],
                    w: &w_raw[rows_.clone()],
                    k: &k_raw[rows_.clone()],
                    v: &v_raw[rows_.clone()],
                    a: &a_raw[rows_.clone()],
                    v_gate: &v_gate[rows_.clone()],
                    g: &g[rows_.clone()],
                    w0: &w0,
                    a0: &a0,
                    k_k: &k_k,
                    k_a: &k_a,
                    v0: residual.then_some(v0.as_slice()),
                    r_k: &r_k,
                    lnx: (&lnw, &lnb),
                    c,
                    n,
                    t: tn,
                };
                let out = HeadOut {
                    rows: cpu_out[rows_.clone()].as_mut_ptr(),
                    words: std::ptr::null_mut(),
                    v_first: vf[rows_].as_mut_ptr(),
                };
                let st = &mut cpu_state[li * heads * n * n..(li + 1) * heads * n * n];
                for (hi, s) in st.chunks_mut(n * n).enumerate() {
                    // SAFETY: `out` points at the lane's `tn` rows of `cpu_out` and `vf` (`[tn, C]`
                    // each, no words); `hi < heads`; the heads run one after another.
                    unsafe { wkv_head(&inputs, hi, s, out) };
                }
            }

            // The reference, with the residual applied first as the CUDA backend does.
            let mixed: Vec<f32> = if residual {
                (0..rc)
                    .map(|x| {
                        let gate = sigmoid(v0[x % c] + v_gate[x]);
                        v_raw[x] + (v_first[x] - v_raw[x]) * gate
                    })
                    .collect()
            } else {
                v_raw.clone()
            };
            let mut ref_state = state0.clone();
            let mut ref_out = vec![0f32; rc];
            let inp = KernelInputs {
                c,
                n,
                lanes: &lanes,
                r: &r,
                w_raw: &w_raw,
                k_raw: &k_raw,
                v: &mixed,
                a_raw: &a_raw,
                g: &g,
                w0: &w0,
                a0: &a0,
                k_k: &k_k,
                k_a: &k_a,
                r_k: &r_k,
                lnx_w: &lnw,
                lnx_b: &lnb,
            };
            wkv7_lanes(&inp, &mut ref_state, &mut ref_out);

            let max_diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            let scale = |a: &[f32]| a.iter().map(|x| x.abs()).fold(1f32, f32::max);
            let (ds, dout) = (max_diff(&cpu_state, &ref_state), max_diff(&cpu_out, &ref_out));
            assert!(ds <= 1e-4 * scale(&cpu_state), "n {n}: state differs by {ds}");
            assert!(dout <= 1e-3 * scale(&cpu_out), "n {n}: outputs differ by {dout}");
            // And the state really moved (the test can fail).
            assert!(max_diff(&state0, &ref_state) > 1e-3);

            // Split across two calls (state carried), the reference gives the same bits.
            let mut split_state = state0.clone();
            let mut split_out = vec![0f32; rc];
            let first: Vec<_> = lanes.iter().map(|&(t0, tn, s)| (t0, tn / 2, s)).collect();
            let second: Vec<_> = lanes.iter().map(|&(t0, tn, s)| (t0 + tn / 2, tn - tn / 2, s)).collect();
            for part in [&first, &second] {
                let inp = KernelInputs { lanes: part, ..inp };
                wkv7_lanes(&inp, &mut split_state, &mut split_out);
            }
            assert_eq!(split_state, ref_state, "n {n}: a split changes the state");
            assert_eq!(split_out, ref_out, "n {n}: a split changes the outputs");
        }
    }
}
