//! EPUB books through `rbook`: spine order, chapter titles from the table of contents.
//!
//! Before rbook sees the archive, every entry is checked against the caps (declared sizes,
//! compression ratio, and the real decompressed size of the text entries), so a zip bomb is
//! an error for that file and not an out-of-memory kill for the run. Chapters come from the
//! table of contents; when an entry points into the middle of a file (`ch.xhtml#sec2`, common
//! in Project Gutenberg EPUBs), a marker is planted at that anchor before rendering, so the
//! chapter starts exactly there. Spine files the table of contents does not name continue the
//! chapter before them; with no table of contents, each spine file is a chapter titled by its
//! first heading.

use std::collections::HashMap;
use std::io::{Cursor, Read, Write};

use dom_query::Document as Dom;

use crate::book::Origin;
use crate::decode::decode_html;
use crate::document::{Decoding, DocId, DocKind, DocParts, Document};
use crate::error::{Error, Result};
use crate::options::Options;
use crate::web::html::{plant, render, take_marks};

/// An entry bigger than this with a compression ratio over [`MAX_RATIO`] is a zip bomb.
const BOMB_MIN_SIZE: u64 = 16 << 20;
const MAX_RATIO: u64 = 100;

/// A `Write` that refuses to grow past its cap.
struct Capped {
    buf: Vec<u8>,
    cap: usize,
    over: bool,
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.cap {
            self.over = true;
            return Err(std::io::Error::other("over the size cap"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn malformed(at: &str, reason: impl ToString) -> Error {
    Error::Malformed {
        at: at.to_string(),
        format: "EPUB",
        reason: reason.to_string(),
    }
}

/// Checks the archive against the caps before anything inflates it.
fn check_archive(bytes: &[u8], at: &str, opts: &Options) -> Result<()> {
    let mut zip =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| malformed(at, format!("not a zip archive: {e}")))?;
    let mut declared: u64 = 0;
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).map_err(|e| malformed(at, e))?;
        let size = f.size();
        let ratio = size / f.compressed_size().max(1);
        declared = declared.saturating_add(size);
        if size > BOMB_MIN_SIZE && ratio > MAX_RATIO {
            return Err(Error::ExpandsTooLarge {
                at: at.to_string(),
                size,
                cap: BOMB_MIN_SIZE,
                ratio,
            });
        }
        if declared > opts.max_expanded_size {
            return Err(Error::ExpandsTooLarge {
                at: at.to_string(),
                size: declared,
                cap: opts.max_expanded_size,
                ratio: 0,
            });
        }
        let name = f.name().to_ascii_lowercase();
        let is_text = [".xhtml", ".html", ".htm", ".xht", ".xml", ".opf", ".ncx"]
            .iter()
            .any(|x| name.ends_with(x));
        if is_text {
            // Headers can lie about sizes: inflate the text entries for real, within the cap.
            let cap = opts.max_document_size;
            let n = std::io::copy(&mut (&mut f).take(cap + 1), &mut std::io::sink())
                .map_err(|e| malformed(at, format!("{}: {e}", f.name())))?;
            if n > cap || n > size.saturating_add(1 << 20) {
                return Err(Error::ExpandsTooLarge {
                    at: at.to_string(),
                    size: n,
                    cap,
                    ratio: n / f.compressed_size().max(1),
                });
            }
        }
    }
    Ok(())
}

/// An EPUB book from its bytes.
pub(crate) fn epub_book(bytes: &[u8], o: Origin<'_>, opts: &Options) -> Result<Document> {
    let at = o.at;
    check_archive(bytes, at, opts)?;
    let epub = rbook::Epub::options()
        .strict(false)
        .read(Cursor::new(bytes.to_vec()))
        .map_err(|e| malformed(at, e))?;
    let title = epub
        .metadata()
        .title()
        .map(|t| t.value().trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| o.name.to_string());

    // Table of contents: decoded path -> [(fragment, label, toc order)].
    let mut toc: HashMap<String, Vec<(Option<String>, String, usize)>> = HashMap::new();
    if let Some(root) = epub.toc().contents() {
        for (order, entry) in root.flatten().enumerate() {
            let Some(href) = entry.href() else { continue };
            let label = entry.label().split_whitespace().collect::<Vec<_>>().join(" ");
            let path = href.path().decode().into_owned();
            toc.entry(path)
                .or_default()
                .push((href.fragment().map(str::to_string), label, order));
        }
    }

    let mut text = String::new();
    let mut starts: Vec<(String, usize)> = Vec::new();
    let mut replaced = 0;
    let mut total: u64 = 0;
    let mut untitled_files = Vec::new();
    for item in epub.spine().iter() {
        let Some(entry) = item.manifest_entry() else {
            continue;
        };
        let media = entry.media_type().to_ascii_lowercase();
        if !(media.contains("html") || media.contains("xml")) || media.contains("svg") {
            continue;
        }
        let path = entry.href().path().decode().into_owned();
        let mut out = Capped {
            buf: Vec::new(),
            cap: opts.max_document_size as usize,
            over: false,
        };
        if let Err(e) = epub.copy_resource(entry.resource(), &mut out) {
            if out.over {
                return Err(Error::ExpandsTooLarge {
                    at: at.to_string(),
                    size: out.buf.len() as u64,
                    cap: opts.max_document_size,
                    ratio: 0,
                });
            }
            return Err(malformed(at, format!("{path}: {e}")));
        }
        total += out.buf.len() as u64;
        if total > opts.max_expanded_size {
            return Err(Error::ExpandsTooLarge {
                at: at.to_string(),
                size: total,
                cap: opts.max_expanded_size,
                ratio: 0,
            });
        }
        let (html, dec) = decode_html(&out.buf, None);
        replaced += dec.replaced;
        let entries = toc.get(&path);
        let dom = Dom::from(html.as_str());
        dom.select("img, svg, style, script, link, object, video, audio")
            .remove();
        // Anchors for table-of-contents entries pointing inside this file.
        let mut anchored: HashMap<String, usize> = HashMap::new();
        if let Some(entries) = entries {
            for (k, (frag, _, _)) in entries.iter().enumerate() {
                if let Some(f) = frag {
                    anchored.entry(f.clone()).or_insert(k);
                }
            }
        }
        if !anchored.is_empty() {
            plant(&dom, "[id], a[name]", |n| {
                let id = n.attr("id").or_else(|| n.attr("name"))?;
                anchored.get(id.as_ref()).map(|k| format!("f{k}"))
            });
        }
        plant(&dom, "h1, h2, h3", |n| {
            n.node_name()
                .map(|s| s.to_string())
                .filter(|_| !n.text().trim().is_empty())
        });
        let body = dom.select("body");
        let rendered = render(&if body.exists() {
            body.html().to_string()
        } else {
            dom.html().to_string()
        });
        let (chapter, marks) = take_marks(&rendered);
        if chapter.trim().is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push('\n');
        }
        let base = text.len();
        text.push_str(&chapter);
        match entries {
            Some(entries) => {
                // Entries for the whole file start at its top; anchored ones at their marks.
                for (k, (frag, label, _)) in entries.iter().enumerate() {
                    let at_mark = frag
                        .as_ref()
                        .and_then(|_| marks.iter().find(|m| m.payload == format!("f{k}")));
                    // An anchor that could not be found counts as the file's top.
                    let off = at_mark.map_or(0, |m| m.line_start);
                    starts.push((label.clone(), base + off));
                }
            }
            None if toc.is_empty() => {
                let heading = marks
                    .iter()
                    .find(|m| m.payload.starts_with('h') && !m.line.is_empty())
                    .map(|m| m.line.clone());
                untitled_files.push(starts.len());
                starts.push((heading.unwrap_or_default(), base));
            }
            None if starts.is_empty() => starts.push(("Front matter".to_string(), base)),
            None => {} // continues the chapter before it
        }
    }
    let meta = DocParts {
        id: DocId::new(DocKind::Book, o.source, o.locator),
        kind: DocKind::Book,
        path: o.path,
        url: o.url,
        title,
        language: None,
        decoding: Decoding {
            encoding: "UTF-8",
            replaced,
        },
        source_bytes: bytes.len() as u64,
    };
    for (n, &i) in untitled_files.iter().enumerate() {
        if starts[i].0.is_empty() {
            starts[i].0 = format!("Section {}", n + 1);
        }
    }
    Document::new(meta, text, starts).ok_or(Error::Empty {
        at: at.to_string(),
        detail: "no readable spine items".into(),
    })
}
