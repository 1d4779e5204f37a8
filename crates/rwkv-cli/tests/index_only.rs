//! `rwkv-ingest --index-only`: documents indexed without folding are answered at once, folded
//! on demand for generation exactly as a full ingest would have stored them (and committed by
//! `rwkv-ask` unless another process holds the store), and folded by a later run into the same
//! blobs as an ingest that never saw the index-only run.

mod common;

use std::path::Path;
use std::process::Command;

use common::{blobs, manifest, root};

/// `BIN ARGS --json --store STORE` from the repository root: its JSON output.
fn run(bin: &str, args: &[&str], store: &Path) -> serde_json::Value {
    let out = Command::new(bin)
        .current_dir(root())
        .args(args)
        .args(["--json", "--store"])
        .arg(store)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ingest(args: &[&str], store: &Path) -> serde_json::Value {
    run(env!("CARGO_BIN_EXE_rwkv-ingest"), args, store)
}

fn ask(args: &[&str], store: &Path) -> serde_json::Value {
    run(env!("CARGO_BIN_EXE_rwkv-ask"), args, store)
}

/// An answer's text, evidence (path, line, text) and sources (path, first line).
type Said = (String, Vec<(String, u64, String, String)>, Vec<(String, u64, String)>);

/// What an answer says, scores included (a fold must not move the ranking), without its
/// timings and checkpoint keys.
fn said(v: &serde_json::Value) -> Said {
    let evidence = v["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                e["line"].as_u64().unwrap(),
                e["text"].as_str().unwrap().to_string(),
                e["score"].to_string(),
            )
        })
        .collect();
    let sources = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_string(),
                s["line_start"].as_u64().unwrap(),
                s["score"].to_string(),
            )
        })
        .collect();
    (v["text"].as_str().unwrap().to_string(), evidence, sources)
}

#[test]
fn an_index_only_store_answers_at_once_and_folds_into_the_same_store() {
    let tmp = tempfile::tempdir().unwrap();
    let (early, full) = (tmp.path().join("early"), tmp.path().join("full"));
    let input = "fixtures/code/src";

    // The index alone: every document, no state.
    let s = ingest(&[input, "--index-only"], &early);
    let n = s["documents"].as_u64().unwrap();
    assert!(n >= 3, "{s}");
    assert_eq!((s["indexed"].as_u64(), s["folded"].as_u64()), (Some(n), Some(0)), "{s}");
    assert_eq!(
        (s["tokens"].as_u64(), s["store_checkpoints"].as_u64()),
        (Some(0), Some(0)),
        "{s}"
    );
    assert_eq!(s["store_unfolded"].as_u64(), Some(n), "{s}");
    assert!(!early.join("blobs").exists() || blobs(&early).is_empty());
    // Again: nothing to do.
    let again = ingest(&[input, "--index-only"], &early);
    assert_eq!(
        (again["unchanged"].as_u64(), again["indexed"].as_u64()),
        (Some(n), Some(0)),
        "{again}"
    );

    let full_summary = ingest(&[input], &full);
    assert_eq!(full_summary["store_unfolded"].as_u64(), Some(0));

    // Evidence and sources at once; with generation, the same greedy answer as after the fold.
    let q = "what does evaluate do?";
    let a = ask(&[q], &early);
    let b = ask(&[q], &full);
    assert_eq!(said(&a), said(&b));
    assert!(said(&a).1[0].0.ends_with("src/eval.py"), "{a}");
    let generate = ["--generate", "--max-tokens", "12"];
    let a = ask(&[&[q][..], &generate[..]].concat(), &early);
    let b = ask(&[&[q][..], &generate[..]].concat(), &full);
    assert_eq!(said(&a), said(&b));
    assert!(!a["text"].as_str().unwrap().is_empty(), "{a}");
    assert!(a["timings"]["folded_tokens"].as_u64().unwrap() > 0, "{a}");
    assert_eq!(b["timings"]["folded_tokens"].as_u64(), Some(0), "{b}");
    // That ask committed the document's fold: the same question again resumes a checkpoint.
    let again = ask(&[&[q][..], &generate[..]].concat(), &early);
    assert_eq!(said(&again), said(&a));
    assert_eq!(again["timings"]["folded_tokens"].as_u64(), Some(0), "{again}");
    // While another process holds the store (an ingest), the fold serves this answer only.
    {
        let model = rwkv_model::Model::load(&root().join(rwkv_cli::DEMO_MODEL)).unwrap();
        let tok = rwkv_cli::choose_tokenizer("auto", &model).unwrap();
        let ident = rwkv_reader::store_identity(
            &model,
            rwkv_model::FoldPrecision::F32,
            rwkv_model::StatePrecision::Bf16,
            tok.as_ref(),
        );
        let _held = rwkv_store::Store::open(&early, ident).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_rwkv-ask"))
            .current_dir(root())
            .args([
                "what does main do?",
                "--generate",
                "--max-tokens",
                "4",
                "--json",
                "--store",
            ])
            .arg(&early)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(err.contains("for this answer only") && err.contains("queued"), "{err}");
        // The document is queued for the ingest that holds the store to fold first.
        let queued = std::fs::read_to_string(early.join("asked")).unwrap();
        assert_eq!(queued.lines().count(), 1, "{queued}");
    }
    // A summary of a document that is not folded is read from its start, as the fold would.
    let sum = [
        "--summarize",
        "fixtures/code/src/main.rs",
        "--generate",
        "--max-tokens",
        "8",
    ];
    assert_eq!(ask(&sum, &early)["summary"], ask(&sum, &full)["summary"]);

    // A run without --index-only folds what was indexed: the same blobs and checkpoints as the
    // ingest that never saw the index.
    let s = ingest(&[input], &early);
    assert_eq!(
        (s["folded"].as_u64(), s["unchanged"].as_u64()),
        (Some(n - 1), Some(1)),
        "{s}"
    );
    assert_eq!(s["store_unfolded"].as_u64(), Some(0), "{s}");
    assert!(!early.join("asked").exists(), "the queue is done with");
    assert_eq!(blobs(&early), blobs(&full));
    assert_eq!(manifest(&early), manifest(&full));
    // Folded documents stay folded under a later --index-only run.
    let s = ingest(&[input, "--index-only"], &early);
    assert_eq!(
        (s["unchanged"].as_u64(), s["store_unfolded"].as_u64()),
        (Some(n), Some(0)),
        "{s}"
    );
    assert_eq!(blobs(&early), blobs(&full));
}

#[test]
fn a_run_that_dies_folding_leaves_every_document_searchable() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    // A fold worker panics on main.rs: the run ends (exit 2), after its index phase committed.
    let out = Command::new(env!("CARGO_BIN_EXE_rwkv-ingest"))
        .current_dir(root())
        .env("RWKV_TEST_PANIC_ON", "main.rs")
        .args(["fixtures/code/src", "--fold-jobs", "1", "--json", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let a = ask(&["what does main do?"], &store);
    assert!(said(&a).2.iter().any(|(p, _, _)| p.ends_with("src/main.rs")), "{a}");
    let a = ask(&["what does main do?", "--generate", "--max-tokens", "4"], &store);
    assert!(a["timings"]["folded_tokens"].as_u64().unwrap() > 0, "{a}");
}

#[test]
fn a_store_keeps_its_checkpoint_spacing_for_folds_on_demand_and_later_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let (early, full) = (tmp.path().join("early"), tmp.path().join("full"));
    // A book of ~5,000 tokens: many checkpoints at this spacing, one at the default.
    let inputs = ["fixtures/books/lighthouse.txt"];
    let every = ["--checkpoint-every", "256"];
    ingest(&[&inputs[..], &["--index-only"][..], &every[..]].concat(), &early);
    let settings = std::fs::read_to_string(early.join("settings.json")).unwrap();
    assert!(settings.contains("\"checkpoint_every\": \"256\""), "{settings}");
    ingest(&[&inputs[..], &every[..]].concat(), &full);

    // The fold on demand (committed by the ask) follows the store's spacing, not the default...
    let a = ask(
        &["who keeps the lighthouse?", "--generate", "--max-tokens", "4"],
        &early,
    );
    assert!(
        a["sources"][0]["path"].as_str().unwrap().ends_with("lighthouse.txt"),
        "{a}"
    );
    assert!(a["timings"]["folded_tokens"].as_u64().unwrap() > 0, "{a}");
    assert!(blobs(&early).len() > 10, "the book's checkpoints, committed");
    // ... and so does a later run that does not repeat the flag: the blobs and checkpoints of
    // an ingest that always used it.
    folds_into(&inputs, &early, &full);
}

/// `rwkv-ingest ARGS` on `early` folds what is left, into the blobs and manifest of `full`.
fn folds_into(args: &[&str], early: &Path, full: &Path) {
    let s = ingest(args, early);
    assert_eq!(s["store_unfolded"].as_u64(), Some(0), "{s}");
    assert_eq!(blobs(early), blobs(full));
    assert_eq!(manifest(early), manifest(full));
}

#[test]
fn two_asks_folding_the_same_document_at_once_leave_a_sound_store() {
    // Two rwkv-ask processes on an index-only store fold the same document on demand at the
    // same time: one commits its fold (the other finds the store busy, or the fold already
    // there); both answer as after a full ingest, and the store ends as an uninterrupted
    // ingest's.
    let tmp = tempfile::tempdir().unwrap();
    let (early, full) = (tmp.path().join("early"), tmp.path().join("full"));
    let input = "fixtures/code/src";
    ingest(&[input, "--index-only"], &early);
    ingest(&[input], &full);
    let q = "what does evaluate do?";
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_rwkv-ask"))
            .current_dir(root())
            .args([q, "--generate", "--max-tokens", "8", "--json", "--store"])
            .arg(&early)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let want = said(&ask(&[q, "--generate", "--max-tokens", "8"], &full));
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(said(&v), want, "{v}");
    }
    folds_into(&[input], &early, &full);
}

#[test]
fn a_file_changed_after_indexing_is_answered_from_the_indexed_text() {
    // The index and the on-demand fold read the store's own copy of a document's text, never
    // the file as it is now: an edit after indexing changes nothing until the next ingest,
    // which indexes (and folds) the new text. Nothing mixes the two versions.
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    common::copy_tree(&root().join("fixtures/code/src"), &tree);
    let store = tmp.path().join("store");
    let tree_arg = tree.to_str().unwrap();
    ingest(&[tree_arg, "--index-only"], &store);
    let q = "what does evaluate do?";
    let before = ask(&[q, "--generate", "--max-tokens", "8"], &store);
    let eval = tree.join("eval.py");
    let old = std::fs::read_to_string(&eval).unwrap();
    let new = old.replace("def evaluate(", "def evaluate_renamed(");
    assert_ne!(old, new, "the fixture defines evaluate");
    std::fs::write(&eval, &new).unwrap();
    // Asked again (the first ask committed its fold of the stored text): the same answer,
    // quoting the indexed lines.
    let after = ask(&[q, "--generate", "--max-tokens", "8"], &store);
    assert_eq!(said(&after), said(&before));
    for (path, line, text, _) in said(&after).1 {
        if path.ends_with("eval.py") {
            assert_eq!(old.lines().nth(line as usize - 1), Some(text.as_str()));
        }
    }
    // The next ingest takes the edit: the evidence now quotes the new text.
    ingest(&[tree_arg], &store);
    let now = ask(&[q], &store);
    let quoted: Vec<String> = said(&now).1.into_iter().map(|e| e.2).collect();
    assert!(quoted.iter().any(|t| t.contains("evaluate_renamed")), "{now}");
}
