//! What a bf16 checkpoint costs: fold `--prefix` tokens of a text, store the state as an f32
//! and as a bf16 state file (the bytes a store writes), read both back, fold the next
//! `--continuation` tokens from each, and compare the continuation's logits (max |Δ|) and its
//! bits per token (cross-entropy, in bits, of the actual next tokens).
//!
//! ```text
//! cargo run --release -p rwkv-model --example state_precision -- \
//!     --text README.md fixtures/models/rwkv7-code-11m.bf16.safetensors ...
//! ```
//!
//! Byte-level models only (every fixture is): token id = byte. Prints one markdown table.

// A measurement tool: printing its table is its job.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};

use rwkv_model::likelihood::log_softmax_at;
use rwkv_model::{Logits, Model, State, StatePrecision};

struct Args {
    text: PathBuf,
    prefix: usize,
    continuation: usize,
    models: Vec<PathBuf>,
}

fn usage() -> ! {
    eprintln!("usage: state_precision [--text FILE] [--prefix N] [--continuation N] MODEL...");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        text: PathBuf::from("README.md"),
        prefix: 2000,
        continuation: 256,
        models: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match x.as_str() {
            "--text" => a.text = PathBuf::from(value()),
            "--prefix" => a.prefix = value().parse().unwrap_or_else(|_| usage()),
            "--continuation" => a.continuation = value().parse().unwrap_or_else(|_| usage()),
            "-h" | "--help" => usage(),
            _ => a.models.push(PathBuf::from(x)),
        }
    }
    if a.models.is_empty() {
        usage();
    }
    a
}

/// Bits per token of `toks[1..]` under `logits` (`[toks.len(), vocab]`, row i predicting
/// token i + 1; the last row predicts nothing).
fn bits_per_token(logits: &[f32], toks: &[u32], vocab: usize) -> f64 {
    let n = toks.len() - 1;
    let nats: f64 = (0..n)
        .map(|i| -f64::from(log_softmax_at(&logits[i * vocab..(i + 1) * vocab], toks[i + 1])))
        .sum();
    nats / n as f64 / std::f64::consts::LN_2
}

struct Row {
    model: String,
    state_bytes: [usize; 2],
    max_state_diff: f32,
    max_logit_diff: f32,
    bits: [f64; 2],
}

fn measure(path: &Path, text: &[u8], prefix: usize, continuation: usize) -> Result<Row, String> {
    let model = Model::load(path).map_err(|e| e.to_string())?;
    let vocab = model.config().vocab;
    if vocab != 256 {
        return Err(format!("{}: vocabulary {vocab}, this tool reads bytes", path.display()));
    }
    let toks: Vec<u32> = text.iter().map(|&b| u32::from(b)).collect();
    // One more than the continuation: its last token is the last one predicted.
    let (pre, cont) = (&toks[..prefix], &toks[prefix..prefix + continuation + 1]);
    let mut exact = model.new_state();
    model
        .forward_seq(pre, &mut exact, Logits::None)
        .map_err(|e| e.to_string())?;
    let spec = model.state_spec();
    let mut sizes = [0; 2];
    let mut logits = Vec::new();
    let mut states = Vec::new();
    for (i, p) in [StatePrecision::F32, StatePrecision::Bf16].into_iter().enumerate() {
        let bytes = exact.to_bytes_as(&spec, "bytes", &[], p);
        sizes[i] = bytes.len();
        let (mut s, _) =
            State::from_bytes(Path::new("mem"), &bytes, &spec, Some("bytes")).map_err(|e| e.to_string())?;
        states.push(s.clone());
        logits.push(
            model
                .forward_seq(cont, &mut s, Logits::All)
                .map_err(|e| e.to_string())?,
        );
    }
    let max_logit_diff = logits[0]
        .iter()
        .zip(&logits[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    Ok(Row {
        model: path
            .file_name()
            .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned()),
        state_bytes: sizes,
        max_state_diff: states[0].max_abs_diff(&states[1]),
        max_logit_diff,
        bits: [
            bits_per_token(&logits[0], cont, vocab),
            bits_per_token(&logits[1], cont, vocab),
        ],
    })
}

fn main() {
    let a = parse_args();
    let text = std::fs::read(&a.text).unwrap_or_else(|e| {
        eprintln!("{}: {e}", a.text.display());
        std::process::exit(2)
    });
    if text.len() < a.prefix + a.continuation + 1 {
        eprintln!(
            "{}: {} bytes, need {}",
            a.text.display(),
            text.len(),
            a.prefix + a.continuation + 1
        );
        std::process::exit(2);
    }
    println!(
        "text `{}`: {} tokens folded, then {} tokens of continuation scored\n",
        a.text.display(),
        a.prefix,
        a.continuation
    );
    println!(
        "| model | state file f32 / bf16 (bytes) | max \\|Δstate\\| | max \\|Δlogit\\| | bits/token exact | bits/token bf16 | Δ bits/token |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut failed = false;
    for m in &a.models {
        match measure(m, &text, a.prefix, a.continuation) {
            Ok(r) => println!(
                "| {} | {} / {} | {:.2e} | {:.2e} | {:.4} | {:.4} | {:+.5} |",
                r.model,
                r.state_bytes[0],
                r.state_bytes[1],
                r.max_state_diff,
                r.max_logit_diff,
                r.bits[0],
                r.bits[1],
                r.bits[1] - r.bits[0]
            ),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
