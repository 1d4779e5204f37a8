//! The symbol index end to end: definitions found from anywhere in the store, retrieval units
//! that do not depend on checkpoint spacing, duplicates shown once, abstention, bad input, and
//! an existing store getting the index by reindexing (never refolding).

use std::path::{Path, PathBuf};
use std::process::Command;

fn ingest(tree: &Path, store: &Path, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_rwkv-ingest"))
        .current_dir(tree.parent().unwrap())
        .arg(tree.file_name().unwrap())
        .args(["--json", "--store"])
        .arg(store)
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ask(tree: &Path, store: &Path, q: &str) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rwkv-ask"))
        .current_dir(tree.parent().unwrap())
        .args([q, "--json", "--store"])
        .arg(store)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The names of an answer's sources, best first.
fn source_names(v: &serde_json::Value) -> Vec<&str> {
    v["sources"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["name"].as_str()).collect())
        .unwrap_or_default()
}

/// A small code base: a definition used from many files, a vendored copy, a book printed whole
/// beside its chapters, and bad input (syntax errors, minified JavaScript, an unknown language).
fn tree(dir: &Path) -> PathBuf {
    let t = dir.join("proj");
    let w = |p: &str, s: &str| {
        let p = t.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    };
    w(
        "src/helpers.py",
        "import os\n\n\ndef load_dotenv(path=None):\n    \"\"\"Read KEY=VALUE lines of a dotenv file into os.environ.\"\"\"\n    for line in open(path or '.env'):\n        key, _, value = line.partition('=')\n        os.environ[key.strip()] = value.strip()\n\n\nclass AppContext:\n    \"\"\"The application context.\"\"\"\n\n    def push(self):\n        \"\"\"Make this context the current one.\"\"\"\n        _stack.append(self)\n\n    def pop(self):\n        _stack.pop()\n",
    );
    for i in 0..6 {
        w(
            &format!("src/use{i}.py"),
            &format!(
                "from .helpers import load_dotenv\n\n\ndef start{i}():\n    # load the dotenv file, then run\n    load_dotenv()\n    load_dotenv('.env.{i}')\n    return {i}\n"
            ),
        );
    }
    w(
        "src/lib.rs",
        "/// Folds a document into the model's state.\npub fn fold_document(doc: &str) -> usize {\n    doc.len()\n}\n\npub struct Reader;\n\nimpl Reader {\n    pub fn new() -> Reader {\n        Reader\n    }\n}\n",
    );
    w(
        "src/settings.py",
        "\"\"\"Settings.\"\"\"\n\nDEFAULT_TIMEOUT = 30\nMAX_RETRIES = 5\nUSER_AGENT = \"proj/1.0\"\n",
    );
    w(
        "src/broken.py",
        "def before_the_error(x):\n    return x * 2\n\n\ndef after(:\n    return (\n",
    );
    w(
        "src/app.min.js",
        &format!("var a={};{}\n", "{}", "function q(){return 1};".repeat(600)),
    );
    w("src/notes.xyz", "function frobnicate_widgets\n  do the thing\nend\n");
    // C++: a method documented where its header declares it, defined in another file.
    w(
        "src/cache.h",
        "namespace kv {\n\nclass Cache {\n public:\n  // Drop the least recently used entries until the total charge fits within the capacity.\n  void Shrink();\n\n  int Size() const;\n};\n\n}  // namespace kv\n",
    );
    w(
        "src/trim.py",
        "def trim(entries, capacity):\n    \"\"\"Trim the list of entries to the capacity.\"\"\"\n    return entries[:capacity]\n",
    );
    w(
        "src/cache.cc",
        "#include \"cache.h\"\n\nnamespace kv {\n\nvoid Cache::Shrink() {\n  while (held_ > limit_) {\n    Erase(lru_.next);\n  }\n}\n\nint Cache::Size() const { return n_; }\n\n}  // namespace kv\n",
    );
    let ch1 = "# Chapter One\n\nThe lighthouse keeper counted the herons every morning.\n";
    let ch2 = "# Chapter Two\n\nThe ferry left at noon with seven barrels of cider.\n";
    w("book/ch1.md", ch1);
    w("book/ch2.md", ch2);
    w("book/print.md", &format!("{ch1}\n{ch2}"));
    t
}

#[test]
fn definitions_come_first_from_anywhere_and_duplicates_show_once() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tree(tmp.path());
    let store = tmp.path().join("store");
    let summary = ingest(&t, &store, &[]);
    assert_eq!(summary["failed"], 0, "{summary}");

    // A name written as code, and the same name in words: the definition, not its many uses.
    for q in [
        "What does load_dotenv do?",
        "How is a dotenv file loaded?",
        "what does `load_dotenv` read?",
    ] {
        let (code, v, err) = ask(&t, &store, q);
        assert_eq!(code, 0, "{q}: {err}");
        let e = &v["evidence"][0];
        assert_eq!(e["path"], "proj/src/helpers.py", "{q}: {v}");
        assert_eq!(e["line"], 4, "{q}: {v}");
        assert_eq!(v["sources"][0]["kind"], "function", "{v}");
        assert_eq!(v["sources"][0]["name"], "load_dotenv", "{v}");
    }
    // A method by its scope: "application context pushed" meets `AppContext.push`.
    let (code, v, err) = ask(&t, &store, "Where is the application context pushed?");
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["evidence"][0]["line"], 14, "{v}");
    assert_eq!(v["sources"][0]["name"], "AppContext.push", "{v}");
    let (_, v, _) = ask(&t, &store, "What does fold_document do?");
    assert_eq!(v["evidence"][0]["path"], "proj/src/lib.rs", "{v}");
    assert_eq!(v["evidence"][0]["line"], 2, "{v}");
    // A unit is a definition, not a checkpoint span: its lines are the function's.
    assert_eq!(
        (
            v["sources"][0]["line_start"].as_u64(),
            v["sources"][0]["line_end"].as_u64()
        ),
        (Some(1), Some(4)),
        "{v}"
    );

    // The same section in a chapter page and in the whole printed book: the chapter, once,
    // naming the other copy.
    let (code, v, err) = ask(&t, &store, "How many herons did the lighthouse keeper count?");
    assert_eq!(code, 0, "{err}");
    let sources = v["sources"].as_array().unwrap();
    assert_eq!(sources[0]["path"], "proj/book/ch1.md", "{v}");
    assert_eq!(sources[0]["duplicates"][0], "proj/book/print.md", "{v}");
    assert!(
        sources
            .iter()
            .skip(1)
            .all(|s| s["path"] != "proj/book/print.md" || s["line_start"] != 1),
        "{v}"
    );

    // Bad input was indexed by the fallback, never a failure: a definition before a syntax
    // error, a definition in a file of no known language.
    let (_, v, _) = ask(&t, &store, "What does before_the_error return?");
    assert_eq!(v["evidence"][0]["path"], "proj/src/broken.py", "{v}");
    assert_eq!(v["evidence"][0]["line"], 1, "{v}");
    let (_, v, _) = ask(&t, &store, "What does frobnicate_widgets do?");
    assert_eq!(v["evidence"][0]["path"], "proj/src/notes.xyz", "{v}");

    // One of a run of one-line constants (they share a unit) is found by its name, and its own
    // line is quoted.
    let (code, v, err) = ask(&t, &store, "What is MAX_RETRIES?");
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["evidence"][0]["path"], "proj/src/settings.py", "{v}");
    assert_eq!(v["evidence"][0]["line"], 4, "{v}");
    assert_eq!(v["sources"][0]["name"], "MAX_RETRIES", "{v}");

    // A file the question names comes first, by its path or its file name.
    for q in ["What is in proj/src/settings.py?", "what does settings.py configure"] {
        let (code, v, err) = ask(&t, &store, q);
        assert_eq!(code, 0, "{q}: {err}");
        assert_eq!(v["sources"][0]["path"], "proj/src/settings.py", "{q}: {v}");
    }

    // A C++ method's definition holds none of the words of the comment its header declares it
    // with: that comment brings it before a function that holds two of them.
    let (code, v, err) = ask(
        &t,
        &store,
        "How are the least recently used entries dropped when the total charge is over the capacity?",
    );
    assert_eq!(code, 0, "{err}");
    let names = source_names(&v);
    let at = |n: &str| names.iter().position(|&x| x == n).unwrap_or(usize::MAX);
    assert!(at("kv.Cache.Shrink") < at("trim"), "{v}");

    // A question the store cannot answer: not found, exit 1.
    let (code, _, err) = ask(
        &t,
        &store,
        "How much GPU memory does the kernel scheduler reserve for tensors?",
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not found in this store"), "{err}");
}

#[test]
fn an_existing_store_gets_the_symbol_index_by_reindexing_not_refolding() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tree(tmp.path());
    let store = tmp.path().join("store");
    ingest(&t, &store, &["--checkpoint-every", "256"]);
    let (_, before, _) = ask(&t, &store, "What does load_dotenv do?");
    // The index is derived data: without it, a rerun rebuilds it from the stored texts and
    // folds nothing.
    std::fs::remove_dir_all(store.join("index")).unwrap();
    let again = ingest(&t, &store, &["--checkpoint-every", "256"]);
    assert_eq!(again["folded"], 0, "{again}");
    assert_eq!(again["tokens"], 0, "{again}");
    let (code, after, err) = ask(&t, &store, "What does load_dotenv do?");
    assert_eq!(code, 0, "{err}");
    assert_eq!(before["evidence"], after["evidence"]);
    assert_eq!(before["sources"], after["sources"]);
    // Checkpoint spacing changes where a unit resumes, never what is retrieved.
    let other = tmp.path().join("store-wide");
    ingest(&t, &other, &["--checkpoint-every", "100000"]);
    let (_, wide, _) = ask(&t, &other, "What does load_dotenv do?");
    assert_eq!(before["evidence"], wide["evidence"]);
    let strip = |v: &serde_json::Value| -> Vec<(String, u64, u64)> {
        v["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["path"].as_str().unwrap().to_string(),
                    s["line_start"].as_u64().unwrap(),
                    s["line_end"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(strip(&before), strip(&wide));
}

/// Of two siblings that hold the same words, the one something in the store calls comes first
/// (the other is a leftover nothing uses); without that, the file's order would.
#[test]
fn of_near_siblings_the_one_in_use_comes_first() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("proj");
    std::fs::create_dir_all(t.join("src")).unwrap();
    let sibling = |name: &str| {
        format!(
            "def {name}(s):\n    \"\"\"Replace the special characters of a string before it is written out.\"\"\"\n    return s.replace('&', '&amp;').replace('<', '&lt;')\n\n\n"
        )
    };
    std::fs::write(
        t.join("src/markup.py"),
        format!("{}{}", sibling("quote_markup_v1"), sibling("quote_markup_v2")),
    )
    .unwrap();
    std::fs::write(
        t.join("src/page.py"),
        "from .markup import quote_markup_v2\n\n\ndef render_page(body):\n    return '<p>' + quote_markup_v2(body) + '</p>'\n",
    )
    .unwrap();
    let store = tmp.path().join("store");
    ingest(&t, &store, &["--index-only"]);
    // Ranked by words alone (the sentence encoder tells the two names apart by a hair).
    let out = Command::new(env!("CARGO_BIN_EXE_rwkv-ask"))
        .current_dir(&t)
        .args([
            "How are the special characters of a string replaced before it is written out?",
            "--json",
            "--no-embedder",
            "--store",
        ])
        .arg(&store)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names = source_names(&v);
    let at = |n: &str| names.iter().position(|&x| x == n).unwrap_or(usize::MAX);
    assert!(at("quote_markup_v2") < at("quote_markup_v1"), "{v}");
}

/// One key names several definitions (`copytree`, `_copytree`, `copy_tree`): a name written as
/// code brings the one spelled so first, whichever holds more of the question's other words.
#[test]
fn a_name_written_as_code_brings_the_definition_spelled_so_first() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("proj");
    std::fs::create_dir_all(t.join("src/legacy")).unwrap();
    std::fs::write(
        t.join("src/legacy/dir_util.py"),
        "def copy_tree(src, dst, update=False):\n    \"\"\"Copy an entire directory tree 'src' to a new location 'dst'.\n\n    Both must be directory names; copytree copies every file and folder.\"\"\"\n    names = os.listdir(src)\n    for n in names:\n        copy_file(os.path.join(src, n), os.path.join(dst, n))\n    return names\n\n\ndef mkpath(name):\n    copy_tree(name, name)\n",
    )
    .unwrap();
    std::fs::write(
        t.join("src/shutil.py"),
        "def _copytree(entries, src, dst):\n    # The worker of copytree: one level of the tree.\n    for e in entries:\n        copy2(e, dst)\n    return dst\n\n\ndef copytree(src, dst):\n    # Recursively copy a directory tree (copytree) and return the destination.\n    with os.scandir(src) as it:\n        entries = list(it)\n    return _copytree(entries, src, dst)\n",
    )
    .unwrap();
    let store = tmp.path().join("store");
    ingest(&t, &store, &["--index-only"]);
    for name in ["copytree", "_copytree", "copy_tree"] {
        let out = Command::new(env!("CARGO_BIN_EXE_rwkv-ask"))
            .current_dir(&t)
            .args([&format!("What does `{name}` do?"), "--json", "--no-embedder", "--store"])
            .arg(&store)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(source_names(&v).first().copied(), Some(name), "{v}");
    }
}

#[test]
fn a_later_piece_of_a_long_page_quotes_its_own_line() {
    // A reference page without subheadings: one section, cut into pieces. The piece holding the
    // entry asked about quotes that entry, not the page's title again.
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("proj");
    std::fs::create_dir_all(t.join("docs")).unwrap();
    let mut page = String::from(
        "# functools: higher-order functions\n\nThe module for higher-order functions; `cache` is `lru_cache` without a limit.\n\n",
    );
    for i in 0..60 {
        page.push_str(&format!(
            "reduce_{i}(function, iterable)\n\n  Apply function of two arguments cumulatively, step {i}.\n\n"
        ));
    }
    page.push_str("lru_cache(maxsize=128, typed=False)\n\n  Decorator to wrap a function with a memoizing callable that saves up to the maxsize most recent calls.\n\n");
    for i in 0..20 {
        page.push_str(&format!(
            "partial_{i}(func, /, *args)\n\n  Return a new partial object, number {i}.\n\n"
        ));
    }
    std::fs::write(t.join("docs/functools.md"), &page).unwrap();
    let entry = page.lines().position(|l| l.starts_with("lru_cache(")).unwrap() + 1;
    let store = tmp.path().join("store");
    ingest(&t, &store, &["--index-only"]);
    let (code, v, _) = ask(&t, &store, "What does `lru_cache` do?");
    assert_eq!(code, 0, "{v}");
    let lines: Vec<u64> = v["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert!(lines.contains(&(entry as u64)), "line {entry} not in {lines:?}: {v}");
}

#[test]
fn a_sphinx_reference_pages_entries_are_found_by_name() {
    // Python's documentation as Sphinx writes it: one page, each function a `dt` with its
    // permalink. The entry asked about is a section of its own, found by its name first.
    let entry = |id: &str, sig: &str, doc: &str| {
        format!(
            "<dl class=\"py function\"><dt class=\"sig sig-object py\" id=\"{id}\">{sig}<a class=\"headerlink\" href=\"#{id}\">¶</a></dt><dd><p>{doc}</p></dd></dl>\n"
        )
    };
    let mut page = String::from(
        "<!DOCTYPE html><html><head><title>functools</title></head><body><div class=\"body\" role=\"main\"><section>\n<h1>functools — Higher-order functions<a class=\"headerlink\" href=\"#f\">¶</a></h1>\n<p>Functions that act on or return other functions; the cache decorator is lru_cache without a limit.</p>\n",
    );
    page += &entry(
        "functools.cache",
        "@functools.cache(user_function)",
        "Simple lightweight unbounded function cache.",
    );
    page += &entry(
        "functools.lru_cache",
        "@functools.lru_cache(maxsize=128, typed=False)",
        "Decorator to wrap a function with a memoizing callable that saves up to the maxsize most recent calls.",
    );
    page += &entry(
        "functools.reduce",
        "functools.reduce(function, iterable)",
        "Apply function of two arguments cumulatively.",
    );
    page += "</section></div></body></html>\n";
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("site");
    std::fs::create_dir_all(&t).unwrap();
    std::fs::write(t.join("functools.html"), &page).unwrap();
    let store = tmp.path().join("store");
    ingest(&t, &store, &["--index-only"]);
    let (code, v, _) = ask(&t, &store, "What does `lru_cache` do?");
    assert_eq!(code, 0, "{v}");
    assert_eq!(source_names(&v).first().copied(), Some("functools.lru_cache"), "{v}");
    let first = &v["evidence"][0]["text"];
    assert!(first.as_str().unwrap().starts_with("@functools.lru_cache("), "{v}");
}
