//! Finding the model, choosing the tokenizer and reporting errors: shared by every tool
//! that loads a model.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use rwkv_model::Model;
use rwkv_model::tokenizer::{BytesTokenizer, Tokenizer, WorldTokenizer};

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
pub const TOKENIZER_HELP: &str = "bytes | world | auto (from the model's vocabulary size)";

/// Choose the tokenizer: explicit name, or from the vocabulary size (256 → bytes, else World).
pub fn choose_tokenizer(name: &str, model: &Model) -> anyhow::Result<Arc<dyn Tokenizer>> {
    let vocab = model.config().vocab;
    let t: Arc<dyn Tokenizer> = match name {
        "bytes" => Arc::new(BytesTokenizer),
        "world" => Arc::new(WorldTokenizer::new()?),
        "auto" if vocab == 256 => Arc::new(BytesTokenizer),
        "auto" if vocab >= 65525 => Arc::new(WorldTokenizer::new()?),
        "auto" => bail!("cannot tell the tokenizer of a model with vocabulary {vocab}: pass --tokenizer"),
        other => bail!("unknown tokenizer `{other}` (expected {TOKENIZER_HELP})"),
    };
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
