//! Settings shared by every source, with defaults that suit a laptop and a CI machine alike.

use std::time::Duration;

/// How a directory given as input is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DirMode {
    /// Decide from the directory: a code base when it has project markers (`.git`,
    /// `Cargo.toml`, `package.json`…) or mostly source files; a library of documents when
    /// most files are pages, WARCs, EPUBs, PDFs or plain-text books.
    #[default]
    Auto,
    /// Every text file is a code document (HTML stays source, EPUB/PDF count as binary).
    Code,
    /// Each file is read by its format: `.html` as a web page, `.warc[.gz]` as a crawl,
    /// `.epub`/`.pdf`/`.txt`/`.md` as books; other files are skipped as unsupported.
    Documents,
}

/// Settings for [`crate::Sources`]. Build with `Options { field: value, ..Default::default() }`.
#[derive(Clone, Debug)]
pub struct Options {
    /// Cap for a code file, in bytes (default 4 MiB). Larger files are skipped and reported.
    pub max_file_size: u64,
    /// Cap for a book, an HTML page, a WARC record body or an HTTP body, and for each text
    /// entry inside an EPUB once decompressed (default 64 MiB).
    pub max_document_size: u64,
    /// Cap on what one archive may expand to in all (the declared sizes of an EPUB's
    /// entries), and on a WARC file's decompressed stream per record (default 1 GiB).
    pub max_expanded_size: u64,
    /// Read hidden files and directories (names starting with `.`); `.git` is never read.
    pub hidden: bool,
    /// Follow symbolic links (loops are detected and reported). Default false: a link is a
    /// named skip ([`crate::Error::Symlink`]), so a linked directory is not read twice.
    pub follow_links: bool,
    /// Honour `.gitignore`, `.ignore`, `.git/info/exclude` and git's global excludes (default
    /// true), whether or not the directory is a git repository.
    pub respect_ignore_files: bool,
    /// Only files matching one of these globs are read (all when empty). A glob without `/`
    /// matches the file name; one with `/` matches the path relative to the input directory.
    pub include: Vec<String>,
    /// Files and directories matching one of these globs are left out (same matching rules).
    pub exclude: Vec<String>,
    /// How directories are read.
    pub dir_mode: DirMode,
    /// Inputs extracted at once (default: the number of CPUs). Memory is bounded by this
    /// times the largest input allowed by the caps.
    pub jobs: usize,
    /// Time allowed to extract one input (default 120 s); a parser that hangs is abandoned
    /// and reported.
    pub extract_timeout: Duration,
    /// Time allowed for one HTTP fetch, from request to last byte (default 30 s).
    pub fetch_timeout: Duration,
    /// Time allowed to connect to an HTTP server (default 10 s).
    pub connect_timeout: Duration,
    /// Redirects followed per URL (default 10).
    pub max_redirects: usize,
    /// `User-Agent` header for fetches.
    pub user_agent: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_file_size: 4 << 20,
            max_document_size: 64 << 20,
            max_expanded_size: 1 << 30,
            hidden: false,
            follow_links: false,
            respect_ignore_files: true,
            include: Vec::new(),
            exclude: Vec::new(),
            dir_mode: DirMode::Auto,
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            extract_timeout: Duration::from_secs(120),
            fetch_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_redirects: 10,
            user_agent: concat!("rwkv-reader/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}
