//! `rwkv-ingest`: read code bases, books and web pages and fold them into RWKV state.
//!
//! Folding is a later piece of work; today the tool lists what it would read (`--list`): one
//! JSON line per document and one per skipped input, on stdout, without loading a model.

use std::io::Write;
use std::process::ExitCode as ProcessExit;

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use rwkv_cli::{ExitCode, LogArgs, SourceArgs, init_logging, is_broken_pipe};
use rwkv_sources::{Document, Error as SourceError, Input, Sources};
use serde::Serialize;

/// Read code bases, books and web pages into RWKV state.
#[derive(Parser, Debug)]
#[command(name = "rwkv-ingest", version, about, long_about = None)]
struct Args {
    /// Directories, files (.txt .md .epub .pdf .html .warc[.gz], source code) and http(s) URLs.
    #[arg(required = true, value_name = "PATH|URL")]
    inputs: Vec<String>,
    /// List the documents as JSON lines without loading a model (the only mode built so far).
    #[arg(long)]
    list: bool,
    #[command(flatten)]
    sources: SourceArgs,
    #[command(flatten)]
    log: LogArgs,
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
    let sources =
        Sources::new(args.sources.options())?.inputs(args.inputs.iter().map(|s| Input::parse(s)));
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
        eprintln!(
            "rwkv-ingest: folding documents into model state is not built yet; use --list to see what would be read"
        );
        return ExitCode::Error.into();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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
