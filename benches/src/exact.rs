//! `fold-bench --exact FILE --model PATH --device D`: the model on `D` against the CPU's exact
//! (f32) fold on the same text: bits per token of each, their relative difference, the largest
//! |logit difference|, and the greedy continuations of each. Exit 1 beyond 0.5 %.

use std::path::Path;

use anyhow::Context;
use rwkv_model::tokenizer::KnownTokenizer;
use rwkv_model::{Device, FoldPrecision, LoadOptions, Logits, Model};

/// What the comparison found.
#[derive(serde::Serialize)]
pub struct Exactness {
    /// The checkpoint.
    pub model: String,
    /// The device compared with the CPU.
    pub device: String,
    /// Its fold precision.
    pub fold_precision: String,
    /// Tokens scored.
    pub tokens: usize,
    /// Bits per token, CPU f32 fold.
    pub cpu_bits_per_token: f64,
    /// Bits per token on the device.
    pub device_bits_per_token: f64,
    /// |device − cpu| / cpu, in percent.
    pub bits_diff_percent: f64,
    /// Largest |logit difference| over every position.
    pub max_logit_diff: f32,
    /// Greedy continuation (32 tokens) from each, decoded.
    pub cpu_greedy: String,
    /// See `cpu_greedy`.
    pub device_greedy: String,
    /// Greedy tokens that agree, from the start.
    pub greedy_agree: usize,
    /// Within 0.5 %.
    pub pass: bool,
}

fn bits(logits: &[f32], vocab: usize, tokens: &[u32]) -> f64 {
    let mut total = 0f64;
    for (row, &next) in logits.chunks_exact(vocab).zip(&tokens[1..]) {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let z: f64 = row.iter().map(|&x| (x as f64 - m).exp()).sum();
        total += (z.ln() + m - row[next as usize] as f64) / std::f64::consts::LN_2;
    }
    total / (tokens.len() - 1) as f64
}

fn greedy(model: &Model, tokens: &[u32], steps: usize) -> anyhow::Result<Vec<u32>> {
    let mut st = model.new_state();
    let mut logits = model.forward_seq(tokens, &mut st, Logits::Last)?;
    let mut out = Vec::with_capacity(steps);
    for _ in 0..steps {
        let next = logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i as u32);
        out.push(next);
        logits = model.forward_token(next, &mut st)?;
    }
    Ok(out)
}

/// Runs the comparison on at most `max_tokens` tokens of `text`.
pub fn run(model_path: &Path, text: &Path, device: Device, max_tokens: usize) -> anyhow::Result<Exactness> {
    let cpu = Model::load(model_path).with_context(|| format!("loading {}", model_path.display()))?;
    let mut dev = Model::load_with(model_path, &LoadOptions::default().with_device(device))
        .with_context(|| format!("loading {} on {device}", model_path.display()))?;
    if device == Device::Cpu {
        // On the CPU the comparison is the bf16 fold against the f32 one.
        dev.set_fold_precision(FoldPrecision::Bf16);
    }
    let vocab = cpu.config().vocab;
    let tok = KnownTokenizer::for_model(vocab, cpu.metadata())
        .context("cannot tell the model's tokenizer")?
        .load()?;
    let bytes = std::fs::read(text).with_context(|| format!("reading {}", text.display()))?;
    let mut tokens = tok.encode_bytes(&bytes);
    tokens.truncate(max_tokens);
    anyhow::ensure!(tokens.len() >= 2, "{}: fewer than 2 tokens", text.display());
    let (mut s1, mut s2) = (cpu.new_state(), dev.new_state());
    let a = cpu.forward_seq(&tokens[..tokens.len() - 1], &mut s1, Logits::All)?;
    let b = dev.forward_seq(&tokens[..tokens.len() - 1], &mut s2, Logits::All)?;
    let max_logit_diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    let (cb, db) = (bits(&a, vocab, &tokens), bits(&b, vocab, &tokens));
    let prompt = &tokens[..tokens.len().min(64)];
    let (g1, g2) = (greedy(&cpu, prompt, 32)?, greedy(&dev, prompt, 32)?);
    let agree = g1.iter().zip(&g2).take_while(|(x, y)| x == y).count();
    let diff = (db - cb).abs() / cb.abs().max(1e-12) * 100.0;
    let text_of = |ids: &[u32]| String::from_utf8_lossy(&tok.decode_bytes(ids)).into_owned();
    Ok(Exactness {
        model: model_path.display().to_string(),
        device: device.to_string(),
        fold_precision: dev.fold_precision().to_string(),
        tokens: tokens.len(),
        cpu_bits_per_token: cb,
        device_bits_per_token: db,
        bits_diff_percent: diff,
        max_logit_diff,
        cpu_greedy: text_of(&g1),
        device_greedy: text_of(&g2),
        greedy_agree: agree,
        pass: diff <= 0.5 && max_logit_diff.is_finite(),
    })
}
