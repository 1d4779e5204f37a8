//! RWKV-7's element-wise steps and the WKV recurrence, as [`multiversion!`] kernels.
//!
//! Each `*_g` function is the generic body; the public name dispatches to the AVX-512,
//! AVX2 or portable build of it. Rows are `[T, C]` row-major unless said otherwise.

use crate::gemm_bf16::round_into;
use crate::kernels::norm_into;
use crate::simd::{Arch, dot_lanes, exp, multiversion, sigmoid, sum_lanes};

/// Token shift for a block of rows `r0 ..` of the chunk `x` (all rows, `[T, C]`): for row `g`,
/// `out = x[g] + (prev − x[g]) · mix` where prev is `x[g − 1]`, or the state's row for `g = 0`.
/// Each `outs[m]` holds the block's rows only. The caller moves the chunk's last row into the
/// state afterwards.
#[inline(always)]
fn shift_mix_g<A: Arch>(x: &[f32], r0: usize, prev: &[f32], mixes: &[&[f32]], outs: &mut [&mut [f32]]) {
    let c = prev.len();
    let rows = outs.first().map_or(0, |o| o.len() / c);
    for ti in 0..rows {
        let g = r0 + ti;
        let cur = &x[g * c..(g + 1) * c];
        let p: &[f32] = if g == 0 { prev } else { &x[(g - 1) * c..g * c] };
        for (mix, out) in mixes.iter().zip(outs.iter_mut()) {
            let out = &mut out[ti * c..(ti + 1) * c];
            // Zipped iterators: no bounds checks, so the loop vectorizes.
            for (((o, &pv), &cv), &m) in out.iter_mut().zip(p).zip(cur).zip(mix.iter()) {
                *o = A::fma(pv - cv, m, cv);
            }
        }
    }
}
multiversion!(pub fn shift_mix(x: &[f32], r0: usize, prev: &[f32], mixes: &[&[f32]], outs: &mut [&mut [f32]]) => shift_mix_g);

/// [`shift_mix`] for the bf16 fold: each output row rounded straight to bf16 words
/// (`⌈C / 2⌉` per row), the input format of [`crate::linalg::linear_rounded`].
#[inline(always)]
fn shift_mix_words_g<A: Arch>(x: &[f32], r0: usize, prev: &[f32], mixes: &[&[f32]], outs: &mut [&mut [u32]]) {
    let c = prev.len();
    let kp = c.div_ceil(2);
    let rows = outs.first().map_or(0, |o| o.len() / kp);
    let mut row = vec![0f32; c];
    for ti in 0..rows {
        let g = r0 + ti;
        let cur = &x[g * c..(g + 1) * c];
        let p: &[f32] = if g == 0 { prev } else { &x[(g - 1) * c..g * c] };
        for (mix, out) in mixes.iter().zip(outs.iter_mut()) {
            for (((o, &pv), &cv), &m) in row.iter_mut().zip(p).zip(cur).zip(mix.iter()) {
                *o = A::fma(pv - cv, m, cv);
            }
            round_into(&row, &mut out[ti * kp..(ti + 1) * kp]);
        }
    }
}
multiversion!(pub fn shift_mix_words(x: &[f32], r0: usize, prev: &[f32], mixes: &[&[f32]], outs: &mut [&mut [u32]]) => shift_mix_words_g);

/// Per-chunk inputs of the WKV recurrence, `[T, C]` each.
#[derive(Clone, Copy)]
pub struct WkvInputs<'a> {
    /// Receptance.
    pub r: &'a [f32],
    /// Decay LoRA output, before `exp(-0.606531 · σ(w0 + ·))`.
    pub w: &'a [f32],
    /// Key projection, before normalisation and the `k_a` update.
    pub k: &'a [f32],
    /// Value projection, before the value residual.
    pub v: &'a [f32],
    /// In-context learning rate LoRA output, before `σ(a0 + ·)`.
    pub a: &'a [f32],
    /// Value-residual LoRA output (layers after the first).
    pub v_gate: &'a [f32],
    /// Gate.
    pub g: &'a [f32],
    /// The layer's vectors, `[C]` each: decay bias, `a` bias, key normalisation and update
    /// weights, value-residual bias (absent in layer 0), bonus weights, group norm weight and
    /// bias.
    pub w0: &'a [f32],
    /// See `w0`.
    pub a0: &'a [f32],
    /// See `w0`.
    pub k_k: &'a [f32],
    /// See `w0`.
    pub k_a: &'a [f32],
    /// See `w0`.
    pub v0: Option<&'a [f32]>,
    /// See `w0`.
    pub r_k: &'a [f32],
    /// See `w0`.
    pub lnx: (&'a [f32], &'a [f32]),
    /// Width.
    pub c: usize,
    /// Head size.
    pub n: usize,
    /// Tokens.
    pub t: usize,
}

/// One token's inputs of the recurrence for one head, from the raw projections: the decay
/// `w = exp(-0.606531 · σ(w0 + w))`, `a = σ(a0 + a)`, the removal key
/// `k̂ = normalize(k · k_k)`, the key `k · (1 + (a − 1) · k_a)`, `b = k̂ · a`, and the value
/// (layer 0: as projected, and recorded into `v_first`; later layers: mixed towards `v_first`
/// by `σ(v0 + v_gate)`). `out = [w, k, v, kk, b]`, `n` each.
///
/// # Safety
/// `dst.v_first` must point to `[T, C]` floats, readable and writable, whose head-`hi` columns
/// of row `ti` nothing else accesses during the call; `(hi + 1) · n ≤ c` and `ti < t`.
#[inline(always)]
unsafe fn prep_head<A: Arch>(inp: &WkvInputs<'_>, (hi, ti): (usize, usize), dst: HeadOut, out: [&mut [f32]; 5]) {
    let (c, n) = (inp.c, inp.n);
    let cols = ti * c + hi * n..ti * c + (hi + 1) * n;
    let hc = hi * n..(hi + 1) * n;
    let [w, k, v, kk, b] = out;
    for ((wo, &x), &w0) in w.iter_mut().zip(&inp.w[cols.clone()]).zip(&inp.w0[hc.clone()]) {
        *wo = exp::<A>(-0.606531 * sigmoid::<A>(w0 + x));
    }
    let mut a = [0f32; 256];
    let a = if n <= a.len() {
        &mut a[..n]
    } else {
        &mut vec![0f32; n][..]
    };
    for ((ao, &x), &a0) in a.iter_mut().zip(&inp.a[cols.clone()]).zip(&inp.a0[hc.clone()]) {
        *ao = sigmoid::<A>(a0 + x);
    }
    for (((d, ko), &x), &s) in kk
        .iter_mut()
        .zip(k.iter_mut())
        .zip(&inp.k[cols.clone()])
        .zip(&inp.k_k[hc.clone()])
    {
        *d = x * s;
        *ko = x;
    }
    let norm = dot_lanes::<A>(kk, kk).sqrt().max(1e-12);
    // Divide (not multiply by the inverse) to round as the reference does.
    kk.iter_mut().for_each(|x| *x /= norm);
    for ((((kj, bj), &kkj), &aj), &kaj) in k
        .iter_mut()
        .zip(b.iter_mut())
        .zip(kk.iter())
        .zip(a.iter())
        .zip(&inp.k_a[hc.clone()])
    {
        *kj *= A::fma(aj - 1.0, kaj, 1.0);
        *bj = kkj * aj;
    }
    v.copy_from_slice(&inp.v[cols.clone()]);
    // SAFETY: `cols` lies in row `ti` of `v_first` (`[T, C]`), whose head-`hi` columns are
    // this call's alone (caller's contract).
    let vf = unsafe { std::slice::from_raw_parts_mut(dst.v_first.add(cols.start), n) };
    match inp.v0 {
        None => vf.copy_from_slice(v),
        Some(v0) => {
            for (((vj, &fj), &gj), &v0j) in v.iter_mut().zip(vf.iter()).zip(&inp.v_gate[cols]).zip(&v0[hc]) {
                *vj += (fj - *vj) * sigmoid::<A>(v0j + gj);
            }
        }
    }
}

/// Where [`wkv_head`] writes each token's finished head output (`[T, C]` rows, the head's
/// columns), and for the bf16 fold also the same rounded to bf16 pairs (`[T, ⌈C/2⌉]` words).
#[derive(Clone, Copy)]
pub struct HeadOut {
    /// f32 rows.
    pub rows: *mut f32,
    /// bf16 words, or null.
    pub words: *mut u32,
    /// The first layer's values, `[T, C]`: written by layer 0, read by the others.
    pub v_first: *mut f32,
}
// SAFETY: each head task writes only its own columns of the rows (and their words: head
// columns start at an even index, as the head size is even wherever words are used).
unsafe impl Send for HeadOut {}
// SAFETY: as above.
unsafe impl Sync for HeadOut {}

/// Group norm (eps 64e-5) of one head's WKV output `o`, plus the bonus `(Σ r·k·r_k) · v`, times
/// the gate `g`, into head `hi`'s columns of row `ti` of `dst` (and its words).
///
/// # Safety
/// `dst.rows` must point to `[T, C]` writable floats and `dst.words`, unless null, to
/// `[T, ⌈C/2⌉]` writable words (with `n` even); nothing else may access the head-`hi` columns
/// of row `ti` of either during the call; `(hi + 1) · n ≤ c` and `ti < t`.
#[inline(always)]
unsafe fn finish_head<A: Arch>(
    inp: &WkvInputs<'_>,
    (hi, ti): (usize, usize),
    o: &[f32],
    [r, k, v]: [&[f32]; 3],
    dst: HeadOut,
) {
    let (c, n) = (inp.c, inp.n);
    let cols = ti * c + hi * n..ti * c + (hi + 1) * n;
    let hc = hi * n..(hi + 1) * n;
    // SAFETY: `cols` lies in row `ti` of `dst.rows` (`[T, C]`), whose head-`hi` columns are
    // this call's alone (caller's contract).
    let out = unsafe { std::slice::from_raw_parts_mut(dst.rows.add(cols.start), n) };
    norm_into::<A>(o, 64e-5, &inp.lnx.0[hc.clone()], &inp.lnx.1[hc.clone()], out);
    let rk = &inp.r_k[hc];
    let g = &inp.g[cols.clone()];
    let mut prod = [0f32; 256];
    let bonus = if n <= prod.len() {
        for (((p, &rj), &kj), &rkj) in prod[..n].iter_mut().zip(r).zip(k).zip(rk) {
            *p = rj * kj * rkj;
        }
        sum_lanes(&prod[..n])
    } else {
        (0..n).map(|j| r[j] * k[j] * rk[j]).sum()
    };
    for ((d, &vj), &gj) in out.iter_mut().zip(v).zip(g) {
        *d = A::fma(bonus, vj, *d) * gj;
    }
    if !dst.words.is_null() {
        // SAFETY: as above, in words; `cols.start` is even (so is `n`, caller's contract).
        let words = unsafe { std::slice::from_raw_parts_mut(dst.words.add(cols.start / 2), n.div_ceil(2)) };
        round_into(out, words);
    }
}

/// Advance head `hi`'s state `s` (`[N, N]`, row = value index `i`, column = key index `j`)
/// over the chunk, writing the head's outputs to `o` (`[T, N]`).
///
/// Per token: `sa = S·k̂`, `S ← S·diag(w) − sa ⊗ b + v ⊗ k`, `o = S·r`. The kernel works on a
/// transposed copy (`[j][i]`), so every step is a vertical multiply-add over `i` with the
/// per-`j` factors broadcast — no horizontal reductions — and copies it back at the end.
///
/// # Safety
/// As [`wkv_head`].
#[inline(always)]
unsafe fn wkv_head_g<A: Arch>(inp: &WkvInputs<'_>, hi: usize, s: &mut [f32], o: HeadOut) {
    // SAFETY (all arms): forwarded from the caller.
    match inp.n {
        64 => unsafe { wkv_head_fixed::<A, 64>(inp, hi, s, o) },
        32 => unsafe { wkv_head_fixed::<A, 32>(inp, hi, s, o) },
        _ => unsafe { wkv_head_any::<A>(inp, hi, s, o) },
    }
}

/// [`wkv_head_g`] for a head size known at compile time: `sa`, `v` and the outputs live in
/// registers, and one pass over the state per token does the update, the read-out and the
/// next token's `sa = S·k̂` together.
///
/// # Safety
/// As [`wkv_head`].
#[inline(always)]
unsafe fn wkv_head_fixed<A: Arch, const N: usize>(inp: &WkvInputs<'_>, hi: usize, s: &mut [f32], o: HeadOut) {
    let c = inp.c;
    // The transposed head state lives on the stack (16 KiB for N = 64): no allocation per
    // token in generation.
    let mut st = [[0f32; N]; N];
    for i in 0..N {
        for j in 0..N {
            st[j][i] = s[i * N + j];
        }
    }
    let head = |x: &[f32], ti: usize| -> [f32; N] {
        let base = ti * c + hi * N;
        x[base..base + N].try_into().expect("head slice has N elements")
    };
    // Token ti's prepared inputs [w, k, v, kk, b]; the next token's are made one step ahead,
    // since its k̂ enters this token's pass.
    let prep = |ti: usize| -> [[f32; N]; 5] {
        let mut p = [[0f32; N]; 5];
        let [w, k, v, kk, b] = &mut p;
        // SAFETY: ti < t (the closure is called for tokens of the chunk); the outputs are
        // `wkv_head`'s caller's contract.
        unsafe { prep_head::<A>(inp, (hi, ti), o, [w, k, v, kk, b]) };
        p
    };
    let mut sa = [0f32; N];
    let mut cur = [[0f32; N]; 5];
    if inp.t > 0 {
        cur = prep(0);
        for (row, &kj) in st.iter().zip(&cur[3]) {
            for i in 0..N {
                sa[i] = A::fma(row[i], kj, sa[i]);
            }
        }
    }
    for ti in 0..inp.t {
        let r = head(inp.r, ti);
        let [w, k, v, _, b] = cur;
        let next = if ti + 1 < inp.t { prep(ti + 1) } else { [[0f32; N]; 5] };
        let kn = next[3];
        let mut out = [0f32; N];
        let mut sa_next = [0f32; N];
        for (j, row) in st.iter_mut().enumerate() {
            let (wj, nbj, kj, rj, knj) = (w[j], -b[j], k[j], r[j], kn[j]);
            for i in 0..N {
                let nv = A::fma(v[i], kj, A::fma(sa[i], nbj, row[i] * wj));
                row[i] = nv;
                out[i] = A::fma(nv, rj, out[i]);
                sa_next[i] = A::fma(nv, knj, sa_next[i]);
            }
        }
        // SAFETY: ti < t; the outputs are `wkv_head`'s caller's contract.
        unsafe { finish_head::<A>(inp, (hi, ti), &out, [&r, &k, &v], o) };
        sa = sa_next;
        cur = next;
    }
    for i in 0..N {
        for j in 0..N {
            s[i * N + j] = st[j][i];
        }
    }
}

/// [`wkv_head_g`] for any head size.
///
/// # Safety
/// As [`wkv_head`].
#[inline(always)]
unsafe fn wkv_head_any<A: Arch>(inp: &WkvInputs<'_>, hi: usize, s: &mut [f32], o: HeadOut) {
    let (c, n) = (inp.c, inp.n);
    let mut st = vec![0f32; n * n];
    for i in 0..n {
        for j in 0..n {
            st[j * n + i] = s[i * n + j];
        }
    }
    let mut sa = vec![0f32; n];
    let mut out = vec![0f32; n];
    let mut prepared = vec![0f32; 5 * n];
    for ti in 0..inp.t {
        let base = ti * c + hi * n;
        let r = &inp.r[base..base + n];
        let mut parts = prepared.chunks_exact_mut(n);
        let mut part = || parts.next().expect("five parts");
        // SAFETY: ti < t; the outputs are `wkv_head`'s caller's contract.
        unsafe { prep_head::<A>(inp, (hi, ti), o, [part(), part(), part(), part(), part()]) };
        let [w, k, v, kk, b]: [&[f32]; 5] = std::array::from_fn(|i| &prepared[i * n..(i + 1) * n]);
        sa.fill(0.0);
        for (row, &kj) in st.chunks_exact(n).zip(kk) {
            for (acc, &x) in sa.iter_mut().zip(row) {
                *acc = A::fma(x, kj, *acc);
            }
        }
        out.fill(0.0);
        for (j, row) in st.chunks_exact_mut(n).enumerate() {
            let (wj, nbj, kj, rj) = (w[j], -b[j], k[j], r[j]);
            for (((x, &sai), &vi), oi) in row.iter_mut().zip(&sa).zip(v).zip(out.iter_mut()) {
                let nv = A::fma(vi, kj, A::fma(sai, nbj, *x * wj));
                *x = nv;
                *oi = A::fma(nv, rj, *oi);
            }
        }
        // SAFETY: as above.
        unsafe { finish_head::<A>(inp, (hi, ti), &out, [r, k, v], o) };
    }
    for i in 0..n {
        for j in 0..n {
            s[i * n + j] = st[j * n + i];
        }
    }
}
multiversion!(
    /// Advance head `hi`'s state `s` over the chunk `inp`, writing the head's finished outputs
    /// through `o` (see [`wkv_head_g`]).
    ///
    /// # Safety
    /// `(hi + 1) · inp.n ≤ inp.c`. `o.rows` must point to `inp.t` writable rows of `inp.c`
    /// floats; `o.v_first` to as many readable and writable rows; `o.words`, unless null, to
    /// `inp.t` writable rows of `⌈inp.c / 2⌉` words, with `inp.n` even. Nothing else may read or
    /// write head `hi`'s columns of these rows during the call.
    pub unsafe fn wkv_head(inp: &WkvInputs<'_>, hi: usize, s: &mut [f32], o: HeadOut) => wkv_head_g
);
