//! Errors of the sources crate.
//!
//! Every error belongs to one input (a file, a URL, a WARC record) and names it, so that a run
//! can report it and carry on: a bad input never stops the others. Deliberate skips (a binary
//! file, a file over the size cap) are errors too, with their own [`Error::reason`] code, so
//! callers can tell "skipped by policy" from "failed".

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why one input produced no document.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file or directory could not be read (permissions, vanished, dangling link, I/O error).
    #[error("{at}: unreadable: {source}")]
    Unreadable {
        /// The path.
        at: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A symbolic link points back into its own ancestry (or at itself).
    #[error("{at}: symlink loop{}", ancestor.as_ref().map(|a| format!(" back to {}", a.display())).unwrap_or_default())]
    SymlinkLoop {
        /// The link.
        at: String,
        /// The ancestor it leads back to, when known.
        ancestor: Option<PathBuf>,
    },
    /// A symbolic link, not followed (links are read only when asked, `follow_links`): a linked
    /// directory would otherwise give its files twice. Skipped by policy.
    #[error("{at}: symbolic link, not followed (--follow reads links)")]
    Symlink {
        /// The link.
        at: String,
    },
    /// Not a regular file (a FIFO, socket or device): never opened, since reading could block.
    #[error("{at}: not a regular file")]
    NotRegular {
        /// The path.
        at: String,
    },
    /// The content looks binary (NUL bytes), so it is not text to read.
    #[error("{at}: binary file")]
    Binary {
        /// The path.
        at: String,
    },
    /// The input is larger than the configured cap.
    #[error("{at}: {size} bytes is over the size cap of {cap} bytes")]
    TooLarge {
        /// The path or URL.
        at: String,
        /// Its size in bytes (or a lower bound, for streamed bodies).
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// An archive (EPUB, gzip) expands to more than the cap: a zip bomb or simply too big.
    #[error("{at}: expands to {size} bytes or more, over the cap of {cap} bytes{}", if *ratio > 0 { format!(" for entries compressed more than 100:1 (this one {ratio}:1: a zip bomb?)") } else { String::new() })]
    ExpandsTooLarge {
        /// The archive.
        at: String,
        /// The expanded size seen so far (or declared).
        size: u64,
        /// The cap.
        cap: u64,
        /// Compression ratio of the worst entry, 0 when unknown.
        ratio: u64,
    },
    /// The input has no text after extraction (an empty file, a scanned PDF, a page of scripts).
    #[error("{at}: no text{}", if detail.is_empty() { String::new() } else { format!(" ({detail})") })]
    Empty {
        /// The path or URL.
        at: String,
        /// What was found instead, if anything useful.
        detail: String,
    },
    /// The file type (or HTTP content type) is not one this source reads.
    #[error("{at}: unsupported {what}")]
    Unsupported {
        /// The path or URL.
        at: String,
        /// What was not supported, e.g. `file type .png` or `content type image/png`.
        what: String,
    },
    /// The input is damaged or not in the format its name or header claims.
    #[error("{at}: malformed {format}: {reason}")]
    Malformed {
        /// The path, URL or record.
        at: String,
        /// The format: `EPUB`, `PDF`, `WARC`, `HTML`...
        format: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// Extraction took longer than the configured timeout.
    #[error("{at}: extraction timed out after {secs} s")]
    Timeout {
        /// The path or URL.
        at: String,
        /// The timeout.
        secs: u64,
    },
    /// A parser panicked on this input; the panic was contained.
    #[error("{at}: {format} parser crashed: {message}")]
    Panicked {
        /// The path or URL.
        at: String,
        /// The format being parsed.
        format: &'static str,
        /// The panic message.
        message: String,
    },
    /// An HTTP request failed (connection, TLS, timeout, too many redirects).
    #[error("{at}: fetch failed: {reason}")]
    Fetch {
        /// The URL.
        at: String,
        /// What went wrong.
        reason: String,
    },
    /// The server answered with a non-success status.
    #[error("{at}: HTTP status {status}")]
    HttpStatus {
        /// The URL.
        at: String,
        /// The status code.
        status: u16,
    },
    /// A WARC record that is not a page: a `warcinfo`, `request`, `metadata`, `revisit`…
    /// record (crawlers write them beside the responses). Skipped by policy.
    #[error("{at}: not a page ({what})")]
    NotAPage {
        /// `warc-path#target-uri` (or `#record-id`).
        at: String,
        /// What the record is, e.g. `request record`.
        what: String,
    },
    /// An archived (WARC) response with a non-success status, e.g. a crawler's 404 for
    /// `robots.txt`: not a page, skipped by policy (a URL fetched now that answers so fails).
    #[error("{at}: archived response has HTTP status {status}")]
    ArchivedStatus {
        /// `warc-path#target-uri`.
        at: String,
        /// The status code.
        status: u16,
    },
    /// An `--include`/`--exclude` glob does not parse.
    #[error("invalid glob `{glob}`: {reason}")]
    InvalidGlob {
        /// The glob as given.
        glob: String,
        /// The parser's message.
        reason: String,
    },
    /// An error while walking a directory that is none of the above.
    #[error("{at}: {reason}")]
    Walk {
        /// The path.
        at: String,
        /// The walker's message.
        reason: String,
    },
}

impl Error {
    /// A short stable code for the reason, for JSON output and tests: `unreadable`,
    /// `symlink_loop`, `symlink`, `not_regular`, `binary`, `too_large`, `expands_too_large`, `empty`,
    /// `unsupported`, `malformed`, `timeout`, `panicked`, `fetch`, `http_status`,
    /// `invalid_glob`, `walk`; for WARC records, `not_a_page` and `http_1xx`/`http_3xx`/
    /// `http_4xx`/`http_5xx`/`http_other` (an archived response's status class).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Unreadable { .. } => "unreadable",
            Error::SymlinkLoop { .. } => "symlink_loop",
            Error::Symlink { .. } => "symlink",
            Error::NotRegular { .. } => "not_regular",
            Error::Binary { .. } => "binary",
            Error::TooLarge { .. } => "too_large",
            Error::ExpandsTooLarge { .. } => "expands_too_large",
            Error::Empty { .. } => "empty",
            Error::Unsupported { .. } => "unsupported",
            Error::Malformed { .. } => "malformed",
            Error::Timeout { .. } => "timeout",
            Error::Panicked { .. } => "panicked",
            Error::Fetch { .. } => "fetch",
            Error::HttpStatus { .. } => "http_status",
            Error::NotAPage { .. } => "not_a_page",
            Error::ArchivedStatus { status, .. } => match status / 100 {
                1 => "http_1xx",
                3 => "http_3xx",
                4 => "http_4xx",
                5 => "http_5xx",
                _ => "http_other",
            },
            Error::InvalidGlob { .. } => "invalid_glob",
            Error::Walk { .. } => "walk",
        }
    }

    /// The input this error belongs to (a path, URL or `warc-path#record-url`); for
    /// [`Error::InvalidGlob`], the glob.
    pub fn at(&self) -> &str {
        match self {
            Error::Unreadable { at, .. }
            | Error::SymlinkLoop { at, .. }
            | Error::Symlink { at }
            | Error::NotRegular { at }
            | Error::Binary { at }
            | Error::TooLarge { at, .. }
            | Error::ExpandsTooLarge { at, .. }
            | Error::Empty { at, .. }
            | Error::Unsupported { at, .. }
            | Error::Malformed { at, .. }
            | Error::Timeout { at, .. }
            | Error::Panicked { at, .. }
            | Error::Fetch { at, .. }
            | Error::HttpStatus { at, .. }
            | Error::NotAPage { at, .. }
            | Error::ArchivedStatus { at, .. }
            | Error::Walk { at, .. } => at,
            Error::InvalidGlob { glob, .. } => glob,
        }
    }

    /// Whether this is a deliberate skip by policy (binary, over a cap, empty, unsupported,
    /// not a regular file, a link not followed) rather than a failure to read a damaged or unreachable input.
    pub fn is_policy_skip(&self) -> bool {
        matches!(
            self,
            Error::Binary { .. }
                | Error::TooLarge { .. }
                | Error::ExpandsTooLarge { .. }
                | Error::Empty { .. }
                | Error::Unsupported { .. }
                | Error::NotRegular { .. }
                | Error::Symlink { .. }
                | Error::NotAPage { .. }
                | Error::ArchivedStatus { .. }
        )
    }

    /// An [`Error::Unreadable`] (or [`Error::SymlinkLoop`] for `ELOOP`) for an I/O error on `at`.
    pub(crate) fn io(at: impl Into<String>, source: std::io::Error) -> Self {
        let at = at.into();
        if is_eloop(&source) {
            Error::SymlinkLoop { at, ancestor: None }
        } else {
            Error::Unreadable { at, source }
        }
    }
}

/// Whether an I/O error is "too many levels of symbolic links".
pub(crate) fn is_eloop(e: &std::io::Error) -> bool {
    // ELOOP is 40 on Linux, 62 on macOS and the BSDs.
    matches!(e.raw_os_error(), Some(40) if cfg!(target_os = "linux"))
        || matches!(e.raw_os_error(), Some(62) if cfg!(any(target_os = "macos", target_os = "freebsd", target_os = "openbsd", target_os = "netbsd")))
}

/// Display form of a path for error messages and documents: no leading `./`.
pub(crate) fn display_path(p: &std::path::Path) -> String {
    let s = p.to_string_lossy();
    s.strip_prefix("./")
        .map(str::to_string)
        .unwrap_or_else(|| s.into_owned())
}
