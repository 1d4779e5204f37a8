//! Full-text and symbol search over retrieval units.
//!
//! Why it exists: a question has to find *where* in the corpus its answer lies before a head
//! can resume from the checkpoint there. Each indexed item is a [`Unit`]: a definition with its
//! body, a doc section or the text between definitions, with its path, title, line and byte
//! range, the definition's name, kind and scope, the names it refers to, and the key of the
//! checkpoint at or before it (the state to resume from). Search is BM25 (tantivy) over text,
//! names, title and path, with identifiers split into their parts and words reduced to
//! canonical forms ([`tokenizer`], [`terms`]); names are looked up exactly by [`name_key`]
//! ([`Index::definitions`]) and references by [`Index::references`].
//!
//! **Invariant:** the index is derived data. The store is written (and durable) first; the
//! index can always be rebuilt from the store, so a missing, damaged or outdated index is never
//! an error for ingest ([`OpenOutcome`] says when it must be refilled). This crate never prints.
#![deny(missing_docs)]

pub mod compounds;
mod error;
mod index;
pub mod terms;
pub mod tokenizer;

pub use error::{Error, Result};
pub use index::{CONTENT_VERSION, Hit, Index, OpenOutcome, Unit, WRITER_MEMORY_BYTES, name_key};
