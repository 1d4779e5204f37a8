//! `fold-bench --shape`: a random checkpoint of a real RWKV-7 shape, written as bf16
//! safetensors the way the G1 models are published, then measured in this process the way a
//! tool uses it: load seconds with a warm page cache, peak RSS against the file's bytes, fold
//! and decode speed, the bytes of one checkpoint. Optionally the official `rwkv` package on the
//! same file (`benches/official.py`), after ours, never at the same time.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use rwkv_bench::make::{FileDType, write_model};
use rwkv_bench::{Shape, peak_rss, reset_peak_rss};
use rwkv_model::{LoadOptions, Logits, Model, Weights};

/// What to measure.
pub struct Plan {
    /// The shape's name (`1.5b`), if a file is to be generated.
    pub shape: Option<String>,
    /// An existing checkpoint to measure instead of a generated one.
    pub model: Option<PathBuf>,
    /// What the model holds its weights as.
    pub weights: Weights,
    /// How the generated file stores its values.
    pub dtype: FileDType,
    /// Weight seed.
    pub seed: u64,
    /// Folder for the generated file (default: the system's temporary folder).
    pub tmp: Option<PathBuf>,
    /// Keep the generated file.
    pub keep: bool,
    /// Tokens per fold (default 1024, 512 from 1.5B on).
    pub tokens: Option<usize>,
    /// Timed folds, median reported (default 3, 1 from 1.5B on).
    pub repeats: Option<usize>,
    /// Generation steps timed (default 128, 16 from 1.5B on).
    pub decode_tokens: Option<usize>,
    /// Sequence-mode chunk length.
    pub chunk: usize,
    /// Threads.
    pub threads: usize,
    /// Also run the official package (`benches/official.py`) with this Python, if given.
    pub official: Option<String>,
    /// The official script.
    pub official_script: PathBuf,
    /// Where the model runs.
    pub device: rwkv_model::Device,
    /// Documents folded at once for the batched figure (1: none).
    pub lanes: usize,
    /// Arithmetic of the fold (f32 exact, bf16 or int8).
    pub fold_precision: rwkv_model::FoldPrecision,
}

/// What was measured.
#[derive(serde::Serialize, Default)]
pub struct Row {
    /// The shape's name, or the file's name with `--model`.
    pub shape: String,
    /// The shape.
    pub dims: Option<Shape>,
    /// The checkpoint measured.
    pub file: String,
    /// Its bytes.
    pub file_bytes: u64,
    /// Seconds spent generating it (0 with `--model`).
    pub generate_seconds: f64,
    /// What was asked for (`--weights`).
    pub weights: String,
    /// What the model holds (`Model::held_weights`).
    pub held_weights: String,
    /// The fold's arithmetic (`f32`, `bf16`, `int8`).
    pub fold_precision: String,
    /// Bytes of weights held (`Model::weight_bytes`).
    pub weight_bytes: u64,
    /// Seconds from opening the file to a model ready to run, page cache warm.
    pub load_seconds: f64,
    /// Peak RSS from the start of loading to the model being ready.
    pub peak_rss_load_bytes: u64,
    /// Peak RSS over loading, folding and decoding.
    pub peak_rss_bytes: u64,
    /// `peak_rss_bytes / file_bytes`.
    pub peak_rss_to_file: f64,
    /// Threads.
    pub threads: usize,
    /// Chunk length.
    pub chunk: usize,
    /// Tokens per timed fold.
    pub fold_tokens: usize,
    /// Fold speed (median of the timed folds).
    pub fold_tok_s: f64,
    /// Generation steps timed.
    pub decode_tokens: usize,
    /// Decode speed: one token in, logits out, the argmax fed back.
    pub decode_tok_s: f64,
    /// Bytes of weights one decode step reads (`Model::token_bytes`).
    pub token_bytes: u64,
    /// `decode_tok_s × token_bytes`: the read bandwidth decoding uses, GB/s.
    pub decode_gb_s: f64,
    /// The bandwidth limit measured in the same run: a plain summing read of as many bytes
    /// (a buffer larger than the caches) on the same threads, best of 5, GB/s.
    pub read_gb_s: f64,
    /// `decode_gb_s / read_gb_s`.
    pub bandwidth_ratio: f64,
    /// Bytes of one f32 checkpoint (`--state-precision f32`): the state serialized as the
    /// store writes it.
    pub checkpoint_bytes: u64,
    /// Bytes of one checkpoint at the store's default precision (bf16).
    pub checkpoint_bf16_bytes: u64,
    /// The state's f32 data alone.
    pub state_f32_bytes: u64,
    /// Whether every logit of the fold and the decode steps was finite.
    pub logits_finite: bool,
    /// The official package's figures on the same file, when asked for.
    pub official: Option<serde_json::Value>,
    /// Where it ran.
    pub device: String,
    /// Documents folded at once for the batched figure.
    pub lanes: usize,
    /// Fold tok/s of `lanes` documents of `fold_tokens` each, together (0: not measured).
    pub fold_batched_tok_s: f64,
    /// The same products alone on the same device (bf16 GEMMs of every layer, no head), as tok/s:
    /// one document's rows, and the batched step's rows (0: not measured; GPU only).
    pub gemm_only_tok_s: f64,
    /// See `gemm_only_tok_s`.
    pub gemm_only_batched_tok_s: f64,
    /// GPU memory in use after the run, MB (nvidia-smi; 0 where it is not there).
    pub gpu_memory_mb: f64,
}

fn tokens(n: usize, vocab: usize) -> Vec<u32> {
    (0..n as u64)
        .map(|i| ((i * 2_654_435_761) % vocab as u64) as u32)
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Read the whole file once, so loading is timed with a warm page cache.
fn warm(path: &Path) -> anyhow::Result<()> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; 8 << 20];
    let mut sum = 0u8;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        sum ^= buf[n - 1];
    }
    std::hint::black_box(sum);
    Ok(())
}

fn argmax(v: &[f32]) -> u32 {
    v.iter()
        .enumerate()
        .fold(
            (0usize, f32::NEG_INFINITY),
            |b, (i, &x)| if x > b.1 { (i, x) } else { b },
        )
        .0 as u32
}

/// Generate (or take) the checkpoint, measure, clean up.
pub fn run(plan: &Plan, say: &dyn Fn(String)) -> anyhow::Result<Row> {
    let mut row = Row {
        weights: plan.weights.to_string(),
        threads: plan.threads,
        chunk: plan.chunk,
        ..Default::default()
    };
    let mut generated: Option<PathBuf> = None;
    let path = match (&plan.model, &plan.shape) {
        (Some(p), _) => {
            row.shape = plan.shape.clone().unwrap_or_else(|| {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            row.dims = plan.shape.as_deref().and_then(Shape::named);
            p.clone()
        }
        (None, Some(name)) => {
            let shape = Shape::named(name)
                .with_context(|| format!("unknown shape {name:?} (expected one of {})", Shape::NAMES.join(", ")))?;
            row.shape = name.clone();
            row.dims = Some(shape);
            let dir = plan
                .tmp
                .clone()
                .unwrap_or_else(std::env::temp_dir)
                .join(format!("fold-bench-{}", std::process::id()));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let ext = match plan.dtype {
                FileDType::Bf16 => "bf16",
                FileDType::F32 => "f32",
            };
            let file = dir.join(format!("rwkv7-{name}-seed{}.{ext}.safetensors", plan.seed));
            say(format!("writing {} ({shape:?})", file.display()));
            let t = Instant::now();
            generated = Some(dir);
            write_model(shape, plan.seed, plan.dtype, &file)
                .with_context(|| format!("generating {} (is there room? see `df -h`; --tmp DIR)", file.display()))?;
            row.generate_seconds = t.elapsed().as_secs_f64();
            file
        }
        (None, None) => anyhow::bail!("--shape or --model is needed"),
    };
    let result = measure(plan, &path, &mut row, say);
    let official = if result.is_ok() {
        plan.official.as_deref().map(|py| official(plan, py, &path, &row, say))
    } else {
        None
    };
    if let Some(dir) = &generated {
        if plan.keep {
            say(format!("kept {}", path.display()));
        } else {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    result?;
    row.official = official.transpose()?;
    Ok(row)
}

fn measure(plan: &Plan, path: &Path, row: &mut Row, say: &dyn Fn(String)) -> anyhow::Result<()> {
    row.file = path.display().to_string();
    row.file_bytes = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    warm(path)?;
    reset_peak_rss();
    let t = Instant::now();
    let opts = LoadOptions::default()
        .with_weights(plan.weights)
        .with_device(plan.device);
    row.device = plan.device.to_string();
    row.lanes = plan.lanes;
    let mut model = Model::load_with(path, &opts).with_context(|| format!("loading {}", path.display()))?;
    row.load_seconds = t.elapsed().as_secs_f64();
    row.peak_rss_load_bytes = peak_rss().unwrap_or(0);
    model.set_chunk_len(plan.chunk);
    model.try_set_fold_precision(plan.fold_precision)?;
    row.fold_precision = plan.fold_precision.to_string();
    row.held_weights = model.held_weights().to_string();
    row.weight_bytes = model.weight_bytes() as u64;
    say(format!(
        "loaded in {:.2} s: holds {} ({:.2} GB of weights; {} fold), peak RSS {:.2} GB",
        row.load_seconds,
        row.held_weights,
        row.weight_bytes as f64 / 1e9,
        row.fold_precision,
        row.peak_rss_load_bytes as f64 / 1e9
    ));

    let big = model.config().n_embd >= 2048;
    let n = plan.tokens.unwrap_or(if big { 512 } else { 1024 });
    let repeats = plan.repeats.unwrap_or(if big { 1 } else { 3 }).max(1);
    let steps = plan.decode_tokens.unwrap_or(if big { 16 } else { 128 });
    let vocab = model.config().vocab;
    let toks = tokens(n, vocab);
    let mut finite = true;
    {
        let mut st = model.new_state();
        model.forward_seq(&toks[..plan.chunk.min(n)], &mut st, Logits::None)?; // warm-up
    }
    let mut secs = Vec::new();
    let mut st = model.new_state();
    for _ in 0..repeats {
        st = model.new_state();
        let t = Instant::now();
        let logits = model.forward_seq(&toks, &mut st, Logits::Last)?;
        secs.push(t.elapsed().as_secs_f64());
        finite &= logits.iter().all(|x| x.is_finite());
    }
    row.fold_tokens = n;
    row.fold_tok_s = n as f64 / median(secs);
    say(format!(
        "fold: {:.1} tok/s ({n} tokens, {repeats} timed)",
        row.fold_tok_s
    ));

    if plan.lanes > 1 {
        // B documents of n tokens each (different tokens per lane), folded together.
        let docs: Vec<Vec<u32>> = (0..plan.lanes)
            .map(|i| toks.iter().map(|&t| (t + 7 * i as u32) % vocab as u32).collect())
            .collect();
        let mut states: Vec<rwkv_model::State> = (0..plan.lanes).map(|_| model.new_state()).collect();
        let t = Instant::now();
        let mut lanes: Vec<rwkv_model::Lane<'_>> = docs
            .iter()
            .zip(states.iter_mut())
            .map(|(d, s)| rwkv_model::Lane { tokens: d, state: s })
            .collect();
        for r in model.forward_lanes(&mut lanes) {
            r?;
        }
        let secs = t.elapsed().as_secs_f64();
        row.fold_batched_tok_s = (plan.lanes * n) as f64 / secs;
        say(format!(
            "batched fold: {:.1} tok/s ({} lanes of {n} tokens, {:.2}x the single document)",
            row.fold_batched_tok_s,
            plan.lanes,
            row.fold_batched_tok_s / row.fold_tok_s
        ));
    }
    #[cfg(feature = "cuda")]
    if let (rwkv_model::Device::Cuda(ordinal), Some(cfg)) = (plan.device, model.v7_config()) {
        let single = crate::gpu_gemm::tok_s(cfg, ordinal, n.min(1024))?;
        let batched = crate::gpu_gemm::tok_s(cfg, ordinal, (plan.lanes * n.min(1024)).min(32 * 1024))?;
        row.gemm_only_tok_s = single;
        row.gemm_only_batched_tok_s = batched;
        say(format!(
            "GEMM-only limit: {single:.0} tok/s at one document's rows ({:.2} of it reached), {batched:.0} tok/s at the batched rows ({:.2} reached)",
            row.fold_tok_s / single,
            row.fold_batched_tok_s / batched
        ));
    }
    row.gpu_memory_mb = gpu_memory_mb();

    let spec = model.state_spec();
    row.checkpoint_bytes = st.to_bytes(&spec, "world").len() as u64;
    row.checkpoint_bf16_bytes = st
        .to_bytes_as(&spec, "world", &[], rwkv_model::StatePrecision::Bf16)
        .len() as u64;
    row.state_f32_bytes = st.byte_len() as u64;

    // Decode from the folded state: two untimed steps, then `steps` timed ones.
    let mut next = argmax(&model.forward_token(toks[n.saturating_sub(1)], &mut st)?);
    next = argmax(&model.forward_token(next, &mut st)?);
    let t = Instant::now();
    for _ in 0..steps {
        let logits = model.forward_token(next, &mut st)?;
        finite &= logits.iter().all(|x| x.is_finite());
        next = argmax(&logits);
    }
    row.decode_tokens = steps;
    row.decode_tok_s = steps as f64 / t.elapsed().as_secs_f64();
    row.token_bytes = model.token_bytes() as u64;
    row.decode_gb_s = row.decode_tok_s * row.token_bytes as f64 / 1e9;
    if plan.device == rwkv_model::Device::Cpu {
        row.read_gb_s = read_bandwidth(row.token_bytes as usize, plan.threads);
        row.bandwidth_ratio = row.decode_gb_s / row.read_gb_s;
    }
    say(format!(
        "decode: {:.1} tok/s ({steps} steps), {:.3} GB of weights a token: {:.1} GB/s, {:.2} of a plain read's {:.1} GB/s",
        row.decode_tok_s,
        row.token_bytes as f64 / 1e9,
        row.decode_gb_s,
        row.bandwidth_ratio,
        row.read_gb_s
    ));
    row.logits_finite = finite;
    row.peak_rss_bytes = peak_rss().unwrap_or(0);
    row.peak_rss_to_file = row.peak_rss_bytes as f64 / row.file_bytes as f64;
    Ok(())
}

/// GPU memory in use (MB) by nvidia-smi's count, 0 without it.
/// The read bandwidth of `threads` threads summing a buffer of `bytes` (at least 512 MiB, at
/// most 1 GiB: larger than any cache) split between them, best of 5 passes, GB/s. It is the
/// limit of a bandwidth-bound mat-vec that reads as many bytes.
pub fn read_bandwidth(bytes: usize, threads: usize) -> f64 {
    let words = bytes.clamp(512 << 20, 1 << 30) / 8;
    let buf: Vec<u64> = (0..words as u64).collect();
    let threads = threads.max(1);
    let per = words.div_ceil(threads);
    let mut best = 0f64;
    for _ in 0..5 {
        let t = Instant::now();
        let sum: u64 = std::thread::scope(|s| {
            let hs: Vec<_> = buf.chunks(per).map(|part| s.spawn(move || sum_words(part))).collect();
            hs.into_iter().map(|h| h.join().unwrap_or(0)).fold(0, u64::wrapping_add)
        });
        let secs = t.elapsed().as_secs_f64();
        std::hint::black_box(sum);
        best = best.max((words * 8) as f64 / secs / 1e9);
    }
    best
}

/// The wrapping sum of `words`, in the widest vectors the CPU has.
fn sum_words(words: &[u64]) -> u64 {
    fn plain(words: &[u64]) -> u64 {
        let mut acc = [0u64; 32];
        for c in words.chunks_exact(32) {
            for (a, v) in acc.iter_mut().zip(c) {
                *a = a.wrapping_add(*v);
            }
        }
        acc.iter().fold(0u64, |a, b| a.wrapping_add(*b))
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn wide(words: &[u64]) -> u64 {
            use std::arch::x86_64::*;
            let mut acc = [_mm512_setzero_si512(); 4];
            let blocks = words.chunks_exact(32);
            let rest = plain(blocks.remainder());
            for c in blocks {
                for (j, a) in acc.iter_mut().enumerate() {
                    // SAFETY: `c` holds 32 words, four vectors of eight.
                    *a = _mm512_add_epi64(*a, unsafe { _mm512_loadu_si512(c.as_ptr().add(8 * j).cast()) });
                }
            }
            let v = _mm512_add_epi64(_mm512_add_epi64(acc[0], acc[1]), _mm512_add_epi64(acc[2], acc[3]));
            (_mm512_reduce_add_epi64(v) as u64).wrapping_add(rest)
        }
        #[target_feature(enable = "avx2")]
        fn avx2(words: &[u64]) -> u64 {
            plain(words)
        }
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { wide(words) };
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { avx2(words) };
        }
    }
    plain(words)
}

fn gpu_memory_mb() -> f64 {
    std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=memory.used", "--format=csv,noheader,nounits"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// `benches/official.py` on the same file, its JSON (with `skipped` and a note when torch or
/// `rwkv` is missing).
fn official(
    plan: &Plan,
    python: &str,
    path: &Path,
    row: &Row,
    say: &dyn Fn(String),
) -> anyhow::Result<serde_json::Value> {
    say(format!("official package: {python} {}", plan.official_script.display()));
    let out = std::process::Command::new(python)
        .arg(&plan.official_script)
        .arg("--model")
        .arg(path)
        .args(["--tokens", &row.fold_tokens.to_string()])
        .args(["--decode-tokens", &row.decode_tokens.to_string()])
        .args(["--threads", &plan.threads.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {python} {}", plan.official_script.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} failed ({})",
        plan.official_script.display(),
        out.status
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or("{}");
    serde_json::from_str(last).with_context(|| format!("reading the official script's JSON: {last}"))
}

/// The table's header line.
pub const HEADER: &str = "| shape | weights | held | file GB | load s | peak RSS GB | RSS/file | fold tok/s | decode tok/s | decode GB/s (of read limit) | checkpoint MB (f32 / bf16) | weights GB |\n|---|---|---|---|---|---|---|---|---|---|---|---|";

/// One row of the text table, and the official package's below it when measured.
pub fn table_row(r: &Row) -> String {
    let gb = |b: u64| b as f64 / 1e9;
    let mut s = format!(
        "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2}x | {:.1} | {:.1} | {:.1} ({:.2} of {:.1}) | {:.2} / {:.2} | {:.2} |",
        r.shape,
        r.weights,
        r.held_weights,
        gb(r.file_bytes),
        r.load_seconds,
        gb(r.peak_rss_bytes),
        r.peak_rss_to_file,
        r.fold_tok_s,
        r.decode_tok_s,
        r.decode_gb_s,
        r.bandwidth_ratio,
        r.read_gb_s,
        r.checkpoint_bytes as f64 / 1e6,
        r.checkpoint_bf16_bytes as f64 / 1e6,
        gb(r.weight_bytes)
    );
    if let Some(o) = &r.official {
        let f = |k: &str| o.get(k).and_then(serde_json::Value::as_f64);
        match (f("fold_tok_s"), f("decode_tok_s")) {
            (Some(fold), Some(decode)) => {
                let rss = f("peak_rss_bytes").unwrap_or(0.0);
                s.push_str(&format!(
                    "\n| {} | official `rwkv` {} | f32 | {:.2} | {:.2} | {:.2} | {:.2}x | {fold:.1} | {decode:.1} | – | – | – |",
                    r.shape,
                    o.get("strategy").and_then(|v| v.as_str()).unwrap_or("cpu fp32"),
                    gb(r.file_bytes),
                    f("load_seconds").unwrap_or(0.0),
                    rss / 1e9,
                    rss / r.file_bytes as f64,
                ));
            }
            _ => s.push_str(&format!(
                "\n(official package: {})",
                o.get("note").and_then(|v| v.as_str()).unwrap_or("no figures")
            )),
        }
    }
    s
}
