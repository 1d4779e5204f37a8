//! Public-API tests of the index: add, search, replace, remove, recovery, identifier search.

use std::fs;

use rwkv_index::{Index, OpenOutcome, Unit};

fn seg(doc: &str, seq: u64, text: &str) -> Unit {
    Unit {
        doc_id: doc.into(),
        path: format!("crates/{doc}/src/lib.rs"),
        title: format!("{doc} library"),
        text: text.into(),
        line_start: seq * 10 + 1,
        line_end: seq * 10 + 10,
        checkpoint: (seq > 0).then(|| format!("{:064x}", seq)),
        seq,
        ..Default::default()
    }
}

fn corpus() -> Vec<Unit> {
    vec![
        seg(
            "reader",
            0,
            "pub fn fold_document(model: &Model, tokens: &[u32]) -> State { todo!() }",
        ),
        seg(
            "reader",
            1,
            "Checkpoints are emitted at every part boundary and every N tokens.",
        ),
        seg(
            "store",
            0,
            "The manifest lives in redb; blobs are content addressed safetensors files.",
        ),
        seg(
            "web",
            0,
            "struct FoldDocument { spans: Vec<Span> } impl FoldDocument { fn run(&self) {} }",
        ),
        seg(
            "book",
            0,
            "It was the best of times, it was the worst of times, it was the age of wisdom.",
        ),
    ]
}

fn ids(hits: &[rwkv_index::Hit]) -> Vec<String> {
    hits.iter().map(|h| format!("{}#{}", h.doc_id, h.seq)).collect()
}

#[test]
fn add_search_replace_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut index, outcome) = Index::open_or_create(tmp.path().join("index")).unwrap();
    assert_eq!(outcome, OpenOutcome::Fresh);
    assert!(outcome.needs_rebuild());
    for doc in ["reader", "store", "web", "book"] {
        let segs: Vec<_> = corpus().into_iter().filter(|s| s.doc_id == doc).collect();
        index.add_document_units(doc, segs).unwrap();
    }
    index.commit().unwrap();
    assert_eq!(index.num_units(), 5);

    let hits = index.search("manifest redb", 10).unwrap();
    assert_eq!(ids(&hits), ["store#0"]);
    let h = &hits[0];
    assert_eq!(h.path, "crates/store/src/lib.rs");
    assert_eq!(h.title, "store library");
    assert_eq!((h.line_start, h.line_end), (1, 10));
    assert_eq!(h.checkpoint, None);
    assert!(h.score > 0.0);
    assert!(h.snippet.contains("manifest"), "{}", h.snippet);

    let hits = index.search("part boundary", 10).unwrap();
    assert_eq!(ids(&hits)[0], "reader#1");
    assert_eq!(hits[0].checkpoint.as_deref(), Some(format!("{:064x}", 1).as_str()));

    // Replace: the document's old segments are gone, the new ones are found.
    index
        .add_document_units(
            "store",
            vec![seg("store", 0, "Now the manifest is a journal of zebras.")],
        )
        .unwrap();
    index.commit().unwrap();
    assert!(index.search("redb", 10).unwrap().is_empty());
    assert_eq!(ids(&index.search("zebras", 10).unwrap()), ["store#0"]);
    assert_eq!(index.num_units(), 5);

    index.remove_document("reader").unwrap();
    index.commit().unwrap();
    assert!(index.search("boundary", 10).unwrap().is_empty());
    assert_eq!(index.num_units(), 3);

    // Reopening finds the committed state.
    drop(index);
    let (index, outcome) = Index::open_or_create(tmp.path().join("index")).unwrap();
    assert_eq!(outcome, OpenOutcome::Existing);
    assert_eq!(index.num_units(), 3);
    assert_eq!(ids(&index.search("zebras", 10).unwrap()), ["store#0"]);
}

#[test]
fn any_user_text_is_a_valid_query() {
    let tmp = tempfile::tempdir().unwrap();
    let index = Index::rebuild(tmp.path(), corpus()).unwrap();
    for q in [
        "\"",
        "(",
        ")",
        ":",
        "title:",
        "AND",
        "OR NOT",
        "*",
        "^2",
        "[1 TO",
        "{",
        "-",
        "+",
        "\\",
        "~",
        "a:b:c",
        "fold(",
        "\"unterminated phrase",
        "nosuchfield:x",
        "seq:abc",
        "line_start:>",
        "((((",
        "über 日本語",
    ] {
        index.search(q, 5).unwrap_or_else(|e| panic!("query {q:?}: {e}"));
        index
            .search_path_or_symbol(q, 5)
            .unwrap_or_else(|e| panic!("query {q:?}: {e}"));
    }
    assert!(index.search("", 5).unwrap().is_empty());
    assert!(index.search("times", 0).unwrap().is_empty());
    // Syntax still works where it parses.
    assert_eq!(ids(&index.search("title:book", 5).unwrap()), ["book#0"]);
    assert_eq!(ids(&index.search("\"worst of times\"", 5).unwrap()), ["book#0"]);
}

#[test]
fn identifiers_match_in_any_spelling() {
    let tmp = tempfile::tempdir().unwrap();
    let index = Index::rebuild(tmp.path(), corpus()).unwrap();
    for q in [
        "fold document",
        "fold_document",
        "FoldDocument",
        "folddocument",
        "foldDocument",
    ] {
        let found = ids(&index.search(q, 10).unwrap());
        assert!(found.contains(&"reader#0".to_string()), "{q}: {found:?}");
        assert!(found.contains(&"web#0".to_string()), "{q}: {found:?}");
        let found = ids(&index.search_path_or_symbol(q, 10).unwrap());
        assert!(found[..2].contains(&"reader#0".to_string()), "{q}: {found:?}");
    }
    // Path matches: the exact path first.
    let hits = index.search_path_or_symbol("crates/book/src/lib.rs", 5).unwrap();
    assert_eq!(ids(&hits)[0], "book#0");
    let hits = index.search_path_or_symbol("store", 5).unwrap();
    assert_eq!(ids(&hits)[0], "store#0");
}

#[test]
fn deleted_or_corrupted_index_is_recreated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    drop(Index::rebuild(&dir, corpus()).unwrap());

    // Deleted.
    fs::remove_dir_all(&dir).unwrap();
    let (index, outcome) = Index::open_or_create(&dir).unwrap();
    assert_eq!(outcome, OpenOutcome::Fresh);
    assert_eq!(index.num_units(), 0);
    drop(index);

    // Garbage meta.json.
    drop(Index::rebuild(&dir, corpus()).unwrap());
    fs::write(dir.join("meta.json"), b"{ not json").unwrap();
    assert!(Index::open_read_only(&dir).is_err());
    let (index, outcome) = Index::open_or_create(&dir).unwrap();
    assert!(matches!(outcome, OpenOutcome::Rebuilt { .. }), "{outcome:?}");
    assert_eq!(index.num_units(), 0);
    drop(index);

    // A damaged segment file.
    drop(Index::rebuild(&dir, corpus()).unwrap());
    let victim = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "store"))
        .expect("a .store file");
    let mut bytes = fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&victim, &bytes).unwrap();
    let (index, outcome) = Index::open_or_create(&dir).unwrap();
    match &outcome {
        OpenOutcome::Rebuilt { reason } => assert!(reason.contains("damaged"), "{reason}"),
        other => panic!("{other:?}"),
    }
    drop(index);

    // Units of another version (or none recorded: an index from before versions): it stays
    // readable, and opening it to write recreates it empty, to be refilled from the store.
    drop(Index::rebuild(&dir, corpus()).unwrap());
    for old in [Some("1"), None] {
        let marker = dir.join("rwkv-content-version");
        match old {
            Some(v) => fs::write(&marker, v).unwrap(),
            None => fs::remove_file(&marker).unwrap(),
        }
        assert_eq!(Index::open_read_only(&dir).unwrap().num_units(), 5);
        let (index, outcome) = Index::open_or_create(&dir).unwrap();
        match &outcome {
            OpenOutcome::Rebuilt { reason } => {
                assert!(reason.contains(rwkv_index::CONTENT_VERSION), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(index.num_units(), 0);
        drop(index);
        // Recreated, it is of this version: the next open keeps it.
        let (index, outcome) = Index::open_or_create(&dir).unwrap();
        assert_eq!(outcome, OpenOutcome::Existing);
        drop(index);
        drop(Index::rebuild(&dir, corpus()).unwrap());
    }

    // Refilled from the segments (as ingest does from the store), it searches again.
    let index = Index::rebuild(&dir, corpus()).unwrap();
    assert_eq!(index.num_units(), 5);
    assert_eq!(ids(&index.search("wisdom", 5).unwrap()), ["book#0"]);
}

#[test]
fn reader_follows_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut writer, _) = Index::open_or_create(tmp.path()).unwrap();
    writer
        .add_document_units("book", vec![seg("book", 0, "call me ishmael")])
        .unwrap();
    writer.commit().unwrap();
    let reader = Index::open_read_only(tmp.path()).unwrap();
    assert_eq!(ids(&reader.search("ishmael", 5).unwrap()), ["book#0"]);
    assert!(matches!(reader.search("whale", 5), Ok(h) if h.is_empty()));
    writer
        .add_document_units("moby", vec![seg("moby", 0, "the white whale")])
        .unwrap();
    writer.commit().unwrap();
    reader.reload().unwrap();
    assert_eq!(ids(&reader.search("whale", 5).unwrap()), ["moby#0"]);
    // A second writer is refused without touching the index.
    assert!(Index::open_or_create(tmp.path()).is_err());
    assert_eq!(writer.num_units(), 2);
    let again = Index::open_read_only(tmp.path()).unwrap();
    assert_eq!(ids(&again.search("whale", 5).unwrap()), ["moby#0"]);
}

#[test]
fn compound_parts_meet_their_words() {
    let tmp = tempfile::tempdir().unwrap();
    let mut units = corpus();
    units.push(seg(
        "click",
        0,
        "def value_from_envvar(self, ctx):\n    rv = self.resolve_envvar_value(ctx)",
    ));
    units.push(seg("attrs", 0, "def _asdict_anything(val, is_key):\n    return val"));
    let index = Index::rebuild(tmp.path(), units).unwrap();
    let terms = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // "environment variable" in canonical terms, and "dictionary".
    let env = rwkv_index::tokenizer::canonical_terms("environment variable");
    assert_eq!(ids(&index.search_terms(&env, 5).unwrap())[0], "click#0", "{env:?}");
    let dict = rwkv_index::tokenizer::canonical_terms("dictionary");
    assert_eq!(ids(&index.search_terms(&dict, 5).unwrap())[0], "attrs#0", "{dict:?}");
    // The compound itself is still a term.
    assert_eq!(ids(&index.search_terms(&terms(&["envvar"]), 5).unwrap())[0], "click#0");
    // A phrase of the words finds the compound.
    assert!(ids(&index.search("env var", 5).unwrap()).contains(&"click#0".to_string()));
}

#[test]
fn references_are_counted_by_unit() {
    let tmp = tempfile::tempdir().unwrap();
    let mut units = corpus();
    let mut caller = seg("cli", 0, "fn main() { fold_document(&m, &t); FoldDocument::run(); }");
    caller.refs = vec!["fold_document".into(), "FoldDocument".into(), "run".into()];
    let mut other = seg("cli", 1, "fn again() { fold_document(&m, &t); }");
    other.refs = vec!["fold_document".into()];
    units.extend([caller, other]);
    let index = Index::rebuild(tmp.path(), units).unwrap();
    let key = rwkv_index::name_key;
    assert_eq!(index.reference_doc_freq(&key("fold_document")).unwrap(), 2);
    assert_eq!(index.reference_doc_freq(&key("FoldDocument")).unwrap(), 2);
    assert_eq!(index.reference_doc_freq(&key("run")).unwrap(), 1);
    assert_eq!(index.reference_doc_freq(&key("again")).unwrap(), 0);
    assert_eq!(index.references(&key("fold_document"), 10).unwrap().len(), 2);
}
