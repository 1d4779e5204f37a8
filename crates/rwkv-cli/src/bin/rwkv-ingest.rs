//! `rwkv-ingest`: read code bases, books and web pages and fold them into RWKV state, with
//! checkpoints in a durable store and a full-text index (`ingest.rs` beside this file).
//!
//! `--list` only lists what would be read: one JSON line per document and one per skipped
//! input, on stdout, without loading a model. `--gc`, `--repair` and `--merge` maintain a
//! store.

// A command-line tool: printing results to stdout is its job.
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::process::ExitCode as ProcessExit;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser};
use futures::StreamExt;
use rwkv_cli::{ExitCode, LogArgs, SourceArgs, TOKENIZER_HELP, finish, init_logging};
use rwkv_pipeline::ShardSpec;
use rwkv_pipeline::settings::{DEFAULT_STORE, DEFAULT_TOKENIZER};
use rwkv_sources::{Document, Error as SourceError, Input, Sources};
use serde::Serialize;

#[path = "ingest/run.rs"]
mod run;

/// Read code bases, books and web pages into RWKV state.
#[derive(Parser, Debug)]
#[command(name = "rwkv-ingest", version, about, long_about = None)]
pub(crate) struct Args {
    /// Directories, files (.txt .md .epub .pdf .html .warc[.gz], source code) and http(s) URLs.
    #[arg(value_name = "PATH|URL", required_unless_present_any = ["pipeline", "gc", "repair", "merge"])]
    pub inputs: Vec<String>,
    /// List the documents as JSON lines without loading a model.
    #[arg(long)]
    pub list: bool,
    /// Model checkpoint (.pth, .safetensors, rwkv.cpp .bin, or hf:OWNER/REPO/FILE from the hub).
    /// Default: $RWKV_MODEL, else the bundled demo model.
    #[arg(long)]
    pub model: Option<std::path::PathBuf>,
    /// Tokenizer.
    #[arg(long, default_value = DEFAULT_TOKENIZER, help = TOKENIZER_HELP)]
    pub tokenizer: String,
    /// Store directory.
    #[arg(long, default_value = DEFAULT_STORE)]
    pub store: std::path::PathBuf,
    /// Tokens between checkpoints inside long parts. Default: max(4096, bytes of one stored
    /// state / 512) rounded up to a multiple of 256 (at most 512 bytes of state per token).
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Fold workers (default: the job file's `jobs`, else --jobs, else 2; 1 on a GPU).
    #[arg(long)]
    pub fold_jobs: Option<usize>,
    /// Documents each fold worker folds at once, in lockstep lanes whose steps share one set of
    /// matrix products (default: the job file's `lanes`, else 1 on the CPU, 32 on a GPU). The
    /// store is the same whatever the lanes.
    #[arg(long, value_name = "N")]
    pub lanes: Option<usize>,
    /// Run the job described by a TOML file (see pipelines/).
    #[arg(long, value_name = "FILE.toml")]
    pub pipeline: Option<std::path::PathBuf>,
    /// Ingest only shard I of N (by document id), e.g. 0/4, into a shard store (`--merge` joins
    /// them). `auto/N` takes I from $SLURM_ARRAY_TASK_ID or $JOB_COMPLETION_INDEX (Slurm job
    /// arrays, Kubernetes Indexed Jobs); `auto` also takes N from $SLURM_ARRAY_TASK_COUNT.
    #[arg(long, value_name = "I/N|auto/N|auto")]
    pub shard: Option<ShardSpec>,
    /// Also fold every document, in order, into one corpus state.
    #[arg(long)]
    pub corpus_state: bool,
    /// Do not verify stored blobs of unchanged documents.
    #[arg(long)]
    pub no_verify: bool,
    /// Compress state blobs with zstd.
    #[arg(long)]
    pub compress: bool,
    /// Only extract, tokenize and index the documents (symbols and full text), without folding
    /// them: `rwkv-ask` answers from the index at once (generation re-reads a document from its
    /// start), and a later run without this flag folds what was indexed.
    #[arg(long)]
    pub index_only: bool,
    /// Arithmetic of the fold: f32 (exact against the official implementation; default), bf16
    /// (about twice as fast on CPUs with AVX512-BF16, approximate) or int8 (int8 weights and
    /// inputs, integer products: the fastest fold on AVX2 CPUs, approximate). A store holds
    /// states of one kind: use the same value for every run on it.
    #[arg(long)]
    pub fold_precision: Option<rwkv_model::FoldPrecision>,
    /// How checkpoint blobs store the state: bf16 (each float rounded to bf16, half the bytes;
    /// the default: resuming from it changes bits/token by < 0.001) or f32 (exact resume). A
    /// store holds blobs of one precision: use the same value for every run on it.
    #[arg(long)]
    pub state_precision: Option<rwkv_model::StatePrecision>,
    #[command(flatten)]
    pub weights: rwkv_cli::WeightArgs,
    /// Print the closing summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Delete blobs and texts no document refers to.
    #[arg(long)]
    pub gc: bool,
    /// Rebuild a damaged manifest from the state blobs, then the index.
    #[arg(long)]
    pub repair: bool,
    /// Merge these stores (same model) into --store.
    #[arg(long, value_name = "STORE", num_args = 1..)]
    pub merge: Vec<std::path::PathBuf>,
    #[command(flatten)]
    pub sources: SourceArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Serialize)]
struct PartLine<'a> {
    title: &'a str,
    start: usize,
    end: usize,
    line: usize,
}

#[derive(Serialize)]
struct DocLine<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    id: String,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<&'a str>,
    bytes: usize,
    lines: usize,
    source_bytes: u64,
    encoding: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    replaced: usize,
    hash: String,
    parts: Vec<PartLine<'a>>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Serialize)]
struct SkipLine<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    input: &'a str,
    reason: &'static str,
    message: String,
}

fn doc_line(d: &Document) -> DocLine<'_> {
    DocLine {
        ty: "document",
        id: d.id.to_string(),
        kind: d.kind.as_str(),
        path: d
            .path
            .as_deref()
            .map(|p| p.to_string_lossy().trim_start_matches("./").to_string()),
        url: d.url.as_deref(),
        title: &d.title,
        language: d.language,
        bytes: d.bytes(),
        lines: d.lines(),
        source_bytes: d.source_bytes,
        encoding: d.decoding.encoding,
        replaced: d.decoding.replaced,
        hash: d.hash.to_string(),
        parts: d
            .parts
            .iter()
            .map(|p| PartLine {
                title: &p.title,
                start: p.start,
                end: p.end,
                line: d.line_of(p.start),
            })
            .collect(),
    }
}

fn skip_line(e: &SourceError) -> SkipLine<'_> {
    SkipLine {
        ty: "skipped",
        input: e.at(),
        reason: e.reason(),
        message: e.to_string(),
    }
}

async fn list(args: &Args) -> anyhow::Result<ExitCode> {
    let sources = Sources::new(args.sources.options())?.inputs(args.inputs.iter().map(|s| Input::parse(s)));
    let mut stream = std::pin::pin!(sources.stream());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut docs, mut skipped, mut failed) = (0usize, 0usize, 0usize);
    while let Some(item) = stream.next().await {
        match item {
            Ok(doc) => {
                docs += 1;
                serde_json::to_writer(&mut out, &doc_line(&doc)).context("writing JSON")?;
            }
            Err(e) => {
                if e.is_policy_skip() {
                    skipped += 1;
                } else {
                    failed += 1;
                    tracing::info!("{e}");
                }
                serde_json::to_writer(&mut out, &skip_line(&e)).context("writing JSON")?;
            }
        }
        out.write_all(b"\n").context("writing to stdout")?;
    }
    out.flush().context("writing to stdout")?;
    tracing::info!("{docs} documents, {skipped} skipped, {failed} failed");
    Ok(if failed > 0 {
        ExitCode::Partial
    } else {
        ExitCode::Success
    })
}

fn main() -> ProcessExit {
    let matches = Args::command().get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    init_logging(&args.log);
    if !args.list {
        return finish("rwkv-ingest", run::main(&args, &matches));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            return finish(
                "rwkv-ingest",
                Err(anyhow::Error::new(e).context("cannot start the runtime")),
            );
        }
    };
    let result = runtime.block_on(list(&args));
    // Do not wait for a parser that timed out and is still running on a blocking thread.
    runtime.shutdown_background();
    finish("rwkv-ingest", result)
}
