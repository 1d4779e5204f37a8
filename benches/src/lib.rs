//! Helpers for the benchmarks: random RWKV-7 models generated from a seed (never committed).

use std::collections::BTreeMap;
use std::path::Path;

use rwkv_model::tensor::{DType, RawTensor, TensorMap};

pub mod make;
pub mod qa;

/// The shape of an RWKV-7 model to generate.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Shape {
    /// Layers.
    pub n_layer: usize,
    /// Width.
    pub n_embd: usize,
    /// Head size (heads = width / head size).
    pub head_size: usize,
    /// Vocabulary.
    pub vocab: usize,
    /// LoRA ranks: decay, a, v, gate.
    pub lora: [usize; 4],
}

impl Shape {
    /// The names [`Shape::named`] knows: the RWKV-7 "G1" sizes.
    pub const NAMES: [&'static str; 5] = ["0.1b", "0.4b", "1.5b", "2.9b", "7.2b"];

    /// A G1 shape by name (`0.1b`, `0.4b`, `1.5b`, `2.9b`, `7.2b`; case-insensitive, the dot
    /// optional: `1b5`, `7b2` work too).
    pub fn named(name: &str) -> Option<Self> {
        let n = name.to_ascii_lowercase();
        let (l, c) = match n.as_str() {
            "0.1b" | "0b1" | "0.1" => (12, 768),
            "0.4b" | "0b4" | "0.4" => (24, 1024),
            "1.5b" | "1b5" | "1.5" => (24, 2048),
            "2.9b" | "2b9" | "2.9" => (32, 2560),
            "7.2b" | "7b2" | "7.2" => (32, 4096),
            _ => return None,
        };
        Some(Self::g1(l, c))
    }

    /// A G1 shape of `n_layer` layers and width `n_embd`: heads of 64, vocab 65536, FFN 4·C,
    /// LoRA ranks by the training code's rule max(32, round(k·x/32)·32) with x = 1.8√C (decay,
    /// a), 1.3√C (value), 0.6·C^0.8 (gate).
    pub fn g1(n_layer: usize, n_embd: usize) -> Self {
        let c = n_embd as f64;
        let rank = |x: f64| ((x / 32.0).round() as usize * 32).max(32);
        Shape {
            n_layer,
            n_embd,
            head_size: 64,
            vocab: 65536,
            lora: [
                rank(1.8 * c.sqrt()),
                rank(1.8 * c.sqrt()),
                rank(1.3 * c.sqrt()),
                rank(0.6 * c.powf(0.8)),
            ],
        }
    }

    /// The RWKV-7 0.1B shape: 12 layers, width 768, 12 heads of 64, vocab 65536, LoRA 64/64/32/128.
    pub fn rwkv7_0b1() -> Self {
        Self::g1(12, 768)
    }

    /// FLOPs of the fold's matrix products per token (2 per multiply-add; the output head,
    /// which a fold runs once, is left out): r, k, v, o, the FFN and the four LoRAs (the value
    /// LoRA from layer 1 on).
    pub fn fold_flops_per_token(&self) -> f64 {
        let c = self.n_embd as f64;
        let [dw, da, dv, dg] = self.lora.map(|d| d as f64);
        let per_layer = 4.0 * c * c + 2.0 * c * 4.0 * c + 2.0 * c * (dw + da + dg);
        2.0 * (per_layer * self.n_layer as f64 + 2.0 * c * dv * (self.n_layer as f64 - 1.0))
    }
}

/// The CPU's f32 multiply-add peak in GFLOP/s on `threads` threads: independent 512-bit FMA
/// chains (256-bit with AVX2 only), nothing loaded from memory; the best of three runs. No f32
/// matrix product can run faster; 0 on other architectures.
pub fn fma_peak_gflops(threads: usize) -> f64 {
    (0..3).map(|_| fma_peak_once(threads)).fold(0.0, f64::max)
}

fn fma_peak_once(threads: usize) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        let wide = std::is_x86_feature_detected!("avx512f");
        let narrow = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
        if !wide && !narrow {
            return 0.0;
        }
        const ITERS: u64 = 50_000_000;
        let t0 = std::time::Instant::now();
        let hs: Vec<_> = (0..threads.max(1))
            .map(|_| {
                std::thread::spawn(move || {
                    // SAFETY: the features were detected above.
                    unsafe {
                        if wide {
                            fma_chains_512(ITERS)
                        } else {
                            fma_chains_256(ITERS)
                        }
                    }
                })
            })
            .collect();
        let sink: f32 = hs.into_iter().map(|h| h.join().unwrap_or(0.0)).sum();
        let secs = t0.elapsed().as_secs_f64();
        let lanes = if wide { 16.0 } else { 8.0 };
        std::hint::black_box(sink);
        threads.max(1) as f64 * ITERS as f64 * 12.0 * lanes * 2.0 / secs / 1e9
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = threads;
        0.0
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fma_chains_512(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_set1_ps(0.0); 12];
    let (a, b) = (_mm512_set1_ps(0.999_999_9), _mm512_set1_ps(1e-7));
    for _ in 0..iters {
        for x in &mut acc {
            *x = _mm512_fmadd_ps(*x, a, b);
        }
    }
    acc.iter().map(|&x| _mm512_reduce_add_ps(x)).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_chains_256(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_set1_ps(0.0); 12];
    let (a, b) = (_mm256_set1_ps(0.999_999_9), _mm256_set1_ps(1e-7));
    for _ in 0..iters {
        for x in &mut acc {
            *x = _mm256_fmadd_ps(*x, a, b);
        }
    }
    let mut out = [0f32; 8];
    let mut s = 0.0;
    for x in acc {
        // SAFETY: `out` holds 8 floats.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), x) };
        s += out.iter().sum::<f32>();
    }
    s
}

/// Official-layout tensors of a random RWKV-7 model in memory, as f32 (the values of
/// [`make::write_model`]'s files for the same shape and seed), deterministic for a seed.
pub fn random_v7(shape: Shape, seed: u64) -> TensorMap {
    let tensors = make::v7_tensors(shape)
        .into_iter()
        .map(|spec| {
            let mut v = vec![0f32; spec.len()];
            make::fill_f32(&spec, seed, 0, &mut v);
            let data: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            let t = RawTensor {
                dtype: DType::F32,
                shape: spec.dims,
                data: data.into(),
            };
            (spec.name, t)
        })
        .collect();
    TensorMap {
        path: Path::new("<random>").to_path_buf(),
        tensors,
        metadata: BTreeMap::new(),
    }
}

/// Peak resident set size of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Current resident set size in bytes (`VmRSS`).
pub fn rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Reset the peak RSS counter (Linux: write 5 to `/proc/self/clear_refs`).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Write a tensor map as an f32 safetensors file (for the candle baseline to map).
pub fn write_safetensors(map: &TensorMap, path: &Path) -> anyhow::Result<()> {
    use safetensors::tensor::TensorView;
    let views = map
        .tensors
        .iter()
        .map(|(k, t)| {
            anyhow::ensure!(t.dtype == DType::F32, "{k}: only f32 tensors are written");
            Ok((
                k.clone(),
                TensorView::new(safetensors::Dtype::F32, t.shape.clone(), &t.data)?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    safetensors::serialize_to_file(views, None::<std::collections::HashMap<String, String>>, path)?;
    Ok(())
}
