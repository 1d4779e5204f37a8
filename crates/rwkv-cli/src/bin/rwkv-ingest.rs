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
use clap::Parser;
use futures::StreamExt;
use rwkv_cli::{ExitCode, LogArgs, SourceArgs, init_logging, is_broken_pipe};
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
    /// Model checkpoint (.pth or .safetensors). Default: $RWKV_MODEL, else the bundled demo model.
    #[arg(long)]
    pub model: Option<std::path::PathBuf>,
    /// Tokenizer: auto, bytes or world.
    #[arg(long, default_value = "auto")]
    pub tokenizer: String,
    /// Store directory.
    #[arg(long, default_value = ".rwkv")]
    pub store: std::path::PathBuf,
    /// Tokens between checkpoints inside long parts. Default: max(4096, bytes of one stored
    /// state / 512) rounded up to a multiple of 256 (at most 512 bytes of state per token).
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Documents folded at once (default: --jobs, else 2).
    #[arg(long)]
    pub fold_jobs: Option<usize>,
    /// Run the job described by a TOML file (see pipelines/).
    #[arg(long, value_name = "FILE.toml")]
    pub pipeline: Option<std::path::PathBuf>,
    /// Ingest only shard I of N (by document id), e.g. 0/4.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<(u64, u64)>,
    /// Also fold every document, in order, into one corpus state.
    #[arg(long)]
    pub corpus_state: bool,
    /// Do not verify stored blobs of unchanged documents.
    #[arg(long)]
    pub no_verify: bool,
    /// Compress state blobs with zstd.
    #[arg(long)]
    pub compress: bool,
    /// Arithmetic of the fold: f32 (exact against the official implementation; default) or
    /// bf16 (about twice as fast on CPUs with AVX512-BF16, approximate). A store holds states
    /// of one kind: use the same value for every run on it.
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

fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let (i, n) = s.split_once('/').ok_or("expected I/N, e.g. 0/4")?;
    let (i, n): (u64, u64) = (
        i.trim().parse().map_err(|_| "bad I")?,
        n.trim().parse().map_err(|_| "bad N")?,
    );
    if n == 0 || i >= n {
        return Err(format!("shard {i}/{n}: need 0 <= I < N"));
    }
    Ok((i, n))
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
    let args = Args::parse();
    init_logging(&args.log);
    if !args.list {
        return match run::main(&args) {
            Ok(code) => code.into(),
            Err(e) if is_broken_pipe(&e) => ExitCode::Success.into(),
            Err(e) => {
                eprintln!("rwkv-ingest: {e:#}");
                ExitCode::Error.into()
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rwkv-ingest: cannot start the runtime: {e}");
            return ExitCode::Error.into();
        }
    };
    let result = runtime.block_on(list(&args));
    // Do not wait for a parser that timed out and is still running on a blocking thread.
    runtime.shutdown_background();
    match result {
        Ok(code) => code.into(),
        Err(e) if is_broken_pipe(&e) => ExitCode::Success.into(),
        Err(e) => {
            eprintln!("rwkv-ingest: {e:#}");
            ExitCode::Error.into()
        }
    }
}
