//! Finding the model, choosing the tokenizer and reporting errors: shared by every tool
//! that loads a model.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use rwkv_model::Model;
use rwkv_model::tokenizer::{HfTokenizer, KnownTokenizer, Tokenizer};

/// The bundled demo model, relative to the workspace root.
pub const DEMO_MODEL: &str = "fixtures/models/rwkv7-code-11m.bf16.safetensors";

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
    let candidates = [
        PathBuf::from(DEMO_MODEL),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(DEMO_MODEL),
    ];
    for c in candidates {
        if c.is_file() {
            return Ok((c, true));
        }
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

/// The process's peak resident memory in bytes (`VmHWM`), where the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
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
