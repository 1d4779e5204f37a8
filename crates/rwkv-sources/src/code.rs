//! Code files as documents: one file is one document, titled by its path in the code base.
//!
//! Binary files (NUL bytes) and files over the cap are skipped with their reason, text is
//! decoded by [`crate::decode::decode_text`] (invalid UTF-8 is replaced and counted), and the
//! language comes from the name. A file is one part, except Markdown, whose headings make
//! parts, so a long design document gets checkpoints like a book chapter does.

use std::io::Read;
use std::path::Path;

use crate::decode::{decode_text, looks_binary};
use crate::document::{DocId, DocKind, DocParts, Document};
use crate::error::{Error, Result, display_path};
use crate::lang::language_of;
use crate::options::Options;

/// Reads a whole regular file of at most `cap` bytes. Never opens FIFOs or devices.
pub(crate) fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let at = || display_path(path);
    let meta = std::fs::metadata(path).map_err(|e| Error::io(at(), e))?;
    if !meta.is_file() {
        return Err(Error::NotRegular { at: at() });
    }
    if meta.len() > cap {
        return Err(Error::TooLarge {
            at: at(),
            size: meta.len(),
            cap,
        });
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(at(), e))?;
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(at(), e))?;
    if buf.len() as u64 > cap {
        return Err(Error::TooLarge {
            at: at(),
            size: buf.len() as u64,
            cap,
        });
    }
    Ok(buf)
}

/// The code document for the file at `path`, `rel` inside the code base named `source`.
pub fn code_document(path: &Path, rel: &str, source: &str, opts: &Options) -> Result<Document> {
    let bytes = read_capped(path, opts.max_file_size)?;
    code_document_from_bytes(path, rel, source, &bytes)
}

/// As [`code_document`], for bytes already read.
pub(crate) fn code_document_from_bytes(path: &Path, rel: &str, source: &str, bytes: &[u8]) -> Result<Document> {
    let at = display_path(path);
    if looks_binary(bytes) {
        return Err(Error::Binary { at });
    }
    let (text, decoding) = decode_text(bytes);
    let language = language_of(path);
    let title = if rel.is_empty() { at.clone() } else { rel.to_string() };
    let starts = if language == Some("Markdown") {
        crate::book::plain::markdown_parts(&text).1
    } else {
        Vec::new()
    };
    let meta = DocParts {
        id: DocId::new(DocKind::Code, source, rel),
        kind: DocKind::Code,
        path: Some(path.to_path_buf()),
        url: None,
        title,
        language,
        decoding,
        source_bytes: bytes.len() as u64,
    };
    Document::new(meta, text, starts).ok_or(Error::Empty {
        at,
        detail: String::new(),
    })
}
