//! [`Index`]: the tantivy schema, opening with recovery, writing units and searching.

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

/// One retrieval unit of a document: a definition with its body (a long body in pieces), a
/// doc or page section, or the text between definitions. Units do not depend on checkpoint
/// spacing; each records the checkpoint at or before its start, where a reader resumes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unit {
    /// The document id (as in the store).
    pub doc_id: String,
    /// Path or URL of the document.
    pub path: String,
    /// Document (or part) title; may be empty.
    pub title: String,
    /// The unit's text.
    pub text: String,
    /// 1-based first line of the unit.
    pub line_start: u64,
    /// 1-based last line of the unit.
    pub line_end: u64,
    /// Byte offset of the unit in the document.
    pub byte_start: u64,
    /// Byte offset just past the unit.
    pub byte_end: u64,
    /// Hex key of the checkpoint at or before the unit's start (the state to resume from);
    /// `None` when the document has no checkpoint there.
    pub checkpoint: Option<String>,
    /// Byte offset of that checkpoint in the document (where re-reading starts).
    pub checkpoint_offset: u64,
    /// The unit's position in its document, from 0.
    pub seq: u64,
    /// What the unit is: a symbol kind (`function`, `class`, `method`, `section`, …) or `text`
    /// for text outside any definition.
    pub kind: String,
    /// The name of the definition the unit belongs to (empty for `text`).
    pub name: String,
    /// The qualified name of the definition's enclosing definition (`AppContext` for
    /// `AppContext.push`); empty at top level.
    pub scope: String,
    /// 1-based line of the definition's name (0 when the unit has no definition).
    pub name_line: u64,
    /// Whether the unit holds the definition's name line (its first piece).
    pub head: bool,
    /// Names the unit refers to (calls, type uses).
    pub refs: Vec<String>,
    /// Size of the whole document in bytes (a duplicate is preferred from the smaller one).
    pub doc_bytes: u64,
    /// The unit's prose: its comments and docstrings (all of it for a doc section), searched
    /// as its own field since questions are written in words.
    pub doc: String,
    /// Other whole definitions inside the unit (a run of one-line constants or macros shares
    /// one unit): name and 1-based name line. Their names are looked up exactly
    /// ([`Index::definitions`]) like the unit's own.
    pub also: Vec<(String, u64)>,
    /// Declarations without bodies in the unit that a comment describes (a C++ header's
    /// methods): qualified name and comment. Retrieval lends the comment to the definition.
    pub declares: Vec<(String, String)>,
}

/// A search result: a unit and its score.
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
    /// Byte offset of the unit.
    pub byte_start: u64,
    /// Byte offset past the unit.
    pub byte_end: u64,
    /// The checkpoint to resume from (see [`Unit::checkpoint`]).
    pub checkpoint: Option<String>,
    /// Byte offset of that checkpoint.
    pub checkpoint_offset: u64,
    /// The unit's position in its document.
    pub seq: u64,
    /// See [`Unit::kind`].
    pub kind: String,
    /// See [`Unit::name`].
    pub name: String,
    /// See [`Unit::scope`].
    pub scope: String,
    /// See [`Unit::name_line`].
    pub name_line: u64,
    /// See [`Unit::head`].
    pub head: bool,
    /// See [`Unit::doc_bytes`].
    pub doc_bytes: u64,
    /// blake3 of the unit's text with runs of whitespace collapsed (equal for duplicates).
    pub text_hash: String,
    /// BM25 score (higher is better).
    pub score: f32,
    /// A fragment of the unit's text around the matches (the start of the text if only the
    /// title or path matched).
    pub snippet: String,
    /// The whole unit text.
    pub text: String,
    /// See [`Unit::also`].
    pub also: Vec<(String, u64)>,
    /// See [`Unit::declares`].
    pub declares: Vec<(String, String)>,
}

impl Hit {
    /// `Class.method`: the unit's name with its scope (empty for `text`).
    pub fn qualified_name(&self) -> String {
        match (self.scope.is_empty(), self.name.is_empty()) {
            (_, true) => String::new(),
            (true, false) => self.name.clone(),
            (false, false) => format!("{}.{}", self.scope, self.name),
        }
    }
}

/// The key a name is looked up by: lowercase, without `_`, `-` and `$` (`url_for`, `UrlFor` and
/// `urlFor` share `urlfor`).
pub fn name_key(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-' | '$'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// blake3 of `text` with runs of whitespace collapsed to one space and the ends trimmed.
fn text_hash(text: &str) -> String {
    let mut h = blake3::Hasher::new();
    for (i, w) in text.split_whitespace().enumerate() {
        if i > 0 {
            h.update(b" ");
        }
        h.update(w.as_bytes());
    }
    h.finalize().to_hex()[..32].to_string()
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
    byte_start: Field,
    byte_end: Field,
    checkpoint: Field,
    checkpoint_offset: Field,
    seq: Field,
    kind: Field,
    name: Field,
    scope: Field,
    name_key: Field,
    name_line: Field,
    head: Field,
    refs: Field,
    doc_bytes: Field,
    text_hash: Field,
    doc: Field,
    also: Field,
    declares: Field,
    declared: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let code = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(CODE_TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let code_unstored = code.clone();
    let fields = Fields {
        doc_id: b.add_text_field("doc_id", STRING | STORED),
        path: b.add_text_field("path", code.clone() | STORED),
        path_raw: b.add_text_field("path_raw", STRING),
        title: b.add_text_field("title", code.clone() | STORED),
        text: b.add_text_field("text", code.clone() | STORED),
        line_start: b.add_u64_field("line_start", STORED),
        line_end: b.add_u64_field("line_end", STORED),
        byte_start: b.add_u64_field("byte_start", STORED),
        byte_end: b.add_u64_field("byte_end", STORED),
        checkpoint: b.add_text_field("checkpoint", STRING | STORED),
        checkpoint_offset: b.add_u64_field("checkpoint_offset", STORED),
        seq: b.add_u64_field("seq", INDEXED | STORED),
        kind: b.add_text_field("kind", STRING | STORED),
        name: b.add_text_field("name", code.clone() | STORED),
        scope: b.add_text_field("scope", code.clone() | STORED),
        name_key: b.add_text_field("name_key", STRING),
        name_line: b.add_u64_field("name_line", STORED),
        head: b.add_u64_field("head", INDEXED | STORED),
        refs: b.add_text_field("refs", code),
        doc_bytes: b.add_u64_field("doc_bytes", STORED),
        text_hash: b.add_text_field("text_hash", STRING | STORED),
        doc: b.add_text_field("doc", code_unstored.clone()),
        declared: b.add_text_field("declared", code_unstored),
        also: b.add_text_field("also", STORED),
        declares: b.add_text_field("declares", STORED),
    };
    (b.build(), fields)
}

/// A full-text index of retrieval units in one directory (by default the store's `index/`). The
/// directory belongs to the index: a damaged index is deleted with everything in it.
pub struct Index {
    dir: PathBuf,
    index: tantivy::Index,
    reader: IndexReader,
    writer: Option<IndexWriter<TantivyDocument>>,
    fields: Fields,
}

/// The version of what the index holds beyond its schema: how texts are cut into units
/// (`rwkv_symbols::units`, through the pipeline) and how their terms are analysed. Bump it when
/// either changes what an existing index would hold: [`Index::open_or_create`] then recreates an
/// index of another version empty, and the store's texts refill it (never a refold).
pub const CONTENT_VERSION: &str = "20";

/// The file in the index folder that records [`CONTENT_VERSION`].
const CONTENT_VERSION_FILE: &str = "rwkv-content-version";

impl Index {
    /// Open the index in `dir` for writing, creating it if missing, and recreating it empty if
    /// damaged, of another schema or of another [`CONTENT_VERSION`]. The outcome says whether
    /// the caller must refill it.
    pub fn open_or_create(dir: impl AsRef<Path>) -> Result<(Index, OpenOutcome)> {
        let dir = dir.as_ref();
        if !dir.join("meta.json").exists() {
            return Ok((Self::create(dir)?, OpenOutcome::Fresh));
        }
        let opened = Self::open_checked(dir).and_then(|idx| {
            let found = std::fs::read_to_string(dir.join(CONTENT_VERSION_FILE)).unwrap_or_default();
            if found.trim() == CONTENT_VERSION {
                Self::with_writer(dir, idx)
            } else {
                let found = if found.trim().is_empty() { "none" } else { found.trim() };
                Err(Error::Unusable {
                    dir: dir.to_path_buf(),
                    reason: format!("its units are of version {found}, this build makes version {CONTENT_VERSION}"),
                })
            }
        });
        match opened {
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

    /// Delete whatever index is in `dir` and build a new one from `units` (committed).
    pub fn rebuild(dir: impl AsRef<Path>, units: impl IntoIterator<Item = Unit>) -> Result<Index> {
        let dir = dir.as_ref();
        if dir.exists() {
            remove_index_dir(dir)?;
        }
        let mut index = Self::create(dir)?;
        for u in units {
            index.add_unit(&u)?;
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
        let io = |e| Error::Io {
            path: dir.to_path_buf(),
            source: e,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::write(dir.join(CONTENT_VERSION_FILE), CONTENT_VERSION).map_err(io)?;
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

    fn add_unit(&self, u: &Unit) -> Result<()> {
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.doc_id, &u.doc_id);
        doc.add_text(f.path, &u.path);
        doc.add_text(f.path_raw, &u.path);
        doc.add_text(f.title, &u.title);
        doc.add_text(f.text, &u.text);
        doc.add_u64(f.line_start, u.line_start);
        doc.add_u64(f.line_end, u.line_end);
        doc.add_u64(f.byte_start, u.byte_start);
        doc.add_u64(f.byte_end, u.byte_end);
        doc.add_text(f.checkpoint, u.checkpoint.as_deref().unwrap_or(""));
        doc.add_u64(f.checkpoint_offset, u.checkpoint_offset);
        doc.add_u64(f.seq, u.seq);
        doc.add_text(f.kind, &u.kind);
        doc.add_text(f.name, &u.name);
        doc.add_text(f.scope, &u.scope);
        if u.head && !u.name.is_empty() {
            doc.add_text(f.name_key, name_key(&u.name));
            if !u.scope.is_empty() {
                // The qualified name (`AppContext.push` → `appcontext.push`) and the last part
                // of the scope with the name (`appcontextpush`).
                let scope_last = u.scope.rsplit(['.', ':']).next().unwrap_or(&u.scope);
                doc.add_text(f.name_key, format!("{}.{}", name_key(&u.scope), name_key(&u.name)));
                doc.add_text(f.name_key, format!("{}{}", name_key(scope_last), name_key(&u.name)));
            }
        }
        for (name, line) in &u.also {
            doc.add_text(f.name_key, name_key(name));
            doc.add_text(f.also, format!("{line}\t{name}"));
        }
        for (name, comment) in &u.declares {
            doc.add_text(f.declares, format!("{name}\t{comment}"));
            doc.add_text(f.declared, comment);
        }
        doc.add_u64(f.name_line, u.name_line);
        doc.add_u64(f.head, u64::from(u.head));
        if !u.refs.is_empty() {
            doc.add_text(f.refs, u.refs.join(" "));
        }
        doc.add_u64(f.doc_bytes, u.doc_bytes);
        doc.add_text(f.text_hash, text_hash(&u.text));
        if !u.doc.is_empty() {
            doc.add_text(f.doc, &u.doc);
        }
        self.writer()?
            .add_document(doc)
            .map_err(|e| tantivy_err(&self.dir, e))?;
        Ok(())
    }

    /// Replace every unit of `doc_id` by `units` (visible after [`Index::commit`]).
    pub fn add_document_units(&mut self, doc_id: &str, units: Vec<Unit>) -> Result<()> {
        self.remove_document(doc_id)?;
        for u in units {
            if u.doc_id != doc_id {
                // The doc_id term is what replacement deletes by; a stray id would outlive it.
                let mut u = u;
                u.doc_id = doc_id.to_string();
                self.add_unit(&u)?;
            } else {
                self.add_unit(&u)?;
            }
        }
        Ok(())
    }

    /// Remove every unit of `doc_id` (visible after [`Index::commit`]).
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

    /// Whether the committed index holds units of document `doc_id`.
    pub fn holds_document(&self, doc_id: &str) -> Result<bool> {
        let term = Term::from_field_text(self.fields.doc_id, doc_id);
        let query = tantivy::query::TermQuery::new(term, tantivy::schema::IndexRecordOption::Basic);
        let n = self
            .reader
            .searcher()
            .search(&query, &tantivy::collector::Count)
            .map_err(|e| tantivy_err(&self.dir, e))?;
        Ok(n > 0)
    }

    /// See the latest commit (of this handle or of the process writing the index).
    pub fn reload(&self) -> Result<()> {
        self.reader.reload().map_err(|e| tantivy_err(&self.dir, e))
    }

    /// The ids of every document with at least one committed unit.
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

    /// Units indexed.
    pub fn num_units(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The `k` best units for free text `query`, by BM25 over text, title (boost 2) and path
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

    /// The `k` best units for canonical `terms` ([`crate::tokenizer::canonical_terms`]): BM25
    /// over text, name (boost 3), scope and path (1.5) and title (2); every term optional.
    pub fn search_terms(&self, terms: &[String], k: usize) -> Result<Vec<Hit>> {
        let f = self.fields;
        let fields = [
            (f.text, 1.0),
            (f.doc, 1.0),
            (f.name, 3.0),
            (f.scope, 1.5),
            (f.title, 2.0),
            (f.path, 1.5),
        ];
        let clauses = term_clauses(terms, &fields);
        if k == 0 || clauses.is_empty() {
            return Ok(Vec::new());
        }
        self.run(&BooleanQuery::new(clauses), k)
    }

    /// The `k` units whose bodiless declarations' comments ([`Unit::declares`]) best hold
    /// canonical `terms` (BM25 over those comments alone).
    pub fn search_declarations(&self, terms: &[String], k: usize) -> Result<Vec<Hit>> {
        let clauses = term_clauses(terms, &[(self.fields.declared, 1.0)]);
        if k == 0 || clauses.is_empty() {
            return Ok(Vec::new());
        }
        self.run(&BooleanQuery::new(clauses), k)
    }

    /// Head units of the definitions whose name has one of `keys` ([`name_key`]; also
    /// `scope.name` and the scope's last part joined with the name, `appcontextpush`).
    pub fn definitions(&self, keys: &[String], k: usize) -> Result<Vec<Hit>> {
        let f = self.fields;
        let clauses: Vec<(Occur, Box<dyn Query>)> = keys
            .iter()
            .filter(|key| !key.is_empty())
            .map(|key| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(f.name_key, key),
                    IndexRecordOption::Basic,
                ));
                (Occur::Should, q)
            })
            .collect();
        if k == 0 || clauses.is_empty() {
            return Ok(Vec::new());
        }
        self.run(&BooleanQuery::new(clauses), k)
    }

    /// Head units whose name or scope shares a canonical term with `terms` (BM25 on names only):
    /// the candidates for a name the question spells out in words.
    pub fn search_names(&self, terms: &[String], k: usize) -> Result<Vec<Hit>> {
        let f = self.fields;
        let clauses = term_clauses(terms, &[(f.name, 2.0), (f.scope, 1.0)]);
        if k == 0 || clauses.is_empty() {
            return Ok(Vec::new());
        }
        let head: Box<dyn Query> = Box::new(TermQuery::new(
            Term::from_field_u64(f.head, 1),
            IndexRecordOption::Basic,
        ));
        let q = BooleanQuery::new(vec![
            (Occur::Must, head),
            (Occur::Must, Box::new(BooleanQuery::new(clauses))),
        ]);
        self.run(&q, k)
    }

    /// Units that refer to the name with key `key` ([`name_key`]), best first (BM25 of the
    /// reference term).
    pub fn references(&self, key: &str, k: usize) -> Result<Vec<Hit>> {
        if k == 0 || key.is_empty() {
            return Ok(Vec::new());
        }
        let q = TermQuery::new(
            Term::from_field_text(self.fields.refs, key),
            IndexRecordOption::WithFreqs,
        );
        self.run(&q, k)
    }

    /// How many units refer to the name with key `key`.
    pub fn reference_doc_freq(&self, key: &str) -> Result<u64> {
        let t = Term::from_field_text(self.fields.refs, key);
        self.reader
            .searcher()
            .doc_freq(&t)
            .map_err(|e| tantivy_err(&self.dir, e))
    }

    /// Every unit of document `doc_id`, in order.
    pub fn units_of(&self, doc_id: &str) -> Result<Vec<Hit>> {
        let q = TermQuery::new(
            Term::from_field_text(self.fields.doc_id, doc_id),
            IndexRecordOption::Basic,
        );
        let n = self.reader.searcher().num_docs() as usize;
        let mut hits = self.run(&q, n.max(1))?;
        hits.sort_by_key(|h| h.seq);
        Ok(hits)
    }

    /// Inverse document frequency of canonical `term` in the text, names and paths of all
    /// units, as BM25 takes it (`ln(1 + (N − n + 0.5) / (n + 0.5))`), and whether any unit holds
    /// it (a term in no unit gets the largest idf).
    pub fn idf_in_store(&self, term: &str) -> Result<(f32, bool)> {
        let searcher = self.reader.searcher();
        let n_docs = searcher.num_docs() as f32;
        let mut df = 0u64;
        for field in [self.fields.text, self.fields.name, self.fields.path] {
            let t = Term::from_field_text(field, term);
            df = df.max(searcher.doc_freq(&t).map_err(|e| tantivy_err(&self.dir, e))?);
        }
        let d = df as f32;
        Ok(((1.0 + (n_docs - d + 0.5) / (d + 0.5)).ln(), df > 0))
    }

    /// Units whose definitions' names contain canonical `term`, and all head units.
    pub fn name_doc_freq(&self, term: &str) -> Result<(u64, u64)> {
        let searcher = self.reader.searcher();
        let t = Term::from_field_text(self.fields.name, term);
        let df = searcher.doc_freq(&t).map_err(|e| tantivy_err(&self.dir, e))?;
        let heads = Term::from_field_u64(self.fields.head, 1);
        let n = searcher.doc_freq(&heads).map_err(|e| tantivy_err(&self.dir, e))?;
        Ok((df, n))
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
                byte_start: num(f.byte_start),
                byte_end: num(f.byte_end),
                checkpoint: (!checkpoint.is_empty()).then_some(checkpoint),
                checkpoint_offset: num(f.checkpoint_offset),
                seq: num(f.seq),
                kind: text(f.kind),
                name: text(f.name),
                scope: text(f.scope),
                name_line: num(f.name_line),
                head: num(f.head) == 1,
                doc_bytes: num(f.doc_bytes),
                text_hash: text(f.text_hash),
                score,
                snippet,
                text: text(f.text),
                also: doc
                    .get_all(f.also)
                    .filter_map(|v| v.as_str())
                    .filter_map(|v| v.split_once('\t'))
                    .filter_map(|(l, n)| Some((n.to_string(), l.parse().ok()?)))
                    .collect(),
                declares: doc
                    .get_all(f.declares)
                    .filter_map(|v| v.as_str())
                    .filter_map(|v| v.split_once('\t'))
                    .map(|(n, c)| (n.to_string(), c.to_string()))
                    .collect(),
            });
        }
        Ok(hits)
    }
}

/// One optional term query per term and field, boosted by the field's weight.
fn term_clauses(terms: &[String], fields: &[(Field, f32)]) -> Vec<(Occur, Box<dyn Query>)> {
    let mut clauses = Vec::with_capacity(terms.len() * fields.len());
    for t in terms {
        for &(field, weight) in fields {
            clauses.push((
                Occur::Should,
                boost(
                    TermQuery::new(Term::from_field_text(field, t), IndexRecordOption::WithFreqs),
                    weight,
                ),
            ));
        }
    }
    clauses
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
