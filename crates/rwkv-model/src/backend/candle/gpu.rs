//! The CUDA part of the candle backend (feature `cuda`): opening the GPU, the WKV kernel
//! (`v7/wkv7.cu`, compiled once at load with NVRTC) and its launch on device buffers.

use std::panic::AssertUnwindSafe;

use candle_core::cuda_backend::cudarc::driver::{CudaFunction, CudaSlice, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::cudarc::nvrtc;
use candle_core::cuda_backend::{CudaDevice, CudaStorage};
use candle_core::{Device as CDevice, Storage, Tensor};

use super::dev_err;
use crate::error::Result;
use crate::types::Device;
use crate::v7::Config;

/// One GPU and its compiled WKV kernel.
#[derive(Debug)]
pub(super) struct Gpu {
    cuda: CudaDevice,
    func: CudaFunction,
    head_size: usize,
    n_head: usize,
}

/// The live lanes of a step on the GPU: first rows, rows and state slots.
pub(super) struct Spans {
    row0: CudaSlice<i32>,
    rows: CudaSlice<i32>,
    slot: CudaSlice<i32>,
    live: usize,
}

fn msg(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

impl Gpu {
    /// Opens GPU `ordinal` — a named error where there is no driver (cudarc's loader panics
    /// then), no such device, or a driver too old for this build — and compiles the kernel.
    pub(super) fn open(ordinal: usize, cfg: &Config) -> Result<(CDevice, Gpu)> {
        let device = Device::Cuda(ordinal);
        let opened = std::panic::catch_unwind(AssertUnwindSafe(|| CDevice::new_cuda(ordinal)));
        let dev = match opened {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                return Err(dev_err(
                    device,
                    format!(
                        "cannot open the GPU: {e} (is there an NVIDIA GPU number {ordinal}, with a CUDA 13 driver?)"
                    ),
                ));
            }
            Err(_) => {
                return Err(dev_err(
                    device,
                    "CUDA driver library libcuda.so.1 not found (no NVIDIA driver on this machine); use --device cpu",
                ));
            }
        };
        let cuda = match &dev {
            CDevice::Cuda(c) => c.clone(),
            _ => return Err(dev_err(device, "candle opened a non-CUDA device")),
        };
        let n = cfg.head_size;
        let module = format!("rwkv_wkv7_n{n}");
        let compiled = std::panic::catch_unwind(AssertUnwindSafe(|| {
            nvrtc::compile_ptx_with_opts(
                crate::v7::wkv_ref::SOURCE,
                nvrtc::CompileOptions {
                    // PTX of the oldest architecture NVRTC 13 targets: the driver finishes it for
                    // whatever GPU this is.
                    arch: Some("compute_75"),
                    options: vec![format!("-DHEAD_SIZE={n}")],
                    ..Default::default()
                },
            )
        }));
        let ptx = match compiled {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Err(dev_err(device, format!("compiling the WKV kernel with NVRTC: {e}"))),
            Err(_) => {
                return Err(dev_err(
                    device,
                    "NVRTC library libnvrtc.so.13 not found: put the CUDA 13 libraries (cuBLAS, NVRTC) on LD_LIBRARY_PATH",
                ));
            }
        };
        let func = cuda
            .get_or_load_custom_func("wkv7_lanes", &module, &ptx.to_src())
            .map(|f| f.into_cuda_function())
            .map_err(|e| dev_err(device, format!("loading the WKV kernel: {e}")))?;
        Ok((
            dev,
            Gpu {
                cuda,
                func,
                head_size: n,
                n_head: cfg.n_head,
            },
        ))
    }

    pub(super) fn upload(&self, host: &[f32]) -> candle_core::Result<CudaSlice<f32>> {
        self.cuda.clone_htod(host).map_err(msg)
    }

    pub(super) fn download(&self, s: &CudaSlice<f32>) -> candle_core::Result<Vec<f32>> {
        self.cuda.clone_dtoh(s).map_err(msg)
    }

    pub(super) fn spans(&self, host: &[(usize, usize, usize)]) -> candle_core::Result<Spans> {
        let col = |f: fn(&(usize, usize, usize)) -> usize| -> Vec<i32> { host.iter().map(|s| f(s) as i32).collect() };
        Ok(Spans {
            row0: self.cuda.clone_htod(&col(|s| s.0)).map_err(msg)?,
            rows: self.cuda.clone_htod(&col(|s| s.1)).map_err(msg)?,
            slot: self.cuda.clone_htod(&col(|s| s.2)).map_err(msg)?,
            live: host.len(),
        })
    }

    /// The kernel over the step's live lanes: `rows` r, w_raw, k, v, a_raw, g (`[R, C]` f32),
    /// `vectors` w0, a0, k_k, k_a, r_k, ln_x weight and bias (`[1, C]` f32).
    pub(super) fn wkv(
        &self,
        rows: [&Tensor; 6],
        vectors: [&Tensor; 7],
        state: &mut CudaSlice<f32>,
        sp: &Spans,
        r_total: usize,
        c: usize,
    ) -> candle_core::Result<Tensor> {
        let inputs: Vec<Tensor> = rows
            .iter()
            .chain(vectors.iter())
            .map(|t| t.contiguous())
            .collect::<candle_core::Result<_>>()?;
        let mut out = self.cuda.alloc_zeros::<f32>(r_total * c)?;
        {
            let guards: Vec<_> = inputs.iter().map(|t| t.storage_and_layout()).collect();
            let mut views = Vec::with_capacity(guards.len());
            for (st, layout) in &guards {
                let Storage::Cuda(cs) = &**st else {
                    return Err(msg("a WKV input is not on the GPU"));
                };
                let s = cs.as_cuda_slice::<f32>()?;
                views.push(s.slice(layout.start_offset()..));
            }
            let c_arg = c as i32;
            let stream = self.cuda.cuda_stream();
            let mut launch = stream.launch_builder(&self.func);
            launch.arg(&c_arg);
            launch.arg(&sp.row0);
            launch.arg(&sp.rows);
            launch.arg(&sp.slot);
            launch.arg(state);
            for v in &views {
                launch.arg(v);
            }
            launch.arg(&mut out);
            let cfg = LaunchConfig {
                grid_dim: (self.n_head as u32, sp.live as u32, 1),
                block_dim: (self.head_size as u32, 1, 1),
                shared_mem_bytes: 0,
            };
            // SAFETY: the arguments are the kernel's, in its order: sizes and the lanes' row
            // ranges (inside the step's `r_total` rows), the `[B, H, N, N]` states, thirteen
            // f32 inputs of the shapes it reads, and the `[R, C]` output.
            unsafe { launch.launch(cfg) }.map_err(|e| msg(format!("WKV kernel: {e}")))?;
        }
        let storage = CudaStorage::wrap_cuda_slice(out, self.cuda.clone());
        Ok(Tensor::from_storage(
            Storage::Cuda(storage),
            (r_total, c),
            candle_core::op::BackpropOp::none(),
            false,
        ))
    }
}
