//! The few numeric kernels the forward pass needs, on contiguous row-major f32 buffers.
//!
//! Projections go through [`linear`]: f32 weights use the `gemm` crate's blocked kernels for
//! many rows (a fold chunk) and a column-blocked mat-vec for one row (generation); a bf16/f16
//! checkpoint's own `[out, in]` rows are read in place ([`crate::rows16`]); other bf16 and int8
//! weights are packed [`Panels`] ([`crate::panels`]). Both modes read one widening kernel per
//! holding. Everything accumulates in f32.

use rayon::prelude::*;

pub use crate::kernels::norm_into;
pub use crate::panels::{Kind, Panels, Source};
pub use crate::quant::QuantMat;
pub use crate::rows16::Rows16;
use crate::simd::{Arch, dot_lanes, multiversion};
pub use crate::simd::{bf16_to_f32, f32_to_bf16};

/// A weight matrix for `y = x · Wᵀ` with `W` of shape `[out, in]` (the official layout of
/// projections), held once, in the precision it was loaded as:
/// - f32: stored transposed as `[in, out]` row-major; the gemm kernels then read it without
///   repacking, and the one-row path streams it row by row into column blocks of `y`;
/// - bf16 or f16 as the checkpoint stores them (`[out, in]`): [`Rows16`], the file's own
///   mapped bytes, which every product (many rows or one) widens to f32 inside the kernel;
/// - bf16 rounded from wider weights, int8, or 16-bit factors stored input-major: packed
///   [`Panels`], read the same way.
///
/// The dimensions are fixed at construction, where the held data is checked against them (the
/// kernels read it by them): see [`Mat::rows`] and [`Mat::cols`].
#[derive(Debug, Clone)]
pub struct Mat {
    /// Output features.
    rows: usize,
    /// Input features.
    cols: usize,
    held: Held,
    /// bf16 copy of f32 weights packed for the bf16 fold (`rwkv_model::FoldPrecision::Bf16`).
    fold_copy: Option<Panels>,
    /// The bf16 fold is on: multi-row products round their inputs to bf16 and multiply bf16
    /// panels (the held ones, or `fold_copy`).
    fold_bf16: bool,
    /// The int8 fold's weights (`rwkv_model::FoldPrecision::Int8`): when present, multi-row
    /// products round their inputs to int8 in blocks of 32 and multiply integers
    /// ([`crate::gemm_i8`]).
    fold_i8: Option<crate::gemm_i8::QuadPanels>,
    /// Round each input row to 8 bits in blocks of 32 before the product, as ggml does for a
    /// quantized matrix (set for the matrices rwkv.cpp files store quantized).
    pub act_quant: Option<ActQuant>,
    /// With [`ActQuant::Q8_1`]: each block's offset `m`, `[rows, ⌈cols / 32⌉]` row-major. Taken
    /// as the smallest decoded value of the block: ggml's Q4_1/Q5_1 quantizers give the block's
    /// minimum `q = 0`, so that value is `m` exactly.
    pub block_mins: Vec<f32>,
}

/// The weights as a [`Mat`] holds them.
#[derive(Debug, Clone)]
enum Held {
    /// f32, input-major `[cols, rows]`.
    F32(Vec<f32>),
    /// Packed 16- or 8-bit panels.
    Panels(Panels),
    /// Int8 weights in the int8 fold's layout: int8 panels while the int8 fold is on (one copy
    /// serves the fold and, with f32 inputs, a generated token's products to the same bits).
    Quad(crate::gemm_i8::QuadPanels),
    /// bf16/f16 `[out, in]` rows as the checkpoint stores them (usually its mapped pages).
    Rows(Rows16),
    /// rwkv.cpp's quantized blocks as stored ([`crate::quant`]).
    Ggml(QuantMat),
}

pub use rwkv_formats::ggml::ActQuant;

/// Round `x` in place as ggml's `quantize_row_q8_0`/`q8_1` followed by decoding would:
/// blocks of 32 (a shorter last block on its own), `d = amax / 127`, `q = round(x / d)`,
/// `x = q · f16(d)`. For [`ActQuant::Q8_1`], `s_err` receives per block the f16
/// rounding of ggml's stored sum, `f16(d · Σq) − f16(d) · Σq`, which ggml multiplies by the
/// weights' block offset `m`. Blocks so small that `1 / d` overflows (subnormal) are left as
/// they are.
pub fn quantize_dequantize_q8(x: &mut [f32], q: ActQuant, s_err: &mut Vec<f32>) {
    s_err.clear();
    for b in x.chunks_mut(32) {
        let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        if !id.is_finite() {
            if q == ActQuant::Q8_1 {
                s_err.push(0.0);
            }
            continue;
        }
        let dh = half::f16::from_f32(d).to_f32();
        let mut sum = 0f32;
        for v in b.iter_mut() {
            let qv = (*v * id).round();
            sum += qv;
            *v = qv * dh;
        }
        if q == ActQuant::Q8_1 {
            s_err.push(half::f16::from_f32(d * sum).to_f32() - dh * sum);
        }
    }
}

impl Mat {
    /// A matrix from `[rows, cols]` row-major f32 data (the official `[out, in]`), held as f32.
    ///
    /// # Panics
    /// If `w` does not hold `rows · cols` values.
    pub fn new(rows: usize, cols: usize, w: Vec<f32>) -> Self {
        assert_eq!(Some(w.len()), rows.checked_mul(cols), "weights are rows × cols");
        let mut wt = vec![0f32; rows * cols];
        // Blocked transpose keeps both sides cache-friendly for large matrices.
        const B: usize = 64;
        for o0 in (0..rows).step_by(B) {
            for i0 in (0..cols).step_by(B) {
                for o in o0..(o0 + B).min(rows) {
                    for i in i0..(i0 + B).min(cols) {
                        wt[i * rows + o] = w[o * cols + i];
                    }
                }
            }
        }
        Self::from_transposed(rows, cols, wt)
    }

    /// A matrix from f32 data already stored input-major, `[cols, rows]` (as the official
    /// checkpoints store LoRA factors), held as f32.
    ///
    /// # Panics
    /// If `wt` does not hold `rows · cols` values.
    pub fn from_transposed(rows: usize, cols: usize, wt: Vec<f32>) -> Self {
        assert_eq!(Some(wt.len()), rows.checked_mul(cols), "weights are cols × rows");
        Self::with(rows, cols, Held::F32(wt))
    }

    /// A matrix from a checkpoint tensor's bytes, held as `kind` (packed panels), or as f32
    /// when `kind` is `None`.
    ///
    /// # Panics
    /// If `src` does not hold `src.n · src.k` elements (callers check the tensor first).
    pub fn from_source(src: &Source<'_>, kind: Option<Kind>) -> Self {
        match kind {
            Some(kind) => Self::with(src.n, src.k, Held::Panels(Panels::pack(src, kind))),
            None => {
                assert!(src.fits(), "source holds n × k elements");
                let (n, k) = (src.n, src.k);
                let mut wt = vec![0f32; n * k];
                wt.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
                    for (o, v) in row.iter_mut().enumerate() {
                        *v = src.get(o, i);
                    }
                });
                Self::with(n, k, Held::F32(wt))
            }
        }
    }

    /// A matrix held as ggml blocks; its inputs are rounded as ggml rounds them (its
    /// [`Mat::act_quant`] is set from the format).
    pub fn from_quant(q: QuantMat) -> Self {
        let act = q.act();
        let mut m = Self::with(q.n(), q.k(), Held::Ggml(q));
        m.act_quant = Some(act);
        m
    }

    /// A matrix of bf16/f16 `[out, in]` rows held as they are ([`Rows16`]).
    pub fn from_rows(w: Rows16) -> Self {
        Self::with(w.n(), w.k(), Held::Rows(w))
    }

    fn with(rows: usize, cols: usize, held: Held) -> Self {
        Mat {
            rows,
            cols,
            held,
            fold_copy: None,
            fold_bf16: false,
            fold_i8: None,
            act_quant: None,
            block_mins: Vec::new(),
        }
    }

    /// Output features (rows of `W`, the length of an output row).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features (columns of `W`, the length of an input row).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Round the inputs as ggml does for this matrix (see [`ActQuant`]); for Q8_1, record the
    /// block offsets from the decoded weights.
    pub fn set_act_quant(&mut self, q: Option<ActQuant>) {
        if matches!(self.held, Held::Ggml(_)) {
            // The held blocks decide (and need no offsets recorded).
            return;
        }
        self.act_quant = q;
        self.block_mins = Vec::new();
        if q == Some(ActQuant::Q8_1) {
            let nb = self.cols.div_ceil(32);
            let mut mins = vec![f32::MAX; self.rows * nb];
            for o in 0..self.rows {
                for i in 0..self.cols {
                    let m = &mut mins[o * nb + i / 32];
                    *m = m.min(self.get(o, i));
                }
            }
            self.block_mins = mins;
        }
    }

    /// Element `W[o, i]` as held.
    pub fn get(&self, o: usize, i: usize) -> f32 {
        match &self.held {
            Held::F32(wt) => wt[i * self.rows + o],
            Held::Panels(p) => p.get(o, i),
            Held::Quad(q) => {
                let (v, scale) = q.parts(o, i);
                f32::from(v) * scale
            }
            Held::Rows(w) => w.get(o, i),
            Held::Ggml(q) => q.get(o, i),
        }
    }

    /// How the weights are held: `None` for f32 and ggml blocks (see [`Mat::held_name`]),
    /// else the panels' kind.
    pub fn held_kind(&self) -> Option<Kind> {
        match &self.held {
            Held::F32(_) | Held::Ggml(_) => None,
            Held::Panels(p) => Some(p.kind()),
            Held::Quad(_) => Some(Kind::I8),
            Held::Rows(w) => Some(w.kind()),
        }
    }

    /// How the weights are held, by name: `f32`, `bf16`, `f16`, `int8`, or the ggml block
    /// format (`q4_0`, `q4_1`, `q5_0`, `q5_1`, `q8_0`).
    pub fn held_name(&self) -> &'static str {
        match &self.held {
            Held::F32(_) => "f32",
            Held::Panels(p) => p.kind().name(),
            Held::Quad(_) => Kind::I8.name(),
            Held::Rows(w) => w.kind().name(),
            Held::Ggml(q) => q.quant().key(),
        }
    }

    /// Bytes held, the bf16 fold's copy included (and the checkpoint's rows not, once that copy
    /// serves every product).
    pub fn bytes(&self) -> usize {
        if self.rows_let_go() {
            return self.own_bytes() + self.fold_i8.as_ref().map_or(0, crate::gemm_i8::QuadPanels::bytes);
        }
        self.own_bytes()
            + self.fold_copy.as_ref().map_or(0, Panels::bytes)
            + self.fold_i8.as_ref().map_or(0, crate::gemm_i8::QuadPanels::bytes)
    }

    /// Bytes of the matrix as held, without the bf16 fold's copy: what a one-row product
    /// (token mode) reads (the copy's, when it serves every product).
    pub fn own_bytes(&self) -> usize {
        if self.rows_let_go()
            && let Some(p) = &self.fold_copy
        {
            return p.bytes();
        }
        match &self.held {
            Held::F32(wt) => wt.len() * 4,
            Held::Panels(p) => p.bytes(),
            Held::Quad(q) => q.bytes(),
            Held::Rows(w) => w.bytes(),
            Held::Ggml(q) => q.bytes(),
        }
    }

    /// Whether a checkpoint's bf16 rows were packed for the bf16 fold and their pages let go:
    /// the panels then serve every product.
    fn rows_let_go(&self) -> bool {
        matches!(self.held, Held::Rows(_)) && self.fold_bf16 && self.fold_copy.is_some()
    }

    /// Switch on the bf16 fold for this matrix: bf16 panels are multiplied as they are; f32
    /// weights get a packed bf16 copy; a checkpoint's bf16 rows are packed once into panels that
    /// then serve every product (one-row ones with f32 inputs) while the rows' pages leave
    /// memory, so the model still holds one copy of its weights. f16 and int8 panels, and
    /// matrices whose inputs are rounded as ggml's quantized mat-vec does, keep their own
    /// arithmetic.
    pub fn enable_bf16_fold(&mut self) {
        if self.act_quant.is_some() {
            return;
        }
        match &self.held {
            Held::F32(wt) if self.fold_copy.is_none() => {
                self.fold_copy = Some(Panels::from_f32_input_major(wt, self.cols, self.rows, Kind::Bf16));
                self.fold_bf16 = true;
            }
            Held::F32(_) => self.fold_bf16 = true,
            Held::Panels(p) => self.fold_bf16 = p.kind() == Kind::Bf16,
            Held::Rows(w) if w.kind() == Kind::Bf16 => {
                if self.fold_copy.is_none() {
                    self.fold_copy = Some(Panels::pack(&w.source(), Kind::Bf16));
                    // The panels serve every product while the bf16 fold is on (one-row ones
                    // with f32 inputs, see `linear_plain`): the file's pages need not stay, so
                    // the model holds one copy of its weights, not two.
                    w.release();
                }
                self.fold_bf16 = true;
            }
            Held::Rows(_) | Held::Ggml(_) | Held::Quad(_) => {}
        }
    }

    /// Switch the bf16 fold off (dropping any copy made for it): multi-row products take f32
    /// inputs again.
    pub fn disable_bf16_fold(&mut self) {
        self.fold_copy = None;
        self.fold_bf16 = false;
    }

    /// Switch on the int8 fold for this matrix: its weights are laid out for the integer
    /// kernels ([`crate::gemm_i8::QuadPanels`]: int8 panels keep their integers and scales,
    /// wider weights are rounded per output row as `--weights int8` rounds them). rwkv.cpp's
    /// quantized blocks, and matrices whose inputs are rounded as ggml's quantized mat-vec does,
    /// keep their own arithmetic. Int8 panels (`--weights int8`) are laid out anew in place
    /// of the panels, not beside them: the new layout serves generated tokens too, to the same
    /// bits ([`crate::gemm_i8::matmul_f32`]), so the model still holds one copy.
    pub fn enable_int8_fold(&mut self) {
        if self.act_quant.is_some() || self.int8_fold().is_some() {
            return;
        }
        use crate::gemm_i8::QuadPanels;
        self.fold_i8 = match &self.held {
            Held::F32(wt) => Some(QuadPanels::from_f32_input_major(wt, self.cols, self.rows)),
            Held::Panels(p) if p.kind() == Kind::I8 => {
                self.held = Held::Quad(QuadPanels::from_panels(p));
                None
            }
            Held::Panels(p) => Some(QuadPanels::from_panels(p)),
            Held::Rows(w) => Some(QuadPanels::pack(&w.source())),
            Held::Ggml(_) | Held::Quad(_) => None,
        };
    }

    /// Switch the int8 fold off (dropping its weights; int8 weights go back to panels, the same
    /// integers and scales).
    pub fn disable_int8_fold(&mut self) {
        self.fold_i8 = None;
        if let Held::Quad(q) = &self.held {
            self.held = Held::Panels(q.to_panels());
        }
    }

    /// The int8 fold's weights, when it is on for this matrix.
    pub fn int8_fold(&self) -> Option<&crate::gemm_i8::QuadPanels> {
        match (&self.held, &self.fold_i8) {
            (_, Some(q)) | (Held::Quad(q), None) => Some(q),
            _ => None,
        }
    }

    /// The bf16 panels the bf16 fold multiplies, when it is on for this matrix.
    pub fn bf16_fold(&self) -> Option<&Panels> {
        if !self.fold_bf16 {
            return None;
        }
        match (&self.held, &self.fold_copy) {
            (_, Some(p)) => Some(p),
            (Held::Panels(p), None) if p.kind() == Kind::Bf16 => Some(p),
            _ => None,
        }
    }
}

/// Minimum multiply-adds before a kernel is worth splitting across threads.
const PAR_MIN_WORK: usize = 1 << 18;

/// `y[rows, m.rows()] = x[rows, m.cols()] · Wᵀ`. With [`Mat::act_quant`] set, each row of `x` is
/// first rounded to 8 bits in blocks of 32 ([`quantize_dequantize_q8`]), as ggml's quantized
/// mat-vec does, so that rwkv.cpp's quantized files give rwkv.cpp's results.
///
/// # Panics
/// If `x` or `y` do not hold `rows` rows of `m.cols()` / `m.rows()` values.
pub fn linear(x: &[f32], rows: usize, m: &Mat, y: &mut [f32]) {
    linear_with(x, rows, m, y, Mode::Rows)
}

/// [`linear`] for sequence mode of a model that takes generated tokens through
/// [`linear_decode`]: every row count, one included, takes the fold's products, so a fold's
/// results do not depend on where its chunks end. (Only a bf16 checkpoint's rows on AMX differ:
/// there [`linear`] gives one row the token arithmetic, as generation wants it.)
pub fn linear_fold(x: &[f32], rows: usize, m: &Mat, y: &mut [f32]) {
    linear_with(x, rows, m, y, Mode::Fold)
}

/// Which arithmetic a product's rows take where the held weights have two.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One row is a generated token, several a fold ([`linear`]).
    Rows,
    /// Every row count is a fold ([`linear_fold`]).
    Fold,
    /// Every row is a generated token ([`linear_decode`]).
    Tokens,
}

/// [`linear`] in `mode`: the int8 fold's integer products unless the rows are tokens (and the
/// fold is on).
fn linear_with(x: &[f32], rows: usize, m: &Mat, y: &mut [f32], mode: Mode) {
    assert_eq!(Some(x.len()), rows.checked_mul(m.cols), "inputs are rows × cols");
    assert_eq!(Some(y.len()), rows.checked_mul(m.rows), "outputs are rows × out");
    if rows == 0 {
        return;
    }
    if let Held::Ggml(q) = &m.held {
        return crate::quant::matmul(x, rows, q, y);
    }
    if let Some(q) = m.act_quant {
        let mut xq = x.to_vec();
        let nb = m.cols.div_ceil(32);
        let mut errs = Vec::with_capacity(rows * nb);
        let mut e = Vec::new();
        for r in xq.chunks_exact_mut(m.cols) {
            quantize_dequantize_q8(r, q, &mut e);
            errs.extend_from_slice(&e);
        }
        linear_plain(&xq, rows, m, y, mode);
        if q == ActQuant::Q8_1 && !m.block_mins.is_empty() {
            for (yr, er) in y.chunks_exact_mut(m.rows).zip(errs.chunks_exact(nb)) {
                for (yo, mo) in yr.iter_mut().zip(m.block_mins.chunks_exact(nb)) {
                    *yo += mo.iter().zip(er).map(|(a, b)| a * b).sum::<f32>();
                }
            }
        }
        return;
    }
    linear_plain(x, rows, m, y, mode)
}

/// [`linear`] for the rows of a batched decode step: every row's outputs are bit for bit those
/// of `linear` on that row alone (token mode). The held kinds whose products do not depend on
/// the number of rows go through `linear`; f32 weights, whose one-row product ([`matvec`]) sums
/// in another order than the `gemm` crate's, take a mat-vec over several rows at once that reads
/// each weight once for all of them and sums each row in the mat-vec's order.
pub fn linear_decode(x: &[f32], rows: usize, m: &Mat, y: &mut [f32]) {
    if rows > 1
        && m.act_quant.is_none()
        && m.bf16_fold().is_none()
        && let Held::F32(wt) = &m.held
    {
        assert_eq!(Some(x.len()), rows.checked_mul(m.cols), "inputs are rows × cols");
        assert_eq!(Some(y.len()), rows.checked_mul(m.rows), "outputs are rows × out");
        return matvec_rows(x, rows, m.rows, m.cols, wt, y);
    }
    // The int8 fold's products depend on the rows' rounding, not on their number, but a decode
    // step's rows are tokens: they take the one-row arithmetic (as do a bf16 checkpoint's rows
    // on AMX).
    linear_with(x, rows, m, y, Mode::Tokens)
}

/// Rows handled together by [`matvec_rows`]'s kernel.
const DECODE_ROWS: usize = 4;

/// `rows` mat-vecs (`x` is `rows × cols`, `y` is `rows × out`) over the same weights, each
/// row summed exactly as [`matvec`] sums it.
fn matvec_rows(x: &[f32], rows: usize, out: usize, cols: usize, wt: &[f32], y: &mut [f32]) {
    assert!(x.len() == rows * cols && y.len() == rows * out && wt.len() >= cols * out);
    let threads = if rows * out * cols >= PAR_MIN_WORK {
        rayon::current_num_threads()
    } else {
        1
    };
    let per = if threads <= 1 {
        out.next_multiple_of(BLOCK)
    } else {
        out.div_ceil(threads * 2).next_multiple_of(BLOCK)
    };
    let parts = out.div_ceil(per);
    let ys = SendPtr(y.as_mut_ptr());
    let run = |p: usize| {
        let (o0, o1) = (p * per, ((p + 1) * per).min(out));
        let ys = &ys;
        for r0 in (0..rows).step_by(DECODE_ROWS) {
            let nr = DECODE_ROWS.min(rows - r0);
            let mut acc = [[0f32; BLOCK]; DECODE_ROWS];
            let mut col = o0;
            while col < o1 {
                let width = BLOCK.min(o1 - col);
                cols_rows(wt, out, col, width, &x[r0 * cols..(r0 + nr) * cols], cols, nr, &mut acc);
                for (r, a) in acc.iter().enumerate().take(nr) {
                    // SAFETY: part `p` writes only columns `o0 .. o1` of each row; the parts are
                    // disjoint and `y` holds `rows × out` floats (asserted by the caller).
                    let dst = unsafe { std::slice::from_raw_parts_mut(ys.0.add((r0 + r) * out + col), width) };
                    dst.copy_from_slice(&a[..width]);
                }
                col += width;
            }
        }
    };
    if parts <= 1 {
        run(0);
    } else {
        (0..parts).into_par_iter().for_each(run);
    }
}

struct SendPtr(*mut f32);
// SAFETY: the pointer is only written through at disjoint places by the tasks of one call.
unsafe impl Sync for SendPtr {}
unsafe impl Send for SendPtr {}

/// Columns `col .. col + width` of `nr` rows: `acc[r][l] = Σ_i x[r][i] · wt[i·stride + col + l]`,
/// the sum over `i` in order with one fused multiply-add per step, as [`cols_f32`] does.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cols_rows_g<A: Arch>(
    wt: &[f32],
    stride: usize,
    col: usize,
    width: usize,
    x: &[f32],
    cols: usize,
    nr: usize,
    acc: &mut [[f32; BLOCK]; DECODE_ROWS],
) {
    for a in acc.iter_mut() {
        *a = [0.0; BLOCK];
    }
    for i in 0..cols {
        let row = &wt[i * stride + col..i * stride + col + width];
        for (r, a) in acc.iter_mut().enumerate().take(nr) {
            let xi = x[r * cols + i];
            for l in 0..width {
                a[l] = A::fma(row[l], xi, a[l]);
            }
        }
    }
}
multiversion!(#[allow(clippy::too_many_arguments)] fn cols_rows(wt: &[f32], stride: usize, col: usize, width: usize, x: &[f32], cols: usize, nr: usize, acc: &mut [[f32; BLOCK]; DECODE_ROWS]) => cols_rows_g);

/// `y = x · Wᵀ` for inputs already rounded to bf16 words ([`crate::gemm_bf16::round_into`],
/// `⌈cols / 2⌉` words per row): the bf16 fold's products whose inputs were rounded where they
/// were made. A matrix without a packed copy ([`Mat::enable_bf16_fold`] skips those whose
/// inputs ggml rounds its own way) gets the widened values through [`linear`].
pub fn linear_rounded(a: &[u32], rows: usize, m: &Mat, y: &mut [f32]) {
    if let Some(p) = m.bf16_fold() {
        return crate::gemm_bf16::matmul(a, rows, p, y);
    }
    let kp = m.cols.div_ceil(2);
    let mut x = Vec::with_capacity(rows * m.cols);
    for row in a.chunks_exact(kp).take(rows) {
        for (p, &w) in row.iter().enumerate() {
            x.push(f32::from_bits(w << 16));
            if 2 * p + 1 < m.cols {
                x.push(f32::from_bits(w & 0xFFFF_0000));
            }
        }
    }
    linear(&x, rows, m, y);
}

/// `relu(x · Wᵀ)²` rounded to bf16 words (`⌈m.rows() / 2⌉` per row) from inputs already
/// rounded: the bf16 fold's channel-mix hidden layer, made in the product's last step.
pub fn linear_rounded_relu_sq(a: &[u32], rows: usize, m: &Mat, out: &mut [u32]) {
    if let Some(p) = m.bf16_fold() {
        return crate::gemm_bf16::matmul_relu_sq_words(a, rows, p, out);
    }
    let mut h = vec![0f32; rows * m.rows];
    linear_rounded(a, rows, m, &mut h);
    let np = m.rows.div_ceil(2);
    for (hr, or) in h.chunks_exact_mut(m.rows).zip(out.chunks_exact_mut(np)) {
        crate::kernels::relu_sq(hr);
        crate::gemm_bf16::round_into(hr, or);
    }
}

fn linear_plain(x: &[f32], rows: usize, m: &Mat, y: &mut [f32], mode: Mode) {
    if rows > 1
        && mode != Mode::Tokens
        && let Some(w) = m.int8_fold()
    {
        // As the bf16 fold's buffer: per thread, taken out while in use.
        thread_local! {
            static ROUNDED: std::cell::Cell<crate::gemm_i8::QuantRows> = std::cell::Cell::new(Default::default());
        }
        let mut a = ROUNDED.take();
        a.quantize(x, rows, m.cols);
        crate::gemm_i8::matmul(&a, w, y);
        ROUNDED.set(a);
        return;
    }
    if rows > 1
        && let Some(p) = m.bf16_fold()
    {
        // The rounded inputs reuse a per-thread buffer: taken out while in use, since a rayon
        // worker waiting inside `matmul` may run another product on this thread.
        thread_local! {
            static ROUNDED: std::cell::Cell<Vec<u32>> = const { std::cell::Cell::new(Vec::new()) };
        }
        let mut a = ROUNDED.take();
        crate::gemm_bf16::round_rows(x, rows, m.cols, &mut a);
        crate::gemm_bf16::matmul(&a, rows, p, y);
        ROUNDED.set(a);
        return;
    }
    let wt = match &m.held {
        Held::Panels(p) => return crate::panels::matmul(x, rows, p, y),
        Held::Quad(q) => return crate::gemm_i8::matmul_f32(x, rows, q, y),
        // Under the bf16 fold, a checkpoint's rows were packed and their pages let go: one-row
        // products read the same bf16 values from the panels, with f32 inputs.
        Held::Rows(w) => {
            return match m.bf16_fold() {
                Some(p) => crate::panels::matmul(x, rows, p, y),
                None if mode == Mode::Tokens || (mode == Mode::Rows && rows == 1) => {
                    crate::rows16::matmul_tokens(x, rows, w, y)
                }
                None => crate::rows16::matmul(x, rows, w, y),
            };
        }
        Held::Ggml(q) => return crate::quant::matmul(x, rows, q, y),
        Held::F32(wt) => wt,
    };
    if rows == 1 {
        return matvec(x, m.rows, m.cols, wt, y);
    }
    let work = rows * m.rows * m.cols;
    let par = if work >= PAR_MIN_WORK && rayon::current_num_threads() > 1 {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: all three buffers are valid for the extents described by the strides:
    // x is rows×cols (row stride cols), wt is cols×out row-major (row stride out), y is
    // rows×out (row stride out). `linear` asserted the lengths of x and y; `Mat`'s
    // constructors asserted wt's.
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
            wt.as_ptr(),
            1,
            m.rows as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// Columns of `y` one f32 mat-vec block accumulates.
const BLOCK: usize = 256;

/// One row with f32 weights: stream the input-major weights into column blocks of `y`. Large
/// matrices split their outputs across threads (whole blocks per task, which streams best).
fn matvec(x: &[f32], rows: usize, cols: usize, wt: &[f32], y: &mut [f32]) {
    let threads = if rows * cols >= PAR_MIN_WORK {
        rayon::current_num_threads()
    } else {
        1
    };
    if threads <= 1 {
        return cols_f32(wt, rows, 0, x, y);
    }
    let per = rows.div_ceil(threads * 2).next_multiple_of(BLOCK);
    y.par_chunks_mut(per)
        .enumerate()
        .for_each(|(c, ys)| cols_f32(wt, rows, c * per, x, ys));
}

/// `y[j] = Σ_i x[i] · wt[i·stride + o0 + j]` for the columns `o0 .. o0 + y.len()`.
#[inline(always)]
fn cols_f32_g<A: Arch>(wt: &[f32], stride: usize, o0: usize, x: &[f32], y: &mut [f32]) {
    let mut start = 0;
    while start < y.len() {
        let width = BLOCK.min(y.len() - start);
        let mut acc = [0f32; BLOCK];
        let col = o0 + start;
        if width == BLOCK {
            for (i, &xi) in x.iter().enumerate() {
                let row = &wt[i * stride + col..i * stride + col + BLOCK];
                for l in 0..BLOCK {
                    acc[l] = A::fma(row[l], xi, acc[l]);
                }
            }
        } else {
            for (i, &xi) in x.iter().enumerate() {
                let row = &wt[i * stride + col..i * stride + col + width];
                for l in 0..width {
                    acc[l] = A::fma(row[l], xi, acc[l]);
                }
            }
        }
        y[start..start + width].copy_from_slice(&acc[..width]);
        start += width;
    }
}
multiversion!(fn cols_f32(wt: &[f32], stride: usize, o0: usize, x: &[f32], y: &mut [f32]) => cols_f32_g);

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

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], rows: usize, m: &Mat) -> Vec<f32> {
        let mut y = vec![0f32; rows * m.rows];
        for r in 0..rows {
            for o in 0..m.rows {
                y[r * m.rows + o] = (0..m.cols).map(|i| x[r * m.cols + i] * m.get(o, i)).sum();
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
    fn act_quant_rounds_inputs_to_8_bits_per_block() {
        let x: Vec<f32> = (0..64).map(|i| ((i * 37 % 64) as f32 - 31.5) / 7.0).collect();
        let mut xq = x.clone();
        let mut e = Vec::new();
        quantize_dequantize_q8(&mut xq, ActQuant::Q8_0, &mut e);
        assert!(e.is_empty());
        for (b, bq) in x.chunks(32).zip(xq.chunks(32)) {
            let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = half::f16::from_f32(amax / 127.0).to_f32();
            for (&v, &vq) in b.iter().zip(bq) {
                let q = vq / d;
                assert!((q - q.round()).abs() < 1e-3 && q.abs() <= 127.0);
                assert!((v - vq).abs() <= amax / 254.0 * 1.01 + amax * 1e-3);
            }
        }
        // A matrix flagged Q8_0 multiplies the rounded inputs, one row or many.
        let (out, inp) = (5, 64);
        let w: Vec<f32> = (0..out * inp)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let mut m = Mat::new(out, inp, w);
        m.set_act_quant(Some(ActQuant::Q8_0));
        for rows in [1usize, 3] {
            let x: Vec<f32> = (0..rows * inp)
                .map(|i| ((i * 104729 % 997) as f32 / 498.0) - 1.0)
                .collect();
            let mut xq = x.clone();
            for r in xq.chunks_exact_mut(inp) {
                quantize_dequantize_q8(r, ActQuant::Q8_0, &mut e);
            }
            let mut y = vec![0f32; rows * out];
            linear(&x, rows, &m, &mut y);
            for (a, b) in y.iter().zip(naive(&xq, rows, &m)) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
        }
        // Q8_1 records the block offsets (block minima of the decoded weights).
        m.set_act_quant(Some(ActQuant::Q8_1));
        assert_eq!(m.block_mins.len(), out * 2);
        assert_eq!(m.block_mins[1], (32..64).map(|i| m.get(0, i)).fold(f32::MAX, f32::min));
    }

    #[test]
    fn held_16_bit_and_int8_weights_multiply_like_their_values() {
        let (out, inp) = (37, 53);
        let w: Vec<f32> = (0..out * inp)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * (1 + i / inp) as f32)
            .collect();
        let bytes: Vec<u8> = w.iter().flat_map(|&x| f32_to_bf16(x).to_le_bytes()).collect();
        let src = Source {
            bytes: &bytes,
            dtype: rwkv_formats::tensor::DType::BF16,
            n: out,
            k: inp,
            input_major: false,
        };
        let f = Mat::from_source(&src, None);
        let b = Mat::from_source(&src, Some(Kind::Bf16));
        let q = Mat::from_source(&src, Some(Kind::I8));
        assert_eq!(
            (f.held_kind(), b.held_kind(), q.held_kind()),
            (None, Some(Kind::Bf16), Some(Kind::I8))
        );
        for rows in [1usize, 3, 20] {
            let x: Vec<f32> = (0..rows * inp)
                .map(|i| ((i * 104729 % 997) as f32 / 498.0) - 1.0)
                .collect();
            let (mut yf, mut yb, mut yq) = (vec![0f32; rows * out], vec![0f32; rows * out], vec![0f32; rows * out]);
            linear(&x, rows, &f, &mut yf);
            linear(&x, rows, &b, &mut yb);
            linear(&x, rows, &q, &mut yq);
            let exact = naive(&x, rows, &f);
            for (i, ((&a, &bb), &e)) in yf.iter().zip(&yb).zip(&exact).enumerate() {
                assert!((a - e).abs() < 1e-3 && (bb - e).abs() < 1e-3, "{a} {bb} vs {e}");
                // int8: each weight moves by at most half a step of its row's scale.
                let o = i % out;
                let amax = (0..inp).map(|c| f.get(o, c).abs()).fold(0f32, f32::max);
                let xs: f32 = x[(i / out) * inp..(i / out + 1) * inp].iter().map(|v| v.abs()).sum();
                assert!((yq[i] - e).abs() <= xs * amax / 254.0 + 1e-3, "{} vs {e}", yq[i]);
            }
        }
    }

    #[test]
    fn rounded_inputs_work_with_and_without_a_packed_copy() {
        let (out, inp, rows) = (40, 33, 5);
        let w: Vec<f32> = (0..out * inp)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let x: Vec<f32> = (0..rows * inp)
            .map(|i| ((i * 104729 % 997) as f32 / 498.0) - 1.0)
            .collect();
        let mut words = Vec::new();
        for r in x.chunks_exact(inp) {
            let mut wr = vec![0u32; inp.div_ceil(2)];
            crate::gemm_bf16::round_into(r, &mut wr);
            words.extend(wr);
        }
        let xr: Vec<f32> = x.iter().map(|&v| bf16_to_f32(f32_to_bf16(v))).collect();
        let mut m = Mat::new(out, inp, w);
        let (mut plain, mut packed) = (vec![0f32; rows * out], vec![0f32; rows * out]);
        linear_rounded(&words, rows, &m, &mut plain);
        for (a, b) in plain.iter().zip(naive(&xr, rows, &m)) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        m.enable_bf16_fold();
        linear_rounded(&words, rows, &m, &mut packed);
        // The packed copy rounds the weights too.
        for (a, b) in packed.iter().zip(&plain) {
            assert!((a - b).abs() < 0.05, "{a} vs {b}");
        }
        assert!(m.bf16_fold().is_some());
        m.disable_bf16_fold();
        assert!(m.bf16_fold().is_none());
    }

    #[test]
    fn a_checkpoints_rows_under_the_bf16_fold_are_held_once() {
        let (out, inp) = (70, 45);
        let w: Vec<f32> = (0..out * inp)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let bytes: Vec<u8> = w.iter().flat_map(|&x| f32_to_bf16(x).to_le_bytes()).collect();
        let rows16 = Rows16::new(rwkv_formats::tensor::Bytes::Owned(bytes), Kind::Bf16, out, inp);
        let panels = Panels::pack(&rows16.source(), Kind::Bf16);
        let mut m = Mat::from_rows(rows16);
        let x: Vec<f32> = (0..3 * inp)
            .map(|i| ((i * 104729 % 997) as f32 / 498.0) - 1.0)
            .collect();
        let one = |m: &Mat| {
            let mut y = vec![0f32; out];
            linear(&x[..inp], 1, m, &mut y);
            y
        };
        let exact = one(&m);
        let held = m.bytes();
        m.enable_bf16_fold();
        // One copy: the panels, the rows' pages let go.
        assert_eq!(m.bytes(), panels.bytes());
        assert!(m.bytes() < held + held / 2, "{} vs {held}", m.bytes());
        assert_eq!(m.own_bytes(), panels.bytes());
        // One row (a generated token) reads the panels with f32 inputs: the panels' own product.
        let mut want = vec![0f32; out];
        crate::panels::matmul(&x[..inp], 1, &panels, &mut want);
        let got = one(&m);
        assert_eq!(
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        for (a, b) in got.iter().zip(&exact) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        // Many rows take the bf16 fold.
        let mut words = Vec::new();
        crate::gemm_bf16::round_rows(&x, 3, inp, &mut words);
        let (mut folded, mut want) = (vec![0f32; 3 * out], vec![0f32; 3 * out]);
        linear(&x, 3, &m, &mut folded);
        crate::gemm_bf16::matmul(&words, 3, &panels, &mut want);
        assert_eq!(folded, want);
        // Switched off, the rows serve again, bit for bit as before.
        m.disable_bf16_fold();
        assert_eq!(m.bytes(), held);
        assert_eq!(
            one(&m).iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            exact.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn int8_weights_under_the_int8_fold_are_held_once() {
        let (out, inp) = (70, 45);
        let w: Vec<f32> = (0..out * inp)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
        let src = Source {
            bytes: &bytes,
            dtype: rwkv_formats::tensor::DType::F32,
            n: out,
            k: inp,
            input_major: false,
        };
        let mut m = Mat::from_source(&src, Some(Kind::I8));
        let x: Vec<f32> = (0..3 * inp)
            .map(|i| ((i * 104729 % 997) as f32 / 498.0) - 1.0)
            .collect();
        let bits = |m: &Mat, rows: usize| {
            let mut y = vec![0f32; rows * out];
            linear(&x[..rows * inp], rows, m, &mut y);
            y.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        let (token, held) = (bits(&m, 1), m.bytes());
        m.enable_int8_fold();
        let quad = crate::gemm_i8::QuadPanels::from_panels(&Panels::pack(&src, Kind::I8));
        // One copy, in the integer kernels' layout, and a token's product to the same bits.
        assert_eq!(m.bytes(), quad.bytes());
        assert!(m.bytes() < held + held / 2, "{} vs {held}", m.bytes());
        assert_eq!(m.held_name(), "int8");
        assert_eq!(bits(&m, 1), token);
        // Several rows take the int8 fold.
        let mut rounded = crate::gemm_i8::QuantRows::default();
        rounded.quantize(&x, 3, inp);
        let mut want = vec![0f32; 3 * out];
        crate::gemm_i8::matmul(&rounded, &quad, &mut want);
        assert_eq!(bits(&m, 3), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        // Switched off: panels again, the same bits and bytes as before.
        m.disable_int8_fold();
        assert_eq!((m.bytes(), bits(&m, 1)), (held, token));
        assert!(m.int8_fold().is_none());
    }

    #[test]
    fn bf16_round_trip_and_rounding() {
        for x in [0.0f32, 1.0, -2.5, 3.140625, 2f32.powi(-100), 65536.0] {
            assert_eq!(bf16_to_f32(f32_to_bf16(x)), x);
        }
        // 1 + 2^-8 is halfway between two bf16 values: ties to even gives 1.0.
        assert_eq!(bf16_to_f32(f32_to_bf16(1.0 + 1.0 / 256.0)), 1.0);
    }
}
