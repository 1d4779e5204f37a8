//! `candle-baseline MODEL.safetensors N THREADS`: fold N tokens (the same token formula as
//! `fold-bench`) with candle-transformers 0.11 `rwkv_v7::Model::forward_seq` and print
//! `{"tok_s": .., "tokens": N, "gemm_x86_v4": bool, "last_logits": [..]}` on stdout.

use std::time::Instant;

use candle_core::{DType, Device};
use candle_transformers::models::rwkv_v7 as cv7;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() == 4, "usage: candle-baseline MODEL.safetensors N_TOKENS THREADS");
    let n: usize = args[2].parse()?;
    let dev = Device::Cpu;
    // SAFETY: the model file is written by fold-bench just before and not modified while mapped.
    let vb = unsafe { candle_nn::VarBuilder::from_mmaped_safetensors(&[&args[1]], DType::F32, &dev)? };
    let emb = vb.get_unchecked("emb.weight")?;
    let (vocab, c) = emb.dims2()?;
    let mut n_layer = 0;
    while vb.contains_tensor(&format!("blocks.{n_layer}.att.r_k")) {
        n_layer += 1;
    }
    let head_size = vb.get_unchecked(&format!("blocks.0.att.r_k"))?.dims2()?.1;
    let cfg = cv7::Config {
        version: cv7::ModelVersion::V7,
        vocab_size: vocab,
        hidden_size: c,
        num_hidden_layers: n_layer,
        head_size,
        intermediate_size: None,
        rescale_every: 0,
    };
    let model = cv7::Model::new(&cfg, vb)?;
    let toks: Vec<u32> = (0..n as u64).map(|i| ((i * 2_654_435_761) % vocab as u64) as u32).collect();
    let mut st = cv7::State::new(&cfg, &dev)?;
    model.forward_seq(&toks[..2.min(n)], &mut st)?; // warm-up
    let mut st = cv7::State::new(&cfg, &dev)?;
    let t = Instant::now();
    let logits = model.forward_seq(&toks, &mut st)?;
    let secs = t.elapsed().as_secs_f64();
    let last: Vec<f32> = logits.flatten_all()?.to_vec1()?;
    let out = serde_json::json!({
        "tok_s": n as f64 / secs,
        "tokens": n,
        "threads": args[3],
        "gemm_x86_v4": cfg!(feature = "x86-v4"),
        "last_logits": last,
    });
    println!("{out}");
    Ok(())
}
