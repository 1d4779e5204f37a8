//! The candle backend (feature `candle`; `cuda` adds the GPU): RWKV-7 as a candle graph.
//!
//! Weights are uploaded once: every matrix as a bf16 `candle_core::Tensor` (the products are bf16
//! GEMMs with f32 sums — cuBLAS on a GPU, the `gemm` crate on candle's CPU device — through
//! candle's `matmul`), the vectors as f32, the embedding as f32 rows already normalised by `ln0`.
//! A forward call uploads the lanes' host states (the host [`State`] stays the truth between
//! calls), runs one step per `STEP_CHUNK` tokens of every lane — all lanes' rows in one `[R, C]`
//! matrix, so each projection, LoRA and FFN product is one GEMM per step —, and downloads the
//! states at the end. Norms, token shifts (one `index_select` over `[rows; lane states]`),
//! activations and residuals are candle ops. The WKV recurrence is our kernel on a GPU
//! (`v7/wkv7.cu`, compiled at load with NVRTC: one block per (lane, head), one thread per state
//! row, f32 state) and its CPU twin (`v7/wkv_ref.rs`, the same loops in the same order) on
//! candle's CPU device (`Device::CandleCpu`): the graph around it is the same on both, so the
//! CPU device tests everything but the kernel and the upload.
//!
//! The configuration and the fingerprint come from the tensors themselves, read in the CPU
//! loader's order through the same fingerprinting reader (so a candle model is the same model as
//! on the CPU); no CPU model is built.

use candle_core::{DType, Device as CDevice, Tensor};

use super::BackendModel;
use crate::blocks::WeightReader;
use crate::error::{Error, Result};
use crate::state::Lane;
use crate::state::State;
use crate::tensor::{DType as FileDType, RawTensor, TensorMap, to_f32};
use crate::types::{Device, FoldPrecision, Logits, ModelInfo};
use crate::v7::wkv_ref::{KernelInputs, wkv7_lanes};
use crate::v7::{Config, V7};

#[cfg(feature = "cuda")]
mod gpu;

/// Tokens per lane per step: steps want many rows (the products' efficiency), and the state
/// round trip is once per call, not per step.
pub const STEP_CHUNK: usize = 1024;

/// Most rows of one step (lanes × tokens), bounding the activations' memory.
pub const STEP_ROWS: usize = 32 * 1024;

/// One layer's weights on the device.
#[derive(Debug)]
struct Layer {
    ln1: (Tensor, Tensor),
    ln2: (Tensor, Tensor),
    /// x_r, x_w, x_k, x_v, x_a, x_g, each `[1, C]`.
    mix: [Tensor; 6],
    w0: Tensor,
    a0: Tensor,
    k_k: Tensor,
    k_a: Tensor,
    r_k: Tensor,
    lnx: (Tensor, Tensor),
    ffn_mix: Tensor,
    /// `[out, in]` bf16 (used transposed).
    wr: Tensor,
    wk: Tensor,
    wv: Tensor,
    wo: Tensor,
    ffn_key: Tensor,
    ffn_value: Tensor,
    /// LoRA factors `[C, D]` and `[D, C]` bf16 (input-major, as the file has them).
    w1: Tensor,
    w2: Tensor,
    a1: Tensor,
    a2: Tensor,
    g1: Tensor,
    g2: Tensor,
    /// Value residual (layers after the first): v0 `[1, C]`, v1, v2.
    vres: Option<(Tensor, Tensor, Tensor)>,
}

/// RWKV-7 as a candle graph on one candle device.
#[derive(Debug)]
pub(crate) struct CandleV7 {
    cfg: Config,
    device: Device,
    dev: CDevice,
    /// The GPU's WKV kernel (compiled once, at load).
    #[cfg(feature = "cuda")]
    gpu: Option<gpu::Gpu>,
    /// `[vocab, C]` f32, normalised by ln0.
    emb: Tensor,
    layers: Vec<Layer>,
    ln_out: (Tensor, Tensor),
    /// `[vocab, C]` bf16.
    head: Tensor,
    bytes: usize,
}

pub(crate) fn dev_err(device: Device, reason: impl std::fmt::Display) -> Error {
    Error::Device {
        device: device.to_string(),
        reason: reason.to_string(),
    }
}

/// A layer's WKV states during a call: on the host for the CPU twin, on the GPU for the kernel.
enum WkvState {
    Host(Vec<f32>),
    #[cfg(feature = "cuda")]
    Gpu(candle_core::cuda_backend::cudarc::driver::CudaSlice<f32>),
}

/// The live lanes of one step: (first row, rows, state slot) each, and their GPU copies.
struct Spans {
    host: Vec<(usize, usize, usize)>,
    #[cfg(feature = "cuda")]
    gpu: Option<gpu::Spans>,
}

impl CandleV7 {
    /// Loads an RWKV-7 checkpoint onto `device` (`cuda:N` or `candle-cpu`), feeding the
    /// fingerprint `hash` exactly as the CPU loader does.
    pub(crate) fn load(
        map: &TensorMap,
        weights: crate::Weights,
        device: Device,
        hash: &mut blake3::Hasher,
    ) -> Result<CandleV7> {
        // What this backend holds was checked by `backend::load` (`Support::check`).
        debug_assert!(matches!(weights, crate::Weights::Auto | crate::Weights::Bf16));
        let cfg = V7::config_of(map)?;
        #[cfg(feature = "cuda")]
        let (dev, gpu) = match device {
            Device::Cuda(n) => {
                let (dev, gpu) = gpu::Gpu::open(n, &cfg)?;
                (dev, Some(gpu))
            }
            _ => (CDevice::Cpu, None),
        };
        #[cfg(not(feature = "cuda"))]
        let dev = match device {
            Device::CandleCpu => CDevice::Cpu,
            other => {
                return Err(dev_err(
                    other,
                    "this build has no CUDA backend (build rwkv-reader with `--features cuda`, see \
                     scripts/build-cuda.sh); use --device cpu",
                ));
            }
        };
        let c = cfg.n_embd;
        let mut bytes = 0usize;
        let oom = |name: &str, e: candle_core::Error| {
            dev_err(
                device,
                format!(
                    "uploading {name} of {}: {e} (out of device memory? the model needs about {:.1} GB in bf16)",
                    map.path.display(),
                    model_gb(&cfg)
                ),
            )
        };
        let mut r = WeightReader::new(map, hash, weights);
        let up_vec = |name: &str, v: Vec<f32>| -> Result<Tensor> {
            let n = v.len();
            Tensor::from_vec(v, (1, n), &dev).map_err(|e| oom(name, e))
        };
        // A matrix with its file's shape, bf16 on the device; the file's pages handed back.
        let up_mat = |name: &str, t: &RawTensor, bytes: &mut usize| -> Result<Tensor> {
            let shape = (t.shape[0], t.shape[1]);
            let up = if t.dtype == FileDType::BF16 {
                Tensor::from_raw_buffer(&t.data[..], DType::BF16, &[shape.0, shape.1], &dev)
            } else {
                let v = to_f32(&map.path, name, t)?;
                Tensor::from_vec(v, shape, &dev).and_then(|x| x.to_dtype(DType::BF16))
            };
            t.data.release();
            *bytes += shape.0 * shape.1 * 2;
            up.map_err(|e| oom(name, e))
        };
        let emb = {
            let t = r.raw("emb.weight", &[cfg.vocab, c])?;
            let v = to_f32(&map.path, "emb.weight", t)?;
            t.data.release();
            let raw = Tensor::from_vec(v, (cfg.vocab, c), &dev).map_err(|e| oom("emb.weight", e))?;
            let w = up_vec("blocks.0.ln0.weight", r.vec("blocks.0.ln0.weight", c)?)?;
            let b = up_vec("blocks.0.ln0.bias", r.vec("blocks.0.ln0.bias", c)?)?;
            layer_norm(&raw, &w, &b, 1e-5).map_err(|e| oom("emb.weight", e))?
        };
        bytes += cfg.vocab * c * 4;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let p = format!("blocks.{i}.");
            let a = format!("{p}att.");
            let f = format!("{p}ffn.");
            // The CPU loader's order (`V7::from_tensors`): the fingerprint depends on it.
            let vec_ = |r: &mut WeightReader<'_>, n: String| -> Result<Tensor> { up_vec(&n, r.vec(&n, c)?) };
            let ln1 = (
                vec_(&mut r, format!("{p}ln1.weight"))?,
                vec_(&mut r, format!("{p}ln1.bias"))?,
            );
            let ln2 = (
                vec_(&mut r, format!("{p}ln2.weight"))?,
                vec_(&mut r, format!("{p}ln2.bias"))?,
            );
            let mix = [
                vec_(&mut r, format!("{a}x_r"))?,
                vec_(&mut r, format!("{a}x_w"))?,
                vec_(&mut r, format!("{a}x_k"))?,
                vec_(&mut r, format!("{a}x_v"))?,
                vec_(&mut r, format!("{a}x_a"))?,
                vec_(&mut r, format!("{a}x_g"))?,
            ];
            let w0 = vec_(&mut r, format!("{a}w0"))?;
            let a0 = vec_(&mut r, format!("{a}a0"))?;
            let k_k = vec_(&mut r, format!("{a}k_k"))?;
            let k_a = vec_(&mut r, format!("{a}k_a"))?;
            let rk_name = format!("{a}r_k");
            let r_k = up_vec(&rk_name, r.vec_shaped(&rk_name, &[cfg.n_head, cfg.head_size])?)?;
            let lnx = (
                vec_(&mut r, format!("{a}ln_x.weight"))?,
                vec_(&mut r, format!("{a}ln_x.bias"))?,
            );
            let ffn_mix = vec_(&mut r, format!("{f}x_k"))?;
            let mut mat = |r: &mut WeightReader<'_>, n: String, shape: [usize; 2]| -> Result<Tensor> {
                let t = r.raw(&n, &shape)?;
                up_mat(&n, t, &mut bytes)
            };
            // LoRA factors, input-major: `[C, D]` then `[D, C]`.
            let mut lora_pair = |r: &mut WeightReader<'_>, n: &str, d: usize| -> Result<(Tensor, Tensor)> {
                Ok((mat(r, format!("{a}{n}1"), [c, d])?, mat(r, format!("{a}{n}2"), [d, c])?))
            };
            let (w1, w2) = lora_pair(&mut r, "w", cfg.d_decay)?;
            let (a1, a2) = lora_pair(&mut r, "a", cfg.d_aaa)?;
            let (g1, g2) = lora_pair(&mut r, "g", cfg.d_gate)?;
            let vres = if i == 0 {
                None
            } else {
                let (v1, v2) = lora_pair(&mut r, "v", cfg.d_mv)?;
                Some((vec_(&mut r, format!("{a}v0"))?, v1, v2))
            };
            let wr = mat(&mut r, format!("{a}receptance.weight"), [c, c])?;
            let wk = mat(&mut r, format!("{a}key.weight"), [c, c])?;
            let wv = mat(&mut r, format!("{a}value.weight"), [c, c])?;
            let wo = mat(&mut r, format!("{a}output.weight"), [c, c])?;
            let ffn_key = mat(&mut r, format!("{f}key.weight"), [cfg.d_ffn, c])?;
            let ffn_value = mat(&mut r, format!("{f}value.weight"), [c, cfg.d_ffn])?;
            layers.push(Layer {
                ln1,
                ln2,
                mix,
                w0,
                a0,
                k_k,
                k_a,
                r_k,
                lnx,
                ffn_mix,
                wr,
                wk,
                wv,
                wo,
                ffn_key,
                ffn_value,
                w1,
                w2,
                a1,
                a2,
                g1,
                g2,
                vres,
            });
        }
        let ln_out = (
            up_vec("ln_out.weight", r.vec("ln_out.weight", c)?)?,
            up_vec("ln_out.bias", r.vec("ln_out.bias", c)?)?,
        );
        let head = {
            let t = r.raw("head.weight", &[cfg.vocab, c])?;
            up_mat("head.weight", t, &mut bytes)?
        };
        Ok(CandleV7 {
            cfg,
            device,
            dev,
            #[cfg(feature = "cuda")]
            gpu,
            emb,
            layers,
            ln_out,
            head,
            bytes,
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        dev_err(self.device, e)
    }

    /// Folds the lanes (each with its tokens) from their states; the logits of every row of
    /// lane 0 when `Logits::All`, else of its last row when `Logits::Last`.
    fn run(&self, lanes: &mut [Lane<'_>], want: Logits) -> candle_core::Result<Vec<f32>> {
        let c = self.cfg.n_embd;
        let b = lanes.len();
        let (h, n) = (self.cfg.n_head, self.cfg.head_size);
        // The lanes' states on the device: token shifts `[B, C]` per layer, WKV `[B, H, N, N]`.
        let mut att_x = Vec::with_capacity(self.layers.len());
        let mut ffn_x = Vec::with_capacity(self.layers.len());
        let mut wkv = Vec::with_capacity(self.layers.len());
        for li in 0..self.layers.len() {
            let gather = |f: &dyn Fn(&State) -> &[f32]| -> Vec<f32> {
                lanes.iter().flat_map(|l| f(l.state).iter().copied()).collect()
            };
            att_x.push(Tensor::from_vec(gather(&|s| &s.layers[li].att_x), (b, c), &self.dev)?);
            ffn_x.push(Tensor::from_vec(gather(&|s| &s.layers[li].ffn_x), (b, c), &self.dev)?);
            wkv.push(self.upload_wkv(gather(&|s| &s.layers[li].wkv))?);
        }
        let longest = lanes.iter().map(|l| l.tokens.len()).max().unwrap_or(0);
        let per_lane = STEP_CHUNK.min((STEP_ROWS / b.max(1)).max(1));
        let mut logits = Vec::new();
        for step in 0..longest.div_ceil(per_lane) {
            // This step's rows: lane by lane, the next `per_lane` tokens of each.
            let (mut ids, mut spans) = (Vec::new(), Vec::new());
            for (s, l) in lanes.iter().enumerate() {
                let a = (step * per_lane).min(l.tokens.len());
                let e = (a + per_lane).min(l.tokens.len());
                if e > a {
                    spans.push((ids.len(), e - a, s));
                    ids.extend_from_slice(&l.tokens[a..e]);
                }
            }
            let r_total = ids.len();
            // Token shift: row t takes row t − 1, a lane's first row its state's row (at
            // R + slot); the new state rows are each lane's last row.
            let mut shift = Vec::with_capacity(r_total);
            let mut last = vec![0u32; b];
            let mut keep: Vec<u32> = (0..b as u32).collect();
            for &(r0, rn, s) in &spans {
                let (r0, rn) = (r0 as u32, rn as u32);
                shift.push((r_total + s) as u32);
                shift.extend(r0..r0 + rn - 1);
                last[s] = r0 + rn - 1;
                keep[s] = (b + s) as u32;
            }
            let shift = Tensor::from_vec(shift, r_total, &self.dev)?;
            let ids_t = Tensor::from_vec(ids, r_total, &self.dev)?;
            let last_t = Tensor::from_vec(last, b, &self.dev)?;
            let keep_t = Tensor::from_vec(keep, b, &self.dev)?;
            let spans = self.spans(spans)?;
            // Shifted rows and the updated state rows (lanes not in this step keep theirs).
            let shifted = |xx: &Tensor, st: &mut Tensor| -> candle_core::Result<Tensor> {
                let prev = Tensor::cat(&[xx, &*st], 0)?.index_select(&shift, 0)?;
                let new_rows = xx.index_select(&last_t, 0)?;
                *st = Tensor::cat(&[&*st, &new_rows], 0)?.index_select(&keep_t, 0)?;
                Ok(prev)
            };

            let mut x = self.emb.index_select(&ids_t, 0)?;
            let mut v_first: Option<Tensor> = None;
            for (li, l) in self.layers.iter().enumerate() {
                // Time mix.
                let xx = layer_norm(&x, &l.ln1.0, &l.ln1.1, 1e-5)?;
                let prev = shifted(&xx, &mut att_x[li])?;
                let d = (prev - &xx)?;
                let mixed = |m: &Tensor| xx.broadcast_add(&d.broadcast_mul(m)?);
                let (xr, xw, xk, xv, xa, xg) = (
                    mixed(&l.mix[0])?,
                    mixed(&l.mix[1])?,
                    mixed(&l.mix[2])?,
                    mixed(&l.mix[3])?,
                    mixed(&l.mix[4])?,
                    mixed(&l.mix[5])?,
                );
                let r = linear_t(&xr, &l.wr)?;
                let k = linear_t(&xk, &l.wk)?;
                let mut v = linear_t(&xv, &l.wv)?;
                let w_raw = lora(&lora(&xw, &l.w1)?.tanh()?, &l.w2)?;
                let a_raw = lora(&lora(&xa, &l.a1)?, &l.a2)?;
                let g = lora(&sigmoid(&lora(&xg, &l.g1)?)?, &l.g2)?;
                match (&l.vres, &v_first) {
                    (None, _) => v_first = Some(v.clone()),
                    (Some((v0, v1, v2)), Some(vf)) => {
                        let gate = sigmoid(&lora(&lora(&xv, v1)?, v2)?.broadcast_add(v0)?)?;
                        v = (&v + (vf - &v)?.mul(&gate)?)?;
                    }
                    (Some(_), None) => return Err(candle_core::Error::Msg("layer 0 has a value residual".into())),
                }
                let out = self.wkv([&r, &w_raw, &k, &v, &a_raw, &g], l, &mut wkv[li], &spans, r_total)?;
                x = (x + linear_t(&out, &l.wo)?)?;
                // Channel mix.
                let xx = layer_norm(&x, &l.ln2.0, &l.ln2.1, 1e-5)?;
                let prev = shifted(&xx, &mut ffn_x[li])?;
                let xk = xx.broadcast_add(&(prev - &xx)?.broadcast_mul(&l.ffn_mix)?)?;
                let hidden = linear_t(&xk, &l.ffn_key)?.relu()?.sqr()?;
                x = (x + linear_t(&hidden, &l.ffn_value)?)?;
            }
            debug_assert!(h * n == c);
            // Logits (forward of one lane only): every row, or the last row of the last step.
            let is_last_step = (step + 1) * per_lane >= longest;
            match want {
                Logits::All => {
                    let y = linear_t(&layer_norm(&x, &self.ln_out.0, &self.ln_out.1, 1e-5)?, &self.head)?;
                    logits.extend(y.flatten_all()?.to_vec1::<f32>()?);
                }
                Logits::Last if is_last_step => {
                    let xl = x.narrow(0, r_total - 1, 1)?;
                    let y = linear_t(&layer_norm(&xl, &self.ln_out.0, &self.ln_out.1, 1e-5)?, &self.head)?;
                    logits = y.flatten_all()?.to_vec1::<f32>()?;
                }
                _ => {}
            }
        }
        // The states back to the host.
        for li in 0..self.layers.len() {
            let ax = att_x[li].flatten_all()?.to_vec1::<f32>()?;
            let fx = ffn_x[li].flatten_all()?.to_vec1::<f32>()?;
            let wk = self.download_wkv(&wkv[li])?;
            let wl = h * n * n;
            for (s, lane) in lanes.iter_mut().enumerate() {
                let ls = &mut lane.state.layers[li];
                ls.att_x.copy_from_slice(&ax[s * c..(s + 1) * c]);
                ls.ffn_x.copy_from_slice(&fx[s * c..(s + 1) * c]);
                ls.wkv.copy_from_slice(&wk[s * wl..(s + 1) * wl]);
            }
        }
        for lane in lanes.iter_mut() {
            lane.state.tokens += lane.tokens.len() as u64;
        }
        Ok(logits)
    }

    fn upload_wkv(&self, host: Vec<f32>) -> candle_core::Result<WkvState> {
        #[cfg(feature = "cuda")]
        if let Some(g) = &self.gpu {
            return g.upload(&host).map(WkvState::Gpu);
        }
        Ok(WkvState::Host(host))
    }

    fn download_wkv(&self, st: &WkvState) -> candle_core::Result<Vec<f32>> {
        match st {
            WkvState::Host(v) => Ok(v.clone()),
            #[cfg(feature = "cuda")]
            WkvState::Gpu(s) => self.gpu.as_ref().expect("a GPU state without a GPU").download(s),
        }
    }

    fn spans(&self, host: Vec<(usize, usize, usize)>) -> candle_core::Result<Spans> {
        #[cfg(feature = "cuda")]
        let gpu = match &self.gpu {
            Some(g) => Some(g.spans(&host)?),
            None => None,
        };
        Ok(Spans {
            host,
            #[cfg(feature = "cuda")]
            gpu,
        })
    }

    /// One layer's WKV over the step, on every live lane's rows: `rows` are r, w_raw, k, v (value
    /// residual applied), a_raw and g, each `[R, C]` f32.
    fn wkv(
        &self,
        rows: [&Tensor; 6],
        l: &Layer,
        state: &mut WkvState,
        spans: &Spans,
        r_total: usize,
    ) -> candle_core::Result<Tensor> {
        let c = self.cfg.n_embd;
        let vectors = [&l.w0, &l.a0, &l.k_k, &l.k_a, &l.r_k, &l.lnx.0, &l.lnx.1];
        match state {
            #[cfg(feature = "cuda")]
            WkvState::Gpu(st) => {
                let (g, sp) = (self.gpu.as_ref(), spans.gpu.as_ref());
                let (Some(g), Some(sp)) = (g, sp) else {
                    return Err(candle_core::Error::Msg("a GPU state without a GPU".into()));
                };
                g.wkv(rows, vectors, st, sp, r_total, c)
            }
            WkvState::Host(st) => {
                let host = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
                let [r, w_raw, k_raw, v, a_raw, g] = rows.map(host);
                let [w0, a0, k_k, k_a, r_k, lnx_w, lnx_b] = vectors.map(host);
                let inp = KernelInputs {
                    c,
                    n: self.cfg.head_size,
                    lanes: &spans.host,
                    r: &r?,
                    w_raw: &w_raw?,
                    k_raw: &k_raw?,
                    v: &v?,
                    a_raw: &a_raw?,
                    g: &g?,
                    w0: &w0?,
                    a0: &a0?,
                    k_k: &k_k?,
                    k_a: &k_a?,
                    r_k: &r_k?,
                    lnx_w: &lnx_w?,
                    lnx_b: &lnx_b?,
                };
                let mut out = vec![0f32; r_total * c];
                wkv7_lanes(&inp, st, &mut out);
                Tensor::from_vec(out, (r_total, c), &self.dev)
            }
        }
    }
}

/// About how many GB of device memory the weights take in bf16 (the embedding in f32).
fn model_gb(cfg: &Config) -> f64 {
    let c = cfg.n_embd as f64;
    let per_layer = 4.0 * c * c + 2.0 * c * cfg.d_ffn as f64;
    let lora = 2.0 * c * (cfg.d_decay + cfg.d_aaa + cfg.d_gate + cfg.d_mv) as f64;
    (cfg.n_layer as f64 * (per_layer + lora) * 2.0 + cfg.vocab as f64 * c * 6.0) / 1e9
}

/// `x · Wᵀ` in bf16 (f32 sums), back to f32: `w` is `[out, in]`.
fn linear_t(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    x.to_dtype(DType::BF16)?.matmul(&w.t()?)?.to_dtype(DType::F32)
}

/// `x · W` for an input-major LoRA factor `w` (`[in, out]`).
fn lora(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    x.to_dtype(DType::BF16)?.matmul(w)?.to_dtype(DType::F32)
}

fn sigmoid(x: &Tensor) -> candle_core::Result<Tensor> {
    (x.neg()?.exp()? + 1.0)?.recip()
}

/// Layer norm over the last dimension, `w` and `b` `[1, C]`.
fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let mean = x.mean_keepdim(1)?;
    let d = x.broadcast_sub(&mean)?;
    let var = d.sqr()?.mean_keepdim(1)?;
    d.broadcast_div(&(var + eps)?.sqrt()?)?
        .broadcast_mul(w)?
        .broadcast_add(b)
}

impl BackendModel for CandleV7 {
    fn info(&self) -> ModelInfo {
        self.cfg.info()
    }
    fn wkv_shape(&self) -> Vec<usize> {
        self.cfg.wkv_shape()
    }
    fn forward(&self, tokens: &[u32], state: &mut State, logits: Logits, _chunk: usize) -> Result<Vec<f32>> {
        let mut lanes = [Lane { tokens, state }];
        self.run(&mut lanes, logits).map_err(|e| self.err(e))
    }
    fn forward_lanes(&self, lanes: &mut [Lane<'_>], _chunk: usize) -> Result<()> {
        self.run(lanes, Logits::None).map(|_| ()).map_err(|e| self.err(e))
    }
    fn set_fold_precision(&mut self, _p: FoldPrecision) {}
    fn held(&mut self) -> (usize, &'static str) {
        (self.bytes, "bf16")
    }
    fn v7_config(&self) -> Option<&Config> {
        Some(&self.cfg)
    }
    fn device(&self) -> Device {
        self.device
    }
}
