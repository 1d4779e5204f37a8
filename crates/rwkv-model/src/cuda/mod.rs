//! The CUDA backend (feature `cuda`): RWKV-7 on one NVIDIA GPU through candle-core.
//!
//! Weights are uploaded once: every matrix as a bf16 `candle_core::Tensor` (the products are
//! cuBLAS bf16 GEMMs with f32 sums, through candle's `matmul`), the vectors as f32, the embedding
//! as f32 rows already normalised by `ln0`. A forward call uploads the lanes' host states (the
//! host [`State`] stays the truth between calls), runs one step per `GPU_CHUNK` tokens of every
//! lane — all lanes' rows in one `[R, C]` matrix, so each projection, LoRA and FFN product is one
//! GEMM per step —, and downloads the states at the end. Norms, token shifts (one `index_select`
//! over `[rows; lane states]`), activations and residuals are candle ops; the WKV recurrence is
//! our kernel (`v7/wkv7.cu`, compiled at load with NVRTC; its CPU reference is `v7/wkv_ref.rs`),
//! one block per (lane, head), one thread per state row, f32 state.
//!
//! The fingerprint and the configuration come from the CPU loader run on the same tensors (so a
//! GPU model is the same model as on the CPU); its weights are then dropped.

use std::panic::AssertUnwindSafe;

use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::cudarc::nvrtc;
use candle_core::cuda_backend::{CudaDevice, cudarc};
use candle_core::{DType, Device as CDevice, Storage, Tensor};

use crate::backend::Forward;
use crate::error::{Error, Result};
use crate::state::State;
use crate::tensor::{DType as FileDType, TensorMap, to_f32};
use crate::types::{Device, FoldPrecision, Generation, Lane, Logits, ModelInfo};
use crate::v7::{Config, V7};

/// Tokens per lane per step on the GPU: steps want many rows (the products' efficiency), and
/// the state round trip is once per call, not per step.
pub const GPU_CHUNK: usize = 1024;

/// Most rows of one step (lanes × tokens), bounding the activations' memory.
pub const GPU_STEP_ROWS: usize = 32 * 1024;

/// One layer's weights on the GPU.
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

/// RWKV-7 on a CUDA GPU.
#[derive(Debug)]
pub(crate) struct CudaV7 {
    cfg: Config,
    ordinal: usize,
    dev: CDevice,
    cuda: CudaDevice,
    /// `[vocab, C]` f32, normalised by ln0.
    emb: Tensor,
    layers: Vec<Layer>,
    ln_out: (Tensor, Tensor),
    /// `[vocab, C]` bf16.
    head: Tensor,
    bytes: usize,
}

fn dev_err(ordinal: usize, reason: impl std::fmt::Display) -> Error {
    Error::Device {
        device: format!("cuda:{ordinal}"),
        reason: reason.to_string(),
    }
}

/// Opens GPU `ordinal`: a named error where there is no driver (cudarc's loader panics then),
/// no such device, or a driver too old for this build.
fn open_device(ordinal: usize) -> Result<CDevice> {
    let opened = std::panic::catch_unwind(AssertUnwindSafe(|| CDevice::new_cuda(ordinal)));
    match opened {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(dev_err(
            ordinal,
            format!("cannot open the GPU: {e} (is there an NVIDIA GPU number {ordinal}, with a CUDA 13 driver?)"),
        )),
        Err(_) => Err(dev_err(
            ordinal,
            "CUDA driver library libcuda.so.1 not found (no NVIDIA driver on this machine); use --device cpu",
        )),
    }
}

impl CudaV7 {
    /// Loads an RWKV-7 checkpoint onto GPU `ordinal`, feeding the fingerprint `hash` exactly as
    /// the CPU loader does.
    pub(crate) fn load(
        map: &TensorMap,
        weights: crate::Weights,
        ordinal: usize,
        hash: &mut blake3::Hasher,
    ) -> Result<CudaV7> {
        // The CPU loader: configuration, checks and fingerprint of the same tensors.
        let cfg = {
            let cpu = V7::from_tensors(map, weights, hash)?;
            cpu.config().clone()
        };
        let dev = open_device(ordinal)?;
        let cuda = match &dev {
            CDevice::Cuda(c) => c.clone(),
            _ => return Err(dev_err(ordinal, "candle opened a non-CUDA device")),
        };
        let c = cfg.n_embd;
        let mut bytes = 0usize;
        let oom = |name: &str, e: candle_core::Error| {
            dev_err(
                ordinal,
                format!(
                    "uploading {name} of {}: {e} (out of GPU memory? the model needs about {:.1} GB in bf16)",
                    map.path.display(),
                    model_gb(&cfg)
                ),
            )
        };
        let vector = |name: &str| -> Result<Tensor> {
            let t = map.get(name)?;
            let v = to_f32(&map.path, name, t)?;
            let n = v.len();
            Tensor::from_vec(v, (1, n), &dev).map_err(|e| oom(name, e))
        };
        let mut matrix = |name: &str, bytes: &mut usize| -> Result<Tensor> {
            let t = map.get(name)?;
            if t.shape.len() != 2 {
                return Err(Error::Shape {
                    path: map.path.clone(),
                    tensor: name.to_string(),
                    found: t.shape.clone(),
                    expected: vec![0, 0],
                });
            }
            let shape = (t.shape[0], t.shape[1]);
            let up = if t.dtype == FileDType::BF16 {
                Tensor::from_raw_buffer(&t.data[..], DType::BF16, &[shape.0, shape.1], &dev)
            } else {
                let v = to_f32(&map.path, name, t)?;
                Tensor::from_vec(v, shape, &dev).and_then(|x| x.to_dtype(DType::BF16))
            };
            *bytes += shape.0 * shape.1 * 2;
            up.map_err(|e| oom(name, e))
        };
        let emb = {
            let t = map.get("emb.weight")?;
            let v = to_f32(&map.path, "emb.weight", t)?;
            let raw = Tensor::from_vec(v, (cfg.vocab, c), &dev).map_err(|e| oom("emb.weight", e))?;
            let (w, b) = (vector("blocks.0.ln0.weight")?, vector("blocks.0.ln0.bias")?);
            layer_norm(&raw, &w, &b, 1e-5).map_err(|e| oom("emb.weight", e))?
        };
        bytes += cfg.vocab * c * 4;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let p = format!("blocks.{i}.");
            let a = format!("{p}att.");
            let f = format!("{p}ffn.");
            let vec_ = |n: String| vector(&n);
            let ln1 = (vec_(format!("{p}ln1.weight"))?, vec_(format!("{p}ln1.bias"))?);
            let ln2 = (vec_(format!("{p}ln2.weight"))?, vec_(format!("{p}ln2.bias"))?);
            let mix = [
                vec_(format!("{a}x_r"))?,
                vec_(format!("{a}x_w"))?,
                vec_(format!("{a}x_k"))?,
                vec_(format!("{a}x_v"))?,
                vec_(format!("{a}x_a"))?,
                vec_(format!("{a}x_g"))?,
            ];
            let (w0, a0, k_k, k_a, r_k) = (
                vec_(format!("{a}w0"))?,
                vec_(format!("{a}a0"))?,
                vec_(format!("{a}k_k"))?,
                vec_(format!("{a}k_a"))?,
                vec_(format!("{a}r_k"))?,
            );
            let lnx = (vec_(format!("{a}ln_x.weight"))?, vec_(format!("{a}ln_x.bias"))?);
            let ffn_mix = vec_(format!("{f}x_k"))?;
            let v0 = if i == 0 { None } else { Some(vec_(format!("{a}v0"))?) };
            let mut m = |n: String| matrix(&n, &mut bytes);
            let vres = match v0 {
                None => None,
                Some(v0) => Some((v0, m(format!("{a}v1"))?, m(format!("{a}v2"))?)),
            };
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
                wr: m(format!("{a}receptance.weight"))?,
                wk: m(format!("{a}key.weight"))?,
                wv: m(format!("{a}value.weight"))?,
                wo: m(format!("{a}output.weight"))?,
                ffn_key: m(format!("{f}key.weight"))?,
                ffn_value: m(format!("{f}value.weight"))?,
                w1: m(format!("{a}w1"))?,
                w2: m(format!("{a}w2"))?,
                a1: m(format!("{a}a1"))?,
                a2: m(format!("{a}a2"))?,
                g1: m(format!("{a}g1"))?,
                g2: m(format!("{a}g2"))?,
                vres,
            });
        }
        let ln_out = (vector("ln_out.weight")?, vector("ln_out.bias")?);
        let head = matrix("head.weight", &mut bytes)?;
        let model = CudaV7 {
            cfg,
            ordinal,
            dev,
            cuda,
            emb,
            layers,
            ln_out,
            head,
            bytes,
        };
        model.kernel()?;
        Ok(model)
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        dev_err(self.ordinal, e)
    }

    /// The WKV kernel, compiled with NVRTC on first use (candle keeps the loaded module).
    fn kernel(&self) -> Result<cudarc::driver::CudaFunction> {
        let n = self.cfg.head_size;
        let module = format!("rwkv_wkv7_n{n}");
        let src = crate::v7::wkv_ref::SOURCE;
        let ptx = nvrtc::compile_ptx_with_opts(
            src,
            nvrtc::CompileOptions {
                // PTX of the oldest architecture NVRTC 13 targets: the driver finishes it for
                // whatever GPU this is.
                arch: Some("compute_75"),
                options: vec![format!("-DHEAD_SIZE={n}")],
                ..Default::default()
            },
        )
        .map_err(|e| self.err(format!("compiling the WKV kernel with NVRTC: {e}")))?;
        self.cuda
            .get_or_load_custom_func("wkv7_lanes", &module, &ptx.to_src())
            .map(|f| f.into_cuda_function())
            .map_err(|e| self.err(format!("loading the WKV kernel: {e}")))
    }

    /// Folds the lanes (each with its tokens) from their states; the logits of every row of
    /// lane 0 when `all_logits`, else of its last row when `last_logits`.
    fn run(&self, lanes: &mut [Lane<'_>], want: Logits) -> candle_core::Result<Vec<f32>> {
        let c = self.cfg.n_embd;
        let b = lanes.len();
        let (h, n) = (self.cfg.n_head, self.cfg.head_size);
        // The lanes' states on the GPU: token shifts `[B, C]` per layer, WKV `[B, H, N, N]`.
        let mut att_x = Vec::with_capacity(self.layers.len());
        let mut ffn_x = Vec::with_capacity(self.layers.len());
        let mut wkv = Vec::with_capacity(self.layers.len());
        for li in 0..self.layers.len() {
            let gather = |f: &dyn Fn(&State) -> &[f32]| -> Vec<f32> {
                lanes.iter().flat_map(|l| f(l.state).iter().copied()).collect()
            };
            att_x.push(Tensor::from_vec(gather(&|s| &s.layers[li].att_x), (b, c), &self.dev)?);
            ffn_x.push(Tensor::from_vec(gather(&|s| &s.layers[li].ffn_x), (b, c), &self.dev)?);
            wkv.push(self.cuda.clone_htod(&gather(&|s| &s.layers[li].wkv))?);
        }
        let func = self.kernel().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let longest = lanes.iter().map(|l| l.tokens.len()).max().unwrap_or(0);
        let per_lane = GPU_CHUNK.min((GPU_STEP_ROWS / b.max(1)).max(1));
        let mut logits = Vec::new();
        for step in 0..longest.div_ceil(per_lane) {
            // This step's rows: lane by lane, the next `per_lane` tokens of each.
            let (mut ids, mut row0, mut rows, mut slot) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (s, l) in lanes.iter().enumerate() {
                let a = (step * per_lane).min(l.tokens.len());
                let e = (a + per_lane).min(l.tokens.len());
                if e > a {
                    row0.push(ids.len() as i32);
                    rows.push((e - a) as i32);
                    slot.push(s as i32);
                    ids.extend_from_slice(&l.tokens[a..e]);
                }
            }
            let r_total = ids.len();
            let live = slot.len();
            // Token shift: row t takes row t − 1, a lane's first row its state's row (at
            // R + slot); the new state rows are each lane's last row.
            let mut shift = Vec::with_capacity(r_total);
            let mut last = vec![0u32; b];
            let mut keep: Vec<u32> = (0..b as u32).collect();
            for (k, (&r0, &rn)) in row0.iter().zip(&rows).enumerate() {
                let (r0, rn) = (r0 as u32, rn as u32);
                shift.push(r_total as u32 + slot[k] as u32);
                shift.extend(r0..r0 + rn - 1);
                last[slot[k] as usize] = r0 + rn - 1;
                keep[slot[k] as usize] = b as u32 + slot[k] as u32;
            }
            let shift = Tensor::from_vec(shift, r_total, &self.dev)?;
            let ids_t = Tensor::from_vec(ids.clone(), r_total, &self.dev)?;
            let last_t = Tensor::from_vec(last, b, &self.dev)?;
            let keep_t = Tensor::from_vec(keep, b, &self.dev)?;
            let (row0_d, rows_d, slot_d) = (
                self.cuda.clone_htod(&row0)?,
                self.cuda.clone_htod(&rows)?,
                self.cuda.clone_htod(&slot)?,
            );
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
                let out = self.wkv(
                    &func,
                    &r,
                    &w_raw,
                    &k,
                    &v,
                    &a_raw,
                    &g,
                    l,
                    &mut wkv[li],
                    (&row0_d, &rows_d, &slot_d),
                    live,
                    r_total,
                )?;
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
            let wk = self.cuda.clone_dtoh(&wkv[li])?;
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

    /// One layer's WKV over the step: the kernel on every live lane's rows.
    #[allow(clippy::too_many_arguments)]
    fn wkv(
        &self,
        func: &cudarc::driver::CudaFunction,
        r: &Tensor,
        w_raw: &Tensor,
        k: &Tensor,
        v: &Tensor,
        a_raw: &Tensor,
        g: &Tensor,
        l: &Layer,
        state: &mut cudarc::driver::CudaSlice<f32>,
        (row0, rows, slot): (
            &cudarc::driver::CudaSlice<i32>,
            &cudarc::driver::CudaSlice<i32>,
            &cudarc::driver::CudaSlice<i32>,
        ),
        live: usize,
        r_total: usize,
    ) -> candle_core::Result<Tensor> {
        let c = self.cfg.n_embd;
        let inputs = [
            r, w_raw, k, v, a_raw, g, &l.w0, &l.a0, &l.k_k, &l.k_a, &l.r_k, &l.lnx.0, &l.lnx.1,
        ];
        let inputs: Vec<Tensor> = inputs
            .iter()
            .map(|t| t.contiguous())
            .collect::<candle_core::Result<_>>()?;
        let mut out = self.cuda.alloc_zeros::<f32>(r_total * c)?;
        {
            let guards: Vec<_> = inputs.iter().map(|t| t.storage_and_layout()).collect();
            let mut views = Vec::with_capacity(guards.len());
            for (st, layout) in &guards {
                let Storage::Cuda(cs) = &**st else {
                    return Err(candle_core::Error::Msg("a WKV input is not on the GPU".into()));
                };
                let s = cs.as_cuda_slice::<f32>()?;
                views.push(s.slice(layout.start_offset()..));
            }
            let c_arg = c as i32;
            let stream = self.cuda.cuda_stream();
            let mut launch = stream.launch_builder(func);
            launch.arg(&c_arg);
            launch.arg(row0);
            launch.arg(rows);
            launch.arg(slot);
            launch.arg(state);
            for v in &views {
                launch.arg(v);
            }
            launch.arg(&mut out);
            let cfg = LaunchConfig {
                grid_dim: (self.cfg.n_head as u32, live as u32, 1),
                block_dim: (self.cfg.head_size as u32, 1, 1),
                shared_mem_bytes: 0,
            };
            // SAFETY: the arguments are the kernel's, in its order: sizes and the lanes' row
            // ranges (inside the step's `r_total` rows), the `[B, H, N, N]` states, thirteen
            // f32 inputs of the shapes it reads, and the `[R, C]` output.
            unsafe { launch.launch(cfg) }.map_err(|e| candle_core::Error::Msg(format!("WKV kernel: {e}")))?;
        }
        let storage = candle_core::cuda_backend::CudaStorage::wrap_cuda_slice(out, self.cuda.clone());
        Ok(Tensor::from_storage(
            Storage::Cuda(storage),
            (r_total, c),
            candle_core::op::BackpropOp::none(),
            false,
        ))
    }
}

/// About how many GB of GPU memory the weights take in bf16 (the embedding in f32).
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

impl Forward for CudaV7 {
    fn info(&self) -> ModelInfo {
        let c = &self.cfg;
        ModelInfo {
            generation: Generation::V7,
            arch: "x070",
            vocab: c.vocab,
            n_embd: c.n_embd,
            n_layer: c.n_layer,
            n_head: c.n_head,
            head_size: c.head_size,
            d_ffn: c.d_ffn,
            group_norm_eps: Some(64e-5),
        }
    }
    fn wkv_shape(&self) -> Vec<usize> {
        vec![self.cfg.n_head, self.cfg.head_size, self.cfg.head_size]
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
        Device::Cuda(self.ordinal)
    }
}
