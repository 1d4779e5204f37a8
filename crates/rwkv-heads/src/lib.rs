//! Query heads over an ingested store: they read saved states, never write them.
//!
//! - [`Library::retrieve`]: the retrieval units (definitions, sections, text between them)
//!   that answer a question: definitions of the names it mentions first, from anywhere in the
//!   store, then their references and BM25 over words; how well the store supports the
//!   question decides whether it answers at all; optionally re-ranked by the model ([`Rank`]).
//! - [`Library::answer`]: for the chosen units, restore the checkpoint at or before the best
//!   one, re-read from there through the unit and the other units with the question before
//!   and after them (reading twice helps recurrent models recall), then generate in the chat
//!   or plain template, streaming text through a callback; the sources come back as
//!   `path:start-end`.
//! - [`Library::answer`] also returns the evidence: one line per retrieved unit (a
//!   definition's own line where it has one), quoted exactly with its line number.
//! - [`Library::summarize`]: map-reduce over saved states: each document's summary from its own
//!   final state (cached in the store's `summaries/`), then the overall one from reading them.
//! - [`Library::self_test`]: plant facts at growing distances in filler text from the store and
//!   ask for them through the same restore-and-re-read path: the model's recall horizon.
#![deny(missing_docs)]
// The store and index errors carry paths and keys for good messages; answers are not a hot path.
#![allow(clippy::result_large_err)]

mod abstain;
mod copies;
mod declared;
mod evidence;
mod generate;
mod library;
mod meaning;
mod question;
mod rank;
mod retrieve;
pub mod sample;
mod selftest;
mod summary;
mod unit_kind;
mod wrapper;

pub use abstain::{ABSTAIN_BELOW, Retrieval};
pub use evidence::{EVIDENCE_LINES, Evidence};
pub use generate::{Generation, Template, TextStream, clean_user_text};
pub use library::{
    Answer, AskOptions, DEFAULT_TAIL_TOKENS, FoldProgress, Found, Library, Plan, READ_BUDGET_MACS, Rank, Reread,
    Source, SummaryTarget, Timings, default_read_tokens, last_lines,
};
pub use rank::FEATURES;
pub use retrieve::Candidate;
pub use selftest::{RecallRow, SelfTestOptions};
pub use summary::{DOCUMENT_SUMMARY_TOKENS, DocumentOutline, DocumentSummary, KeyLine, OUTLINE_LINES, Summary};

/// Errors of the heads.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store is missing or empty.
    #[error("no store at {0}: ingest something first, e.g. `rwkv-ingest ./src`")]
    NoStore(std::path::PathBuf),
    /// The store's manifest could not be read on open (an I/O or redb failure that is not
    /// recognisably damage): it may be damaged.
    #[error("{source}; if the store is damaged, rebuild it with `rwkv-ingest --repair --store {}`", dir.display())]
    Unreadable {
        /// The store directory.
        dir: std::path::PathBuf,
        /// What the store said.
        #[source]
        source: rwkv_store::Error,
    },
    /// The store refused.
    #[error(transparent)]
    Store(#[from] rwkv_store::Error),
    /// The index refused.
    #[error(transparent)]
    Index(#[from] rwkv_index::Error),
    /// The model refused (e.g. a state of another model).
    #[error(transparent)]
    Model(#[from] rwkv_model::Error),
    /// Folding a document on demand failed.
    #[error(transparent)]
    Reader(#[from] rwkv_reader::Error),
    /// A document or checkpoint named by the index is not in the store.
    #[error("the index names {0}, which is not in the store: run `rwkv-ingest` again to refresh it")]
    Stale(String),
}

/// Result with the heads' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
