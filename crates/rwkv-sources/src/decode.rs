//! Bytes to text: encodings, BOMs, `<meta charset>`, and lossy decoding that is counted.
//!
//! `encoding_rs` decodes and `chardetng` guesses, but neither reads an HTML `<meta>` charset
//! declaration or decides when a file is "UTF-8 with a few bad bytes" rather than a legacy
//! encoding; this module does those two things. The order is the browsers' one: byte order
//! mark, then the transport's charset (HTTP `Content-Type`), then `<meta>`, then valid UTF-8,
//! then a guess.

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252};

use crate::document::Decoding;

/// How many leading bytes [`looks_binary`] and [`meta_charset`] look at.
const SNIFF_LEN: usize = 8192;

/// Whether the bytes look like a binary file: a NUL byte in the first 8 KiB, unless a UTF-16
/// byte order mark says NULs are expected. This is git's and ripgrep's test.
pub fn looks_binary(bytes: &[u8]) -> bool {
    if Encoding::for_bom(bytes).is_some_and(|(e, _)| e == UTF_16LE || e == UTF_16BE) {
        return false;
    }
    bytes[..bytes.len().min(SNIFF_LEN)].contains(&0)
}

/// Decodes plain text (source code, `.txt` books): BOM, then valid UTF-8, then either lossy
/// UTF-8 (when the file is mostly UTF-8 with some damage) or chardetng's guess of a legacy
/// encoding (when there is no sign of UTF-8 at all, e.g. a Latin-1 file).
pub fn decode_text(bytes: &[u8]) -> (String, Decoding) {
    decode_with(bytes, None)
}

/// Decodes an HTML document: BOM, then the charset of `content_type` (an HTTP `Content-Type`
/// value) if given, then a `<meta>` declaration in the first 8 KiB, then as [`decode_text`].
pub fn decode_html(bytes: &[u8], content_type: Option<&str>) -> (String, Decoding) {
    let declared = content_type
        .and_then(charset_from_content_type)
        .or_else(|| meta_charset(bytes));
    decode_with(bytes, declared)
}

fn decode_with(bytes: &[u8], declared: Option<&'static Encoding>) -> (String, Decoding) {
    if let Some((enc, bom_len)) = Encoding::for_bom(bytes) {
        return decode_as(enc, &bytes[bom_len..]);
    }
    if let Some(enc) = declared {
        // A declared UTF-8 page with bad bytes is still UTF-8: decode lossily and count.
        return decode_as(enc, bytes);
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return (
            normalize_newlines(s.to_string()),
            Decoding {
                encoding: UTF_8.name(),
                replaced: 0,
            },
        );
    }
    let (mut multibyte, mut invalid) = (0usize, 0usize);
    for chunk in bytes.utf8_chunks() {
        multibyte += chunk.valid().chars().filter(|c| !c.is_ascii()).count();
        invalid += usize::from(!chunk.invalid().is_empty());
    }
    if multibyte >= invalid {
        return decode_as(UTF_8, bytes);
    }
    let mut det = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    det.feed(bytes, true);
    decode_as(det.guess(None, chardetng::Utf8Detection::Deny), bytes)
}

/// Decodes with `enc` (no BOM sniffing), counting replacement characters it had to insert.
fn decode_as(enc: &'static Encoding, bytes: &[u8]) -> (String, Decoding) {
    let (text, replaced) = if enc == UTF_8 {
        let mut out = String::with_capacity(bytes.len());
        let mut replaced = 0;
        for chunk in bytes.utf8_chunks() {
            out.push_str(chunk.valid());
            if !chunk.invalid().is_empty() {
                out.push('\u{FFFD}');
                replaced += 1;
            }
        }
        (out, replaced)
    } else {
        let (cow, had_errors) = enc.decode_without_bom_handling(bytes);
        let replaced = if had_errors { cow.matches('\u{FFFD}').count() } else { 0 };
        (cow.into_owned(), replaced)
    };
    (
        normalize_newlines(text),
        Decoding {
            encoding: enc.name(),
            replaced,
        },
    )
}

/// Turns `\r\n` into `\n` and drops NUL characters, without copying when there are none.
pub fn normalize_newlines(s: String) -> String {
    if !s.contains('\r') && !s.contains('\0') {
        return s;
    }
    s.replace("\r\n", "\n").replace('\0', "")
}

/// The encoding named by the `charset` parameter of a `Content-Type` value, if any.
pub fn charset_from_content_type(content_type: &str) -> Option<&'static Encoding> {
    content_type.split(';').skip(1).find_map(|param| {
        let (k, v) = param.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("charset") {
            return None;
        }
        html_encoding(v.trim().trim_matches(|c| c == '"' || c == '\''))
    })
}

/// The charset of the first `<meta charset=…>` or `<meta http-equiv=content-type
/// content="…; charset=…">` in the first 8 KiB, outside comments. A tolerant version of the
/// HTML "prescan a byte stream" algorithm.
pub fn meta_charset(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = &bytes[..bytes.len().min(SNIFF_LEN)];
    let mut i = 0;
    while i < head.len() {
        if head[i..].starts_with(b"<!--") {
            i = find(head, i + 4, b"-->").map_or(head.len(), |e| e + 3);
            continue;
        }
        if head[i] == b'<' && head.len() - i > 5 && head[i + 1..i + 5].eq_ignore_ascii_case(b"meta") {
            let end = find(head, i, b">").unwrap_or(head.len());
            let tag = head[i + 5..end].to_ascii_lowercase();
            if let Some(enc) = charset_in_tag(&tag) {
                return Some(enc);
            }
            i = end;
            continue;
        }
        i += 1;
    }
    None
}

fn charset_in_tag(tag: &[u8]) -> Option<&'static Encoding> {
    let pos = find(tag, 0, b"charset")?;
    let rest = &tag[pos + 7..];
    let rest = rest.trim_ascii_start();
    let rest = rest.strip_prefix(b"=")?.trim_ascii_start();
    let rest = rest
        .strip_prefix(b"\"")
        .or_else(|| rest.strip_prefix(b"'"))
        .unwrap_or(rest);
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'"' | b'\'' | b';' | b'/' | b'>') || b.is_ascii_whitespace())
        .unwrap_or(rest.len());
    html_encoding(std::str::from_utf8(&rest[..end]).ok()?)
}

/// `Encoding::for_label` with the HTML rules: UTF-16 declared in the document means UTF-8
/// (the declaration could not have been read otherwise), x-user-defined means windows-1252.
fn html_encoding(label: &str) -> Option<&'static Encoding> {
    let enc = Encoding::for_label(label.as_bytes())?;
    Some(if enc == UTF_16LE || enc == UTF_16BE {
        UTF_8
    } else if enc.name() == "x-user-defined" {
        WINDOWS_1252
    } else {
        enc
    })
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_prescan() {
        let e = meta_charset(b"<html><head><!-- <meta charset=utf-8> --><META http-equiv=\"Content-Type\" content=\"text/html; charset=ISO-8859-1\">");
        assert_eq!(e.unwrap().name(), "windows-1252");
        assert_eq!(
            meta_charset(b"<meta charset='shift_jis'/>").unwrap().name(),
            "Shift_JIS"
        );
        assert_eq!(meta_charset(b"<meta charset=utf-16>").unwrap().name(), "UTF-8");
        assert!(meta_charset(b"<p>charset=koi8-r</p>").is_none());
    }

    #[test]
    fn decoding_rules() {
        let (s, d) = decode_text(b"caf\xc3\xa9 \xff ok \xc3\xa9");
        assert_eq!((s.as_str(), d.encoding, d.replaced), ("café \u{FFFD} ok é", "UTF-8", 1));
        let (s, d) = decode_text(b"Fran\xe7ais, na\xefve, \xe9t\xe9 et c\xe6tera\r\n");
        assert_eq!(
            (s.as_str(), d.encoding, d.replaced),
            ("Français, naïve, été et cætera\n", "windows-1252", 0)
        );
        let (s, d) = decode_html(b"<p>\xe9</p>", Some("text/html; charset=\"iso-8859-1\""));
        assert_eq!((s.as_str(), d.encoding), ("<p>é</p>", "windows-1252"));
        let (s, _) = decode_text(b"\xef\xbb\xbfbom");
        assert_eq!(s, "bom");
        assert!(looks_binary(b"PNG\0\0"));
        assert!(!looks_binary(b"\xff\xfeh\0i\0"));
    }
}
