//! `make-model`: write a random RWKV-7 checkpoint of an official "G1" shape as safetensors,
//! streamed (a few MB of memory whatever the size), deterministic from the seed.

// A command-line tool: printing results is its job.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use rwkv_bench::Shape;
use rwkv_bench::make::{FileDType, write_model};

/// Write random RWKV-7 weights of a real shape (official tensor names and shapes).
#[derive(Parser, Debug)]
struct Args {
    /// The shape: 0.1b, 0.4b, 1.5b, 2.9b or 7.2b.
    #[arg(long)]
    shape: String,
    /// Weight seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The file to write.
    #[arg(long)]
    out: std::path::PathBuf,
    /// How values are stored: bf16 (as the G1 checkpoints are published) or f32.
    #[arg(long, default_value = "bf16")]
    dtype: FileDType,
    /// Threads generating values.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()
        .context("rayon pool")?;
    let shape = Shape::named(&args.shape).with_context(|| {
        format!(
            "unknown shape {:?} (expected one of {})",
            args.shape,
            Shape::NAMES.join(", ")
        )
    })?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let t = Instant::now();
    let bytes = write_model(shape, args.seed, args.dtype, &args.out)?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{}: {} {:?} seed {}, {:.2} GB in {secs:.1} s ({:.0} MB/s), peak RSS {:.0} MB",
        args.out.display(),
        args.shape,
        shape,
        args.seed,
        bytes as f64 / 1e9,
        bytes as f64 / 1e6 / secs,
        rwkv_bench::peak_rss().unwrap_or(0) as f64 / 1e6
    );
    Ok(())
}
