//! Shared pieces of the RWKV reader's command-line tools: logging, exit codes, size
//! arguments and the source flags every ingesting tool takes.
//!
//! The binaries in `src/bin/` stay thin: they parse their arguments (clap derive), convert them
//! into library options here, and report through [`ExitCode`]. Only this crate uses anyhow and
//! prints; the libraries return typed errors.
#![deny(missing_docs)]

pub mod ask;
pub mod hub;
mod model_args;

pub use model_args::{
    DEMO_EMBEDDER, DEMO_MODEL, EmbedderArgs, FAST_READ_MIN_BYTES, Loaded, ReadPrecision, TOKENIZER_HELP, WeightArgs,
    choose_template, choose_tokenizer, fast_read_precision, load_model, peak_rss_bytes, resolve_model_path,
};

use std::io::IsTerminal;
use std::time::Duration;

use clap::{Args, ValueEnum};
use rwkv_sources::{DirMode, Options};

/// Process exit codes shared by all tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// Everything asked for was done (inputs skipped by policy, like binary files, count as done).
    Success = 0,
    /// The run finished, but some inputs failed (unreadable, malformed, unreachable).
    Partial = 1,
    /// Bad usage or a fatal error: nothing (more) was done.
    Error = 2,
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c as u8)
    }
}

/// Logging flags: `-v` (repeatable) and `-q`; `RUST_LOG` overrides both.
#[derive(Args, Debug, Clone, Default)]
pub struct LogArgs {
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// Installs the stderr logger (and a panic hook that logs instead of printing raw panics:
/// parser panics on bad input are contained by the libraries and reported as results).
///
/// `RUST_LOG` (an [`tracing_subscriber::EnvFilter`]) overrides `-v`/`-q`. The libraries time
/// their slow phases with debug spans under `rwkv::*` targets (`rwkv::extract`,
/// `rwkv::tokenize`, `rwkv::fold`, `rwkv::checkpoint`, `rwkv::index`, `rwkv::retrieve`,
/// `rwkv::restore`, `rwkv::read`, `rwkv::generate`); each span's close is logged with its
/// `time.busy` and `time.idle`, so `RUST_LOG=rwkv=debug` shows where a run spends its time.
/// Everything goes to stderr: stdout stays for results (`--json`).
pub fn init_logging(args: &LogArgs) {
    let level = match (args.quiet, args.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        (_, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .try_init();
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::warn!("panic at {at}: {msg}");
    }));
}

/// Parses a byte size: `4096`, `512K`, `4M`, `4MiB`, `1G` (binary multiples).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (try 4M, 512K, 1G)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("unknown size unit in `{s}` (use K, M or G)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("`{s}` is too large"))
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    s.trim_end_matches('s')
        .parse::<f64>()
        .ok()
        .filter(|v| *v > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("`{s}` is not a number of seconds"))
}

/// How directories are read, as a flag value.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ModeArg {
    /// Decide per directory (project markers or the file mix).
    #[default]
    Auto,
    /// Every text file is a code document.
    Code,
    /// Files are read by format: pages, WARCs, EPUBs, PDFs, text books.
    Documents,
}

/// The flags that choose and read inputs; every ingesting tool flattens these in.
#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// Only read files matching this glob (repeatable). Without `/` it matches names.
    #[arg(long = "include", value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out files and directories matching this glob (repeatable).
    #[arg(long = "exclude", value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Read hidden files and directories (`.git` never).
    #[arg(long)]
    pub hidden: bool,
    /// Do not honour .gitignore, .ignore or git's excludes.
    #[arg(long)]
    pub no_ignore: bool,
    /// Follow symbolic links (by default a link is skipped and reported, so a linked
    /// directory is not read twice).
    #[arg(long)]
    pub follow: bool,
    /// How to read directories.
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,
    /// Skip code files larger than this.
    #[arg(long, value_name = "SIZE", default_value = "4M", value_parser = parse_size)]
    pub max_file_size: u64,
    /// Skip books, pages, records and responses larger than this.
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = parse_size)]
    pub max_document_size: u64,
    /// Inputs extracted at once (default: number of CPUs).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Seconds allowed to extract one input.
    #[arg(long, value_name = "SECS", default_value = "120", value_parser = parse_secs)]
    pub timeout: Duration,
    /// Seconds allowed to fetch one URL.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub fetch_timeout: Duration,
}

impl SourceArgs {
    /// The library options these flags mean.
    pub fn options(&self) -> Options {
        let mut o = Options {
            include: self.include.clone(),
            exclude: self.exclude.clone(),
            hidden: self.hidden,
            respect_ignore_files: !self.no_ignore,
            follow_links: self.follow,
            dir_mode: match self.mode {
                ModeArg::Auto => DirMode::Auto,
                ModeArg::Code => DirMode::Code,
                ModeArg::Documents => DirMode::Documents,
            },
            max_file_size: self.max_file_size,
            max_document_size: self.max_document_size,
            extract_timeout: self.timeout,
            fetch_timeout: self.fetch_timeout,
            ..Options::default()
        };
        if let Some(j) = self.jobs {
            o.jobs = j.max(1);
        }
        o
    }
}

/// How every binary ends: the code `run` returned, or its error printed on stderr as
/// `TOOL: message: cause: …` (the error, then its causes) with [`ExitCode::Error`] (a closed stdout is not an error: success).
pub fn finish(tool: &str, result: anyhow::Result<ExitCode>) -> std::process::ExitCode {
    match result {
        Ok(code) => code.into(),
        Err(e) if is_broken_pipe(&e) => ExitCode::Success.into(),
        Err(e) => {
            report(tool, &e);
            ExitCode::Error.into()
        }
    }
}

/// Print an error and its causes on one stderr line, the way every binary does.
pub fn report(tool: &str, err: &anyhow::Error) {
    eprintln!("{tool}: {err:#}");
}

/// Whether an error chain ends in a broken pipe (stdout closed by `head`): not a failure.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("4X").is_err() && parse_size("M").is_err());
    }
}
