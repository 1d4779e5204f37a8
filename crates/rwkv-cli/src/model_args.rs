//! Finding the model, choosing the tokenizer and reporting errors: shared by every tool
//! that loads a model.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use rwkv_model::Model;
use rwkv_model::tokenizer::{HfTokenizer, KnownTokenizer, Tokenizer};

/// The bundled demo model, relative to the workspace root.
pub const DEMO_MODEL: &str = "fixtures/models/rwkv7-code-11m.bf16.safetensors";

/// A file bundled with the repository (`fixtures/…`), relative to the current folder or, for a
/// binary run from anywhere, to the workspace it was built in.
fn bundled(rel: &str) -> Option<PathBuf> {
    [
        PathBuf::from(rel),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel),
    ]
    .into_iter()
    .find(|c| c.is_file())
}

/// The model to use: `--model`, else `$RWKV_MODEL`, else the bundled demo model. A hub
/// reference (`hf:OWNER/REPO/FILE[@REVISION]`) is fetched into the hub cache first and its
/// cached path returned (see [`crate::hub`]).
pub fn resolve_model_path(arg: Option<&Path>) -> anyhow::Result<(PathBuf, bool)> {
    if let Some(p) = arg {
        return Ok((crate::hub::local_model_path(p)?, false));
    }
    if let Some(p) = std::env::var_os("RWKV_MODEL") {
        return Ok((crate::hub::local_model_path(Path::new(&p))?, false));
    }
    if let Some(p) = bundled(DEMO_MODEL) {
        return Ok((p, true));
    }
    bail!("no model given and the bundled demo model ({DEMO_MODEL}) was not found: pass --model PATH or set RWKV_MODEL")
}

/// What the model holds its weights as: `--weights`, shared by every tool that loads a model.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct WeightArgs {
    /// What the model holds its weight matrices as, for folding and generation alike: auto (the
    /// checkpoint's own precision: bf16 and f16 stay 16-bit, f32 stays f32), f32, bf16 (f32/f16
    /// weights rounded), or int8 (quantized at load, one scale per row; about a quarter of the
    /// f32 bytes, approximate). Products always sum in f32.
    #[arg(long)]
    pub weights: Option<rwkv_model::Weights>,
    /// Where the forward pass runs: cpu (the default), or cuda / cuda:N in a build with the
    /// CUDA backend (`--features cuda`).
    #[arg(long, value_name = "cpu|cuda[:N]")]
    pub device: Option<rwkv_model::Device>,
    /// Replaced by --weights (one copy of the weights now serves folding and generation).
    #[arg(long, hide = true)]
    pub decode_weights: Option<String>,
}

impl WeightArgs {
    /// `--weights`, else `fallback` (a job file's), else auto; an error for the old flag.
    pub fn resolve(&self, fallback: Option<rwkv_model::Weights>) -> anyhow::Result<rwkv_model::Weights> {
        Ok(self.given()?.or(fallback).unwrap_or_default())
    }

    /// `--weights` as given (`None`: not given); an error for the old flag.
    pub fn given(&self) -> anyhow::Result<Option<rwkv_model::Weights>> {
        if let Some(old) = &self.decode_weights {
            bail!(
                "--decode-weights was replaced by --weights auto|f32|bf16|int8, which sets what the model \
                 holds for folding and generation alike (try --weights {old})"
            );
        }
        Ok(self.weights)
    }

    /// `--device`, else `fallback` (a job file's `device`), else the CPU.
    pub fn resolve_device(&self, fallback: Option<&str>) -> anyhow::Result<rwkv_model::Device> {
        match (self.device, fallback) {
            (Some(d), _) => Ok(d),
            (None, Some(s)) => s.parse().map_err(|e: String| anyhow::anyhow!("job file: {e}")),
            (None, None) => Ok(rwkv_model::Device::Cpu),
        }
    }
}

/// A loaded model and how long loading took.
pub struct Loaded {
    /// The model.
    pub model: Model,
    /// Seconds from opening the file to a model ready to run.
    pub load_seconds: f64,
}

/// Load a model holding its weights as `weights` on `device`, with the file named in any error.
pub fn load_model(path: &Path, weights: rwkv_model::Weights, device: rwkv_model::Device) -> anyhow::Result<Loaded> {
    let start = std::time::Instant::now();
    let opts = rwkv_model::LoadOptions::default()
        .with_weights(weights)
        .with_device(device);
    let model = Model::load_with(path, &opts).with_context(|| format!("loading model {}", path.display()))?;
    Ok(Loaded {
        model,
        load_seconds: start.elapsed().as_secs_f64(),
    })
}

/// `--fold-precision` of `rwkv-ask`: a precision, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPrecision {
    /// [`fast_read_precision`] for the loaded model.
    Auto,
    /// This one.
    Fixed(rwkv_model::FoldPrecision),
}

impl std::str::FromStr for ReadPrecision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(ReadPrecision::Auto),
            other => other
                .parse::<rwkv_model::FoldPrecision>()
                .map(ReadPrecision::Fixed)
                .map_err(|e| format!("{e} (or auto)")),
        }
    }
}

/// Matrices at least this large (bytes held) make the exact re-read before an answer take
/// seconds on a laptop CPU: the int8 fold is worth its packed copy from here on.
pub const FAST_READ_MIN_BYTES: usize = 1 << 30;

/// The precision `--fold-precision auto` re-reads with: the int8 fold (twice the exact fold's
/// speed on AVX2 CPUs, +0.001 bits/token on the demo model: see docs/benchmarks.md) for a CPU
/// model whose matrices hold at least [`FAST_READ_MIN_BYTES`] and whose int8 copy fits twice
/// in the memory the OS says is available (int8 weights need no copy); else f32 (exact; for small models the re-read takes
/// well under a second either way). What is re-read is never stored.
pub fn fast_read_precision(model: &Model) -> rwkv_model::FoldPrecision {
    read_precision_for(
        model.device(),
        model.weight_bytes(),
        model.held_weights(),
        mem_available_bytes(),
    )
}

/// [`fast_read_precision`] from what it looks at: the device, the bytes and kind of the
/// matrices held, and the memory available (unknown: no second copy, unless none is needed).
fn read_precision_for(
    device: rwkv_model::Device,
    weight_bytes: usize,
    held: &str,
    available: Option<u64>,
) -> rwkv_model::FoldPrecision {
    use rwkv_model::FoldPrecision;
    if device != rwkv_model::Device::Cpu || weight_bytes < FAST_READ_MIN_BYTES {
        return FoldPrecision::F32;
    }
    // The int8 copy holds a byte per weight; int8 weights are laid out anew in place of their
    // panels (no copy).
    let per_weight = match held {
        "int8" => return FoldPrecision::Int8,
        "f32" => 4,
        "bf16" | "f16" => 2,
        _ => 1,
    };
    let copy = (weight_bytes / per_weight) as u64;
    match available {
        Some(avail) if avail >= 2 * copy => FoldPrecision::Int8,
        _ => FoldPrecision::F32,
    }
}

/// `MemAvailable` of `/proc/meminfo`, where the OS reports it.
fn mem_available_bytes() -> Option<u64> {
    proc_kib("/proc/meminfo", "MemAvailable:")
}

/// The `KEY  N kB` line of a `/proc` file, in bytes.
fn proc_kib(file: &str, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(file).ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The process's peak resident memory in bytes (`VmHWM`), where the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_kib("/proc/self/status", "VmHWM:")
}

/// Tokenizer names accepted by `--tokenizer`.
pub const TOKENIZER_HELP: &str = "auto (from the checkpoint: metadata, else vocabulary size) | bytes | world | 20b | PATH to a byte-level BPE tokenizer.json";

/// Choose the tokenizer: `auto` (what the checkpoint says, else its vocabulary size: 256 →
/// bytes, 50,277/50,304 → 20b, 65,536 → world), a name, or a `tokenizer.json` path.
pub fn choose_tokenizer(name: &str, model: &Model) -> anyhow::Result<Arc<dyn Tokenizer>> {
    let vocab = model.config().vocab;
    let t: Arc<dyn Tokenizer> = if name == "auto" {
        match KnownTokenizer::for_model(vocab, model.metadata()) {
            Some(k) => k.load()?,
            None => bail!("cannot tell the tokenizer of a model with vocabulary {vocab}: pass --tokenizer"),
        }
    } else if let Some(k) = KnownTokenizer::from_name(name) {
        k.load()?
    } else if Path::new(name).is_file() {
        Arc::new(HfTokenizer::from_file(Path::new(name)).with_context(|| format!("loading tokenizer {name}"))?)
    } else {
        bail!("unknown tokenizer `{name}` (expected {TOKENIZER_HELP})")
    };
    // World pads its 65,529 ids to 65,536; any other tokenizer must fit the model's vocabulary.
    if t.vocab_size() > vocab && t.id() != "world" {
        bail!(
            "tokenizer `{}` has {} ids but the model only {vocab}",
            t.id(),
            t.vocab_size()
        );
    }
    Ok(t)
}

/// The prompt template `--template` names (`chat`, `plain`, `g1`, or `auto`: G1 for World
/// models named or marked G1, chat for other World models, plain for base models), with the G1
/// thinking switch `think`.
pub fn choose_template(
    name: &str,
    think: bool,
    tokenizer: &dyn Tokenizer,
    model: &Model,
    model_path: &Path,
) -> rwkv_heads::Template {
    use rwkv_heads::Template;
    match name {
        "chat" => Template::Chat,
        "plain" => Template::Plain,
        "g1" => Template::G1 { think },
        _ => {
            let file = model_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let meta: Vec<&str> = model.metadata().values().map(String::as_str).collect();
            Template::for_model(tokenizer, &file, &meta, think)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rwkv_model::{Device, FoldPrecision};

    #[test]
    fn auto_reads_large_cpu_models_with_the_int8_fold_when_its_copy_fits() {
        const GB: usize = 1 << 30;
        let plenty = Some(64 << 30);
        let (cpu, f32_, int8) = (Device::Cpu, FoldPrecision::F32, FoldPrecision::Int8);
        let cases = [
            // The demo model and other small ones: exact.
            (cpu, 22 << 20, "bf16", plenty, f32_),
            // 1.5B bf16 (3 GB): int8, whose 1.5 GB copy must fit twice in what is available.
            (cpu, 3 * GB, "bf16", Some(4 << 30), int8),
            (cpu, 3 * GB, "bf16", Some(2 << 30), f32_),
            (cpu, 3 * GB, "bf16", None, f32_),
            // f32 matrices: a copy of a quarter of their bytes; int8 ones: none (the fold's
            // layout replaces their panels), however little memory is left.
            (cpu, 12 * GB, "f32", Some(7 << 30), int8),
            (cpu, 12 * GB, "f32", Some(5 << 30), f32_),
            (cpu, 3 * GB, "int8", Some(1 << 30), int8),
            (cpu, 3 * GB, "int8", None, int8),
            // A GPU folds its own way.
            (Device::Cuda(0), 3 * GB, "bf16", plenty, f32_),
        ];
        for (device, bytes, held, avail, want) in cases {
            assert_eq!(
                read_precision_for(device, bytes, held, avail),
                want,
                "{device} {bytes} {held} {avail:?}"
            );
        }
        // The flag's words.
        assert_eq!("auto".parse::<ReadPrecision>(), Ok(ReadPrecision::Auto));
        assert_eq!(
            "int8".parse::<ReadPrecision>(),
            Ok(ReadPrecision::Fixed(FoldPrecision::Int8))
        );
        assert!("int4".parse::<ReadPrecision>().unwrap_err().contains("auto"));
    }
}

/// The bundled sentence encoder (all-MiniLM-L6-v2, see `fixtures/README.md`), relative to the
/// workspace root.
pub const DEMO_EMBEDDER: &str = "fixtures/models/all-minilm-l6-v2.bf16.safetensors";

/// The sentence encoder that re-ranks retrieval by meaning: `--embedder`, shared by every tool
/// that answers questions.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EmbedderArgs {
    /// Sentence encoder that re-ranks the best units by meaning and helps tell a question the
    /// store cannot answer (a file made by scripts/make-embedder.py). Default: $RWKV_EMBEDDER,
    /// else the bundled all-MiniLM-L6-v2.
    #[arg(long, value_name = "PATH")]
    pub embedder: Option<PathBuf>,
    /// Rank by words and names only (no sentence encoder).
    #[arg(long, conflicts_with = "embedder")]
    pub no_embedder: bool,
}

impl EmbedderArgs {
    /// The encoder to use: `None` with `--no-embedder`, or when none was given and the bundled
    /// one is not there. A given file that does not load is an error naming it.
    pub fn load(&self) -> anyhow::Result<Option<Arc<rwkv_embed::Embedder>>> {
        if self.no_embedder {
            return Ok(None);
        }
        let given = self
            .embedder
            .clone()
            .or_else(|| std::env::var_os("RWKV_EMBEDDER").map(PathBuf::from));
        let path = match given {
            Some(p) => p,
            None => match bundled(DEMO_EMBEDDER) {
                Some(p) => p,
                None => {
                    tracing::info!("no sentence encoder ({DEMO_EMBEDDER} not found): ranking by words and names");
                    return Ok(None);
                }
            },
        };
        let e = rwkv_embed::Embedder::load(&path)
            .with_context(|| format!("loading the sentence encoder {}", path.display()))?;
        Ok(Some(Arc::new(e)))
    }
}
