//! `http(s)://` inputs, fetched with reqwest: timeouts, a size cap, redirects.
//!
//! TLS is rustls with the `ring` provider (no C toolchain needed), installed once per
//! process. The body is read chunk by chunk and abandoned as soon as it passes the cap. The
//! response is then read by its `Content-Type`: HTML as a page, plain text, PDF and EPUB as
//! books, anything else is reported unsupported.

use std::sync::Once;

use crate::book::{self, BookFormat};
use crate::document::Document;
use crate::error::{Error, Result};
use crate::options::Options;
use crate::web::{PageOrigin, is_html, page_document};

/// A response read into memory.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// The URL asked for.
    pub url: String,
    /// The URL after redirects.
    pub final_url: String,
    /// `Content-Type` header.
    pub content_type: Option<String>,
    /// The body (decompressed if the server used gzip).
    pub body: Vec<u8>,
}

/// An HTTP client configured from [`Options`].
#[derive(Clone, Debug)]
pub(crate) struct Fetcher {
    client: reqwest::Client,
    cap: u64,
    timeout_secs: u64,
}

static RING: Once = Once::new();

impl Fetcher {
    /// A client with the options' timeouts, redirect limit and user agent.
    pub(crate) fn new(opts: &Options) -> std::result::Result<Self, String> {
        RING.call_once(|| {
            // Fails only when another provider is already installed, which is fine too.
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        let client = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.fetch_timeout)
            .redirect(reqwest::redirect::Policy::limited(opts.max_redirects))
            .user_agent(opts.user_agent.clone())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Fetcher {
            client,
            cap: opts.max_document_size,
            timeout_secs: opts.fetch_timeout.as_secs(),
        })
    }

    /// Gets `url` into memory, within the cap.
    pub(crate) async fn get(&self, url: &str) -> Result<Fetched> {
        let fail = |e: reqwest::Error| Error::Fetch {
            at: url.to_string(),
            reason: describe(&e, self.timeout_secs),
        };
        let mut resp = self.client.get(url).send().await.map_err(fail)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(Error::HttpStatus {
                at: url.to_string(),
                status: status.as_u16(),
            });
        }
        if let Some(len) = resp.content_length()
            && len > self.cap
        {
            return Err(Error::TooLarge {
                at: url.to_string(),
                size: len,
                cap: self.cap,
            });
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let final_url = resp.url().to_string();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(fail)? {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > self.cap {
                return Err(Error::TooLarge {
                    at: url.to_string(),
                    size: body.len() as u64,
                    cap: self.cap,
                });
            }
        }
        Ok(Fetched {
            url: url.to_string(),
            final_url,
            content_type,
            body,
        })
    }
}

fn describe(e: &reqwest::Error, timeout_secs: u64) -> String {
    if e.is_timeout() {
        return format!("timed out after {timeout_secs} s");
    }
    if e.is_redirect() {
        return "too many redirects".into();
    }
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// The document in a fetched response, read by its content type.
pub(crate) fn response_document(f: Fetched, opts: &Options) -> Result<Document> {
    let ct = f
        .content_type
        .as_deref()
        .map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    let name = f
        .final_url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(&f.final_url)
        .to_string();
    let at = f.url.as_str();
    let book_format = match ct.as_deref() {
        Some("application/pdf") => Some(BookFormat::Pdf),
        Some("application/epub+zip") => Some(BookFormat::Epub),
        Some("text/markdown") | Some("text/x-markdown") => Some(BookFormat::Markdown),
        Some("text/plain") => Some(BookFormat::Text),
        None if f.body.starts_with(b"%PDF") => Some(BookFormat::Pdf),
        _ => None,
    };
    if let Some(format) = book_format {
        let o = book::Origin {
            at,
            name: &name,
            source: at,
            locator: "",
            path: None,
            url: Some(f.final_url.clone()),
        };
        return book::from_bytes(&f.body, format, o, opts);
    }
    if is_html(f.content_type.as_deref(), &f.body) {
        let o = PageOrigin {
            at,
            source: at,
            locator: "",
            path: None,
            url: Some(f.final_url.clone()),
            name: &name,
        };
        return page_document(&f.body, f.content_type.as_deref(), o);
    }
    Err(Error::Unsupported {
        at: at.to_string(),
        what: format!("content type {}", ct.unwrap_or_else(|| "unknown".into())),
    })
}
