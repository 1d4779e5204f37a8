//! `rwkv-serve`: the stores behind an OpenAI-compatible HTTP API, a native API and an MCP
//! server (`--mcp stdio` for coding agents), with one model held once.

// A command-line tool: printing where it listens is its job.
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use rwkv_cli::{
    EmbedderArgs, ExitCode, LogArgs, TOKENIZER_HELP, WeightArgs, choose_template, choose_tokenizer, finish,
    init_logging, load_model, resolve_model_path,
};
use rwkv_serve::{App, ServeOptions};

/// Serve stores over an OpenAI-compatible HTTP API, a native API and MCP.
#[derive(Parser, Debug)]
#[command(name = "rwkv-serve", version, about)]
struct Args {
    /// A store to serve (repeatable); its name in requests is its directory's name. A store
    /// that does not exist yet is served empty (an ingest job can fill it).
    #[arg(long = "store", value_name = "DIR")]
    stores: Vec<PathBuf>,
    /// Model checkpoint (.pth, .safetensors, rwkv.cpp .bin, or hf:OWNER/REPO/FILE); the one the
    /// stores were made with. Default: $RWKV_MODEL, else the bundled demo model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Tokenizer.
    #[arg(long, default_value = "auto", help = TOKENIZER_HELP)]
    tokenizer: String,
    #[command(flatten)]
    weights: WeightArgs,
    #[command(flatten)]
    embedder: EmbedderArgs,
    /// Address to listen on. A non-loopback address needs an API key.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Require this key (`Authorization: Bearer KEY`) on every route but /health.
    #[arg(long, conflicts_with = "api_key_file")]
    api_key: Option<String>,
    /// Read the API key from this file (its first line).
    #[arg(long, value_name = "FILE")]
    api_key_file: Option<PathBuf>,
    /// Serve MCP over stdin/stdout instead of HTTP (what coding agents launch).
    #[arg(long, value_parser = ["stdio"])]
    mcp: Option<String>,
    /// A folder ingest jobs may read (repeatable); without one, ingest jobs are refused.
    #[arg(long = "allow-root", value_name = "DIR")]
    allow_roots: Vec<PathBuf>,
    /// Prompt template: auto, chat, g1 or plain (as rwkv-ask).
    #[arg(long, default_value = "auto", value_parser = ["auto", "chat", "g1", "plain"])]
    template: String,
    /// G1 models: let the model think before answering.
    #[arg(long, default_value = "off", value_parser = ["off", "on"])]
    think: String,
    /// Generations queued or running at once; beyond it requests get 429.
    #[arg(long, default_value_t = 64)]
    capacity: usize,
    /// Largest request body (e.g. 1M, 16M).
    #[arg(long, default_value = "1M", value_parser = rwkv_cli::parse_size)]
    body_limit: u64,
    /// Largest max_tokens a request may ask for.
    #[arg(long, default_value_t = 4096)]
    max_tokens_limit: usize,
    /// Bytes of states kept for return_state and uploads (e.g. 256M).
    #[arg(long, default_value = "256M", value_parser = rwkv_cli::parse_size)]
    scratch: u64,
    #[command(flatten)]
    log: LogArgs,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    init_logging(&args.log);
    finish("rwkv-serve", run(&args))
}

fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let api_key = match (&args.api_key, &args.api_key_file) {
        (Some(k), _) => Some(k.trim().to_string()),
        (None, Some(f)) => {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading the API key from {}", f.display()))?;
            let k = text.lines().next().unwrap_or("").trim().to_string();
            if k.is_empty() {
                bail!("{}: the API key file is empty", f.display());
            }
            Some(k)
        }
        (None, None) => None,
    };
    if args.mcp.is_none() && !args.listen.ip().is_loopback() && api_key.is_none() {
        eprintln!(
            "rwkv-serve: refusing to listen on {} without an API key: anyone who can reach it could read the stores. Give --api-key or --api-key-file, or listen on 127.0.0.1",
            args.listen
        );
        return Ok(ExitCode::Error);
    }
    for r in &args.allow_roots {
        if !r.is_dir() {
            bail!("--allow-root {}: not a folder", r.display());
        }
    }
    let (model_path, demo) = resolve_model_path(args.model.as_deref())?;
    let model = load_model(
        &model_path,
        args.weights.resolve(None)?,
        args.weights.resolve_device(None)?,
    )?
    .model;
    let tokenizer = choose_tokenizer(&args.tokenizer, &model)?;
    let name = model_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rwkv".into());
    let template = choose_template(
        &args.template,
        args.think == "on",
        tokenizer.as_ref(),
        &model,
        &model_path,
    );
    // The model is held for the life of the process and shared by every request.
    let model: &'static rwkv_model::Model = Box::leak(Box::new(model));
    let opts = ServeOptions {
        model_id: name,
        template,
        demo,
        api_key,
        allow_roots: args.allow_roots.clone(),
        body_limit: args.body_limit as usize,
        capacity: args.capacity.max(1),
        scratch_bytes: args.scratch as usize,
        max_tokens_limit: args.max_tokens_limit,
        embedder: args.embedder.load()?,
        ..ServeOptions::default()
    };
    let app = match App::new(model, tokenizer, &args.stores, opts) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rwkv-serve: {e}");
            return Ok(ExitCode::Error);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if args.mcp.is_some() {
        rt.block_on(rwkv_serve::mcp::serve_stdio(app))
            .map_err(|e| anyhow::anyhow!("MCP over stdio: {e}"))?;
        return Ok(ExitCode::Success);
    }
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "rwkv-serve: listening on http://{addr}");
            let _ = out.flush();
        }
        rwkv_serve::serve_http(app, listener).await.context("serving HTTP")?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::Success)
}
