//! The [`Document`]: what every source yields and what the reader folds.
//!
//! A document is one file of a code base, one book, or one web page, as UTF-8 text with the
//! facts the rest of the system needs about it: a stable [`DocId`] (so re-ingesting the same
//! input finds the same record), a content hash (so unchanged text is not folded twice), a
//! line-start index (for `path:line` citations) and [`Part`] boundaries (files, chapters, page
//! sections) where the reader may checkpoint its state.
//!
//! **Invariants** (checked by [`Document::new`]): parts are non-empty, contiguous, in order,
//! start at 0, end at `text.len()` and lie on `char` boundaries; the text is not empty; line
//! starts are the byte offsets just after each `\n` (plus 0).

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// A stable identifier: 128 bits of the BLAKE3 hash of the document's kind, source and locator
/// (path inside the source, URL, or WARC record), printed as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocId(pub [u8; 16]);

impl DocId {
    /// The id of the document of `kind` found at `locator` inside `source`.
    ///
    /// `source` is whatever names the input the user gave (the canonical root directory, the
    /// canonical file, the URL); `locator` is the place inside it (a relative path with `/`
    /// separators, a WARC record's URL and id), empty for a single file or URL.
    pub fn new(kind: DocKind, source: &str, locator: &str) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(kind.as_str().as_bytes());
        h.update(&[0]);
        h.update(source.as_bytes());
        h.update(&[0]);
        h.update(locator.as_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&h.finalize().as_bytes()[..16]);
        DocId(id)
    }
}

impl DocId {
    /// The id its [`fmt::Display`] form (32 hex digits) names, as a store records it.
    pub fn from_hex(hex: &str) -> Option<DocId> {
        if hex.len() != 32 || !hex.is_ascii() {
            return None;
        }
        let mut id = [0u8; 16];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(DocId(id))
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocId({self})")
    }
}

impl Serialize for DocId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// BLAKE3 hash of a document's text.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// The hash of `text`.
    pub fn of(text: &str) -> Self {
        ContentHash(*blake3::hash(text.as_bytes()).as_bytes())
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

impl Serialize for ContentHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Which of the three families a document comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DocKind {
    /// A file of a code base.
    Code,
    /// A book: `.txt`/`.md` with chapters, EPUB or PDF.
    Book,
    /// A web page: an HTML file, a WARC response record, or a fetched URL.
    Web,
}

impl DocKind {
    /// The kind [`DocKind::as_str`] names.
    pub fn parse(name: &str) -> Option<DocKind> {
        match name {
            "code" => Some(DocKind::Code),
            "book" => Some(DocKind::Book),
            "web" => Some(DocKind::Web),
            _ => None,
        }
    }

    /// `code`, `book` or `web`.
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Code => "code",
            DocKind::Book => "book",
            DocKind::Web => "web",
        }
    }
}

/// A span of the text the reader may treat as a unit and checkpoint after: a file, a chapter,
/// a page section. Offsets are bytes into [`Document::text`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Part {
    /// The part's title (chapter title, section heading, file path).
    pub title: String,
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// How the bytes were turned into text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decoding {
    /// The encoding used (WHATWG name, e.g. `UTF-8`, `windows-1252`).
    pub encoding: &'static str,
    /// How many malformed sequences were replaced by U+FFFD.
    pub replaced: usize,
}

impl Default for Decoding {
    fn default() -> Self {
        Decoding {
            encoding: "UTF-8",
            replaced: 0,
        }
    }
}

/// One document of any kind. See the [module docs](self) for the invariants.
#[derive(Clone, Debug)]
pub struct Document {
    /// Stable id from the source and the path or URL.
    pub id: DocId,
    /// Code, book or web.
    pub kind: DocKind,
    /// The file it came from (the WARC file, for a WARC record), as the user named it.
    pub path: Option<PathBuf>,
    /// The URL it came from (the final URL after redirects, or the WARC target URI).
    pub url: Option<String>,
    /// Title: the path inside the code base, the book's title, the page's title.
    pub title: String,
    /// Programming (or markup) language, for code.
    pub language: Option<&'static str>,
    /// The text, UTF-8, with `\r\n` turned into `\n`.
    pub text: String,
    /// Byte offset of the start of each line.
    pub line_starts: Vec<usize>,
    /// BLAKE3 of the text.
    pub hash: ContentHash,
    /// Part boundaries, covering the text.
    pub parts: Vec<Part>,
    /// How the bytes were decoded.
    pub decoding: Decoding,
    /// Size of the input before extraction, in bytes (the file, the record body, the response).
    pub source_bytes: u64,
}

/// What an extractor hands to [`Document::new`]; everything not derived from the text.
#[derive(Clone, Debug)]
pub(crate) struct DocParts {
    pub id: DocId,
    pub kind: DocKind,
    pub path: Option<PathBuf>,
    pub url: Option<String>,
    pub title: String,
    pub language: Option<&'static str>,
    pub decoding: Decoding,
    pub source_bytes: u64,
}

impl Document {
    /// Builds a document from its text and part starts `(title, byte offset)`.
    ///
    /// Starts are sorted, clamped to the text, moved back to a `char` boundary and
    /// de-duplicated (the later title wins over an empty earlier part); a first part at 0 is
    /// added (titled like the document) if the first start is later. Returns `None` for empty
    /// (all-whitespace) text.
    pub(crate) fn new(meta: DocParts, text: String, mut starts: Vec<(String, usize)>) -> Option<Self> {
        if text.trim().is_empty() {
            return None;
        }
        let len = text.len();
        for s in &mut starts {
            s.1 = s.1.min(len);
            while !text.is_char_boundary(s.1) {
                s.1 -= 1;
            }
        }
        starts.sort_by_key(|s| s.1);
        let mut parts: Vec<Part> = Vec::with_capacity(starts.len() + 1);
        for (title, start) in starts {
            if start >= len {
                continue;
            }
            match parts.last_mut() {
                Some(last) if last.start == start => {
                    if last.title.is_empty() {
                        last.title = title;
                    } else if !title.is_empty() && last.title != title {
                        last.title = format!("{} / {}", last.title, title);
                    }
                }
                _ => parts.push(Part { title, start, end: len }),
            }
        }
        if parts.first().is_none_or(|p| p.start > 0) {
            parts.insert(
                0,
                Part {
                    title: meta.title.clone(),
                    start: 0,
                    end: len,
                },
            );
        }
        for i in 0..parts.len() {
            parts[i].end = parts.get(i + 1).map_or(len, |n| n.start);
            if parts[i].title.trim().is_empty() {
                parts[i].title = format!("Part {}", i + 1);
            }
        }
        let line_starts = line_starts(&text);
        Some(Document {
            id: meta.id,
            kind: meta.kind,
            path: meta.path,
            url: meta.url,
            title: meta.title,
            language: meta.language,
            hash: ContentHash::of(&text),
            line_starts,
            text,
            parts,
            decoding: meta.decoding,
            source_bytes: meta.source_bytes,
        })
    }

    /// A document as a store keeps it — id, kind, location ([`Document::location`]), title,
    /// text and part starts `(title, byte offset)` — made again without its source: what a
    /// store needs to fold a document it indexed. `None` for empty text.
    pub fn from_stored(
        id: DocId,
        kind: DocKind,
        location: &str,
        title: &str,
        text: String,
        parts: Vec<(String, usize)>,
    ) -> Option<Self> {
        let is_url = kind == DocKind::Web || location.contains("://");
        let meta = DocParts {
            id,
            kind,
            path: (!is_url).then(|| PathBuf::from(location)),
            url: is_url.then(|| location.to_string()),
            title: title.to_string(),
            language: None,
            decoding: Decoding::default(),
            source_bytes: text.len() as u64,
        };
        Document::new(meta, text, parts)
    }

    /// Number of lines (a final line without `\n` counts).
    pub fn lines(&self) -> usize {
        self.line_starts.len()
    }

    /// Length of the text in bytes.
    pub fn bytes(&self) -> usize {
        self.text.len()
    }

    /// The 1-based line holding byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset).max(1)
    }

    /// The text of 1-based line `line` without its `\n`, if it exists.
    pub fn line(&self, line: usize) -> Option<&str> {
        let start = *self.line_starts.get(line.checked_sub(1)?)?;
        let end = self.line_starts.get(line).map_or(self.text.len(), |&e| e);
        Some(self.text[start..end].trim_end_matches('\n'))
    }

    /// Where this document lives, for people: the path, else the URL.
    pub fn location(&self) -> String {
        match (&self.path, &self.url) {
            (_, Some(url)) if self.kind == DocKind::Web => url.clone(),
            (Some(p), _) => crate::error::display_path(p),
            (None, Some(url)) => url.clone(),
            (None, None) => self.title.clone(),
        }
    }

    /// A `location:line` citation for byte `offset`.
    pub fn cite(&self, offset: usize) -> String {
        format!("{}:{}", self.location(), self.line_of(offset))
    }

    /// The part holding byte `offset`.
    pub fn part_of(&self, offset: usize) -> &Part {
        let i = self
            .parts
            .partition_point(|p| p.end <= offset)
            .min(self.parts.len() - 1);
        &self.parts[i]
    }

    /// The text of a part.
    pub fn part_text(&self, part: &Part) -> &str {
        &self.text[part.start..part.end]
    }
}

/// Byte offsets of line starts: 0 and every offset just after a `\n` that is not the end.
pub(crate) fn line_starts(text: &str) -> Vec<usize> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut v = Vec::with_capacity(text.len() / 40 + 1);
    v.push(0);
    v.extend(
        text.bytes()
            .enumerate()
            .filter(|&(i, b)| b == b'\n' && i + 1 < text.len())
            .map(|(i, _)| i + 1),
    );
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> DocParts {
        DocParts {
            id: DocId::new(DocKind::Book, "s", "l"),
            kind: DocKind::Book,
            path: Some("b.txt".into()),
            url: None,
            title: "B".into(),
            language: None,
            decoding: Decoding::default(),
            source_bytes: 0,
        }
    }

    #[test]
    fn parts_cover_text_and_lines_index() {
        let text = "intro\nCHAPTER I\nbody\nCHAPTER II\nmore\n".to_string();
        let a = text.find("CHAPTER I\n").unwrap();
        let b = text.find("CHAPTER II").unwrap();
        let d = Document::new(meta(), text.clone(), vec![("II".into(), b), ("I".into(), a)]).unwrap();
        assert_eq!(d.parts.len(), 3);
        assert_eq!(
            d.parts[0],
            Part {
                title: "B".into(),
                start: 0,
                end: a
            }
        );
        assert_eq!(d.parts[2].end, text.len());
        assert_eq!(d.lines(), 5);
        assert_eq!(d.line_of(b), 4);
        assert_eq!(d.line(4), Some("CHAPTER II"));
        assert_eq!(d.cite(b), "b.txt:4");
        assert_eq!(d.part_of(b + 3).title, "II");
        assert!(Document::new(meta(), " \n".into(), vec![]).is_none());
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = DocId::new(DocKind::Code, "/r", "src/a.rs");
        assert_eq!(a, DocId::new(DocKind::Code, "/r", "src/a.rs"));
        assert_ne!(a, DocId::new(DocKind::Code, "/r", "src/b.rs"));
        assert_eq!(a.to_string().len(), 32);
    }
}
