//! Large generated tree benchmark for rwkv-sources (not run by tests).
//!
//! Generates a code base from a seed (nested directories, many thousands of files, gigabytes
//! in all, with .gitignore files, binaries and files over the cap mixed in), streams it with
//! `Sources` and prints documents/s, MB/s and peak RSS (`VmHWM`), plus RSS samples along the
//! way to show memory stays flat. Run:
//!
//! ```text
//! cargo bench -p rwkv-sources --bench tree -- --files 30000 --gib 2 [--seed 7] [--dir /tmp/x] [--keep] [--jobs N]
//! ```
//!
//! The tree goes to a temporary directory (deleted afterwards unless `--keep`). Reading right
//! after writing measures a warm page cache; pass `--dir` of an existing tree (generated with
//! `--keep`) after dropping caches for a cold run.
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::StreamExt;
use rwkv_sources::{Input, Options, Sources};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

const EXTS: &[&str] = &[
    "rs", "py", "ts", "go", "c", "h", "md", "json", "toml", "java", "js", "txt",
];

/// Writes the tree; returns (files written, bytes written).
fn generate(root: &Path, files: u64, total_bytes: u64, seed: u64) -> (u64, u64) {
    let mut rng = Rng(seed.max(1));
    // A 4 MiB pool of source-like lines; files are slices of it with a unique header.
    let words = [
        "let", "value", "return", "fn", "struct", "match", "self", "impl", "for", "in", "if", "else", "token", "state",
        "reader", "chunk",
    ];
    let mut pool = String::with_capacity(4 << 20);
    while pool.len() < (4 << 20) {
        let indent = "    ".repeat(rng.below(4) as usize);
        let n = 3 + rng.below(10);
        let line: Vec<&str> = (0..n).map(|_| words[rng.below(words.len() as u64) as usize]).collect();
        pool.push_str(&indent);
        pool.push_str(&line.join(" "));
        pool.push_str(";\n");
    }
    let avg = (total_bytes / files.max(1)).max(64);
    let (mut written, mut bytes) = (0, 0);
    for i in 0..files {
        let dir = root.join(format!("m{:02}/p{:02}", i % 37, (i / 37) % 40));
        if !dir.exists() {
            std::fs::create_dir_all(&dir).unwrap();
            if i % 5 == 0 {
                std::fs::write(dir.join(".gitignore"), "*.tmp\n!keep.tmp\n").unwrap();
            }
        }
        // Sizes: mostly around the average, a long tail, a few over the 4 MiB cap.
        let r = rng.below(1000);
        let size = match r {
            0..=1 => (4 << 20) + 1 + rng.below(1 << 20),
            2..=40 => avg * (4 + rng.below(12)),
            _ => 1 + rng.below(avg * 2 - avg * 4 / 10),
        };
        let ext = EXTS[rng.below(EXTS.len() as u64) as usize];
        let name = match rng.below(100) {
            0 => format!("f{i}.bin"),
            1 => format!("f{i}.tmp"),
            _ => format!("f{i}.{ext}"),
        };
        let mut f = std::io::BufWriter::with_capacity(1 << 16, std::fs::File::create(dir.join(&name)).unwrap());
        if name.ends_with(".bin") {
            f.write_all(&[0u8, 1, 2, 3, 0, 255].repeat(size as usize / 6 + 1))
                .unwrap();
        } else {
            writeln!(f, "// file {i} seed {seed}").unwrap();
            let mut left = size as usize;
            while left > 0 {
                let start = rng.below((pool.len() - 1) as u64) as usize;
                let mut end = (start + left).min(pool.len());
                while !pool.is_char_boundary(end) {
                    end -= 1;
                }
                f.write_all(&pool.as_bytes()[start..end]).unwrap();
                left -= end - start;
            }
        }
        f.flush().unwrap();
        written += 1;
        bytes += size;
    }
    (written, bytes)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let files: u64 = arg("--files").map_or(30_000, |v| v.parse().expect("--files N"));
    let gib: f64 = arg("--gib").map_or(2.0, |v| v.parse().expect("--gib X"));
    let seed: u64 = arg("--seed").map_or(7, |v| v.parse().expect("--seed N"));
    let keep = args.iter().any(|a| a == "--keep");
    let mut opts = Options::default();
    if let Some(j) = arg("--jobs") {
        opts.jobs = j.parse().expect("--jobs N");
    }
    let (root, _tmp): (PathBuf, Option<tempfile::TempDir>) = match arg("--dir") {
        Some(d) if Path::new(&d).exists() => (PathBuf::from(d), None),
        other => {
            let tmp = tempfile::tempdir().unwrap();
            let root = other.map(PathBuf::from).unwrap_or_else(|| tmp.path().join("tree"));
            std::fs::create_dir_all(&root).unwrap();
            let t = Instant::now();
            let (n, b) = generate(&root, files, (gib * (1u64 << 30) as f64) as u64, seed);
            println!(
                "generated {n} files, {:.2} GiB in {:.1} s at {}",
                b as f64 / (1u64 << 30) as f64,
                t.elapsed().as_secs_f64(),
                root.display()
            );
            (root, if keep { None } else { Some(tmp) })
        }
    };
    if keep {
        std::mem::forget(_tmp);
    }
    let rss_before = status_kib("VmRSS:");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = Instant::now();
    let (docs, skipped, text_bytes, lines, samples) = rt.block_on(async {
        let mut stream = Sources::new(opts.clone())
            .unwrap()
            .input(Input::Path(root.clone()))
            .stream();
        let (mut docs, mut skipped, mut text_bytes, mut lines) = (0u64, 0u64, 0u64, 0u64);
        let mut samples = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(d) => {
                    docs += 1;
                    text_bytes += d.bytes() as u64;
                    lines += d.lines() as u64;
                }
                Err(_) => skipped += 1,
            }
            if (docs + skipped) % 5000 == 0 {
                samples.push((docs + skipped, status_kib("VmRSS:")));
            }
        }
        (docs, skipped, text_bytes, lines, samples)
    });
    let secs = t.elapsed().as_secs_f64();
    println!(
        "jobs {}: {docs} documents ({skipped} skipped), {:.2} GiB of text, {lines} lines in {secs:.1} s",
        opts.jobs,
        text_bytes as f64 / (1u64 << 30) as f64
    );
    println!(
        "{:.0} documents/s, {:.0} MiB/s",
        docs as f64 / secs,
        text_bytes as f64 / (1u64 << 20) as f64 / secs
    );
    println!(
        "RSS before streaming {} MiB; samples (items, RSS MiB): {:?}",
        rss_before / 1024,
        samples.iter().map(|(n, k)| (*n, k / 1024)).collect::<Vec<_>>()
    );
    println!("peak RSS (VmHWM) {} MiB", status_kib("VmHWM:") / 1024);
}
