//! The GEMM-only limit on the GPU: the bf16 products of one RWKV-7 fold step (every layer's
//! projections, LoRAs and FFN; no head) for `rows` rows, timed on the same device through the
//! same candle `matmul`, as tokens per second. What a fold could reach if everything else
//! (norms, shifts, the WKV recurrence, the state round trip) were free.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rwkv_model::V7Config;

/// Tokens per second of the products alone at `rows` rows per step.
pub fn tok_s(cfg: &V7Config, ordinal: usize, rows: usize) -> anyhow::Result<f64> {
    let dev = Device::new_cuda(ordinal)?;
    let c = cfg.n_embd;
    let mat = |o: usize, i: usize| Tensor::randn(0f32, 0.02, (o, i), &dev).and_then(|t| t.to_dtype(DType::BF16));
    // Four layers' worth of distinct weights, cycled (more than the GPU's L2 holds).
    let distinct = cfg.n_layer.min(4);
    let mut layers = Vec::new();
    for _ in 0..distinct {
        let mut w = Vec::new();
        for (o, i) in [(c, c), (c, c), (c, c), (c, c), (cfg.d_ffn, c), (c, cfg.d_ffn)] {
            w.push(mat(o, i)?);
        }
        for d in [cfg.d_decay, cfg.d_aaa, cfg.d_gate, cfg.d_mv] {
            w.push(mat(d, c)?);
            w.push(mat(c, d)?);
        }
        layers.push(w);
    }
    let x = Tensor::randn(0f32, 1.0, (rows, c), &dev)?.to_dtype(DType::BF16)?;
    let xf = Tensor::randn(0f32, 1.0, (rows, cfg.d_ffn), &dev)?.to_dtype(DType::BF16)?;
    let step = || -> anyhow::Result<()> {
        for li in 0..cfg.n_layer {
            let w = &layers[li % distinct];
            for m in &w[..4] {
                x.matmul(&m.t()?)?;
            }
            x.matmul(&w[4].t()?)?;
            xf.matmul(&w[5].t()?)?;
            for pair in w[6..].chunks(2) {
                let lo = x.matmul(&pair[0].t()?)?;
                lo.matmul(&pair[1].t()?)?;
            }
        }
        dev.synchronize()?;
        Ok(())
    };
    step()?; // warm-up (cuBLAS picks its kernels)
    let reps = 3;
    let t = Instant::now();
    for _ in 0..reps {
        step()?;
    }
    Ok((reps * rows) as f64 / t.elapsed().as_secs_f64())
}
