//! Finding the model, choosing the tokenizer and reporting errors: shared by every tool
//! that loads a model.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use rwkv_model::Model;
use rwkv_model::tokenizer::{HfTokenizer, KnownTokenizer, Tokenizer};

/// The bundled demo model, relative to the workspace root.
pub const DEMO_MODEL: &str = "fixtures/models/rwkv7-code-11m.bf16.safetensors";

/// The model to use: `--model`, else `$RWKV_MODEL`, else the bundled demo model.
pub fn resolve_model_path(arg: Option<&Path>) -> anyhow::Result<(PathBuf, bool)> {
    if let Some(p) = arg {
        return Ok((p.to_path_buf(), false));
    }
    if let Some(p) = std::env::var_os("RWKV_MODEL") {
        return Ok((PathBuf::from(p), false));
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

/// Load a model, with the file named in any error.
pub fn load_model(path: &Path) -> anyhow::Result<Model> {
    Model::load(path).with_context(|| format!("loading model {}", path.display()))
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

/// Print an error chain to stderr the way every binary does, returning exit code 2.
pub fn report(err: &anyhow::Error) -> i32 {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    2
}
