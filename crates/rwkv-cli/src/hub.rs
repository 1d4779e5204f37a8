//! Models by hub name: `hf:OWNER/REPO/FILE[@REVISION]` names FILE of the Hugging Face model
//! repository OWNER/REPO at REVISION (default `main`).
//!
//! With the `hub` feature (on by default) the file is downloaded through `hf-hub` into the
//! standard hub cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`) and loaded from there. A file already in the cache is used
//! without asking the network; `HF_HUB_OFFLINE=1` never asks it. `HF_ENDPOINT` replaces
//! `https://huggingface.co`; `HF_TOKEN` (else the token file beside the cache) authenticates.
//!
//! A download goes to hf-hub's `blobs/ETAG.part` and is renamed into place only once all of
//! it arrived, so an interrupted or truncated download never sits at the final path, and the
//! next run resumes the `.part` file with a `Range` request. Where the hub's ETag is a SHA-256
//! (as for every LFS file), the finished file is checked against it.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::bail;

/// The accepted forms of a hub reference.
pub const HUB_FORM: &str = "hf:OWNER/REPO/FILE or hf:OWNER/REPO/FILE@REVISION";

/// One file of a Hugging Face model repository at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRef {
    /// `OWNER/REPO`.
    pub repo: String,
    /// The file's path inside the repository.
    pub file: String,
    /// Branch, tag or commit (`main` unless given).
    pub revision: String,
}

impl fmt::Display for HubRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hf:{}/{}", self.repo, self.file)?;
        if self.revision != "main" {
            write!(f, "@{}", self.revision)?;
        }
        Ok(())
    }
}

impl HubRef {
    /// `None` when `s` is no hub reference (does not start with `hf:`), else the parsed
    /// reference or an error naming the expected form.
    pub fn parse(s: &str) -> Option<anyhow::Result<HubRef>> {
        let rest = s.strip_prefix("hf:")?;
        Some(Self::parse_rest(rest).map_err(|why| {
            anyhow::anyhow!(
                "`{s}` is not a valid hub model reference ({why}): expected {HUB_FORM}, \
                 e.g. hf:BlinkDL/rwkv7-g1/rwkv7-g1a-0.4b-20250905-ctx4096.pth"
            )
        }))
    }

    /// The hub reference a model argument (`--model`, `$RWKV_MODEL`, a job file) spells, if any.
    pub fn from_path(p: &Path) -> Option<anyhow::Result<HubRef>> {
        p.to_str().and_then(Self::parse)
    }

    fn parse_rest(rest: &str) -> Result<HubRef, &'static str> {
        let (body, revision) = match rest.rsplit_once('@') {
            Some((b, r)) => (b, r),
            None => (rest, "main"),
        };
        let mut parts = body.splitn(3, '/');
        let (owner, name, file) = match (parts.next(), parts.next(), parts.next()) {
            (Some(o), Some(n), Some(f)) if !o.is_empty() && !n.is_empty() && !f.is_empty() => (o, n, f),
            _ => return Err("owner, repository and file are all needed"),
        };
        let name_ok = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && s != "."
                && s != ".."
        };
        if !name_ok(owner) || !name_ok(name) {
            return Err("owner and repository may only hold letters, digits, `-`, `_` and `.`");
        }
        let path_ok = |s: &str| {
            !s.contains('\\')
                && !s.chars().any(char::is_control)
                && s.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
        };
        if !path_ok(file) {
            return Err("the file must be a plain path inside the repository");
        }
        if revision.is_empty() || !path_ok(revision) || revision.chars().any(char::is_whitespace) {
            return Err("the revision after `@` must be a branch, tag or commit");
        }
        Ok(HubRef {
            repo: format!("{owner}/{name}"),
            file: file.to_string(),
            revision: revision.to_string(),
        })
    }
}

fn env_nonempty(key: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(key).filter(|v| !v.is_empty())
}

/// `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
fn hf_home() -> anyhow::Result<PathBuf> {
    if let Some(h) = env_nonempty("HF_HOME") {
        return Ok(PathBuf::from(h));
    }
    if let Some(x) = env_nonempty("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(x).join("huggingface"));
    }
    match std::env::home_dir() {
        Some(h) => Ok(h.join(".cache").join("huggingface")),
        None => bail!("cannot find the hub cache: no home directory; set HF_HOME or HF_HUB_CACHE"),
    }
}

/// The hub cache directory: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `~/.cache/huggingface/hub`.
pub fn cache_dir() -> anyhow::Result<PathBuf> {
    match env_nonempty("HF_HUB_CACHE").or_else(|| env_nonempty("HUGGINGFACE_HUB_CACHE")) {
        Some(c) => Ok(PathBuf::from(c)),
        None => Ok(hf_home()?.join("hub")),
    }
}

/// Whether `HF_HUB_OFFLINE` asks never to use the network (1, on, yes, true).
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "on" | "yes" | "true"))
        .unwrap_or(false)
}

/// The hub's base URL: `$HF_ENDPOINT`, else `https://huggingface.co`.
pub fn endpoint() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .map(|e| e.trim().trim_end_matches('/').to_string())
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "https://huggingface.co".to_string())
}

/// The URL a reference downloads from (the hub's `resolve` route).
pub fn url(r: &HubRef) -> String {
    format!(
        "{}/{}/resolve/{}/{}",
        endpoint(),
        r.repo,
        r.revision.replace('/', "%2F"),
        r.file
    )
}

/// The local path of a hub file: from the cache, else downloaded into it.
#[cfg(not(feature = "hub"))]
pub fn fetch(r: &HubRef) -> anyhow::Result<PathBuf> {
    bail!(
        "`{r}` names a model on the Hugging Face hub, but this build of rwkv-cli lacks its `hub` feature \
         (on by default): rebuild with `--features hub`, or download the file and pass its path"
    )
}

/// The local path of a hub file: from the cache, else downloaded into it.
#[cfg(feature = "hub")]
pub fn fetch(r: &HubRef) -> anyhow::Result<PathBuf> {
    online::fetch(r)
}

#[cfg(feature = "hub")]
mod online {
    use std::io::{IsTerminal, Read};
    use std::path::{Path, PathBuf};

    use anyhow::{Context, anyhow, bail};
    use hf_hub::api::sync::{ApiBuilder, ApiError};
    use hf_hub::{Cache, Repo, RepoType};
    use sha2::{Digest, Sha256};

    use super::{HubRef, cache_dir, hf_home, url};

    /// Attempts after the first, each resuming where the last one stopped.
    const RETRIES: usize = 3;

    pub(super) fn fetch(r: &HubRef) -> anyhow::Result<PathBuf> {
        let dir = cache_dir()?;
        let cache = Cache::new(dir.clone());
        let repo = Repo::with_revision(r.repo.clone(), RepoType::Model, r.revision.clone());
        if let Some(p) = cache.repo(repo.clone()).get(&r.file) {
            tracing::info!("{r}: from the hub cache, {}", p.display());
            return Ok(p);
        }
        // A snapshot link whose blob was deleted would block the new link: drop it.
        let repo_dir = dir.join(repo.folder_name());
        if let Ok(commit) = std::fs::read_to_string(repo_dir.join("refs").join(&r.revision)) {
            let link = repo_dir.join("snapshots").join(commit.trim()).join(&r.file);
            if link.symlink_metadata().is_ok() && !link.exists() {
                let _ = std::fs::remove_file(&link);
            }
        }
        let url = url(r);
        if super::offline() {
            bail!(
                "{r} is not in the hub cache {} and HF_HUB_OFFLINE is set: run once online to download it from {url}",
                dir.display()
            );
        }
        let token = std::env::var("HF_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .or_else(|| hf_home().ok().and_then(|h| Cache::new(h.join("hub")).token()));
        let api = ApiBuilder::from_cache(cache)
            .with_endpoint(super::endpoint())
            .with_token(token)
            .with_retries(RETRIES)
            .with_progress(false)
            .with_user_agent("rwkv-cli", env!("CARGO_PKG_VERSION"))
            .build()
            .with_context(|| format!("preparing the download of {url}"))?;
        let api_repo = api.repo(repo);
        tracing::info!("{r}: downloading {url} into {}", dir.display());
        let got = if std::io::stderr().is_terminal() {
            api_repo.download_with_progress(&r.file, Bar::default())
        } else {
            api_repo.download_with_progress(&r.file, ())
        };
        let path = got.map_err(|e| explain(e, &url, &dir))?;
        verify(&path, &url)?;
        Ok(path)
    }

    /// A named error with the URL for each way a download fails.
    fn explain(e: ApiError, url: &str, dir: &Path) -> anyhow::Error {
        match e {
            ApiError::TooManyRetries(inner) => {
                explain(*inner, url, dir).context(format!("gave up downloading {url} after {} attempts", RETRIES + 1))
            }
            ApiError::RequestError(re) => match *re {
                ureq::Error::Status(404, _) => {
                    anyhow!("hub file not found (HTTP 404): {url}: check the owner, repository, file name and revision")
                }
                ureq::Error::Status(code @ (401 | 403), _) => {
                    anyhow!("hub access denied (HTTP {code}): {url}: the repository is private or gated; set HF_TOKEN")
                }
                ureq::Error::Status(416, _) => anyhow!(
                    "hub request failed (HTTP 416, range not satisfiable): {url}: the partial download under {} \
                     is already as long as the file; delete its .part file and retry",
                    dir.display()
                ),
                ureq::Error::Status(code, _) => anyhow!("hub request failed (HTTP {code}): {url}"),
                ureq::Error::Transport(t) => {
                    let t = t.to_string();
                    let why = t.strip_prefix(&format!("{url}: ")).unwrap_or(&t);
                    anyhow!("network failure downloading {url}: {why}")
                }
            },
            ApiError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => anyhow!(
                "truncated download: {url} ended before all its bytes arrived ({io}); the partial file stays \
                 as a .part file under {} and the next run resumes it",
                dir.display()
            ),
            ApiError::IoError(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                anyhow!(
                    "network failure downloading {url}: {io}; the partial file stays as a .part file under {} \
                     and the next run resumes it",
                    dir.display()
                )
            }
            ApiError::IoError(io) => anyhow!("download of {url} failed: {io}"),
            ApiError::MissingHeader(h) | ApiError::InvalidHeader(h) => anyhow!(
                "{url} did not answer like the Hugging Face hub (header `{h}` missing or invalid; is HF_ENDPOINT right?)"
            ),
            ApiError::ParseIntError(_) => {
                anyhow!("{url} did not answer like the Hugging Face hub (unreadable Content-Range)")
            }
            ApiError::InvalidResume => anyhow!(
                "the partial download of {url} under {} is longer than the file: delete its .part file and retry",
                dir.display()
            ),
            ApiError::LockAcquisition(p) => anyhow!(
                "another process is downloading {url} (lock {}); retry when it is done",
                p.display()
            ),
        }
    }

    /// Where the blob's name (the hub's ETag) is a SHA-256, the file must have that hash; a
    /// file that does not is removed from the cache again.
    fn verify(path: &Path, url: &str) -> anyhow::Result<()> {
        let blob = std::fs::canonicalize(path).with_context(|| format!("opening {}", path.display()))?;
        let Some(etag) = blob.file_name().and_then(|n| n.to_str()) else {
            return Ok(());
        };
        if etag.len() != 64 || !etag.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(());
        }
        let mut f = std::fs::File::open(&blob).with_context(|| format!("opening {}", blob.display()))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f
                .read(&mut buf)
                .with_context(|| format!("reading {}", blob.display()))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let got: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        if got.eq_ignore_ascii_case(etag) {
            return Ok(());
        }
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_file(&blob);
        bail!("corrupt download: {url} has SHA-256 {got} but the hub's ETag says {etag}; removed it from the cache")
    }

    /// A terminal progress bar for hf-hub's downloads.
    #[derive(Default)]
    struct Bar(Option<indicatif::ProgressBar>);

    impl hf_hub::api::Progress for Bar {
        fn init(&mut self, size: usize, filename: &str) {
            let name = filename.rsplit('/').next().unwrap_or(filename).to_string();
            let bar = self.0.get_or_insert_with(|| {
                let mut b = indicatif::ProgressBar::hidden().with_message(name);
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "{msg} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ({eta})",
                ) {
                    b = b.with_style(style.progress_chars("=> "));
                }
                b.set_length(size as u64);
                b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                b
            });
            bar.set_length(size as u64);
            // Each attempt reports the bytes it resumes from as its first update.
            bar.set_position(0);
        }

        fn update(&mut self, size: usize) {
            if let Some(b) = &self.0 {
                b.inc(size as u64);
            }
        }

        fn finish(&mut self) {
            if let Some(b) = &self.0 {
                b.finish();
            }
        }
    }
}

/// A local path for a model argument: a hub reference is fetched, anything else is a path.
pub fn local_model_path(p: &Path) -> anyhow::Result<PathBuf> {
    match HubRef::from_path(p) {
        Some(r) => fetch(&r?),
        None => Ok(p.to_path_buf()),
    }
}

/// Whether a path names the hub (`hf:…`), for callers that resolve relative paths.
pub fn is_hub_ref(p: &Path) -> bool {
    p.to_str().is_some_and(|s| s.starts_with("hf:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let r = HubRef::parse("hf:BlinkDL/rwkv7-g1/rwkv7-g1a-0.4b-20250905-ctx4096.pth")
            .unwrap()
            .unwrap();
        assert_eq!(r.repo, "BlinkDL/rwkv7-g1");
        assert_eq!(r.file, "rwkv7-g1a-0.4b-20250905-ctx4096.pth");
        assert_eq!(r.revision, "main");
        let r = HubRef::parse("hf:o/r/sub/dir/m.safetensors@v1.0").unwrap().unwrap();
        assert_eq!(
            (r.file.as_str(), r.revision.as_str()),
            ("sub/dir/m.safetensors", "v1.0")
        );
        assert_eq!(r.to_string(), "hf:o/r/sub/dir/m.safetensors@v1.0");
        assert!(HubRef::parse("models/x.pth").is_none());
        for bad in [
            "hf:only-owner",
            "hf:o/r",
            "hf:o/r/",
            "hf:o//f",
            "hf:o/r/../../etc/passwd",
            "hf:o/r/f@",
            "hf:o w/r/f",
            "hf:o/r/a//b",
        ] {
            let e = HubRef::parse(bad).unwrap().unwrap_err().to_string();
            assert!(e.contains(HUB_FORM), "{bad}: {e}");
        }
        assert!(is_hub_ref(Path::new("hf:o/r/f")));
        assert!(!is_hub_ref(Path::new("./hf:o/r/f")));
        assert!(!is_hub_ref(Path::new("models/hf:x")));
    }
}
