//! PDF books through `pdf-extract` (text) and `lopdf` (outline, title).
//!
//! pdf-extract panics on some malformed files, so extraction runs under `catch_unwind` here
//! (and the stream also runs it on a blocking thread with a timeout). Chapters come from the
//! PDF outline; without one, from headings found in the text; without those, each page is
//! a part, so citations can still say which page.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::book::Origin;
use crate::book::plain::text_chapters;
use crate::document::{Decoding, DocId, DocKind, DocParts, Document};
use crate::error::{Error, Result};

/// A PDF book from its bytes.
pub(crate) fn pdf_book(bytes: &[u8], o: Origin<'_>) -> Result<Document> {
    let extracted = catch_unwind(AssertUnwindSafe(|| extract(bytes)));
    let (title, text, starts) = match extracted {
        Ok(Ok(x)) => x,
        Ok(Err(reason)) => {
            return Err(Error::Malformed {
                at: o.at.to_string(),
                format: "PDF",
                reason,
            });
        }
        Err(panic) => {
            return Err(Error::Panicked {
                at: o.at.to_string(),
                format: "PDF",
                message: panic_message(&panic),
            });
        }
    };
    let meta = DocParts {
        id: DocId::new(DocKind::Book, o.source, o.locator),
        kind: DocKind::Book,
        path: o.path,
        url: o.url,
        title: title.unwrap_or_else(|| o.name.to_string()),
        language: None,
        decoding: Decoding::default(),
        source_bytes: bytes.len() as u64,
    };
    Document::new(meta, text, starts).ok_or(Error::Empty {
        at: o.at.to_string(),
        detail: "no text layer; scanned pages need OCR".into(),
    })
}

/// The message of a caught panic.
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

type Extracted = (Option<String>, String, Vec<(String, usize)>);

fn extract(bytes: &[u8]) -> std::result::Result<Extracted, String> {
    let mut doc = lopdf::Document::load_mem(bytes).map_err(|e| e.to_string())?;
    if doc.is_encrypted() {
        doc.decrypt("").map_err(|_| "encrypted with a password".to_string())?;
    }
    let title = info_title(&doc);
    let pages = doc.get_pages();
    let mut text = String::new();
    let mut page_start = std::collections::HashMap::new();
    let mut failed = 0usize;
    for &num in pages.keys() {
        page_start.insert(num as usize, text.len());
        let mut s = String::new();
        let ok = pdf_extract::output_doc_page(&doc, &mut pdf_extract::PlainTextOutput::new(&mut s), num).is_ok();
        if !ok {
            failed += 1;
            continue;
        }
        let page = crate::web::html::tidy(&s);
        if !page.is_empty() {
            text.push_str(&page);
            text.push('\n');
        }
    }
    if failed == pages.len() && failed > 0 {
        return Err(format!("none of the {failed} pages could be read"));
    }
    let mut starts: Vec<(String, usize)> = Vec::new();
    if let Ok(toc) = doc.get_toc() {
        for t in toc.toc.iter().filter(|t| t.level <= 2) {
            if let Some(&off) = page_start.get(&t.page) {
                starts.push((t.title.trim().to_string(), off));
            }
        }
    }
    if starts.len() < 2 {
        starts = text_chapters(&text);
    }
    if starts.len() < 2 && pages.len() > 1 {
        let mut by_page: Vec<_> = page_start.into_iter().collect();
        by_page.sort();
        starts = by_page.into_iter().map(|(n, off)| (format!("Page {n}"), off)).collect();
    }
    Ok((title, text, starts))
}

fn info_title(doc: &lopdf::Document) -> Option<String> {
    let info = doc.trailer.get(b"Info").ok()?;
    let info = match info {
        lopdf::Object::Reference(id) => doc.get_object(*id).ok()?,
        o => o,
    };
    let title = info.as_dict().ok()?.get(b"Title").ok()?;
    let t = lopdf::decode_text_string(title).ok()?;
    let t = t.trim().to_string();
    (!t.is_empty() && t != "untitled").then_some(t)
}
