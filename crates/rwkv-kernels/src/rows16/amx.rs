//! The products of a bf16 checkpoint's rows ([`crate::rows16`]) on Intel AMX (`tdpbf16ps`), at
//! f32 accuracy.
//!
//! AMX multiplies tiles of bf16 values and sums in f32. An f32 input splits exactly into three
//! bf16 parts, `x = hi + mid + lo`: `hi` holds its first 8 significant bits, `mid` the next 8 and
//! `lo` the last 8. A bf16 weight times a bf16 part is exact in f32, so the three tile products
//! together are the f32 product, summed in f32: the exact fold, not the bf16 fold's rounded
//! inputs. Only the order of the sums differs from the FMA kernels' lane tree, which is why the
//! bits differ by f32 rounding. AMX also treats bf16 subnormals as zero and flushes subnormal
//! f32 results: parts below 2⁻¹²⁶ are dropped, which no trained projection's output notices.
//!
//! Tiles: the weights are the `A` operand, read where the checkpoint keeps them (16 outputs × 32
//! inputs, rows `2k` bytes apart, so nothing is repacked); the inputs, split and laid out in
//! pairs once per call, are `B`: 16 pairs × 16 columns, three columns (`hi`, `mid`, `lo`) for
//! each of 5 rows. So one `tdpbf16ps` advances three sums per row and output, and a generated
//! token (one row) costs one product per 16 outputs and 32 inputs, not three. A row's output is
//! `hi + (mid + lo)` of its three sums.
//!
//! Each sum runs over its inputs in one order that depends only on `k` (blocks of 32 in order,
//! the 16 pairs of a block in order), whatever else shares the tile. Another row count or chunk
//! length, one row included, never changes it, so a fold in chunks of any length gives the same
//! bits, as with the FMA kernels. (Generated tokens take the FMA kernels: see
//! [`super::matmul_tokens`].)
//!
//! Tile registers are not renamed, and a tile load costs more than a product here: a fold's
//! step multiplies 2 × 2 `C` tiles (two weight tiles, two input tiles: every load meets two
//! products), its weight slice copied together first; one row block (a generated token)
//! streams whole rows, alternating two sets of registers so that loads overlap the products,
//! and fetches the next rows ahead.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub(crate) use imp::{available, matmul};

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
/// AMX is only used on x86-64 Linux.
pub(crate) fn available() -> bool {
    false
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
/// Never called where [`available`] is false.
pub(crate) fn matmul(_: &[f32], _: usize, _: &crate::rows16::Rows16, _: &mut [f32]) {
    unreachable!("AMX is not available on this target")
}

/// The three exact bf16 parts of `v` (`hi + mid + lo == v` for every finite `v` whose parts
/// are not subnormal), as raw bf16 words.
#[inline(always)]
pub(crate) fn split3(v: f32) -> [u16; 3] {
    let hi = v.to_bits() & 0xFFFF_0000;
    let r = v - f32::from_bits(hi);
    let mid = r.to_bits() & 0xFFFF_0000;
    let lo = r - f32::from_bits(mid);
    [(hi >> 16) as u16, (mid >> 16) as u16, (lo.to_bits() >> 16) as u16]
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod imp {
    use std::arch::asm;
    use std::sync::OnceLock;

    use rayon::prelude::*;

    use super::split3;
    use crate::panels::{Kind, Out};
    use crate::rows16::Rows16;

    /// Rows (tokens) per input tile: each takes three of `B`'s and `C`'s 16 columns (its `hi`,
    /// `mid` and `lo` parts), the sixteenth column is zero.
    const T: usize = 5;
    /// Outputs per tile: `A`'s and `C`'s rows.
    const O: usize = 16;
    /// Inputs per step: 16 pairs, one tile row of 64 bytes.
    const K: usize = 32;
    /// bf16 words per input tile, f32 sums per `C` tile.
    const TILE: usize = 512;
    const CTILE: usize = 256;
    /// Row blocks (of 5) whose inputs one pass over the weights reuses.
    const GROUP: usize = 26;
    /// Outputs whose sums stay in a thread's buffer (with a group's inputs, they fit in L2).
    const CHUNK: usize = 128;
    /// Steps of 32 inputs per slice while several row blocks share the weights (their inputs
    /// then stay in L2 and each weight slice in L1).
    const SLICE: usize = 8;
    /// Minimum multiply-adds before a product is split across threads.
    const PAR_MIN_WORK: usize = 1 << 18;

    /// Whether this process can use AMX's bf16 tiles: the CPU has AMX-TILE and AMX-BF16, the
    /// kernels run with AVX-512 (`RWKV_SIMD` lowering them turns AMX off too), `RWKV_AMX=0` is
    /// not set, and Linux granted the tile state (`arch_prctl(ARCH_REQ_XCOMP_PERM)`). Decided once.
    pub(crate) fn available() -> bool {
        static A: OnceLock<bool> = OnceLock::new();
        *A.get_or_init(|| {
            if std::env::var("RWKV_AMX").is_ok_and(|v| v == "0") || crate::simd::level() != crate::simd::Level::Avx512 {
                return false;
            }
            // CPUID leaf 7: EDX bit 22 is AMX-BF16, bit 24 AMX-TILE.
            #[allow(unused_unsafe)]
            // SAFETY: CPUID leaf 7 exists on every CPU with AVX-512 (checked above).
            let l7 = unsafe { std::arch::x86_64::__cpuid_count(7, 0) };
            if l7.edx & (1 << 22) == 0 || l7.edx & (1 << 24) == 0 {
                return false;
            }
            const SYS_ARCH_PRCTL: i64 = 158;
            const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
            const XFEATURE_XTILEDATA: i64 = 18;
            let ret: i64;
            // SAFETY: the arch_prctl system call only changes which state the kernel lets this
            // process use; it reads and writes no memory of ours.
            unsafe {
                asm!(
                    "syscall",
                    inlateout("rax") SYS_ARCH_PRCTL => ret,
                    in("rdi") ARCH_REQ_XCOMP_PERM,
                    in("rsi") XFEATURE_XTILEDATA,
                    lateout("rcx") _,
                    lateout("r11") _,
                    options(nostack),
                );
            }
            ret == 0
        })
    }

    /// `y[rows, w.n] = x[rows, w.k] · Wᵀ` on AMX. The caller checks [`available`], that the
    /// weights are bf16 and that `w.k` is a multiple of 32.
    pub(crate) fn matmul(x: &[f32], rows: usize, w: &Rows16, y: &mut [f32]) {
        assert!(
            available() && w.kind() == Kind::Bf16 && w.k().is_multiple_of(K),
            "AMX products need bf16 rows of whole blocks"
        );
        assert_eq!(Some(x.len()), rows.checked_mul(w.k()), "inputs are rows × k");
        assert_eq!(Some(y.len()), rows.checked_mul(w.n()), "outputs are rows × n");
        if rows == 0 || w.n() == 0 {
            return;
        }
        thread_local! {
            static SPLIT: std::cell::Cell<Vec<u16>> = const { std::cell::Cell::new(Vec::new()) };
        }
        let mut xs = SPLIT.with(std::cell::Cell::take);
        split(x, rows, w.k(), &mut xs);
        let threads = rayon::current_num_threads();
        let blocks = w.n().div_ceil(2 * O);
        let tasks = if rows * w.n() * w.k() >= PAR_MIN_WORK && threads > 1 {
            (threads * 4).min(blocks)
        } else {
            1
        };
        let dst = Out(y.as_mut_ptr());
        let per = blocks.div_ceil(tasks) * 2 * O;
        let run = |t: usize| {
            let (o0, o1) = (t * per, ((t + 1) * per).min(w.n()));
            // SAFETY: AMX is available (asserted); `xs` holds the split rows; tasks cover disjoint
            // output ranges of `y`, whose extent was asserted.
            unsafe { range(&xs, rows, w, &dst, o0, o1) };
        };
        let parts = w.n().div_ceil(per);
        if parts <= 1 {
            run(0);
        } else {
            (0..parts).into_par_iter().for_each(run);
        }
        SPLIT.with(|c| c.set(xs));
    }

    /// `x` (`rows × k`) as `B` tiles: for each block of 5 rows and each step of 32 inputs, a
    /// tile of 16 pairs × 16 columns × 2 words, column `3t + part` holding part `part` (`hi`,
    /// `mid`, `lo`) of row `t`'s pair; rows past the end and column 15 are zero.
    fn split(x: &[f32], rows: usize, k: usize, out: &mut Vec<u16>) {
        let steps = k / K;
        let blocks = rows.div_ceil(T);
        out.clear();
        out.resize(blocks * steps * TILE, 0);
        let per_block = steps * TILE;
        let work = |(b, dst): (usize, &mut [u16])| {
            for t in 0..T.min(rows - b * T) {
                let row = &x[(b * T + t) * k..(b * T + t + 1) * k];
                for (s, src) in row.chunks_exact(K).enumerate() {
                    let tile = &mut dst[s * TILE..(s + 1) * TILE];
                    for (p, pair) in src.chunks_exact(2).enumerate() {
                        let (a, b) = (split3(pair[0]), split3(pair[1]));
                        for part in 0..3 {
                            let at = p * 32 + 2 * (3 * t + part);
                            tile[at] = a[part];
                            tile[at + 1] = b[part];
                        }
                    }
                }
            }
        };
        if rows * k >= PAR_MIN_WORK / 8 && blocks > 1 {
            out.par_chunks_mut(per_block).enumerate().for_each(work);
        } else {
            out.chunks_mut(per_block).enumerate().for_each(work);
        }
    }

    /// Tile registers 0–7 as 16 rows of 64 bytes (palette 1).
    #[repr(C, align(64))]
    struct Config([u8; 64]);

    const CONFIG: Config = {
        let mut c = [0u8; 64];
        c[0] = 1;
        let mut t = 0;
        while t < 8 {
            c[16 + 2 * t] = 64;
            c[48 + t] = 16;
            t += 1;
        }
        Config(c)
    };

    macro_rules! load {
        ($t:literal, $p:expr, $stride:expr) => {
            asm!(concat!("tileloadd tmm", $t, ", [{p} + {s}]"), p = in(reg) $p, s = in(reg) $stride, options(nostack, readonly, preserves_flags))
        };
    }
    macro_rules! store {
        ($t:literal, $p:expr) => {
            asm!(concat!("tilestored [{p} + {s}], tmm", $t), p = in(reg) $p, s = in(reg) 64usize, options(nostack, preserves_flags))
        };
    }
    macro_rules! dot {
        ($c:literal, $a:literal, $b:literal) => {
            asm!(
                concat!("tdpbf16ps tmm", $c, ", tmm", $a, ", tmm", $b),
                options(nostack, nomem, preserves_flags)
            )
        };
    }
    macro_rules! zero {
        ($t:literal) => {
            asm!(
                concat!("tilezero tmm", $t),
                options(nostack, nomem, preserves_flags)
            )
        };
    }

    /// One call of a step loop: weights of outputs `a[0]` (and `a[1]`, 16 further) at step
    /// `s0`, `astride` bytes a row, `astep` bytes a step; the inputs of row blocks `b[0]` (and `b[1]`); the sums `c[..]` (one tile
    /// each, `CTILE` floats, in the order of the shape's outputs and blocks); steps `s0 .. s1`,
    /// starting from zero sums when `first`; bytes fetched ahead.
    #[derive(Clone, Copy)]
    struct Steps {
        a: [*const u8; 2],
        astride: usize,
        astep: usize,
        b: [*const u16; 2],
        c: [*mut f32; 4],
        s0: usize,
        s1: usize,
        first: bool,
        pf: Prefetch,
    }

    /// Outputs `o0 .. o1` of every row.
    ///
    /// # Safety
    /// AMX is available; `xs` is [`split`] of `rows` rows of `w.k` inputs; `w.k` is a multiple of
    /// 32; `dst` points to `rows` rows of `w.n` floats that no other thread writes in these columns.
    unsafe fn range(xs: &[u16], rows: usize, w: &Rows16, dst: &Out, o0: usize, o1: usize) {
        let (n, k) = (w.n(), w.k());
        let steps = k / K;
        let blocks = rows.div_ceil(T);
        // Weights of a last block of fewer than 16 outputs, padded with zero rows.
        let tail: Vec<u8> = if !(o1 - o0).is_multiple_of(O) {
            let first = o1 - (o1 - o0) % O;
            let mut t = vec![0u8; O * 2 * k];
            t[..(o1 - first) * 2 * k].copy_from_slice(w.row_bytes(first, o1));
            t
        } else {
            Vec::new()
        };
        let wbase = w.row_bytes(0, n).as_ptr();
        let weights = |ob: usize| -> *const u8 {
            if ob + O <= o1 {
                // SAFETY: outputs ob .. ob + 16 lie in the matrix.
                unsafe { wbase.add(ob * 2 * k) }
            } else {
                tail.as_ptr()
            }
        };
        // The sums of a group's tiles, in a buffer this thread keeps (every tile is zeroed in
        // its registers before its first step, so old contents never leak in).
        thread_local! {
            static ACC: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
        }
        let mut acc = ACC.with(std::cell::Cell::take);
        let group = GROUP.min(blocks);
        let need = (CHUNK / O) * group * CTILE;
        if acc.len() < need {
            acc.resize(need, 0.0);
        }
        let mut packed: Vec<u8> = Vec::new();
        let at = |acc: &mut Vec<f32>, oblock: usize, tb: usize| -> *mut f32 {
            acc[(oblock * group + tb) * CTILE..].as_mut_ptr()
        };
        // SAFETY: the configuration is a valid palette-1 layout; AMX is available.
        unsafe { asm!("ldtilecfg [{0}]", in(reg) CONFIG.0.as_ptr(), options(nostack, readonly, preserves_flags)) };
        for g0 in (0..blocks).step_by(group) {
            let g1 = (g0 + group).min(blocks);
            // One row block streams each weight once, in whole rows; several share slices.
            let slice = if g1 - g0 == 1 { steps } else { SLICE };
            for c0 in (o0..o1).step_by(CHUNK) {
                let c1 = (c0 + CHUNK).min(o1);
                for s0 in (0..steps).step_by(slice) {
                    let s1 = (s0 + slice).min(steps);
                    for (bi, ob) in (c0..c1).step_by(2 * O).enumerate() {
                        let two_o = ob + O < c1;
                        let (mut a0, mut a1) = (
                            weights(ob).wrapping_add(s0 * 2 * K),
                            weights(ob).wrapping_add(s0 * 2 * K),
                        );
                        if two_o {
                            a1 = weights(ob + O).wrapping_add(s0 * 2 * K);
                        }
                        let (mut astride, mut astep) = (2 * k, 2 * K);
                        if slice != steps {
                            // Several row blocks reuse this slice: its tiles are copied together
                            // first (rows 2k bytes apart would share a few L1 sets and miss).
                            let tiles = (s1 - s0) * (1 + usize::from(two_o));
                            packed.clear();
                            packed.resize(tiles * 2 * TILE, 0);
                            for (h, a) in [a0, a1].into_iter().enumerate().take(1 + usize::from(two_o)) {
                                for s in 0..s1 - s0 {
                                    for r in 0..O {
                                        let at = ((h * (s1 - s0) + s) * O + r) * 2 * K;
                                        // SAFETY: row r of this block at step s0 + s lies in the
                                        // weights (or the padded tail).
                                        let src =
                                            unsafe { std::slice::from_raw_parts(a.add(r * 2 * k + s * 2 * K), 2 * K) };
                                        packed[at..at + 2 * K].copy_from_slice(src);
                                    }
                                }
                            }
                            a0 = packed.as_ptr();
                            a1 = packed.as_ptr().wrapping_add((s1 - s0) * 2 * TILE);
                            (astride, astep) = (2 * K, 2 * TILE);
                        }
                        // Streaming whole rows (one row block), the next 32 outputs' rows are
                        // fetched into L2 as one sequential run while these are multiplied.
                        let pf = if slice == steps && ob + 4 * O <= o1 {
                            Prefetch(wbase.wrapping_add((ob + 2 * O) * 2 * k), 2 * O * 2 * K)
                        } else {
                            Prefetch(std::ptr::null(), 0)
                        };
                        // A lone block of outputs (a range's last, of fewer than 32) takes the
                        // row blocks one at a time.
                        for tb in (g0..g1).step_by(1 + usize::from(two_o)) {
                            let two_t = two_o && tb + 1 < g1;
                            let (lo, hi) = (2 * bi, if two_o { 2 * bi + 1 } else { 2 * bi });
                            let (t0, t1) = (tb - g0, if two_t { tb + 1 - g0 } else { tb - g0 });
                            let job = Steps {
                                a: [a0, a1],
                                astride,
                                astep,
                                b: [
                                    xs[tb * steps * TILE..].as_ptr(),
                                    xs[(tb + usize::from(two_t)) * steps * TILE..].as_ptr(),
                                ],
                                c: [
                                    at(&mut acc, lo, t0),
                                    at(&mut acc, lo, t1),
                                    at(&mut acc, hi, t0),
                                    at(&mut acc, hi, t1),
                                ],
                                s0,
                                s1,
                                first: s0 == 0,
                                pf,
                            };
                            // SAFETY: every pointer covers the tiles it is read or written at: the
                            // weights rows ob .. ob + 32 (or the padded tail) at step s < steps; the
                            // split inputs of blocks tb, tb + 1; the accumulators of this task.
                            unsafe {
                                match (two_o, two_t) {
                                    (true, true) => steps_2x2(job),
                                    (true, false) => steps_2x1(job),
                                    (false, _) => steps_1x1(job),
                                }
                            }
                        }
                    }
                }
                // The finished sums of this group, each row's three parts added (hi + (mid + lo)).
                for (bi, ob) in (c0..c1).step_by(O).enumerate() {
                    let ow = O.min(c1 - ob);
                    for tb in g0..g1 {
                        let c = &acc[(bi * group + tb - g0) * CTILE..][..CTILE];
                        for t in 0..T.min(rows - tb * T) {
                            let r = tb * T + t;
                            for o in 0..ow {
                                let v = &c[o * 16 + 3 * t..][..3];
                                // SAFETY: row r < rows and column ob + o < o1 lie in this task's part.
                                unsafe { *dst.0.add(r * n + ob + o) = v[0] + (v[1] + v[2]) };
                            }
                        }
                    }
                }
            }
        }
        // SAFETY: releases this thread's tile state.
        unsafe { asm!("tilerelease", options(nostack, nomem, preserves_flags)) };
        ACC.with(|c| c.set(acc));
    }

    /// The bytes fetched ahead at each step: from `.0`, `.1` bytes per step (none if null).
    #[derive(Clone, Copy)]
    struct Prefetch(*const u8, usize);

    impl Prefetch {
        #[inline(always)]
        fn step(self, s: usize) {
            if self.0.is_null() {
                return;
            }
            let at = self.0.wrapping_add(s * self.1);
            for l in (0..self.1).step_by(64) {
                // SAFETY: a prefetch never faults, whatever the address.
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(at.wrapping_add(l).cast())
                };
            }
        }
    }

    // The step loops, one per shape of the block: each step adds `A · B` of that step to every
    // sum, so a sum's order is the steps' whatever the shape. Tile registers are not renamed:
    // the shapes with spare registers alternate two sets, so that a step's loads need not wait
    // for the previous step's products.

    /// Two output blocks × two row blocks: C 0 (a0, b0), 1 (a0, b1), 2 (a1, b0), 3 (a1, b1); A 4,
    /// 5; B 6, 7.
    ///
    /// # Safety
    /// AMX configured; the pointers of `j` as [`range`] makes them.
    #[inline(always)]
    unsafe fn steps_2x2(j: Steps) {
        // SAFETY: the caller's contract.
        unsafe {
            if j.first {
                zero!(0);
                zero!(1);
                zero!(2);
                zero!(3);
            } else {
                load!(0, j.c[0], 64usize);
                load!(1, j.c[1], 64usize);
                load!(2, j.c[2], 64usize);
                load!(3, j.c[3], 64usize);
            }
            for s in j.s0..j.s1 {
                j.pf.step(s);
                load!(4, j.a[0].add((s - j.s0) * j.astep), j.astride);
                load!(6, j.b[0].add(s * TILE), 64usize);
                dot!(0, 4, 6);
                load!(7, j.b[1].add(s * TILE), 64usize);
                dot!(1, 4, 7);
                load!(5, j.a[1].add((s - j.s0) * j.astep), j.astride);
                dot!(2, 5, 6);
                dot!(3, 5, 7);
            }
            store!(0, j.c[0]);
            store!(1, j.c[1]);
            store!(2, j.c[2]);
            store!(3, j.c[3]);
        }
    }

    /// Two output blocks × one row block: C 0, 1; even steps A 2, 3 and B 6, odd steps A 4, 5
    /// and B 7.
    ///
    /// # Safety
    /// As [`steps_2x2`].
    #[inline(always)]
    unsafe fn steps_2x1(j: Steps) {
        // SAFETY: the caller's contract.
        unsafe {
            if j.first {
                zero!(0);
                zero!(1);
            } else {
                load!(0, j.c[0], 64usize);
                load!(1, j.c[2], 64usize);
            }
            let mut s = j.s0;
            while s < j.s1 {
                j.pf.step(s);
                load!(2, j.a[0].add((s - j.s0) * j.astep), j.astride);
                load!(6, j.b[0].add(s * TILE), 64usize);
                load!(3, j.a[1].add((s - j.s0) * j.astep), j.astride);
                dot!(0, 2, 6);
                dot!(1, 3, 6);
                s += 1;
                if s < j.s1 {
                    j.pf.step(s);
                    load!(4, j.a[0].add((s - j.s0) * j.astep), j.astride);
                    load!(7, j.b[0].add(s * TILE), 64usize);
                    load!(5, j.a[1].add((s - j.s0) * j.astep), j.astride);
                    dot!(0, 4, 7);
                    dot!(1, 5, 7);
                    s += 1;
                }
            }
            store!(0, j.c[0]);
            store!(1, j.c[2]);
        }
    }

    /// One output block × one row block: C 0; A and B alternate between 2, 3 and 4, 5.
    ///
    /// # Safety
    /// As [`steps_2x2`].
    #[inline(always)]
    unsafe fn steps_1x1(j: Steps) {
        // SAFETY: the caller's contract.
        unsafe {
            if j.first {
                zero!(0);
            } else {
                load!(0, j.c[0], 64usize);
            }
            let mut s = j.s0;
            while s < j.s1 {
                j.pf.step(s);
                load!(2, j.a[0].add((s - j.s0) * j.astep), j.astride);
                load!(3, j.b[0].add(s * TILE), 64usize);
                dot!(0, 2, 3);
                s += 1;
                if s < j.s1 {
                    j.pf.step(s);
                    load!(4, j.a[0].add((s - j.s0) * j.astep), j.astride);
                    load!(5, j.b[0].add(s * TILE), 64usize);
                    dot!(0, 4, 5);
                    s += 1;
                }
            }
            store!(0, j.c[0]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::random;
    use super::*;
    use crate::panels::Kind;
    use crate::rows16::Rows16;

    #[test]
    fn three_parts_add_up_to_the_input() {
        for v in random(10_000, 5)
            .into_iter()
            .chain([0.0, -0.0, 1.0, f32::MAX, 1e-30, -7.5e12])
        {
            let [h, m, l] = split3(v).map(|b| f32::from_bits(u32::from(b) << 16));
            assert_eq!(h + m + l, v, "{v:e}");
            assert_eq!((h + m) + l, v, "{v:e}");
        }
    }

    #[test]
    fn products_are_f32_accurate_and_the_same_for_any_row_count() {
        if !available() {
            return;
        }
        for (n, k) in [(16, 32), (40, 64), (100, 96), (256, 2048)] {
            let vals = random(n * k, 7);
            let bits: Vec<u8> = vals
                .iter()
                .flat_map(|&v| crate::linalg::f32_to_bf16(v).to_le_bytes())
                .collect();
            let w = Rows16::new(bits.into(), Kind::Bf16, n, k);
            let rows = 300;
            // Inputs over a wide range of magnitudes, as activations are.
            let x: Vec<f32> = random(rows * k, 3)
                .iter()
                .enumerate()
                .map(|(i, v)| v * 10f32.powi((i % 7) as i32 - 3))
                .collect();
            let mut y = vec![0f32; rows * n];
            matmul(&x, rows, &w, &mut y);
            for r in 0..rows {
                for o in 0..n {
                    let (want, mag): (f64, f64) = (0..k)
                        .map(|i| f64::from(x[r * k + i]) * f64::from(w.get(o, i)))
                        .fold((0.0, 0.0), |(s, m), p| (s + p, m + p.abs()));
                    let err = (f64::from(y[r * n + o]) - want).abs();
                    // f32 summation: a few units of f32 rounding of the magnitudes' sum.
                    assert!(
                        err <= mag * 1e-6,
                        "{n}x{k} row {r} out {o}: {} vs {want} (err {err:e}, mag {mag:e})",
                        y[r * n + o]
                    );
                }
            }
            for sub in [1, 2, 15, 16, 17, 33, 129] {
                for r0 in [0, rows - sub] {
                    let mut part = vec![0f32; sub * n];
                    matmul(&x[r0 * k..(r0 + sub) * k], sub, &w, &mut part);
                    let whole: Vec<u32> = y[r0 * n..(r0 + sub) * n].iter().map(|v| v.to_bits()).collect();
                    let part: Vec<u32> = part.iter().map(|v| v.to_bits()).collect();
                    assert_eq!(part, whole, "{n}x{k}: rows {r0}..+{sub}");
                }
            }
        }
    }
}
