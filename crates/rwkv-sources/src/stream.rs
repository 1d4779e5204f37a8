//! Inputs to a bounded, ordered stream of documents.
//!
//! A planner on one blocking thread walks the inputs in order (directories through
//! [`crate::walk`], WARC files record by record) and sends small tasks down a bounded
//! channel; extraction runs on tokio's blocking pool, at most [`Options::jobs`] at once, and
//! `buffered` hands results back in input order. Memory is therefore bounded by the jobs and
//! the caps, never by the size of the corpus, and output is deterministic however the work
//! is scheduled. Every task ends as exactly one item: a document or the error for that input.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;

use crate::book::pdf::panic_message;
use crate::book::{self, BookFormat};
use crate::code::code_document;
use crate::document::Document;
use crate::error::{Error, Result, display_path};
use crate::options::{DirMode, Options};
use crate::walk::{Found, Globs, walk};
use crate::web::fetch::{Fetcher, response_document};
use crate::web::warc::{Response, read_warc};
use crate::web::{self, PageOrigin};

/// One input as the user gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A file or directory.
    Path(PathBuf),
    /// An `http://` or `https://` URL.
    Url(String),
}

impl Input {
    /// A URL when `s` starts with `http://` or `https://`, else a path.
    pub fn parse(s: &str) -> Self {
        let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            Input::Url(s.to_string())
        } else {
            Input::Path(PathBuf::from(s))
        }
    }
}

impl std::fmt::Display for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Path(p) => f.write_str(&display_path(p)),
            Input::Url(u) => f.write_str(u),
        }
    }
}

/// How one file is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Code,
    Book(BookFormat),
    Html,
    Warc,
}

/// The document format of a file by its name, for files given directly and directories in
/// [`DirMode::Documents`].
fn document_format(path: &Path) -> Option<Format> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".warc") || name.ends_with(".warc.gz") {
        return Some(Format::Warc);
    }
    let ext = name.rsplit_once('.')?.1;
    Some(match ext {
        "html" | "htm" | "xhtml" | "shtml" => Format::Html,
        "txt" | "text" => Format::Book(BookFormat::Text),
        "md" | "markdown" => Format::Book(BookFormat::Markdown),
        "epub" => Format::Book(BookFormat::Epub),
        "pdf" => Format::Book(BookFormat::Pdf),
        _ => return None,
    })
}

/// Files that mark a directory as a code base.
const PROJECT_MARKERS: &[&str] = &[
    ".git",
    "Cargo.toml",
    "package.json",
    "go.mod",
    "pyproject.toml",
    "setup.py",
    "requirements.txt",
    "Makefile",
    "CMakeLists.txt",
    "pom.xml",
    "build.gradle",
    "build.gradle.kts",
    "Gemfile",
    "composer.json",
    "mix.exs",
    "stack.yaml",
    "deno.json",
    "tsconfig.json",
    "meson.build",
    "BUILD.bazel",
    "WORKSPACE",
    "flake.nix",
    "Package.swift",
    "pubspec.yaml",
    "src",
];

/// Decides how to read a directory in [`DirMode::Auto`]: project markers mean code, else the
/// majority of (up to 500 of) its files decides.
fn detect_mode(dir: &Path, opts: &Options, globs: &Arc<Globs>) -> DirMode {
    if PROJECT_MARKERS.iter().any(|m| dir.join(m).exists()) {
        return DirMode::Code;
    }
    let (mut docs, mut total) = (0usize, 0usize);
    walk(dir, opts, globs.clone(), true, &mut |found| {
        if let Found::File { path, .. } = found {
            total += 1;
            docs += usize::from(document_format(&path).is_some());
        }
        if total >= 500 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    if total > 0 && docs * 2 > total {
        DirMode::Documents
    } else {
        DirMode::Code
    }
}

/// Work for the extraction pool.
enum Task {
    File {
        path: PathBuf,
        rel: String,
        source: Arc<str>,
        format: Format,
    },
    Record {
        warc: PathBuf,
        source: Arc<str>,
        resp: Response,
    },
    Url(String),
    Failed(Error),
}

/// Shared by all tasks of one stream.
struct Ctx {
    opts: Options,
    fetcher: OnceLock<std::result::Result<Fetcher, String>>,
}

/// A set of inputs read as one stream of documents.
///
/// ```no_run
/// # async fn run() -> rwkv_sources::Result<()> {
/// use futures::StreamExt;
/// use rwkv_sources::{Input, Options, Sources};
/// let mut docs = Sources::new(Options::default())?.input(Input::parse("src")).stream();
/// while let Some(item) = docs.next().await {
///     match item {
///         Ok(doc) => println!("{} {} lines", doc.title, doc.lines()),
///         Err(e) => eprintln!("skipped {}: {e}", e.at()),
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Sources {
    inputs: Vec<Input>,
    opts: Options,
    globs: Arc<Globs>,
}

impl Sources {
    /// Sources with these options; fails only on an invalid include/exclude glob.
    pub fn new(opts: Options) -> Result<Self> {
        let globs = Arc::new(Globs::new(&opts.include, &opts.exclude)?);
        Ok(Sources {
            inputs: Vec::new(),
            opts,
            globs,
        })
    }

    /// Adds an input.
    pub fn input(mut self, input: Input) -> Self {
        self.inputs.push(input);
        self
    }

    /// Adds inputs.
    pub fn inputs(mut self, inputs: impl IntoIterator<Item = Input>) -> Self {
        self.inputs.extend(inputs);
        self
    }

    /// The documents of all inputs, in input order (and walk order within a directory), each
    /// bad input as an `Err` in its place. Must be polled inside a tokio runtime (any flavour;
    /// extraction uses the blocking pool). Dropping the stream stops the walk.
    pub fn stream(self) -> BoxStream<'static, Result<Document>> {
        let jobs = self.opts.jobs.max(1);
        let ctx = Arc::new(Ctx {
            opts: self.opts,
            fetcher: OnceLock::new(),
        });
        let (tx, rx) = mpsc::channel::<Task>(jobs * 2);
        let plan_ctx = ctx.clone();
        let (inputs, globs) = (self.inputs, self.globs);
        let tasks = futures::stream::once(async move {
            tokio::task::spawn_blocking(move || plan(inputs, &plan_ctx.opts, globs, tx));
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|t| (t, rx)) })
        })
        .flatten();
        tasks.map(move |task| run(task, ctx.clone())).buffered(jobs).boxed()
    }
}

/// Walks the inputs and sends tasks; stops when the receiver is gone.
fn plan(inputs: Vec<Input>, opts: &Options, globs: Arc<Globs>, tx: mpsc::Sender<Task>) {
    let send = |t: Task| {
        if tx.blocking_send(t).is_ok() {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    };
    for input in inputs {
        let flow = match input {
            Input::Url(u) => send(Task::Url(u)),
            Input::Path(p) => plan_path(&p, opts, &globs, &send),
        };
        if flow.is_break() {
            return;
        }
    }
}

fn canonical(p: &Path) -> Arc<str> {
    let c = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    Arc::from(c.to_string_lossy().as_ref())
}

fn plan_path(p: &Path, opts: &Options, globs: &Arc<Globs>, send: &dyn Fn(Task) -> ControlFlow<()>) -> ControlFlow<()> {
    let meta = match std::fs::metadata(p) {
        Ok(m) => m,
        Err(e) => return send(Task::Failed(Error::io(display_path(p), e))),
    };
    let source = canonical(p);
    if meta.is_file() {
        let format = document_format(p).unwrap_or(Format::Code);
        if format == Format::Warc {
            return plan_warc(p, &source, opts, send);
        }
        return send(Task::File {
            path: p.to_path_buf(),
            rel: String::new(),
            source,
            format,
        });
    }
    if !meta.is_dir() {
        return send(Task::Failed(Error::NotRegular { at: display_path(p) }));
    }
    let mode = match opts.dir_mode {
        DirMode::Auto => detect_mode(p, opts, globs),
        m => m,
    };
    let mut flow = ControlFlow::Continue(());
    walk(p, opts, globs.clone(), mode == DirMode::Documents, &mut |found| {
        flow = match found {
            Found::Failed(e) => send(Task::Failed(e)),
            Found::File { path, rel, size } => match mode {
                DirMode::Documents => match document_format(&path) {
                    Some(Format::Warc) => plan_warc(&path, &canonical(&path), opts, send),
                    Some(format) => send(Task::File {
                        path,
                        rel,
                        source: source.clone(),
                        format,
                    }),
                    None => {
                        let what = path.extension().map_or("file without extension".into(), |e| {
                            format!("file type .{}", e.to_string_lossy())
                        });
                        send(Task::Failed(Error::Unsupported {
                            at: display_path(&path),
                            what,
                        }))
                    }
                },
                _ if size > opts.max_file_size => send(Task::Failed(Error::TooLarge {
                    at: display_path(&path),
                    size,
                    cap: opts.max_file_size,
                })),
                _ => send(Task::File {
                    path,
                    rel,
                    source: source.clone(),
                    format: Format::Code,
                }),
            },
        };
        flow
    });
    flow
}

fn plan_warc(p: &Path, source: &Arc<str>, opts: &Options, send: &dyn Fn(Task) -> ControlFlow<()>) -> ControlFlow<()> {
    let mut flow = ControlFlow::Continue(());
    read_warc(p, opts, &mut |r| {
        flow = match r {
            Ok(resp) => send(Task::Record {
                warc: p.to_path_buf(),
                source: source.clone(),
                resp,
            }),
            Err(e) => send(Task::Failed(e)),
        };
        flow
    });
    flow
}

async fn run(task: Task, ctx: Arc<Ctx>) -> Result<Document> {
    match task {
        Task::Failed(e) => Err(e),
        Task::File {
            path,
            rel,
            source,
            format,
        } => {
            let at = display_path(&path);
            let c = ctx.clone();
            blocking(&ctx, at, format_name(format), move || {
                extract_file(&path, &rel, &source, format, &c.opts)
            })
            .await
        }
        Task::Record { warc, source, resp } => {
            let at = resp.at.clone();
            blocking(&ctx, at, "HTML", move || {
                let locator = format!("{}\0{}", resp.url, resp.record_id);
                let o = PageOrigin {
                    at: &resp.at,
                    source: &source,
                    locator: &locator,
                    path: Some(warc),
                    url: Some(resp.url.clone()),
                    name: &resp.url,
                };
                web::page_document(&resp.body, resp.content_type.as_deref(), o)
            })
            .await
        }
        Task::Url(url) => {
            let fetcher = ctx.fetcher.get_or_init(|| Fetcher::new(&ctx.opts));
            let fetcher = fetcher
                .as_ref()
                .map_err(|e| Error::Fetch {
                    at: url.clone(),
                    reason: e.clone(),
                })?
                .clone();
            let fetched = fetcher.get(&url).await?;
            let c = ctx.clone();
            blocking(&ctx, url, "HTTP body", move || response_document(fetched, &c.opts)).await
        }
    }
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Code => "text",
        Format::Book(BookFormat::Text | BookFormat::Markdown) => "text",
        Format::Book(BookFormat::Epub) => "EPUB",
        Format::Book(BookFormat::Pdf) => "PDF",
        Format::Html => "HTML",
        Format::Warc => "WARC",
    }
}

fn extract_file(path: &Path, rel: &str, source: &str, format: Format, opts: &Options) -> Result<Document> {
    match format {
        Format::Code => code_document(path, rel, source, opts),
        Format::Book(f) => book::book_file(path, rel, source, f, opts),
        Format::Html => web::html_file(path, rel, source, opts),
        Format::Warc => unreachable!("WARC files are expanded by the planner"),
    }
}

/// Runs `f` on the blocking pool with the extraction timeout, turning panics into errors.
async fn blocking(
    ctx: &Ctx,
    at: String,
    format: &'static str,
    f: impl FnOnce() -> Result<Document> + Send + 'static,
) -> Result<Document> {
    let limit = ctx.opts.extract_timeout;
    let span = tracing::debug_span!(target: "rwkv::extract", "extract", at = %at, format);
    match tokio::time::timeout(limit, tokio::task::spawn_blocking(move || span.in_scope(f))).await {
        Err(_) => Err(Error::Timeout {
            at,
            secs: limit.as_secs(),
        }),
        Ok(Err(join)) => {
            let message = if join.is_panic() {
                panic_message(&*join.into_panic())
            } else {
                "cancelled".into()
            };
            Err(Error::Panicked { at, format, message })
        }
        Ok(Ok(r)) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ctx(timeout: Duration) -> Ctx {
        Ctx {
            opts: Options {
                extract_timeout: timeout,
                ..Options::default()
            },
            fetcher: OnceLock::new(),
        }
    }

    #[tokio::test]
    async fn parser_panics_and_hangs_are_contained() {
        let c = ctx(Duration::from_millis(200));
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let e = blocking(&c, "x.pdf".into(), "PDF", || panic!("bad xref"))
            .await
            .unwrap_err();
        std::panic::set_hook(prev);
        assert_eq!(
            (e.reason(), e.to_string().as_str()),
            ("panicked", "x.pdf: PDF parser crashed: bad xref")
        );
        let e = blocking(&c, "y.pdf".into(), "PDF", || {
            std::thread::sleep(Duration::from_secs(2));
            Err(Error::Empty {
                at: "y.pdf".into(),
                detail: String::new(),
            })
        })
        .await
        .unwrap_err();
        assert_eq!(e.reason(), "timeout");
    }

    #[test]
    fn inputs_and_formats() {
        assert_eq!(Input::parse("HTTPS://x.org/a"), Input::Url("HTTPS://x.org/a".into()));
        assert_eq!(Input::parse("http.rs"), Input::Path("http.rs".into()));
        assert_eq!(document_format(Path::new("a/CRAWL.warc.gz")), Some(Format::Warc));
        assert_eq!(
            document_format(Path::new("b.epub")),
            Some(Format::Book(BookFormat::Epub))
        );
        assert_eq!(document_format(Path::new("c.rs")), None);
    }
}
