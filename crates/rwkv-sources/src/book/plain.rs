//! Plain-text and Markdown books: Project Gutenberg boilerplate stripped, chapters found from
//! headings.
//!
//! No crate finds chapters in plain text, so this module does, the way a person skimming
//! would: a short line between blank lines that reads like a heading (`CHAPTER IV.`, `BOOK
//! TWO`, `Prologue`, a bare Roman numeral). Table-of-contents lines look just like chapter
//! headings, so a heading with no body before the next one is dropped, and a short run of
//! them (`BOOK ONE` directly above `CHAPTER I`) is merged into one title. Markdown uses its
//! ATX and setext headings, skipping fenced code. Without chapters, long texts are cut into
//! sections of about 32 KiB at paragraph breaks so the reader still gets checkpoints.

use std::sync::LazyLock;

use regex::Regex;

use crate::decode::decode_text;
use crate::document::{DocId, DocKind, DocParts, Document};
use crate::error::{Error, Result};

/// Size of the fallback sections for texts without chapters.
const SECTION_BYTES: usize = 32 << 10;
/// A heading followed by less non-blank text than this before the next heading is "empty".
const MIN_CHAPTER_BODY: usize = 150;

/// The lines of `text` with their byte offsets, without the `\n`.
fn lines_with_offsets(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut off = 0;
    text.split_inclusive('\n').map(move |l| {
        let start = off;
        off += l.len();
        (start, l.trim_end_matches(['\n', '\r']))
    })
}

/// Markdown headings as parts: returns the title (a lone leading `#` heading) and the part
/// starts. The chapter level is the top level with two or more headings.
pub(crate) fn markdown_parts(text: &str) -> (Option<String>, Vec<(String, usize)>) {
    let mut heads: Vec<(usize, String, usize)> = Vec::new(); // (level, title, offset)
    let mut fence: Option<(char, usize)> = None;
    let mut prev: Option<(usize, &str)> = None;
    for (off, line) in lines_with_offsets(text) {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        if indent <= 3 {
            let fc = t.chars().next().filter(|c| *c == '`' || *c == '~');
            if let Some(c) = fc {
                let n = t.chars().take_while(|x| *x == c).count();
                if n >= 3 {
                    match fence {
                        None => fence = Some((c, n)),
                        Some((fc, fnum)) if fc == c && n >= fnum && t.trim_end().chars().all(|x| x == c) => {
                            fence = None
                        }
                        _ => {}
                    }
                    prev = None;
                    continue;
                }
            }
        }
        if fence.is_some() {
            continue;
        }
        if indent <= 3 && t.starts_with('#') {
            let level = t.chars().take_while(|c| *c == '#').count();
            let rest = &t[level..];
            if level <= 6 && (rest.is_empty() || rest.starts_with([' ', '\t'])) {
                let title = rest.trim().trim_end_matches('#').trim().to_string();
                heads.push((level, title, off));
                prev = None;
                continue;
            }
        }
        if let Some((poff, ptext)) = prev {
            let u = t.trim_end();
            let setext = if !u.is_empty() && u.chars().all(|c| c == '=') {
                Some(1)
            } else if u.len() >= 3 && u.chars().all(|c| c == '-') {
                Some(2)
            } else {
                None
            };
            if let (Some(level), true) = (setext, indent <= 3) {
                heads.push((level, ptext.trim().to_string(), poff));
                prev = None;
                continue;
            }
        }
        let is_text = !t.is_empty() && !t.starts_with(['-', '*', '+', '>', '|']);
        prev = is_text.then_some((off, line));
    }
    if heads.is_empty() {
        return (None, Vec::new());
    }
    let count = |l: usize| heads.iter().filter(|h| h.0 == l).count();
    let mut title = None;
    let min = heads.iter().map(|h| h.0).min().unwrap_or(1);
    let mut chapter_level = min;
    if count(min) == 1 && heads[0].0 == min {
        title = Some(heads[0].1.clone());
        if let Some(next) = heads.iter().map(|h| h.0).filter(|&l| l > min).min() {
            chapter_level = next;
        }
    }
    let parts = heads
        .into_iter()
        .filter(|h| h.0 <= chapter_level)
        .map(|h| (h.1, h.2))
        .collect();
    (title, parts)
}

static NUMBERED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(chapter|book|part|volume|vol\.|act|stave|canto|letter|section|story)\s+([0-9]+|[ivxlcdm]+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last|the\s+\w+)\b",
    )
    .expect("valid regex")
});
static STANDALONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(prologue|epilogue|preface|introduction|foreword|afterword|appendix|conclusion|postscript|interlude)\b\s*([.:\-—]\s*\S.*)?$")
        .expect("valid regex")
});
static ROMAN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^([IVXLC]+)(\.|\.\s+[^a-z]+)?$").expect("valid regex"));

fn is_heading(line: &str) -> bool {
    let t = line.trim();
    if t.is_empty() || t.len() > 80 {
        return false;
    }
    NUMBERED.is_match(t) || STANDALONE.is_match(t) || ROMAN.is_match(t)
}

/// A heading that is only its marker ("CHAPTER IV.", "II") takes the next short line as its
/// subtitle.
fn marker_only(line: &str) -> bool {
    let t = line.trim().trim_end_matches(['.', ':']);
    ROMAN.is_match(t) || NUMBERED.find(t).is_some_and(|m| m.end() == t.len())
}

/// Chapter starts `(title, offset)` in plain text, or empty when fewer than two are found.
pub(crate) fn text_chapters(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<(usize, &str)> = lines_with_offsets(text).collect();
    let blank = |i: usize| lines.get(i).is_none_or(|l| l.1.trim().is_empty());
    // (title, start offset, index of the last heading line)
    let mut cands: Vec<(String, usize, usize)> = Vec::new();
    for (i, &(off, line)) in lines.iter().enumerate() {
        if !is_heading(line) || (i > 0 && !blank(i - 1)) {
            continue;
        }
        let mut title = squash(line);
        let mut last = i;
        if !blank(i + 1) {
            // A title line directly below ("CHAPTER I\nThe Beginning\n\n").
            let next = lines[i + 1].1.trim();
            if next.len() <= 80 && blank(i + 2) && !is_heading(next) {
                title = format!("{title} {}", squash(next));
                last = i + 1;
            } else {
                continue;
            }
        } else if marker_only(line) {
            // "CHAPTER I.\n\nDown the Rabbit-Hole\n\n"
            let mut j = i + 1;
            while j < lines.len() && j <= i + 3 && blank(j) {
                j += 1;
            }
            if let Some(&(_, sub)) = lines.get(j) {
                let s = sub.trim();
                if !s.is_empty()
                    && s.len() <= 60
                    && blank(j + 1)
                    && !is_heading(s)
                    && !s.ends_with([',', ';', '"', '”', '’', '\''])
                {
                    title = format!("{title} {}", squash(s));
                    last = j;
                }
            }
        }
        cands.push((title, off, last));
    }
    // Body size after each heading, up to the next heading.
    let body: Vec<usize> = (0..cands.len())
        .map(|k| {
            let from = cands[k].2 + 1;
            let to_off = cands.get(k + 1).map_or(text.len(), |c| c.1);
            lines[from.min(lines.len())..]
                .iter()
                .take_while(|l| l.0 < to_off)
                .map(|l| l.1.trim().len())
                .sum()
        })
        .collect();
    let mut out: Vec<(String, usize)> = Vec::new();
    let mut run: Vec<usize> = Vec::new();
    for k in 0..cands.len() {
        if body[k] < MIN_CHAPTER_BODY {
            run.push(k);
            continue;
        }
        if run.len() <= 2 && !run.is_empty() {
            let mut titles: Vec<&str> = run.iter().map(|&r| cands[r].0.as_str()).collect();
            titles.push(&cands[k].0);
            out.push((titles.join(" / "), cands[run[0]].1));
        } else {
            out.push((cands[k].0.clone(), cands[k].1));
        }
        run.clear();
    }
    if !run.is_empty() && run.len() <= 2 {
        out.extend(run.iter().map(|&r| (cands[r].0.clone(), cands[r].1)));
    }
    if out.len() < 2 {
        return Vec::new();
    }
    if !text[..out[0].1].trim().is_empty() {
        out.insert(0, ("Front matter".to_string(), 0));
    }
    out
}

/// Sections of about [`SECTION_BYTES`] cut at blank lines, for long texts without chapters.
pub(crate) fn size_sections(text: &str) -> Vec<(String, usize)> {
    if text.len() < SECTION_BYTES * 3 / 2 {
        return Vec::new();
    }
    let mut out = vec![("Section 1".to_string(), 0)];
    let mut next = SECTION_BYTES;
    while next + SECTION_BYTES / 2 < text.len() {
        let mut cut = next;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        let cut = text[cut..].find("\n\n").map_or(cut, |p| cut + p + 2);
        if cut >= text.len() {
            break;
        }
        out.push((format!("Section {}", out.len() + 1), cut));
        next = cut + SECTION_BYTES;
    }
    out
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Project Gutenberg's header and footer: returns the title from the header and the body
/// range, or `None` when the markers are absent.
pub(crate) fn gutenberg(text: &str) -> Option<(Option<String>, std::ops::Range<usize>)> {
    let mut start = None;
    let mut end = None;
    let mut title = None;
    for (off, line) in lines_with_offsets(text) {
        let upper = line.to_ascii_uppercase();
        if start.is_none() {
            if let Some(t) = line.strip_prefix("Title:") {
                title.get_or_insert_with(|| t.trim().to_string());
            }
            if upper.contains("START OF")
                && upper.contains("PROJECT GUTENBERG")
                && upper.trim_start().starts_with("***")
            {
                if title.is_none() {
                    // "*** START OF THE PROJECT GUTENBERG EBOOK ALICE'S ADVENTURES ***"
                    if let Some(p) = upper.find("EBOOK") {
                        let t = line.get(p + 5..).unwrap_or("").trim().trim_matches('*').trim();
                        if !t.is_empty() {
                            title = Some(t.to_string());
                        }
                    }
                }
                start = Some(off + line.len() + 1);
            }
        } else if (upper.trim_start().starts_with("***")
            && upper.contains("END OF")
            && upper.contains("PROJECT GUTENBERG"))
            || upper.starts_with("END OF THE PROJECT GUTENBERG")
            || upper.starts_with("END OF PROJECT GUTENBERG")
        {
            end = Some(off);
            break;
        }
    }
    let start = start?.min(text.len());
    let end = end.unwrap_or(text.len()).max(start);
    Some((title.filter(|t| !t.is_empty()), start..end))
}

/// A `.txt` or `.md` book from its bytes.
pub(crate) fn text_book(bytes: &[u8], markdown: bool, o: crate::book::Origin<'_>) -> Result<Document> {
    let (full, decoding) = decode_text(bytes);
    let (gut_title, body) = match gutenberg(&full) {
        Some((t, r)) => (t, full[r].to_string()),
        None => (None, full),
    };
    let body = trim_blank_lines(body);
    let (md_title, mut starts) = if markdown {
        markdown_parts(&body)
    } else {
        (None, Vec::new())
    };
    if starts.len() < 2 {
        starts = text_chapters(&body);
    }
    if starts.len() < 2 {
        starts = size_sections(&body);
    }
    let title = gut_title.or(md_title).unwrap_or_else(|| o.name.to_string());
    let meta = DocParts {
        id: DocId::new(DocKind::Book, o.source, o.locator),
        kind: DocKind::Book,
        path: o.path,
        url: o.url,
        title,
        language: None,
        decoding,
        source_bytes: bytes.len() as u64,
    };
    Document::new(meta, body, starts).ok_or(Error::Empty {
        at: o.at.to_string(),
        detail: String::new(),
    })
}

/// Drops leading and trailing blank lines (keeps the first line's indentation).
pub(crate) fn trim_blank_lines(s: String) -> String {
    let start = s.len() - s.trim_start_matches(['\n', ' ', '\t', '\r']).len();
    let start = s[..start].rfind('\n').map_or(0, |p| p + 1).min(start);
    let end = s.trim_end().len();
    if start == 0 && end == s.len() {
        return s;
    }
    let mut t = s[start..end.max(start)].to_string();
    t.push('\n');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_levels() {
        let md =
            "# Title\n\nintro\n\n## One\n\ntext\n\n```\n## not a heading\n```\n\n## Two\n\nx\n\nThree\n-----\n\ny\n";
        let (t, parts) = markdown_parts(md);
        assert_eq!(t.as_deref(), Some("Title"));
        let titles: Vec<_> = parts.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(titles, ["Title", "One", "Two", "Three"]);
    }

    #[test]
    fn chapters_skip_table_of_contents() {
        let para = "It was a dark and stormy night; the rain fell in torrents, except at occasional intervals, when it was checked by a violent gust of wind which swept up the streets.\n";
        let text = format!(
            "THE BOOK\n\nContents\n\nCHAPTER I. The Start\n\nCHAPTER II. The Middle\n\nCHAPTER III. The End\n\n\
             CHAPTER I.\n\nThe Start\n\n{para}\nCHAPTER II.\n\nThe Middle\n\n{para}\nCHAPTER III.\n\nThe End\n\n{para}"
        );
        let ch = text_chapters(&text);
        let titles: Vec<_> = ch.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(
            titles,
            [
                "Front matter",
                "CHAPTER I. The Start",
                "CHAPTER II. The Middle",
                "CHAPTER III. The End"
            ]
        );
        assert_eq!(&text[ch[1].1..ch[1].1 + 10], "CHAPTER I.");
        assert!(ch[1].1 > text.find("CHAPTER III. The End").unwrap());
    }

    #[test]
    fn roman_numerals_not_prose() {
        assert!(is_heading("IV.") && is_heading("II. THE RED-HEADED LEAGUE") && is_heading("XII"));
        assert!(!is_heading("I am here.") && !is_heading("I. went home"));
        assert!(is_heading("Chapter 12: Escape") && is_heading("BOOK THE FIRST") && is_heading("Epilogue"));
        assert!(!is_heading("Part of the reason was money."));
    }

    #[test]
    fn gutenberg_markers() {
        let t = "The Project Gutenberg eBook of X\n\nTitle: Alice in Wonderland\n\n*** START OF THE PROJECT GUTENBERG EBOOK ALICE ***\nbody\n*** END OF THE PROJECT GUTENBERG EBOOK ALICE ***\nlicense";
        let (title, r) = gutenberg(t).unwrap();
        assert_eq!(title.as_deref(), Some("Alice in Wonderland"));
        assert_eq!(&t[r], "body\n");
    }
}
