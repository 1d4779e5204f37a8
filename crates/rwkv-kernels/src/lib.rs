//! The CPU kernels of the RWKV forward pass, independent of any generation.
//!
//! - [`simd`]: run-time dispatch ([`multiversion!`]: one generic body built for AVX-512,
//!   AVX2+FMA and portable code), lane-wise math, bf16/f16 conversions.
//! - [`kernels`]: norms, activations and the WKV recurrences of RWKV-4 and RWKV-5/6.
//! - [`linalg`]: the one entry for projections, [`linalg::linear`], over whatever holds the
//!   weights: f32 ([`linalg::Mat`]), a bf16/f16 file's rows read in place ([`rows16`]; on AMX
//!   tiles where the CPU has them), packed
//!   bf16 or int8 panels ([`panels`]), rwkv.cpp's ggml blocks ([`quant`]), and bf16-input
//!   products for the bf16 fold ([`gemm_bf16`]), integer products for the int8 fold ([`gemm_i8`]).
//!
//! Everything accumulates in f32. The crate reads weights in rwkv-formats' types and knows
//! nothing of models, states or files beyond them.
#![deny(missing_docs)]

pub mod gemm_bf16;
pub mod gemm_i8;
pub mod kernels;
pub mod linalg;
pub mod panels;
pub mod quant;
pub mod rows16;
pub mod simd;
