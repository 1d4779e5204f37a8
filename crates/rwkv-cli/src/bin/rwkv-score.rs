//! `rwkv-score FILE`: the model's average negative log-likelihood of a file read from a zero
//! state (tokens, bits per token, bits per byte), like llama.cpp's perplexity tool.

// A command-line tool: printing results to stdout is its job.
#![allow(clippy::print_stdout)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use rwkv_cli::{
    ExitCode, Loaded, LogArgs, TOKENIZER_HELP, WeightArgs, choose_tokenizer, finish, init_logging, load_model,
    peak_rss_bytes, resolve_model_path,
};
use rwkv_model::likelihood;

/// Score a file with an RWKV model: average negative log-likelihood from a zero state.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The file to score (read as bytes; any encoding).
    file: PathBuf,
    /// Model checkpoint (.pth, .safetensors, rwkv.cpp .bin, or hf:OWNER/REPO/FILE from the hub).
    /// Default: $RWKV_MODEL, else the bundled demo model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Tokenizer.
    #[arg(long, default_value = "auto", help = TOKENIZER_HELP)]
    tokenizer: String,
    /// Tokens per sequence-mode chunk.
    #[arg(long, default_value_t = rwkv_model::DEFAULT_CHUNK_LEN)]
    chunk: usize,
    /// Arithmetic of the fold: f32 (exact against the official implementation), bf16
    /// (products with bf16 inputs: about twice as fast on CPUs with AVX512-BF16, approximate) or
    /// int8 (int8 weights and inputs, integer products: the fastest fold on AVX2 CPUs,
    /// approximate).
    #[arg(long, default_value = "f32")]
    fold_precision: rwkv_model::FoldPrecision,
    #[command(flatten)]
    weights: WeightArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(serde::Serialize)]
struct Report {
    file: String,
    model: String,
    fingerprint: String,
    fold_precision: rwkv_model::FoldPrecision,
    weights: String,
    weight_bytes: usize,
    load_seconds: f64,
    peak_rss_bytes: Option<u64>,
    tokenizer: String,
    bytes: usize,
    tokens: usize,
    scored_tokens: usize,
    scored_bytes: usize,
    nll_nats: f64,
    bits_per_token: f64,
    bits_per_byte: f64,
    perplexity: f64,
    seconds: f64,
    tokens_per_second: f64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    init_logging(&args.log);
    finish("rwkv-score", run(&args))
}

fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let (model_path, demo) = resolve_model_path(args.model.as_deref())?;
    if demo && !args.json {
        eprintln!("note: using the bundled demo model; real scores need a real checkpoint (--model)");
    }
    let Loaded {
        mut model,
        load_seconds,
    } = load_model(
        &model_path,
        args.weights.resolve(None)?,
        args.weights.resolve_device(None)?,
    )?;
    model.set_chunk_len(args.chunk);
    model.set_fold_precision(args.fold_precision);
    let tokenizer = choose_tokenizer(&args.tokenizer, &model)?;
    let bytes = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let tokens = tokenizer.encode_bytes(&bytes);
    if tokens.len() < 2 {
        bail!(
            "{}: needs at least two tokens to score, has {}",
            args.file.display(),
            tokens.len()
        );
    }

    // Token i+1 is scored by the logits after token i, read in pieces so memory stays bounded.
    let start = Instant::now();
    let progress = std::io::stderr().is_terminal() && !args.json;
    let scored = tokens.len() - 1;
    let mut state = model.new_state();
    let piece = likelihood::piece_tokens(model.config().vocab);
    let ll = likelihood::log_likelihood(&model, &mut state, &tokens, 1, piece, |done| {
        if progress {
            eprint!(
                "\rscoring: {:>5.1}%  {:.0} tokens/s",
                100.0 * done as f64 / scored as f64,
                done as f64 / start.elapsed().as_secs_f64()
            );
        }
    })?;
    if progress {
        eprintln!();
    }
    let seconds = start.elapsed().as_secs_f64();
    let scored_bytes = tokenizer.decode_bytes(&tokens[1..]).len();
    let r = Report {
        file: args.file.display().to_string(),
        model: model_path.display().to_string(),
        fingerprint: model.fingerprint().to_string(),
        fold_precision: model.fold_precision(),
        weights: model.held_weights().to_string(),
        weight_bytes: model.weight_bytes(),
        load_seconds,
        peak_rss_bytes: peak_rss_bytes(),
        tokenizer: tokenizer.id().to_string(),
        bytes: bytes.len(),
        tokens: tokens.len(),
        scored_tokens: scored,
        scored_bytes,
        nll_nats: ll.nats_per_token(),
        bits_per_token: ll.bits_per_token(),
        bits_per_byte: ll.bits_per_byte(scored_bytes),
        perplexity: ll.perplexity(),
        seconds,
        tokens_per_second: scored as f64 / seconds.max(1e-9),
    };
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("file            {}", r.file);
        println!("model           {} ({})", r.model, r.fingerprint);
        println!("tokenizer       {}", r.tokenizer);
        println!("fold precision  {}", r.fold_precision);
        println!(
            "weights         {} ({:.2} GB, loaded in {:.2} s)",
            r.weights,
            r.weight_bytes as f64 / 1e9,
            r.load_seconds
        );
        println!(
            "tokens          {} ({} scored, {} bytes)",
            r.tokens, r.scored_tokens, r.scored_bytes
        );
        println!("nll             {:.6} nats/token", r.nll_nats);
        println!("bits per token  {:.6}", r.bits_per_token);
        println!("bits per byte   {:.6}", r.bits_per_byte);
        println!("perplexity      {:.4}", r.perplexity);
        println!(
            "time            {:.3} s ({:.0} tokens/s)",
            r.seconds, r.tokens_per_second
        );
        if let Some(p) = r.peak_rss_bytes {
            println!("peak memory     {:.2} GB", p as f64 / 1e9);
        }
    }
    Ok(ExitCode::Success)
}
