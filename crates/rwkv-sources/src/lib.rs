//! Code bases, books and web pages as one stream of [`Document`]s.
//!
//! `rwkv-ingest` folds whatever the user points it at into RWKV state; this crate turns those
//! inputs into text with the structure the reader needs. Three families of sources:
//!
//! - **Code bases** ([`code`], [`walk`](crate::Sources)): a directory walked like ripgrep
//!   walks it (nested `.gitignore` with negations, `.ignore`, git's excludes, hidden files
//!   off, include/exclude globs), binary and oversized files skipped with a reason, each
//!   directory's README first, one document per file.
//! - **Books**: `.txt`/`.md` with chapters from headings (Project Gutenberg boilerplate
//!   stripped), EPUB in spine order with table-of-contents titles, PDF with its outline.
//! - **Web pages**: `.html` files and folders of saved pages, WARC files, `http(s)://` URLs;
//!   main text without navigation, headers, footers, asides and forms.
//!
//! [`Sources::stream`] yields them as a `futures::Stream` on tokio with bounded parallel
//! extraction; each bad input is an [`Error`] in the stream, never the end of it.
//!
//! **Architecture invariants:** this crate knows nothing of models, tokens or state; it never
//! prints (errors and `tracing` only); no input can panic the caller (parser panics are
//! caught and reported); memory is bounded by [`Options::jobs`] times the caps.
#![deny(missing_docs)]

mod book;
pub mod code;
pub mod decode;
mod document;
mod error;
pub mod lang;
mod options;
mod stream;
mod walk;
mod web;

pub use document::{ContentHash, Decoding, DocId, DocKind, Document, Part};
pub use error::{Error, Result};
pub use options::{DirMode, Options};
pub use stream::{Input, Sources};
