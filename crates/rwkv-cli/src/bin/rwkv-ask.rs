//! `rwkv-ask "question"`: answer from an ingested store with `path:start-end` citations;
//! `--summarize PATH|all`; `--self-test` (recall against distance).

// A command-line tool: printing results to stdout is its job.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use anyhow::bail;
use clap::Parser;
use rwkv_cli::{
    EmbedderArgs, ExitCode, LogArgs, TOKENIZER_HELP, WeightArgs, ask, choose_template, choose_tokenizer, finish,
    init_logging, load_model, resolve_model_path,
};
use rwkv_heads::sample::SamplerConfig;
use rwkv_heads::{AskOptions, Library, Rank, SelfTestOptions, SummaryTarget};

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
    /// Arithmetic of re-reading (and of the model's evidence scores): f32 (exact), bf16
    /// (about twice as fast on CPUs with AVX512-BF16, approximate), int8 (integer products: the
    /// fastest on AVX2 CPUs, +0.001 bits/token) or auto (int8 for CPU models of 1 GiB of
    /// matrices or more when its packed copy fits in memory, else f32). The stored checkpoints
    /// are not changed.
    #[arg(long, default_value = "auto")]
    fold_precision: rwkv_cli::ReadPrecision,
    #[command(flatten)]
    weights: WeightArgs,
    #[command(flatten)]
    embedder: EmbedderArgs,
    /// Segments to read.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// How the re-read before generating reaches the best unit from the checkpoint before it:
    /// forward (fold the document from the checkpoint through the unit, as the ingest did),
    /// skip (read the unit right after the checkpoint's state), tail:N (skip to the last lines
    /// of that gap within N tokens) or auto (forward when it fits --read-tokens, else tail:128).
    #[arg(long, default_value = "auto")]
    reread: rwkv_heads::Reread,
    /// Most tokens to re-read before generating (default: what the model reads in about 12 s
    /// on a 2-core CPU: ~660 for 1.5B, 8192 for small models).
    #[arg(long)]
    read_tokens: Option<usize>,
    /// Ranking: bm25, model (log-likelihood of the question from each checkpoint) or both.
    #[arg(long, default_value = "bm25")]
    rank: Rank,
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
    let started = std::time::Instant::now();
    let (model_path, demo) = resolve_model_path(args.model.as_deref())?;
    let mut model = load_model(
        &model_path,
        args.weights.resolve(None)?,
        args.weights.resolve_device(None)?,
    )?
    .model;
    let read_precision = match args.fold_precision {
        rwkv_cli::ReadPrecision::Fixed(p) => p,
        rwkv_cli::ReadPrecision::Auto => rwkv_cli::fast_read_precision(&model),
    };
    model.set_fold_precision(read_precision);
    let tokenizer = choose_tokenizer(&args.tokenizer, &model)?;
    let embedder = args.embedder.load()?;
    // Loading the model and opening the store: `timings.load_ms` in --json.
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let lib = match Library::open(&args.store, &model, tokenizer.clone()) {
        Ok(l) if args.json => l,
        Ok(l) => l.with_fold_progress(ask::fold_progress()),
        Err(e @ rwkv_heads::Error::NoStore(_)) => {
            eprintln!("rwkv-ask: {e}");
            return Ok(ExitCode::Partial);
        }
        Err(e) => return Err(e.into()),
    };
    let lib = lib.with_embedder(embedder);
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
        return self_test(&lib, args, template);
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
        rank: args.rank,
        generate,
        reread: args.reread,
        read_tokens: args
            .read_tokens
            .unwrap_or_else(|| rwkv_heads::default_read_tokens(model.config())),
    };
    let json = args.json;
    let mut on_text = ask::text_sink(json);
    if let Some(p) = &args.summarize {
        let target = if p == "all" {
            SummaryTarget::All
        } else {
            SummaryTarget::Path(p.clone())
        };
        if !generate {
            let Some(docs) = lib.outline(&target)? else {
                eprintln!("no matching documents");
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"documents": [], "generated": false, "summary": null})
                    );
                }
                return Ok(ExitCode::Partial);
            };
            if json {
                let out = serde_json::json!({"documents": docs, "generated": false, "summary": null});
                println!("{out}");
            } else {
                ask::print_outline(&docs);
            }
            return Ok(ExitCode::Success);
        }
        let Some(s) = lib.summarize(&target, &opts, &mut ask::document_progress(), &mut on_text)? else {
            eprintln!("no matching documents");
            if json {
                println!(
                    "{}",
                    serde_json::json!({"documents": [], "generated": true, "summary": null})
                );
            }
            return Ok(ExitCode::Partial);
        };
        if json {
            println!("{}", serde_json::to_string(&s)?);
        } else {
            ask::print_summary_documents(&s);
        }
        return Ok(ExitCode::Success);
    }
    let Some(q) = &args.question else {
        bail!("give a question, --summarize or --self-test");
    };
    if q.trim().is_empty() {
        let why = "no matching documents (the question is empty)";
        eprintln!("{why}");
        if json {
            println!("{}", not_found(q, why));
        }
        return Ok(ExitCode::Partial);
    }
    let mut on_evidence = |ev: &[rwkv_heads::Evidence]| {
        if !json {
            ask::print_evidence(ev, demo, generate);
        }
    };
    let Some(answer) = lib.answer_with(q, &opts, &mut on_evidence, &mut on_text)? else {
        let why = "not found in this store (no matching documents)";
        eprintln!("{why}");
        if json {
            println!("{}", not_found(q, why));
        }
        return Ok(ExitCode::Partial);
    };
    if json {
        let mut v = serde_json::to_value(&answer)?;
        v["found"] = true.into();
        v["timings"]["load_ms"] = load_ms.into();
        v["read_precision"] = read_precision.to_string().into();
        println!("{v}");
    } else {
        ask::print_sources(&answer);
    }
    // The answer read a document that was indexed but not folded: fold it into the store now,
    // so the next question on it resumes a checkpoint (unless an ingest holds the store).
    if let Some(src) = answer.sources.first()
        && answer.generated
        && src.checkpoint.is_empty()
    {
        let ident = lib.store().identity().clone();
        drop(lib);
        // Commit states folded as the store's were (a bf16- or int8-folded store).
        if let Some((_, kind)) = rwkv_store::FoldKind::parse(&ident.model_fingerprint) {
            let p = if kind.fold_bf16 {
                rwkv_model::FoldPrecision::Bf16
            } else if kind.fold_int8 {
                rwkv_model::FoldPrecision::Int8
            } else {
                rwkv_model::FoldPrecision::F32
            };
            let _ = model.try_set_fold_precision(p);
        }
        let progress = ask::commit_progress();
        let ids = std::slice::from_ref(&src.doc_id);
        match rwkv_pipeline::fold_stored(&args.store, ident, &model, tokenizer, ids, &progress) {
            Ok(n) if n > 0 => eprintln!("rwkv-ask: folded {} into the store for the next question", src.path),
            Ok(_) => {}
            Err(e) => {
                // An ingest holds the store: it folds what was asked about first.
                let queued = rwkv_store::StoreDir::new(&args.store).push_asked(&src.doc_id).is_ok();
                eprintln!(
                    "rwkv-ask: {} was folded for this answer only: the store is busy ({e}){}",
                    src.path,
                    if queued {
                        "; queued for the running ingest to fold next"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    Ok(ExitCode::Success)
}

/// `--self-test`: recall against distance, a row per distance as it is measured.
fn self_test(lib: &Library, args: &Args, template: rwkv_heads::Template) -> anyhow::Result<ExitCode> {
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
    Ok(ExitCode::Success)
}

/// The one JSON object `--json` prints for a question the store does not answer (exit 1): the
/// keys of an answer a script reads first, empty, with `found: false` and the reason.
fn not_found(question: &str, why: &str) -> serde_json::Value {
    serde_json::json!({
        "found": false,
        "question": question,
        "reason": why,
        "generated": false,
        "text": "",
        "evidence": [],
        "sources": [],
    })
}
