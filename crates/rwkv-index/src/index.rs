//! [`Index`]: the tantivy schema, opening with recovery, writing segments and searching.

use std::path::{Path, PathBuf};

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{
    Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::error::{Error, Result};
use crate::tokenizer::{CODE_TOKENIZER, CodeTokenizer};

/// The writer's memory budget: one indexing thread (tantivy needs at least ~15 MB per thread).
pub const WRITER_MEMORY_BYTES: usize = 50_000_000;

/// Characters of text in a [`Hit::snippet`].
const SNIPPET_CHARS: usize = 200;

/// One indexed span of a document: the text between two consecutive checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Segment {
    /// The document id (as in the store).
    pub doc_id: String,
    /// Path or URL of the document.
    pub path: String,
    /// Document (or part) title; may be empty.
    pub title: String,
    /// The segment's text.
    pub text: String,
    /// 1-based first line of the segment.
    pub line_start: u64,
    /// 1-based last line of the segment.
    pub line_end: u64,
    /// Hex key of the checkpoint just before the segment (the state to resume from); `None`
    /// for a document's first segment, which starts from the document's start state.
    pub checkpoint: Option<String>,
    /// The segment's position in its document, from 0.
    pub seq: u64,
}

/// A search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The document id.
    pub doc_id: String,
    /// Path or URL.
    pub path: String,
    /// Title.
    pub title: String,
    /// 1-based first line.
    pub line_start: u64,
    /// 1-based last line.
    pub line_end: u64,
    /// The checkpoint to resume from (see [`Segment::checkpoint`]).
    pub checkpoint: Option<String>,
    /// The segment's position in its document.
    pub seq: u64,
    /// BM25 score (higher is better).
    pub score: f32,
    /// A fragment of the segment's text around the matches (the start of the text if only the
    /// title or path matched).
    pub snippet: String,
    /// The whole segment text.
    pub text: String,
}

/// How [`Index::open_or_create`] found the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenOutcome {
    /// There was no index: an empty one was created. Fill it from the store.
    Fresh,
    /// An index was there and passed the checks.
    Existing,
    /// An index was there but was damaged or of another schema; it was deleted and an empty
    /// one created. Fill it from the store.
    Rebuilt {
        /// What was wrong with the old one.
        reason: String,
    },
}

impl OpenOutcome {
    /// Whether the index is empty and must be refilled from the store.
    pub fn needs_rebuild(&self) -> bool {
        !matches!(self, OpenOutcome::Existing)
    }
}

#[derive(Clone, Copy)]
struct Fields {
    doc_id: Field,
    path: Field,
    path_raw: Field,
    title: Field,
    text: Field,
    line_start: Field,
    line_end: Field,
    checkpoint: Field,
    seq: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let code = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(CODE_TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        doc_id: b.add_text_field("doc_id", STRING | STORED),
        path: b.add_text_field("path", code.clone() | STORED),
        path_raw: b.add_text_field("path_raw", STRING),
        title: b.add_text_field("title", code.clone() | STORED),
        text: b.add_text_field("text", code | STORED),
        line_start: b.add_u64_field("line_start", STORED),
        line_end: b.add_u64_field("line_end", STORED),
        checkpoint: b.add_text_field("checkpoint", STRING | STORED),
        seq: b.add_u64_field("seq", INDEXED | STORED),
    };
    (b.build(), fields)
}

/// A full-text index of segments in one directory (by default the store's `index/`). The
/// directory belongs to the index: a damaged index is deleted with everything in it.
pub struct Index {
    dir: PathBuf,
    index: tantivy::Index,
    reader: IndexReader,
    writer: Option<IndexWriter<TantivyDocument>>,
    fields: Fields,
}

impl Index {
    /// Open the index in `dir` for writing, creating it if missing, and recreating it empty if
    /// damaged or of another schema. The outcome says whether the caller must refill it.
    pub fn open_or_create(dir: impl AsRef<Path>) -> Result<(Index, OpenOutcome)> {
        let dir = dir.as_ref();
        if !dir.join("meta.json").exists() {
            return Ok((Self::create(dir)?, OpenOutcome::Fresh));
        }
        match Self::open_checked(dir).and_then(|idx| Self::with_writer(dir, idx)) {
            Ok(index) => Ok((index, OpenOutcome::Existing)),
            // Another writer holds the lock: that is not damage, so leave the index alone.
            Err(Error::Tantivy { source, .. }) if matches!(*source, tantivy::TantivyError::LockFailure(..)) => {
                Err(Error::Tantivy {
                    dir: dir.to_path_buf(),
                    source,
                })
            }
            Err(e) => {
                let reason = match e {
                    Error::Unusable { reason, .. } => reason,
                    other => other.to_string(),
                };
                remove_index_dir(dir)?;
                Ok((Self::create(dir)?, OpenOutcome::Rebuilt { reason }))
            }
        }
    }

    /// Delete whatever index is in `dir` and build a new one from `segments` (committed).
    pub fn rebuild(dir: impl AsRef<Path>, segments: impl IntoIterator<Item = Segment>) -> Result<Index> {
        let dir = dir.as_ref();
        if dir.exists() {
            remove_index_dir(dir)?;
        }
        let mut index = Self::create(dir)?;
        for s in segments {
            index.add_segment(&s)?;
        }
        index.commit()?;
        Ok(index)
    }

    /// Open an existing index for searching only (no writer lock, so ingest can write while
    /// this process searches; [`Index::reload`] picks up its commits). A missing or damaged
    /// index is [`Error::Unusable`].
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Index> {
        let dir = dir.as_ref();
        if !dir.join("meta.json").exists() {
            return Err(Error::Unusable {
                dir: dir.to_path_buf(),
                reason: "missing".into(),
            });
        }
        let index = Self::open_checked(dir)?;
        Self::assemble(dir, index, None)
    }

    fn open_checked(dir: &Path) -> Result<tantivy::Index> {
        let unusable = |reason: String| Error::Unusable {
            dir: dir.to_path_buf(),
            reason,
        };
        let index = tantivy::Index::open_in_dir(dir).map_err(|e| unusable(format!("does not open: {e}")))?;
        let (expected, _) = schema();
        if index.schema() != expected {
            return Err(unusable("written with another schema".into()));
        }
        let damaged = index
            .validate_checksum()
            .map_err(|e| unusable(format!("checksum validation failed: {e}")))?;
        if !damaged.is_empty() {
            let mut names: Vec<String> = damaged.iter().map(|p| p.display().to_string()).collect();
            names.sort();
            return Err(unusable(format!("damaged files: {}", names.join(", "))));
        }
        Ok(index)
    }

    fn create(dir: &Path) -> Result<Index> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
        let (schema, _) = schema();
        let index = tantivy::Index::create_in_dir(dir, schema).map_err(|e| tantivy_err(dir, e))?;
        Self::with_writer(dir, index)
    }

    fn with_writer(dir: &Path, index: tantivy::Index) -> Result<Index> {
        register_tokenizers(&index);
        let writer = index
            .writer_with_num_threads(1, WRITER_MEMORY_BYTES)
            .map_err(|e| tantivy_err(dir, e))?;
        Self::assemble(dir, index, Some(writer))
    }

    fn assemble(dir: &Path, index: tantivy::Index, writer: Option<IndexWriter<TantivyDocument>>) -> Result<Index> {
        register_tokenizers(&index);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| tantivy_err(dir, e))?;
        Ok(Index {
            dir: dir.to_path_buf(),
            index,
            reader,
            writer,
            fields: schema().1,
        })
    }

    /// The index directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn writer(&self) -> Result<&IndexWriter<TantivyDocument>> {
        self.writer
            .as_ref()
            .ok_or_else(|| Error::ReadOnly { dir: self.dir.clone() })
    }

    fn add_segment(&self, s: &Segment) -> Result<()> {
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.doc_id, &s.doc_id);
        doc.add_text(f.path, &s.path);
        doc.add_text(f.path_raw, &s.path);
        doc.add_text(f.title, &s.title);
        doc.add_text(f.text, &s.text);
        doc.add_u64(f.line_start, s.line_start);
        doc.add_u64(f.line_end, s.line_end);
        doc.add_text(f.checkpoint, s.checkpoint.as_deref().unwrap_or(""));
        doc.add_u64(f.seq, s.seq);
        self.writer()?
            .add_document(doc)
            .map_err(|e| tantivy_err(&self.dir, e))?;
        Ok(())
    }

    /// Replace every segment of `doc_id` by `segments` (visible after [`Index::commit`]).
    pub fn add_document_segments(&mut self, doc_id: &str, segments: Vec<Segment>) -> Result<()> {
        self.remove_document(doc_id)?;
        for s in &segments {
            if s.doc_id != doc_id {
                // The doc_id term is what replacement deletes by; a stray id would outlive it.
                let mut s = s.clone();
                s.doc_id = doc_id.to_string();
                self.add_segment(&s)?;
            } else {
                self.add_segment(s)?;
            }
        }
        Ok(())
    }

    /// Remove every segment of `doc_id` (visible after [`Index::commit`]).
    pub fn remove_document(&mut self, doc_id: &str) -> Result<()> {
        let term = Term::from_field_text(self.fields.doc_id, doc_id);
        self.writer()?.delete_term(term);
        Ok(())
    }

    /// Make the changes so far durable and visible to searches.
    pub fn commit(&mut self) -> Result<()> {
        let dir = self.dir.clone();
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| Error::ReadOnly { dir: dir.clone() })?;
        writer.commit().map_err(|e| tantivy_err(&dir, e))?;
        self.reload()
    }

    /// See the latest commit (of this handle or of the process writing the index).
    pub fn reload(&self) -> Result<()> {
        self.reader.reload().map_err(|e| tantivy_err(&self.dir, e))
    }

    /// The ids of every document with at least one committed segment.
    pub fn document_ids(&self) -> Result<std::collections::BTreeSet<String>> {
        use tantivy::schema::Value;
        let searcher = self.reader.searcher();
        let docs = searcher
            .search(&tantivy::query::AllQuery, &tantivy::collector::DocSetCollector)
            .map_err(|e| tantivy_err(&self.dir, e))?;
        let mut ids = std::collections::BTreeSet::new();
        for addr in docs {
            let doc: TantivyDocument = searcher.doc(addr).map_err(|e| tantivy_err(&self.dir, e))?;
            if let Some(id) = doc.get_first(self.fields.doc_id).and_then(|v| v.as_str()) {
                ids.insert(id.to_string());
            }
        }
        Ok(ids)
    }

    /// Segments indexed.
    pub fn num_segments(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The `k` best segments for free text `query`, by BM25 over text, title (boost 2) and path
    /// (boost 1.5). The query may use tantivy's syntax (`"a phrase"`, `+must`, `-not`,
    /// `title:word`), but any text is accepted: what does not parse is searched as words.
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>> {
        if k == 0 || query.trim().is_empty() {
            return Ok(Vec::new());
        }
        let q = self.parse(query);
        let hits = self.run(&*q, k)?;
        if !hits.is_empty() {
            return Ok(hits);
        }
        // Identifiers such as `fold_document` or `a::b` become phrases of their parts, which
        // can miss; retry with their parts as plain words.
        let words: String = query
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c.is_whitespace() {
                    c
                } else {
                    ' '
                }
            })
            .collect();
        if words.split_whitespace().next().is_none() || words == query {
            return Ok(hits);
        }
        let q = self.parse(&words);
        self.run(&*q, k)
    }

    /// Search for a path or identifier: an exact path match ranks first, then paths containing
    /// it, then identifier matches in text and title (in any spelling: `fold_document`,
    /// `FoldDocument`), then the words anywhere.
    pub fn search_path_or_symbol(&self, term: &str, k: usize) -> Result<Vec<Hit>> {
        let term = term.trim();
        if k == 0 || term.is_empty() {
            return Ok(Vec::new());
        }
        let f = self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(
            Occur::Should,
            boost(
                TermQuery::new(Term::from_field_text(f.path_raw, term), IndexRecordOption::Basic),
                20.0,
            ),
        )];
        // The identifier as one phrase (joined form + parts), per field.
        for (field, weight) in [(f.path, 6.0), (f.text, 4.0), (f.title, 4.0)] {
            if let Some(q) = self.phrase_for(field, term) {
                clauses.push((Occur::Should, Box::new(BoostQuery::new(q, weight))));
            }
        }
        clauses.push((Occur::Should, self.parse(term)));
        self.run(&BooleanQuery::new(clauses), k)
    }

    fn parse(&self, query: &str) -> Box<dyn Query> {
        let f = self.fields;
        let mut parser = QueryParser::for_index(&self.index, vec![f.text, f.title, f.path]);
        parser.set_field_boost(f.title, 2.0);
        parser.set_field_boost(f.path, 1.5);
        // Errors are parts of the query tantivy dropped or read as plain words; never fatal.
        let (q, _errors) = parser.parse_query_lenient(query);
        q
    }

    /// A query matching `text`'s tokens in `field` at their positions (a term for one token).
    fn phrase_for(&self, field: Field, text: &str) -> Option<Box<dyn Query>> {
        let terms: Vec<(usize, Term)> = crate::tokenizer::tokenize(text)
            .into_iter()
            .map(|t| (t.position, Term::from_field_text(field, &t.text)))
            .collect();
        match terms.len() {
            0 => None,
            1 => Some(Box::new(TermQuery::new(
                terms[0].1.clone(),
                IndexRecordOption::WithFreqs,
            ))),
            _ => Some(Box::new(tantivy::query::PhraseQuery::new_with_offset(terms))),
        }
    }

    fn run(&self, query: &dyn Query, k: usize) -> Result<Vec<Hit>> {
        let err = |e| tantivy_err(&self.dir, e);
        let searcher = self.reader.searcher();
        let top = searcher
            .search(query, &TopDocs::with_limit(k).order_by_score())
            .map_err(err)?;
        let f = self.fields;
        let mut snippets = SnippetGenerator::create(&searcher, query, f.text).map_err(err)?;
        snippets.set_max_num_chars(SNIPPET_CHARS);
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr).map_err(err)?;
            let text = |field| {
                doc.get_first(field)
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            };
            let num = |field| doc.get_first(field).and_then(|v| v.as_u64()).unwrap_or(0);
            let mut snippet = snippets.snippet_from_doc(&doc).fragment().to_string();
            if snippet.is_empty() {
                snippet = text(f.text).chars().take(SNIPPET_CHARS).collect();
            }
            let checkpoint = text(f.checkpoint);
            hits.push(Hit {
                doc_id: text(f.doc_id),
                path: text(f.path),
                title: text(f.title),
                line_start: num(f.line_start),
                line_end: num(f.line_end),
                checkpoint: (!checkpoint.is_empty()).then_some(checkpoint),
                seq: num(f.seq),
                score,
                snippet,
                text: text(f.text),
            });
        }
        Ok(hits)
    }
}

fn boost(q: impl Query + 'static, weight: f32) -> Box<dyn Query> {
    Box::new(BoostQuery::new(Box::new(q), weight))
}

fn register_tokenizers(index: &tantivy::Index) {
    index
        .tokenizers()
        .register(CODE_TOKENIZER, TextAnalyzer::builder(CodeTokenizer).build());
}

fn tantivy_err(dir: &Path, e: tantivy::TantivyError) -> Error {
    Error::Tantivy {
        dir: dir.to_path_buf(),
        source: Box::new(e),
    }
}

/// Delete a damaged index directory's contents (the directory is the index's own).
fn remove_index_dir(dir: &Path) -> Result<()> {
    std::fs::remove_dir_all(dir).map_err(|e| Error::Io {
        path: dir.to_path_buf(),
        source: e,
    })
}
