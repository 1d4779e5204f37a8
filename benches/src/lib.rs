//! Helpers for the benchmarks: random RWKV-7 models generated from a seed (never committed).

use std::collections::BTreeMap;
use std::path::Path;

use rwkv_model::tensor::{DType, RawTensor, TensorMap};

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
    /// The RWKV-7 0.1B shape: 12 layers, width 768, 12 heads of 64, vocab 65536, LoRA 64/64/32/128.
    pub fn rwkv7_0b1() -> Self {
        Shape {
            n_layer: 12,
            n_embd: 768,
            head_size: 64,
            vocab: 65536,
            lora: [64, 64, 32, 128],
        }
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

/// splitmix64-based uniform floats in [-1, 1).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// Official-layout tensors of a random RWKV-7 model, values scaled like a trained model's
/// (so activations stay finite over long folds), deterministic for a seed.
pub fn random_v7(shape: Shape, seed: u64) -> TensorMap {
    let mut rng = Rng(seed);
    let c = shape.n_embd;
    let f = 4 * c;
    let h = c / shape.head_size;
    let [dw, da, dv, dg] = shape.lora;
    let mut t = BTreeMap::new();
    let mut add = |name: String, dims: Vec<usize>, scale: f32, offset: f32| {
        let n: usize = dims.iter().product();
        let data: Vec<u8> = (0..n)
            .flat_map(|_| (offset + scale * rng.next()).to_le_bytes())
            .collect();
        t.insert(
            name,
            RawTensor {
                dtype: DType::F32,
                shape: dims,
                data: data.into(),
            },
        );
    };
    let s = 1.0 / (c as f32).sqrt();
    add("emb.weight".into(), vec![shape.vocab, c], 1e-2, 0.0);
    add("blocks.0.ln0.weight".into(), vec![c], 0.1, 1.0);
    add("blocks.0.ln0.bias".into(), vec![c], 0.1, 0.0);
    for i in 0..shape.n_layer {
        let a = format!("blocks.{i}.att.");
        let p = format!("blocks.{i}.");
        for n in ["ln1", "ln2"] {
            add(format!("{p}{n}.weight"), vec![c], 0.1, 1.0);
            add(format!("{p}{n}.bias"), vec![c], 0.1, 0.0);
        }
        for n in ["x_r", "x_w", "x_k", "x_v", "x_a", "x_g"] {
            add(format!("{a}{n}"), vec![1, 1, c], 0.5, 0.5);
        }
        add(format!("{a}w0"), vec![1, 1, c], 1.0, -1.0);
        add(format!("{a}a0"), vec![1, 1, c], 0.5, 0.0);
        add(format!("{a}v0"), vec![1, 1, c], 0.5, 0.0);
        add(format!("{a}k_k"), vec![1, 1, c], 0.2, 0.8);
        add(format!("{a}k_a"), vec![1, 1, c], 0.2, 1.0);
        add(format!("{a}r_k"), vec![h, shape.head_size], 0.5, 0.0);
        for (n, d) in [("w", dw), ("a", da), ("v", dv), ("g", dg)] {
            add(format!("{a}{n}1"), vec![c, d], s, 0.0);
            add(format!("{a}{n}2"), vec![d, c], 1.0 / (d as f32).sqrt(), 0.0);
        }
        for n in ["receptance", "key", "value", "output"] {
            add(format!("{a}{n}.weight"), vec![c, c], s, 0.0);
        }
        add(format!("{a}ln_x.weight"), vec![c], 0.1, 1.0);
        add(format!("{a}ln_x.bias"), vec![c], 0.1, 0.0);
        add(format!("{p}ffn.x_k"), vec![1, 1, c], 0.5, 0.5);
        add(format!("{p}ffn.key.weight"), vec![f, c], s, 0.0);
        add(format!("{p}ffn.value.weight"), vec![c, f], 1.0 / (f as f32).sqrt(), 0.0);
    }
    add("ln_out.weight".into(), vec![c], 0.1, 1.0);
    add("ln_out.bias".into(), vec![c], 0.1, 0.0);
    add("head.weight".into(), vec![shape.vocab, c], s, 0.0);
    TensorMap {
        path: Path::new("<random>").to_path_buf(),
        tensors: t,
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
