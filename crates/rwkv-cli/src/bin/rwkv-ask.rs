//! `rwkv-ask "question"`: answer from an ingested store with `path:start-end` citations;
//! `--summarize PATH|all`; `--self-test` (recall against distance).

// A command-line tool: printing results to stdout is its job.
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::bail;
use clap::Parser;
use rwkv_cli::{
    ExitCode, LogArgs, TOKENIZER_HELP, WeightArgs, choose_template, choose_tokenizer, finish, init_logging, load_model,
    resolve_model_path,
};
use rwkv_heads::{AskOptions, Library, Rank, SelfTestOptions, SummaryTarget};
use rwkv_model::sample::SamplerConfig;

/// Answer questions from documents folded by rwkv-ingest.
#[derive(Parser, Debug)]
#[command(name = "rwkv-ask", version, about)]
struct Args {
    /// The question.
    #[arg(required_unless_present_any = ["summarize", "self_test"])]
    question: Option<String>,
    /// Summarize a document, a folder, or `all` instead of answering.
    #[arg(long, value_name = "PATH|all")]
    summarize: Option<String>,
    /// Measure recall against distance (facts planted in filler from the store).
    #[arg(long)]
    self_test: bool,
    /// Distances for --self-test, in tokens (comma-separated).
    #[arg(long, default_value = "100,300,1000,3000,10000,30000,100000", value_delimiter = ',')]
    distances: Vec<usize>,
    /// Trials per distance for --self-test.
    #[arg(long, default_value_t = 3)]
    trials: usize,
    /// Store directory.
    #[arg(long, default_value = ".rwkv")]
    store: PathBuf,
    /// Model checkpoint (.pth, .safetensors, rwkv.cpp .bin, or hf:OWNER/REPO/FILE from the hub);
    /// must be the one the store was made with. Default: $RWKV_MODEL, else the bundled demo model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Tokenizer.
    #[arg(long, default_value = "auto", help = TOKENIZER_HELP)]
    tokenizer: String,
    /// Arithmetic of re-reading the segments: f32 (exact) or bf16 (about twice as fast on
    /// CPUs with AVX512-BF16, approximate). The stored checkpoints are not changed.
    #[arg(long, default_value = "f32")]
    fold_precision: rwkv_model::FoldPrecision,
    #[command(flatten)]
    weights: WeightArgs,
    /// Segments to read.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// Ranking: bm25, model (log-likelihood of the question from each checkpoint) or both.
    #[arg(long, default_value = "bm25", value_parser = ["bm25", "model", "both"])]
    rank: String,
    /// Prompt template: chat (`User: …\n\nAssistant:`), g1 (RWKV-7 G1 chat: the question
    /// cleaned, thinking per --think), plain (`Question: …\nAnswer:`) or auto (g1 for World
    /// models named or marked G1, chat for other World models, plain for base models).
    #[arg(long, default_value = "auto", value_parser = ["auto", "chat", "g1", "plain"])]
    template: String,
    /// G1 models: let the model think before answering (on) or send an empty thought (off).
    #[arg(long, default_value = "off", value_parser = ["off", "on"])]
    think: String,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Nucleus sampling mass.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object (answer, sources, timings) instead of streaming text.
    #[arg(long)]
    json: bool,
    /// Generate an answer (and summaries) even with the bundled demo model, whose generated
    /// text is noise; real checkpoints always generate.
    #[arg(long)]
    generate: bool,
    #[command(flatten)]
    log: LogArgs,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    init_logging(&args.log);
    finish("rwkv-ask", run(&args))
}

fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let (model_path, demo) = resolve_model_path(args.model.as_deref())?;
    let mut model = load_model(
        &model_path,
        args.weights.resolve(None)?,
        args.weights.resolve_device(None)?,
    )?
    .model;
    model.set_fold_precision(args.fold_precision);
    let tokenizer = choose_tokenizer(&args.tokenizer, &model)?;
    let lib = match Library::open(&args.store, &model, tokenizer.clone()) {
        Ok(l) => l,
        Err(e @ rwkv_heads::Error::NoStore(_)) => {
            eprintln!("rwkv-ask: {e}");
            return Ok(ExitCode::Partial);
        }
        Err(e) => return Err(e.into()),
    };
    // The demo model (11M parameters, trained on code only) cannot write answers: its text is
    // noise. With it the evidence and sources are the answer, unless --generate forces one.
    let generate = !demo || args.generate;
    if demo && args.generate && !args.json {
        eprintln!(
            "note: using the bundled demo model (a tiny code model): expect rough answers; real answers need a real checkpoint (--model)"
        );
    }
    let template = choose_template(
        &args.template,
        args.think == "on",
        tokenizer.as_ref(),
        &model,
        &model_path,
    );
    if args.self_test {
        let opts = SelfTestOptions {
            distances: args.distances.clone(),
            trials: args.trials.max(1),
            template,
        };
        if !args.json {
            println!("{:>10}  {:>7}  {:>6}", "distance", "recall", "trials");
        }
        let rows = lib.self_test(&opts, &mut |r| {
            if !args.json {
                println!(
                    "{:>10}  {:>6.0}%  {:>3}/{}",
                    r.distance,
                    r.recall * 100.0,
                    r.recalled,
                    r.trials
                );
            }
        })?;
        if args.json {
            println!("{}", serde_json::to_string(&rows)?);
        }
        return Ok(ExitCode::Success);
    }
    let opts = AskOptions {
        top: args.top.max(1),
        max_tokens: args.max_tokens,
        sampler: SamplerConfig {
            temperature: args.temperature,
            top_p: args.top_p,
            seed: args.seed,
            ..SamplerConfig::greedy()
        },
        template,
        rank: match args.rank.as_str() {
            "model" => Rank::Model,
            "both" => Rank::Both,
            _ => Rank::Bm25,
        },
        generate,
    };
    // Ctrl-C stops generation cleanly: the answer so far and its sources are still printed.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    let stdout = std::io::stdout();
    let json = args.json;
    let mut on_text = |t: &str| {
        if !json {
            let mut out = stdout.lock();
            let _ = out.write_all(t.as_bytes());
            let _ = out.flush();
        }
        if stop.load(Ordering::SeqCst) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    if let Some(p) = &args.summarize {
        let target = if p == "all" {
            SummaryTarget::All
        } else {
            SummaryTarget::Path(p.clone())
        };
        if !generate {
            return outline(&lib, &target, json);
        }
        return summarize(&lib, &target, &opts, json, &mut on_text);
    }
    let answer = match &args.question {
        Some(q) => {
            if q.trim().is_empty() {
                eprintln!("no matching documents (the question is empty)");
                return Ok(ExitCode::Partial);
            }
            let mut on_evidence = |ev: &[rwkv_heads::Evidence]| {
                if !json {
                    print_evidence(ev, demo, generate);
                }
            };
            lib.answer_with(q, &opts, &mut on_evidence, &mut on_text)?
        }
        None => bail!("give a question, --summarize or --self-test"),
    };
    let Some(answer) = answer else {
        eprintln!("not found in this store (no matching documents)");
        return Ok(ExitCode::Partial);
    };
    if json {
        println!("{}", serde_json::to_string(&answer)?);
    } else {
        if answer.generated {
            println!();
            println!();
        }
        println!("Sources:");
        for s in &answer.sources {
            if s.name.is_empty() {
                println!("  {s}");
            } else {
                println!("  {s}  ({} {})", s.kind, s.name);
            }
            for d in &s.duplicates {
                println!("    (same text also in {d})");
            }
        }
        if !answer.generated {
            println!();
            println!("{DEMO_NO_ANSWER}");
        }
    }
    Ok(ExitCode::Success)
}

/// What the demo model prints instead of a generated answer.
const DEMO_NO_ANSWER: &str = "No answer generated: the bundled demo model (11M parameters, code only) cannot write one; the evidence and sources above are the answer. Generated answers need a real checkpoint (--model PATH or hf:OWNER/REPO/FILE); --generate forces one with the demo model.";

/// The lines that answer, as `path:line  text` with a line of context on each side (context
/// lines as `path-line  text`, like `rg -C`), then the heading of the generated text.
fn print_evidence(ev: &[rwkv_heads::Evidence], demo: bool, generate: bool) {
    if !ev.is_empty() {
        println!("Evidence:");
        for (i, e) in ev.iter().enumerate() {
            if i > 0 {
                println!("--");
            }
            let first = e.line as usize - e.before.len();
            for (k, l) in e.before.iter().enumerate() {
                println!("{}-{}  {l}", e.path, first + k);
            }
            println!("{}:{}  {}", e.path, e.line, e.text);
            for (k, l) in e.after.iter().enumerate() {
                println!("{}-{}  {l}", e.path, e.line as usize + 1 + k);
            }
        }
        println!();
    }
    if !generate {
        return;
    }
    if demo {
        println!("Answer (generated by the bundled tiny demo model, not a real answer: use --model for one):");
    } else {
        println!("Answer:");
    }
}

/// `--summarize`: every document's summary (a progress bar over them on a terminal), then the
/// overall one streamed; `--json` prints `{"summary", "documents", "timings", …}`.
fn summarize(
    lib: &Library,
    target: &SummaryTarget,
    opts: &AskOptions,
    json: bool,
    on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} documents  ETA {eta}  {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut on_document = |done: usize, total: usize, d: &rwkv_heads::DocumentSummary| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(d.path.clone());
        if done == total {
            bar.finish_and_clear();
        }
    };
    let Some(s) = lib.summarize(target, opts, &mut on_document, on_text)? else {
        eprintln!("no matching documents");
        return Ok(ExitCode::Partial);
    };
    if json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        println!();
        println!();
        println!("Documents:");
        for d in &s.documents {
            let one_line = d.summary.split_whitespace().collect::<Vec<_>>().join(" ");
            println!("  {}: {one_line}", d.path);
        }
    }
    Ok(ExitCode::Success)
}

/// `--summarize` without a model that can write: every document's key lines (definitions and
/// headings) as `path:line  text`; `--json` prints `{"documents": [{"path", "lines",
/// "key_lines": [{"line", "kind", "name", "text"}]}], "generated": false}`.
fn outline(lib: &Library, target: &SummaryTarget, json: bool) -> anyhow::Result<ExitCode> {
    let Some(docs) = lib.outline(target)? else {
        eprintln!("no matching documents");
        return Ok(ExitCode::Partial);
    };
    if json {
        println!(
            "{}",
            serde_json::json!({"documents": docs, "generated": false, "summary": serde_json::Value::Null})
        );
        return Ok(ExitCode::Success);
    }
    for d in &docs {
        println!("{} ({} lines)", d.path, d.lines);
        for k in &d.key_lines {
            println!("  {}:{}  {}", d.path, k.line, k.text.trim_end());
        }
    }
    println!();
    println!(
        "No summary generated: the bundled demo model (11M parameters, code only) cannot write one; these are the documents' definitions and headings. Summaries need a real checkpoint (--model PATH or hf:OWNER/REPO/FILE); --generate forces one with the demo model."
    );
    Ok(ExitCode::Success)
}
