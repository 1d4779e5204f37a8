//! Full-text search over the text between state checkpoints.
//!
//! Why it exists: a question has to find *where* in the corpus its answer lies before a head
//! can resume from the checkpoint there. Each indexed item is a [`Segment`]: the text between
//! two consecutive checkpoints of a document, with its path, title, line range and the key of
//! the checkpoint just before it (the state to resume from). Search is BM25 (tantivy) over
//! text, title and path, with identifiers split into their parts ([`tokenizer`]).
//!
//! **Invariant:** the index is derived data. The store is written (and durable) first; the
//! index can always be rebuilt from the store, so a missing, damaged or outdated index is never
//! an error for ingest ([`OpenOutcome`] says when it must be refilled). This crate never prints.
#![deny(missing_docs)]

mod error;
mod index;
pub mod tokenizer;

pub use error::{Error, Result};
pub use index::{Hit, Index, OpenOutcome, Segment, WRITER_MEMORY_BYTES};
