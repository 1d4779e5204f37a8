//! Web pages: saved `.html` files, WARC crawls and live URLs, all through one HTML extractor.
//!
//! [`html`] turns a page into its main text; [`warc`] streams response records out of
//! (gzipped) WARC files; [`fetch`] gets URLs with reqwest. This module joins them to
//! [`Document`]s: charset decoding, titles, sections as parts, and the URL a page came from.

pub(crate) mod fetch;
pub(crate) mod html;
pub(crate) mod warc;

use std::path::{Path, PathBuf};

use crate::code::read_capped;
use crate::decode::decode_html;
use crate::document::{DocId, DocKind, DocParts, Document};
use crate::error::{Error, Result, display_path};
use crate::options::Options;

/// Where a page's bytes came from.
pub(crate) struct PageOrigin<'a> {
    /// For messages.
    pub at: &'a str,
    /// Id source and locator.
    pub source: &'a str,
    pub locator: &'a str,
    /// The file (the WARC file, for records).
    pub path: Option<PathBuf>,
    /// The URL, when known from the transport.
    pub url: Option<String>,
    /// Title of last resort.
    pub name: &'a str,
}

/// A web page document from raw bytes and the transport's `Content-Type`, if any.
pub(crate) fn page_document(bytes: &[u8], content_type: Option<&str>, o: PageOrigin<'_>) -> Result<Document> {
    let (html, decoding) = decode_html(bytes, content_type);
    let page = html::extract_page(&html, o.name);
    let url = o.url.or(page.url);
    let meta = DocParts {
        id: DocId::new(DocKind::Web, o.source, o.locator),
        kind: DocKind::Web,
        path: o.path,
        url,
        title: page.title,
        language: None,
        decoding,
        source_bytes: bytes.len() as u64,
    };
    Document::new(meta, page.text, page.sections).ok_or(Error::Empty {
        at: o.at.to_string(),
        detail: "no readable text".into(),
    })
}

/// The page in the HTML file at `path` (`rel` inside the input `source`).
pub(crate) fn html_file(path: &Path, rel: &str, source: &str, opts: &Options) -> Result<Document> {
    let at = display_path(path);
    let bytes = read_capped(path, opts.max_document_size)?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| at.clone());
    page_document(
        &bytes,
        None,
        PageOrigin {
            at: &at,
            source,
            locator: rel,
            path: Some(path.to_path_buf()),
            url: None,
            name: &name,
        },
    )
}

/// Whether a `Content-Type` (or sniffed bytes, when it is absent) means HTML.
pub(crate) fn is_html(content_type: Option<&str>, body: &[u8]) -> bool {
    match content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase()) {
        Some(ct) if !ct.is_empty() => ct == "text/html" || ct == "application/xhtml+xml",
        _ => {
            let head = String::from_utf8_lossy(&body[..body.len().min(1024)]).to_ascii_lowercase();
            let head = head.trim_start();
            head.starts_with("<!doctype html")
                || head.starts_with("<html")
                || head.contains("<head")
                || head.contains("<body")
        }
    }
}
