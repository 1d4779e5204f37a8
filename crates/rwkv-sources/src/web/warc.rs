//! WARC files (Common Crawl's format): response records holding HTML, streamed.
//!
//! The `warc` crate parses records from a `BufRead`; per-record gzip (`.warc.gz`, one gzip
//! member per record) is undone by flate2's `MultiGzDecoder`, detected from the magic bytes
//! rather than the name. Bodies are read up to the document cap and the rest is skipped, so a
//! huge record costs no memory. What no crate does is done here: splitting the HTTP response
//! inside a record into status, headers and body, undoing chunked transfer encoding and
//! gzip/deflate content encoding. A damaged or truncated file yields the records before the
//! damage and then one error for the file.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;
use std::path::Path;

use flate2::read::{DeflateDecoder, GzDecoder, MultiGzDecoder, ZlibDecoder};
use warc::{RecordType, WarcHeader, WarcReader};

use crate::error::{Error, Result, display_path};
use crate::options::Options;
use crate::web::is_html;

/// An HTML response found in a WARC file.
#[derive(Debug)]
pub(crate) struct Response {
    /// `warc-path#target-uri`, for messages.
    pub at: String,
    /// `WARC-Target-URI`.
    pub url: String,
    /// `WARC-Record-ID`.
    pub record_id: String,
    /// The HTTP `Content-Type` of the response.
    pub content_type: Option<String>,
    /// The decoded HTTP body.
    pub body: Vec<u8>,
}

/// Reads the WARC file at `path`, calling `f` with each HTML response (in file order) and an
/// error for each record that is not one (a policy skip: not a response or resource record,
/// non-HTML, non-2xx, over the cap) or for damage (a failure).
pub(crate) fn read_warc(path: &Path, opts: &Options, f: &mut dyn FnMut(Result<Response>) -> ControlFlow<()>) {
    let at = display_path(path);
    let file = match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => {
            let _ = f(Err(Error::NotRegular { at }));
            return;
        }
        Ok(_) => File::open(path),
        Err(e) => Err(e),
    };
    let file = match file {
        Ok(file) => file,
        Err(e) => {
            let _ = f(Err(Error::io(at, e)));
            return;
        }
    };
    let mut raw = BufReader::with_capacity(1 << 16, file);
    let gz = match raw.fill_buf() {
        Ok(b) => b.starts_with(&[0x1f, 0x8b]),
        Err(e) => {
            let _ = f(Err(Error::io(at, e)));
            return;
        }
    };
    if gz {
        read_records(
            BufReader::with_capacity(1 << 16, MultiGzDecoder::new(raw)),
            &at,
            opts,
            f,
        );
    } else {
        read_records(raw, &at, opts, f);
    }
}

fn read_records<R: BufRead>(
    input: R,
    at: &str,
    opts: &Options,
    f: &mut dyn FnMut(Result<Response>) -> ControlFlow<()>,
) {
    let cap = opts.max_document_size;
    let mut reader = WarcReader::new(input);
    let mut records = reader.stream_records();
    let mut seen = 0usize;
    loop {
        let item = match records.next_item() {
            None => return,
            Some(Err(e)) => {
                let _ = f(Err(damaged(at, seen, &e)));
                return;
            }
            Some(Ok(rec)) => rec,
        };
        seen += 1;
        let url = item
            .header(WarcHeader::TargetURI)
            .map(Cow::into_owned)
            .unwrap_or_default();
        let url = url.trim_matches(['<', '>']).to_string();
        let record_id = item.warc_id().to_string();
        let rec_at = if url.is_empty() {
            format!("{at}#{}", record_id.trim_matches(['<', '>']))
        } else {
            format!("{at}#{url}")
        };
        let wanted = matches!(item.warc_type(), RecordType::Response | RecordType::Resource);
        if !wanted {
            let skip = Error::NotAPage {
                at: rec_at,
                what: format!("{} record", item.warc_type()),
            };
            if f(Err(skip)).is_break() {
                return;
            }
            continue;
        }
        let is_http = item
            .header(WarcHeader::ContentType)
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/http"));
        let declared_type = item.header(WarcHeader::ContentType).map(Cow::into_owned);
        let declared_len = item.content_length();
        let mut block = Vec::new();
        let mut item = item;
        if let Err(e) = item.by_ref().take(cap + 1).read_to_end(&mut block) {
            let _ = f(Err(Error::Malformed {
                at: at.to_string(),
                format: "WARC",
                reason: format!("record {seen} ({url}): {e}"),
            }));
            return;
        }
        drop(item);
        if (block.len() as u64) < declared_len.min(cap + 1) {
            let reason = format!(
                "record {seen} ({url}) is truncated: {} of {declared_len} bytes",
                block.len()
            );
            let _ = f(Err(Error::Malformed {
                at: at.to_string(),
                format: "WARC",
                reason,
            }));
            return;
        }
        let result = if block.len() as u64 > cap {
            Err(Error::TooLarge {
                at: rec_at.clone(),
                size: block.len() as u64,
                cap,
            })
        } else if is_http {
            http_response(&block, &rec_at, cap)
        } else {
            Ok((declared_type, block))
        };
        let result = result.and_then(|(content_type, body)| {
            if is_html(content_type.as_deref(), &body) {
                Ok(Response {
                    at: rec_at.clone(),
                    url: url.clone(),
                    record_id,
                    content_type,
                    body,
                })
            } else {
                let ct = content_type.unwrap_or_else(|| "unknown".into());
                Err(Error::Unsupported {
                    at: rec_at.clone(),
                    what: format!("content type {}", ct.split(';').next().unwrap_or("").trim()),
                })
            }
        });
        if f(result).is_break() {
            return;
        }
    }
}

fn damaged(at: &str, seen: usize, e: &warc::Error) -> Error {
    let what = match e {
        warc::Error::ReadData(io) => format!("read error: {io}"),
        warc::Error::UnexpectedEOB => "truncated record".into(),
        other => other.to_string(),
    };
    Error::Malformed {
        at: at.to_string(),
        format: "WARC",
        reason: format!("after {seen} records: {what}"),
    }
}

/// Splits an HTTP response into `(Content-Type, decoded body)`; non-2xx is
/// [`Error::ArchivedStatus`].
fn http_response(block: &[u8], at: &str, cap: u64) -> Result<(Option<String>, Vec<u8>)> {
    let malformed = |reason: &str| Error::Malformed {
        at: at.to_string(),
        format: "HTTP response",
        reason: reason.into(),
    };
    let (head_end, body_start) = match find(block, b"\r\n\r\n") {
        Some(p) => (p, p + 4),
        None => match find(block, b"\n\n") {
            Some(p) => (p, p + 2),
            None => return Err(malformed("no end of headers")),
        },
    };
    let head = String::from_utf8_lossy(&block[..head_end]);
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed("bad status line"))?;
    if !(200..300).contains(&status) {
        return Err(Error::ArchivedStatus {
            at: at.to_string(),
            status,
        });
    }
    let mut content_type = None;
    let mut chunked = false;
    let mut encoding = String::new();
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        match k.as_str() {
            "content-type" => content_type = Some(v.to_string()),
            "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
            "content-encoding" => encoding = v.to_ascii_lowercase(),
            _ => {}
        }
    }
    let mut body: Cow<[u8]> = Cow::Borrowed(&block[body_start..]);
    if chunked && let Some(d) = dechunk(&body) {
        body = Cow::Owned(d);
    }
    let body = match encoding.as_str() {
        "" | "identity" | "none" => body.into_owned(),
        "gzip" | "x-gzip" => inflate(GzDecoder::new(&body[..]), at, cap)?,
        "deflate" => inflate(ZlibDecoder::new(&body[..]), at, cap)
            .or_else(|_| inflate(DeflateDecoder::new(&body[..]), at, cap))?,
        other => {
            // Crawlers often store the decoded body but keep the header; trust the bytes.
            if is_html(None, &body) {
                body.into_owned()
            } else {
                return Err(Error::Unsupported {
                    at: at.to_string(),
                    what: format!("content encoding {other}"),
                });
            }
        }
    };
    Ok((content_type, body))
}

fn inflate(r: impl Read, at: &str, cap: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(cap + 1).read_to_end(&mut out).map_err(|e| Error::Malformed {
        at: at.to_string(),
        format: "HTTP body",
        reason: e.to_string(),
    })?;
    if out.len() as u64 > cap {
        return Err(Error::ExpandsTooLarge {
            at: at.to_string(),
            size: out.len() as u64,
            cap,
            ratio: 0,
        });
    }
    Ok(out)
}

/// Undoes chunked transfer encoding; `None` when the body is not validly chunked (crawlers
/// often store the body already de-chunked but keep the header).
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(b.len());
    loop {
        let line_end = find(b, b"\r\n")?;
        let size_str = std::str::from_utf8(&b[..line_end]).ok()?;
        let size = usize::from_str_radix(size_str.split(';').next()?.trim(), 16).ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size..)?;
        b = b.strip_prefix(b"\r\n").unwrap_or(b);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_split_and_dechunk() {
        let block = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n<html\r\n1\r\n>\r\n0\r\n\r\n";
        let (ct, body) = http_response(block, "x", 1000).unwrap();
        assert_eq!((ct.as_deref(), body.as_slice()), (Some("text/html"), &b"<html>"[..]));
        let e = http_response(b"HTTP/1.1 404 Not Found\r\n\r\n", "x", 10).unwrap_err();
        assert_eq!(e.reason(), "http_4xx");
        assert!(e.is_policy_skip());
    }
}
