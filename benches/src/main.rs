//! `fold-bench`: RWKV-7 fold speed on a random model of the 0.1B shape, against
//! candle-transformers' `rwkv_v7::Model::forward_seq` on the same weights and against the time
//! of the same matrix products alone (the GEMM-only limit); decode speed with f32 and bf16
//! weights; linear cost and peak memory across fold lengths. Everything from one run.
//!
//! With `--shape 0.1b|0.4b|1.5b|2.9b|7.2b` (or `--model PATH`): a checkpoint file of that real
//! shape instead, measured as a tool loads it (see `real_shape`).

// A command-line tool: printing results to stdout is its job.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use rwkv_bench::{Shape, peak_rss, random_v7, reset_peak_rss, rss, write_safetensors};
use rwkv_model::linalg::{Mat, linear, linear_rounded};
use rwkv_model::{LoadOptions, Logits, Model, Weights};

mod exact;
#[cfg(feature = "cuda")]
mod gpu_gemm;
mod real_shape;

/// Benchmark folding and decoding with a random RWKV-7 0.1B-shaped model.
#[derive(Parser, Debug)]
struct Args {
    /// A real RWKV-7 "G1" shape (0.1b, 0.4b, 1.5b, 2.9b, 7.2b): write a random bf16 checkpoint
    /// of it to a temporary folder and measure load seconds, peak RSS against the file, fold and
    /// decode speed and the bytes of a checkpoint, instead of the 0.1B comparisons.
    #[arg(long)]
    shape: Option<String>,
    /// Measure this checkpoint (as --shape does) instead of generating one.
    #[arg(long)]
    model: Option<std::path::PathBuf>,
    /// With --shape/--model: what the model holds its weights as (auto|f32|bf16|int8).
    #[arg(long, default_value = "auto")]
    weights: Weights,
    /// With --shape/--model: the fold's arithmetic (f32 exact, bf16 or int8).
    #[arg(long, default_value = "f32")]
    fold_precision: rwkv_model::FoldPrecision,
    /// With --shape: how the generated file stores values (bf16|f32).
    #[arg(long, default_value = "bf16")]
    dtype: rwkv_bench::make::FileDType,
    /// With --shape: the folder for the generated file (default: the system's temporary folder).
    #[arg(long)]
    tmp: Option<std::path::PathBuf>,
    /// With --shape: keep the generated file.
    #[arg(long)]
    keep: bool,
    /// With --shape/--model: also run the official `rwkv` package on the same file
    /// (benches/official.py), after ours, and print its figures beside ours.
    #[arg(long)]
    official: bool,
    /// The Python for --official (default: $RWKV_OFFICIAL_PYTHON, else python3).
    #[arg(long)]
    python: Option<String>,
    /// The official script.
    #[arg(long, default_value = "benches/official.py")]
    official_script: std::path::PathBuf,
    /// Tokens per fold measurement (default 1024; with --shape 512 from 1.5B on).
    #[arg(long)]
    tokens: Option<usize>,
    /// Sequence-mode chunk length T.
    #[arg(long, default_value_t = rwkv_model::DEFAULT_CHUNK_LEN)]
    chunk: usize,
    /// Threads (rayon pool, gemm and candle).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Repeats of each timed fold, the median reported (default 3; with --shape 1 from 1.5B on).
    #[arg(long)]
    repeats: Option<usize>,
    /// Tokens for the candle-transformers baseline (it is ~40x slower).
    #[arg(long, default_value_t = 48)]
    candle_tokens: usize,
    /// Skip the candle-transformers baseline.
    #[arg(long)]
    no_candle: bool,
    /// The candle baseline binaries: default build, then with gemm's x86-v4 feature
    /// (see docs/benchmarks.md); missing ones are skipped with a note.
    #[arg(
        long,
        default_value = "benches/candle-baseline/target/release/candle-baseline,benches/candle-baseline/target-v4/release/candle-baseline"
    )]
    candle_bins: String,
    /// Tokens per decode measurement (default 128; with --shape 16 from 1.5B on).
    #[arg(long)]
    decode_tokens: Option<usize>,
    /// Also fold 1K, 16K and 256K tokens to check linear cost and flat memory.
    #[arg(long)]
    linear: bool,
    /// Comma-separated fold lengths for --linear.
    #[arg(long, default_value = "1024,16384,262144")]
    linear_lengths: String,
    /// Weight seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// With --shape/--model: where the model runs (cpu, cuda, cuda:N; cuda needs the CUDA
    /// build, scripts/build-cuda.sh).
    #[arg(long, default_value = "cpu")]
    device: rwkv_model::Device,
    /// With --shape/--model: also fold this many documents at once (Model::forward_lanes) and
    /// report the batched tok/s beside the single document's.
    #[arg(long, default_value_t = 1)]
    lanes: usize,
    /// Exactness instead of speed: fold this text file with --model on --device and on the CPU
    /// (f32), compare bits per token, logits and greedy continuations; exit 1 beyond 0.5 %.
    #[arg(long, value_name = "TEXT")]
    exact: Option<std::path::PathBuf>,
}

#[derive(serde::Serialize, Default)]
struct Report {
    shape: Option<Shape>,
    threads: usize,
    chunk: usize,
    simd: String,
    fold_tokens: usize,
    fold_tok_s: f64,
    gemm_only_tok_s: f64,
    ratio_to_gemm_limit: f64,
    fold_bf16_tok_s: f64,
    gemm_only_bf16_tok_s: f64,
    ratio_bf16_to_gemm_limit: f64,
    bf16_dot_instructions: bool,
    bf16_fold_max_logit_diff: f32,
    bf16_fold_max_abs_logit: f32,
    f32_fma_peak_gflops: f64,
    f32_compute_ceiling_tok_s: f64,
    candle_tokens: usize,
    candle: Vec<CandleRow>,
    decode_f32_tok_s: f64,
    decode_bf16_tok_s: f64,
    decode_bf16_speedup: f64,
    decode_bf16_max_logit_diff: f32,
    decode_int8_tok_s: f64,
    decode_int8_speedup: f64,
    decode_int8_max_logit_diff: f32,
    linear: Vec<LinearRow>,
    peak_rss_mb: f64,
}

#[derive(serde::Serialize)]
struct CandleRow {
    build: String,
    tok_s: f64,
    our_speedup: f64,
    our_bf16_speedup: f64,
    max_logit_diff_vs_ours: f32,
}

#[derive(serde::Serialize)]
struct LinearRow {
    tokens: usize,
    seconds: f64,
    us_per_token: f64,
    tok_s: f64,
    peak_rss_mb: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn tokens(n: usize, vocab: usize) -> Vec<u32> {
    (0..n as u64)
        .map(|i| ((i * 2_654_435_761) % vocab as u64) as u32)
        .collect()
}

fn mb(b: Option<u64>) -> f64 {
    b.unwrap_or(0) as f64 / (1024.0 * 1024.0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // SAFETY: set before any thread exists; candle and gemm read it when they size their pools.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", args.threads.to_string()) };
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()
        .context("rayon pool")?;
    let say = |s: String| {
        if !args.json {
            eprintln!("{s}");
        }
    };
    if let Some(text) = &args.exact {
        let model = args.model.as_deref().context("--exact needs --model")?;
        let r = exact::run(model, text, args.device, args.tokens.unwrap_or(2048))?;
        if args.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!(
                "{} on {} ({} fold) vs CPU f32, {} tokens: bits/token {:.5} vs {:.5} ({:.3} %), max |logit diff| {:.4}, greedy agree {}/32\n  cpu:    {:?}\n  device: {:?}",
                r.model,
                r.device,
                r.fold_precision,
                r.tokens,
                r.device_bits_per_token,
                r.cpu_bits_per_token,
                r.bits_diff_percent,
                r.max_logit_diff,
                r.greedy_agree,
                r.cpu_greedy,
                r.device_greedy
            );
        }
        if !r.pass {
            std::process::exit(1);
        }
        return Ok(());
    }
    if args.shape.is_some() || args.model.is_some() {
        return real_shape_bench(&args, &say);
    }
    let n_tokens = args.tokens.unwrap_or(1024);
    let repeats = args.repeats.unwrap_or(3);
    let decode_tokens = args.decode_tokens.unwrap_or(128);
    let shape = Shape::rwkv7_0b1();
    let mut rep = Report {
        shape: Some(shape),
        threads: args.threads,
        chunk: args.chunk,
        simd: format!("{:?}", rwkv_model::simd::level()),
        fold_tokens: n_tokens,
        candle_tokens: args.candle_tokens,
        ..Default::default()
    };
    say(format!("generating random RWKV-7 weights {shape:?} seed {}", args.seed));
    let map = random_v7(shape, args.seed);
    let mut model = Model::from_tensors(&map)?;
    model.set_chunk_len(args.chunk);

    // Candle baselines run as separate processes on the same weights, written to a file.
    let mut candle_raw: Vec<(String, f64, f32)> = Vec::new();
    if !args.no_candle {
        let dir = std::env::temp_dir().join(format!("fold-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("random-0b1.safetensors");
        write_safetensors(&map, &file)?;
        let toks = tokens(args.candle_tokens, shape.vocab);
        let mut st = model.new_state();
        let ours = model.forward_seq(&toks, &mut st, Logits::Last)?;
        for bin in args.candle_bins.split(',') {
            if !std::path::Path::new(bin).is_file() {
                say(format!(
                    "candle baseline {bin} not built; skipped (see docs/benchmarks.md)"
                ));
                continue;
            }
            let out = std::process::Command::new(bin)
                .arg(&file)
                .arg(args.candle_tokens.to_string())
                .arg(args.threads.to_string())
                .env("RAYON_NUM_THREADS", args.threads.to_string())
                .output()
                .with_context(|| format!("running {bin}"))?;
            anyhow::ensure!(
                out.status.success(),
                "{bin} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
            let tok_s = v["tok_s"].as_f64().context("tok_s")?;
            let logits: Vec<f32> = v["last_logits"]
                .as_array()
                .context("logits")?
                .iter()
                .map(|x| x.as_f64().unwrap_or(f64::NAN) as f32)
                .collect();
            let diff = ours
                .iter()
                .zip(&logits)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            let build = if v["gemm_x86_v4"].as_bool() == Some(true) {
                "candle 0.11.1 + gemm x86-v4"
            } else {
                "candle 0.11.1 default"
            };
            say(format!(
                "{build} forward_seq: {tok_s:.1} tok/s ({} tokens); max |logit diff| vs ours {diff:.2e}",
                toks.len()
            ));
            candle_raw.push((build.to_string(), tok_s, diff));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    drop(map);

    // Our fold.
    let toks = tokens(n_tokens, shape.vocab);
    let mut st = model.new_state();
    model.forward_seq(&toks[..args.chunk.min(toks.len())], &mut st, Logits::None)?; // warm-up
    // Fold and GEMM-only runs alternate, so both see the same conditions on a shared machine;
    // each figure is the median of its runs.
    let fold_secs = |model: &Model| -> anyhow::Result<f64> {
        let mut st = model.new_state();
        let t = Instant::now();
        model.forward_seq(&toks, &mut st, Logits::None)?;
        Ok(t.elapsed().as_secs_f64())
    };
    let fold_and_gemm = |model: &Model, gemm: &GemmOnly| -> anyhow::Result<(f64, f64)> {
        gemm.secs(n_tokens.min(args.chunk)); // warm-up
        let (mut f, mut g) = (Vec::new(), Vec::new());
        for _ in 0..repeats {
            f.push(fold_secs(model)?);
            g.push(gemm.secs(n_tokens));
        }
        Ok((n_tokens as f64 / median(f), n_tokens as f64 / median(g)))
    };
    (rep.fold_tok_s, rep.gemm_only_tok_s) = fold_and_gemm(&model, &GemmOnly::new(shape, args.chunk, false))?;
    say(format!(
        "ours fold: {:.1} tok/s ({} tokens, chunk {}, {} threads, {})",
        rep.fold_tok_s, n_tokens, args.chunk, args.threads, rep.simd
    ));
    rep.ratio_to_gemm_limit = rep.fold_tok_s / rep.gemm_only_tok_s;
    say(format!(
        "GEMM-only limit: {:.1} tok/s; ours = {:.3} of it",
        rep.gemm_only_tok_s, rep.ratio_to_gemm_limit
    ));
    rep.f32_fma_peak_gflops = rwkv_bench::fma_peak_gflops(args.threads);
    rep.f32_compute_ceiling_tok_s = rep.f32_fma_peak_gflops * 1e9 / shape.fold_flops_per_token();
    say(format!(
        "f32 compute ceiling: FMA peak {:.0} GFLOP/s ÷ {:.1} MFLOP/token = {:.0} tok/s (no f32 fold can pass it)",
        rep.f32_fma_peak_gflops,
        shape.fold_flops_per_token() / 1e6,
        rep.f32_compute_ceiling_tok_s
    ));

    // The bf16 fold (opt-in): same chunks, products with bf16 inputs and f32 sums.
    let fold_last = |m: &Model| -> anyhow::Result<Vec<f32>> {
        let mut st = m.new_state();
        Ok(m.forward_seq(&toks, &mut st, Logits::Last)?)
    };
    let exact_logits = fold_last(&model)?;
    model.set_fold_precision(rwkv_model::FoldPrecision::Bf16);
    rep.bf16_dot_instructions = rwkv_model::gemm_bf16::available();
    let bf16_logits = fold_last(&model)?;
    rep.bf16_fold_max_logit_diff = exact_logits
        .iter()
        .zip(&bf16_logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    rep.bf16_fold_max_abs_logit = exact_logits.iter().fold(0f32, |m, x| m.max(x.abs()));
    (rep.fold_bf16_tok_s, rep.gemm_only_bf16_tok_s) = fold_and_gemm(&model, &GemmOnly::new(shape, args.chunk, true))?;
    rep.ratio_bf16_to_gemm_limit = rep.fold_bf16_tok_s / rep.gemm_only_bf16_tok_s;
    model.set_fold_precision(rwkv_model::FoldPrecision::F32);
    say(format!(
        "ours bf16 fold (opt-in, {}): {:.1} tok/s; its GEMM-only limit {:.1} tok/s, ratio {:.3}; max |logit diff| vs f32 fold {:.3e} (logits up to {:.2})",
        if rep.bf16_dot_instructions {
            "vdpbf16ps"
        } else {
            "portable loop: no AVX512-BF16"
        },
        rep.fold_bf16_tok_s,
        rep.gemm_only_bf16_tok_s,
        rep.ratio_bf16_to_gemm_limit,
        rep.bf16_fold_max_logit_diff,
        rep.bf16_fold_max_abs_logit
    ));
    for (build, tok_s, diff) in candle_raw {
        say(format!(
            "speed-up vs {build}: f32 fold {:.1}x, bf16 fold {:.1}x",
            rep.fold_tok_s / tok_s,
            rep.fold_bf16_tok_s / tok_s
        ));
        rep.candle.push(CandleRow {
            build,
            tok_s,
            our_speedup: rep.fold_tok_s / tok_s,
            our_bf16_speedup: rep.fold_bf16_tok_s / tok_s,
            max_logit_diff_vs_ours: diff,
        });
    }

    // Decode, f32 then bf16 then int8 weights; each returns tokens/s and the last logits.
    let dt = tokens(decode_tokens + 4, shape.vocab);
    let decode = |m: &Model| -> anyhow::Result<(f64, Vec<f32>)> {
        let mut st = m.new_state();
        for &t in &dt[..4] {
            m.forward_token(t, &mut st)?;
        }
        let t0 = Instant::now();
        let mut last = Vec::new();
        for &t in &dt[4..] {
            last = m.forward_token(t, &mut st)?;
        }
        Ok((decode_tokens as f64 / t0.elapsed().as_secs_f64(), last))
    };
    let max_diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    let (f32_tok_s, f32_logits) = decode(&model)?;
    rep.decode_f32_tok_s = f32_tok_s;
    // The same weights held as bf16 and as int8 (the map was dropped to keep RSS figures clean).
    let held =
        |w: Weights| Model::from_tensors_with(&random_v7(shape, args.seed), &LoadOptions::default().with_weights(w));
    let (bf16_tok_s, bf16_logits) = decode(&held(Weights::Bf16)?)?;
    rep.decode_bf16_tok_s = bf16_tok_s;
    rep.decode_bf16_speedup = rep.decode_bf16_tok_s / rep.decode_f32_tok_s;
    rep.decode_bf16_max_logit_diff = max_diff(&f32_logits, &bf16_logits);
    let (int8_tok_s, int8_logits) = decode(&held(Weights::Int8)?)?;
    rep.decode_int8_tok_s = int8_tok_s;
    rep.decode_int8_speedup = int8_tok_s / rep.decode_f32_tok_s;
    rep.decode_int8_max_logit_diff = max_diff(&f32_logits, &int8_logits);
    say(format!(
        "decode: f32 {:.1} tok/s, bf16 {:.1} tok/s ({:.2}x; max |logit diff| {:.1e}), int8 per-row {:.1} tok/s ({:.2}x; max |logit diff| {:.1e})",
        rep.decode_f32_tok_s,
        rep.decode_bf16_tok_s,
        rep.decode_bf16_speedup,
        rep.decode_bf16_max_logit_diff,
        rep.decode_int8_tok_s,
        rep.decode_int8_speedup,
        rep.decode_int8_max_logit_diff
    ));

    if args.linear {
        for n in args
            .linear_lengths
            .split(',')
            .filter_map(|s| s.trim().parse::<usize>().ok())
        {
            let toks = tokens(n, shape.vocab);
            reset_peak_rss();
            let before = rss();
            let mut st = model.new_state();
            let t = Instant::now();
            model.forward_seq(&toks, &mut st, Logits::Last)?;
            let secs = t.elapsed().as_secs_f64();
            let row = LinearRow {
                tokens: n,
                seconds: secs,
                us_per_token: secs * 1e6 / n as f64,
                tok_s: n as f64 / secs,
                peak_rss_mb: mb(peak_rss()),
            };
            say(format!(
                "linear: {n} tokens in {secs:.2} s = {:.1} us/token ({:.1} tok/s), peak RSS {:.1} MB (RSS before {:.1} MB)",
                row.us_per_token,
                row.tok_s,
                row.peak_rss_mb,
                mb(before)
            ));
            rep.linear.push(row);
        }
    }
    rep.peak_rss_mb = mb(peak_rss());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        println!(
            "fold {:.1} tok/s, GEMM-only {:.1} (ratio {:.3}) | bf16 fold {:.1}, GEMM-only {:.1} (ratio {:.3}) | {} | decode f32 {:.1} bf16 {:.1} ({:.2}x) int8 {:.1} ({:.2}x) | peak RSS {:.0} MB",
            rep.fold_tok_s,
            rep.gemm_only_tok_s,
            rep.ratio_to_gemm_limit,
            rep.fold_bf16_tok_s,
            rep.gemm_only_bf16_tok_s,
            rep.ratio_bf16_to_gemm_limit,
            if rep.candle.is_empty() {
                "candle skipped".to_string()
            } else {
                rep.candle
                    .iter()
                    .map(|c| {
                        format!(
                            "{} {:.1} tok/s ({:.1}x, bf16 {:.1}x)",
                            c.build, c.tok_s, c.our_speedup, c.our_bf16_speedup
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" | ")
            },
            rep.decode_f32_tok_s,
            rep.decode_bf16_tok_s,
            rep.decode_bf16_speedup,
            rep.decode_int8_tok_s,
            rep.decode_int8_speedup,
            rep.peak_rss_mb
        );
    }
    Ok(())
}

/// `--shape`/`--model`: one real-shape measurement, printed as a table row or JSON.
fn real_shape_bench(args: &Args, say: &dyn Fn(String)) -> anyhow::Result<()> {
    let python = args.official.then(|| {
        args.python
            .clone()
            .or_else(|| std::env::var("RWKV_OFFICIAL_PYTHON").ok())
            .unwrap_or_else(|| "python3".into())
    });
    let plan = real_shape::Plan {
        shape: args.shape.clone(),
        model: args.model.clone(),
        weights: args.weights,
        dtype: args.dtype,
        seed: args.seed,
        tmp: args.tmp.clone(),
        keep: args.keep,
        tokens: args.tokens,
        repeats: args.repeats,
        decode_tokens: args.decode_tokens,
        chunk: args.chunk,
        threads: args.threads,
        official: python,
        official_script: args.official_script.clone(),
        device: args.device,
        lanes: args.lanes.max(1),
        fold_precision: args.fold_precision,
    };
    let row = real_shape::run(&plan, say)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&row)?);
    } else {
        println!("{}\n{}", real_shape::HEADER, real_shape::table_row(&row));
        if !row.logits_finite {
            println!("warning: some logits were not finite");
        }
    }
    Ok(())
}

/// The fold's matrix products alone: per chunk and layer, r/k/v/o, the four LoRAs and the
/// FFN, on weights of the same shapes, through the same kernels: `linear` (the gemm crate),
/// or with `bf16` the bf16 fold's `linear_rounded` on inputs rounded beforehand (the fold
/// rounds them where they are made).
struct GemmOnly {
    layers: Vec<Vec<Mat>>,
    x: Vec<f32>,
    /// `x` rounded to bf16 pairs, for the bf16 products.
    words: Option<Vec<u32>>,
    chunk: usize,
}

impl GemmOnly {
    fn new(shape: Shape, chunk: usize, bf16: bool) -> Self {
        let c = shape.n_embd;
        let f = 4 * c;
        let [dw, da, dv, dg] = shape.lora;
        let mk = |rows: usize, cols: usize| {
            let mut m = Mat::from_transposed(
                rows,
                cols,
                (0..rows * cols).map(|i| ((i % 97) as f32 - 48.0) * 1e-3).collect(),
            );
            if bf16 {
                m.enable_bf16_fold();
            }
            m
        };
        let layers = (0..shape.n_layer)
            .map(|i| {
                let mut v = vec![mk(c, c), mk(c, c), mk(c, c), mk(c, c), mk(f, c), mk(c, f)];
                for d in [dw, da, dg] {
                    v.push(mk(d, c));
                    v.push(mk(c, d));
                }
                if i > 0 {
                    v.push(mk(dv, c));
                    v.push(mk(c, dv));
                }
                v
            })
            .collect();
        let x = vec![0.01f32; chunk * f];
        let words = bf16.then(|| {
            let mut w = vec![0u32; x.len() / 2];
            rwkv_model::gemm_bf16::round_into(&x, &mut w);
            w
        });
        GemmOnly {
            layers,
            x,
            words,
            chunk,
        }
    }

    /// Seconds for the products of an `n_tokens` fold, timed on a pool worker as the fold runs
    /// (see `Model::forward_seq`), so neither pays a thread wake-up per product.
    fn secs(&self, n_tokens: usize) -> f64 {
        let mut y = vec![0f32; self.x.len()];
        let mut secs = 0.0;
        rayon::scope(|_| {
            let t0 = Instant::now();
            let mut left = n_tokens;
            while left > 0 {
                let t = left.min(self.chunk);
                for l in &self.layers {
                    for m in l {
                        match &self.words {
                            Some(w) => linear_rounded(&w[..t * m.cols().div_ceil(2)], t, m, &mut y[..t * m.rows()]),
                            None => linear(&self.x[..t * m.cols()], t, m, &mut y[..t * m.rows()]),
                        }
                    }
                }
                left -= t;
            }
            secs = t0.elapsed().as_secs_f64();
        });
        std::hint::black_box(&y);
        secs
    }
}
