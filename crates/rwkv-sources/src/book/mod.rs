//! Books: plain text and Markdown with chapters, EPUB, PDF.
//!
//! Each book is one [`Document`] whose parts are its chapters, so the reader can checkpoint
//! at chapter ends and answers can cite "chapter 3". The formats share little beyond that:
//! [`plain`] finds chapters in text, [`epub`] follows the spine and the table of contents,
//! [`pdf`] uses the outline (bookmarks) or falls back to headings and pages.

pub(crate) mod epub;
pub(crate) mod pdf;
pub(crate) mod plain;

use std::path::Path;

use crate::code::read_capped;
use crate::document::Document;
use crate::error::{Result, display_path};
use crate::options::Options;

/// A book format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BookFormat {
    /// `.txt` and friends.
    Text,
    /// `.md`, `.markdown`.
    Markdown,
    /// `.epub`.
    Epub,
    /// `.pdf`.
    Pdf,
}

/// Reads the book at `path` (`rel` inside the input `source`).
pub(crate) fn book_file(path: &Path, rel: &str, source: &str, format: BookFormat, opts: &Options) -> Result<Document> {
    let at = display_path(path);
    let bytes = read_capped(path, opts.max_document_size)?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| at.clone());
    let src = Origin {
        at: &at,
        name: &name,
        source,
        locator: rel,
        path: Some(path.to_path_buf()),
        url: None,
    };
    from_bytes(&bytes, format, src, opts)
}

/// Where a book's bytes came from, for ids, titles and messages.
pub(crate) struct Origin<'a> {
    pub at: &'a str,
    pub name: &'a str,
    pub source: &'a str,
    pub locator: &'a str,
    pub path: Option<std::path::PathBuf>,
    pub url: Option<String>,
}

/// A book from bytes already in memory (a file, an HTTP body).
pub(crate) fn from_bytes(bytes: &[u8], format: BookFormat, o: Origin<'_>, opts: &Options) -> Result<Document> {
    match format {
        BookFormat::Text | BookFormat::Markdown => plain::text_book(bytes, format == BookFormat::Markdown, o),
        BookFormat::Epub => epub::epub_book(bytes, o, opts),
        BookFormat::Pdf => pdf::pdf_book(bytes, o),
    }
}
