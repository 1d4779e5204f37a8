//! `rwkv-ask` end to end with the bundled demo model on `fixtures/code`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One store ingested from fixtures/code for all tests of this file.
fn store() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| ingest_fixtures("rwkv-ask-test"))
}

/// A fresh store of fixtures/code in a temporary directory named after `name`.
fn ingest_fixtures(name: &str) -> PathBuf {
    // Under the target folder's scratch space (not the system's temporary folder, which a
    // store left by every run would fill).
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_rwkv-ingest"))
        .current_dir(root())
        .args(["fixtures/code", "--json", "--store"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir
}

/// `rwkv-ask ARGS --generate`: the demo model generates (as a real checkpoint would).
fn ask(args: &[&str], store: &Path) -> (i32, String, String) {
    let mut a = args.to_vec();
    a.push("--generate");
    ask_as_is(&a, store)
}

/// `rwkv-ask ARGS` as given: with the demo model, evidence and sources only.
fn ask_as_is(args: &[&str], store: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rwkv-ask"))
        .current_dir(root())
        .args(args)
        .arg("--store")
        .arg(store)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn json(args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    let (code, out, err) = ask(&a, store());
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(out.trim()).unwrap()
}

#[test]
fn a_question_naming_an_identifier_cites_its_file() {
    // `evaluate` is defined only in src/eval.py.
    let v = json(&["what does evaluate do?", "--max-tokens", "16"]);
    assert_eq!(v["found"], true, "{v}");
    let first = v["sources"][0]["path"].as_str().unwrap();
    assert!(first.ends_with("src/eval.py"), "{v}");
    check_evidence(&v, &root());
    // Every cited line range exists in the stored document.
    for s in v["sources"].as_array().unwrap() {
        let path = root().join(s["path"].as_str().unwrap());
        let lines = std::fs::read_to_string(&path).unwrap().lines().count() as u64;
        let (a, b) = (s["line_start"].as_u64().unwrap(), s["line_end"].as_u64().unwrap());
        assert!(1 <= a && a <= b && b <= lines.max(1), "{s} vs {lines} lines");
    }
    // Text mode prints the answer, then the sources as path:start-end.
    let (code, out, _) = ask(&["what does evaluate do?", "--max-tokens", "8"], store());
    assert_eq!(code, 0);
    assert!(out.contains("Sources:") && out.contains("src/eval.py:1-"), "{out}");
}

/// Every evidence line of an answer is exactly line `line` of the file it names.
fn check_evidence(v: &serde_json::Value, base: &Path) {
    for e in v["evidence"].as_array().unwrap() {
        let path = base.join(e["path"].as_str().unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        let n = e["line"].as_u64().unwrap() as usize;
        assert!(n >= 1, "{e}");
        assert_eq!(text.lines().nth(n - 1), e["text"].as_str(), "{e}");
    }
}

#[test]
fn model_ranking_scores_the_evidence_and_keeps_it_in_the_store() {
    // --rank both re-ranks by the question's likelihood and has the model score the evidence
    // lines (all of them in one batched pass); the lines are still the stored ones, best
    // first, and the read precision is reported (the demo model is small: exact).
    for rank in ["both", "model"] {
        let v = json(&["what does evaluate do?", "--rank", rank, "--max-tokens", "4"]);
        check_evidence(&v, &root());
        let ev = v["evidence"].as_array().unwrap();
        assert!(!ev.is_empty() && ev.len() <= 3, "{v}");
        let scores: Vec<f64> = ev.iter().map(|e| e["score"].as_f64().unwrap()).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "best first: {scores:?}");
        assert_eq!(v["read_precision"], "f32", "{v}");
        assert!(v["timings"]["evidence_ms"].as_f64().unwrap() > 0.0, "{v}");
    }
}

#[test]
fn empty_or_unanswerable_questions_are_no_matching_documents() {
    for q in ["", "   ", "what is it?", "zzqx vvkw"] {
        let (code, out, err) = ask(&[q, "--max-tokens", "4"], store());
        assert_eq!(code, 1, "{q:?}: {out} {err}");
        assert!(err.contains("no matching documents"), "{q:?}: {err}");
    }
}

#[test]
fn the_demo_model_shows_evidence_and_sources_without_a_generated_answer() {
    // Text: evidence, sources, and one line on why there is no answer.
    let (code, out, _) = ask_as_is(&["what does evaluate do?"], store());
    assert_eq!(code, 0);
    let line = out
        .find("fixtures/code/src/eval.py:1  def evaluate(")
        .expect("the definition line");
    let sources = out.find("Sources:").expect("sources");
    let note = out.find("No answer generated").expect("the note on the demo model");
    assert!(line < sources && sources < note, "{out}");
    assert!(out.contains("--generate") && !out.contains("Answer ("), "{out}");
    // JSON: no text, `generated: false`, the evidence and sources as always.
    let (code, out, _) = ask_as_is(&["what does evaluate do?", "--json"], store());
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["generated"], false, "{v}");
    assert_eq!(v["text"], "", "{v}");
    assert_eq!(v["finish"], "not_generated");
    check_evidence(&v, &root());
    assert!(
        v["sources"][0]["path"].as_str().unwrap().ends_with("src/eval.py"),
        "{v}"
    );
    assert_eq!(v["sources"][0]["matched"], "definition", "{v}");
    // A summary lists the documents' key lines instead.
    let (code, out, _) = ask_as_is(&["--summarize", "fixtures/code/src/eval.py", "--json"], store());
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["generated"], false);
    let key = &v["documents"][0]["key_lines"];
    assert!(
        key.as_array()
            .unwrap()
            .iter()
            .any(|k| k["text"].as_str().unwrap().starts_with("def evaluate(")),
        "{v}"
    );
    // Something the store does not hold: not found, exit 1.
    let (code, _, err) = ask_as_is(&["How much GPU memory does the kernel scheduler reserve?"], store());
    assert_eq!(code, 1);
    assert!(err.contains("not found in this store"), "{err}");
    // With --json, still one JSON object on stdout (a script reads `found`), and exit 1.
    let (code, out, err) = ask_as_is(
        &["How much GPU memory does the kernel scheduler reserve?", "--json"],
        store(),
    );
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["found"], false, "{v}");
    assert!(v["reason"].as_str().unwrap().contains("not found in this store"), "{v}");
    assert_eq!(v["evidence"].as_array().map(Vec::len), Some(0), "{v}");
    assert_eq!(v["sources"].as_array().map(Vec::len), Some(0), "{v}");
}

#[test]
fn answers_quote_the_definition_line_as_evidence() {
    for q in [
        "what does evaluate do?",
        "how is main defined?",
        "What is `evaluate` used for?",
    ] {
        let v = json(&[q, "--max-tokens", "8"]);
        check_evidence(&v, &root());
        if q.contains("evaluate") {
            let ev = v["evidence"].as_array().unwrap();
            assert!(
                ev.iter().any(|e| e["path"].as_str().unwrap().ends_with("src/eval.py")
                    && e["text"].as_str().unwrap().starts_with("def evaluate(")),
                "{q}: {v}"
            );
        }
    }
    // Text mode prints the evidence before the answer and says the demo model made the answer.
    let (code, out, _) = ask(&["what does evaluate do?", "--max-tokens", "8"], store());
    assert_eq!(code, 0);
    let ev = out.find("Evidence:").expect("evidence block");
    let line = out
        .find("fixtures/code/src/eval.py:1  def evaluate(")
        .expect("the definition line");
    let answer = out
        .find("Answer (generated by the bundled tiny demo model")
        .expect("demo notice");
    assert!(ev < line && line < answer, "{out}");
}

#[test]
fn summaries_are_text_and_identical_across_runs() {
    let a = json(&["--summarize", "fixtures/code/src/main.rs", "--max-tokens", "40"]);
    let b = json(&["--summarize", "fixtures/code/src/main.rs", "--max-tokens", "40"]);
    assert!(!a["summary"].as_str().unwrap().trim().is_empty(), "{a}");
    assert_eq!(a["summary"], b["summary"]);
    assert_eq!(a["documents"].as_array().unwrap().len(), 1);
    assert!(a["documents"][0]["path"].as_str().unwrap().ends_with("src/main.rs"));
    assert_eq!(b["documents"][0]["cached"], true);
    let all = json(&["--summarize", "all", "--max-tokens", "20"]);
    assert!(all["documents"].as_array().unwrap().len() > 3);
}

#[test]
fn a_folder_summary_has_one_entry_per_document_cached_until_one_is_edited() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    let store = tmp.path().join("store");
    std::fs::create_dir_all(tree.join("src")).unwrap();
    for f in [
        "src/main.rs",
        "src/eval.py",
        "src/README.md",
        "README.md",
        "Makefile",
        "docs/guide.md",
    ] {
        let to = tree.join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root().join("fixtures/code").join(f), to).unwrap();
    }
    let ingest = || {
        let out = Command::new(env!("CARGO_BIN_EXE_rwkv-ingest"))
            .current_dir(tmp.path())
            .args(["tree", "--json", "--store"])
            .arg(&store)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let summarize = |target: &str| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_rwkv-ask"))
            .current_dir(tmp.path())
            .args([
                "--summarize",
                target,
                "--max-tokens",
                "24",
                "--json",
                "--generate",
                "--store",
            ])
            .arg(&store)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let cached = |v: &serde_json::Value| -> Vec<bool> {
        v["documents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["cached"].as_bool().unwrap())
            .collect()
    };
    ingest();
    let first = summarize("tree/src");
    let docs = first["documents"].as_array().unwrap();
    let paths: Vec<&str> = docs.iter().map(|d| d["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        ["tree/src/README.md", "tree/src/eval.py", "tree/src/main.rs"],
        "{first}"
    );
    assert!(cached(&first).iter().all(|c| !c));
    assert!(first["summary"].is_string() && first["timings"].is_object());
    let second = summarize("tree/src");
    assert!(cached(&second).iter().all(|&c| c), "{second}");
    assert_eq!(second["summary_cached"], true);
    assert_eq!(first["summary"], second["summary"]);
    assert_eq!(first["documents"][0]["summary"], second["documents"][0]["summary"]);

    // Edit one file: its entry alone is made again.
    let eval = tree.join("src/eval.py");
    let text = std::fs::read_to_string(&eval).unwrap();
    std::fs::write(&eval, format!("{text}\n# edited\n")).unwrap();
    ingest();
    let third = summarize("tree/src");
    assert_eq!(cached(&third), [true, false, true], "{third}");
    assert_eq!(third["summary_cached"], false);
    let all = summarize("all");
    assert_eq!(all["documents"].as_array().unwrap().len(), 6, "{all}");
}

#[test]
fn two_questions_in_one_process_equal_two_processes() {
    use std::ops::ControlFlow;
    let model = rwkv_model::Model::load(&root().join(rwkv_cli::DEMO_MODEL)).unwrap();
    let tok: std::sync::Arc<dyn rwkv_model::tokenizer::Tokenizer> =
        std::sync::Arc::new(rwkv_model::tokenizer::BytesTokenizer);
    let lib = rwkv_heads::Library::open(store(), &model, tok.clone()).unwrap();
    let opts = rwkv_heads::AskOptions {
        top: 3,
        max_tokens: 24,
        sampler: rwkv_heads::sample::SamplerConfig::greedy(),
        template: rwkv_heads::Template::Plain,
        rank: rwkv_heads::Rank::Bm25,
        generate: true,
        reread: rwkv_heads::Reread::default(),
        read_tokens: rwkv_heads::default_read_tokens(model.config()),
    };
    let qs = ["what does evaluate do?", "how is main defined?"];
    let mut in_process = Vec::new();
    for q in qs {
        let mut pieces = 0;
        let a = lib.answer(q, &opts, &mut |_| {
            pieces += 1;
            ControlFlow::Continue(())
        });
        in_process.push(a.unwrap().unwrap().text);
    }
    for (q, text) in qs.iter().zip(&in_process) {
        let v = json(&[q, "--max-tokens", "24"]);
        check_evidence(&v, &root());
        assert_eq!(v["text"].as_str().unwrap(), text, "question {q}");
    }
}

#[test]
fn the_first_text_arrives_before_generation_ends() {
    use std::ops::ControlFlow;
    use std::time::Instant;
    let model = rwkv_model::Model::load(&root().join(rwkv_cli::DEMO_MODEL)).unwrap();
    let tok: std::sync::Arc<dyn rwkv_model::tokenizer::Tokenizer> =
        std::sync::Arc::new(rwkv_model::tokenizer::BytesTokenizer);
    let lib = rwkv_heads::Library::open(store(), &model, tok).unwrap();
    let opts = rwkv_heads::AskOptions {
        top: 2,
        max_tokens: 64,
        sampler: rwkv_heads::sample::SamplerConfig::greedy(),
        template: rwkv_heads::Template::Custom {
            prompt: "Question: {q}\nAnswer:".into(),
            stop: "\u{1}".into(),
        },
        rank: rwkv_heads::Rank::Bm25,
        generate: true,
        reread: rwkv_heads::Reread::default(),
        read_tokens: rwkv_heads::default_read_tokens(model.config()),
    };
    let mut stamps = Vec::new();
    let t0 = Instant::now();
    let a = lib
        .summarize(&rwkv_heads::SummaryTarget::All, &opts, &mut |_, _, _| {}, &mut |_| {
            stamps.push(t0.elapsed());
            ControlFlow::Continue(())
        })
        .unwrap()
        .unwrap();
    let end = t0.elapsed();
    assert!(stamps.len() > 1, "text is streamed in pieces");
    assert!(stamps[0] < end, "first text before the end");
    assert!(a.timings.first_token_ms < a.timings.first_token_ms + a.timings.generate_ms);
    assert_eq!(a.timings.tokens, 64);
}

#[test]
fn an_empty_or_missing_store_says_how_to_ingest() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("none");
    let (code, _, err) = ask(&["anything"], &missing);
    assert_eq!(code, 1);
    assert!(err.contains("rwkv-ingest"), "{err}");
    // An empty store (ingested nothing).
    let empty = tmp.path().join("empty-store");
    let d = tmp.path().join("empty-dir");
    std::fs::create_dir_all(&d).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rwkv-ingest"))
        .args([d.to_str().unwrap(), "--json", "--store", empty.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, _, err) = ask(&["anything"], &empty);
    assert_eq!(code, 1);
    assert!(err.contains("rwkv-ingest"), "{err}");
    // Nothing found.
    let (code, _, err) = ask(&["qqqxxyz zzzyyq"], store());
    assert_eq!(code, 1);
    assert!(err.contains("no matching documents"), "{err}");
}

#[test]
fn self_test_prints_its_table() {
    let (code, out, err) = ask(&["--self-test", "--distances", "20,200", "--trials", "1"], store());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("distance") && out.contains("recall"), "{out}");
    assert_eq!(out.lines().count(), 3, "{out}");
}

#[test]
fn weights_f32_is_the_bf16_checkpoint_widened_and_int8_answers() {
    // The demo model is stored in bf16: holding it as f32 changes nothing but float rounding,
    // so greedy answers are equal.
    let q = ["what does evaluate do?", "--max-tokens", "24"];
    let answer = |w: &str| {
        let mut a = q.to_vec();
        a.extend(["--weights", w]);
        json(&a)["text"].as_str().unwrap().to_string()
    };
    let f32_answer = answer("f32");
    assert_eq!(answer("bf16"), f32_answer);
    assert_eq!(answer("auto"), f32_answer);
    assert!(!answer("int8").is_empty());
    let (code, _, err) = ask(&["x", "--weights", "int4"], store());
    assert_eq!(code, 2, "{err}");
    // The old flag names the new one.
    let (code, _, err) = ask(&["x", "--decode-weights", "int8"], store());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("replaced by --weights"), "{err}");
}

#[test]
fn a_store_folded_with_int8_weights_answers_and_refuses_other_weights() {
    let dir = std::env::temp_dir().join(format!("rwkv-ask-int8-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ingest = |extra: &[&str]| ingest_src(&dir, extra);
    let out = ingest(&["--weights", "int8"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Asking with the checkpoint's own weights reads it.
    let (code, stdout, stderr) = ask(&["what does evaluate do?", "--max-tokens", "8", "--json"], &dir);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(v["sources"][0]["path"].as_str().unwrap().ends_with("eval.py"), "{v}");
    // Ingesting with other weights is refused with the flag that fits, and writes nothing.
    let blobs = || walk_count(&dir.join("blobs"));
    let before = blobs();
    let out = ingest(&[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("+weights-int8") && err.contains("pass --weights int8"),
        "{err}"
    );
    assert_eq!(blobs(), before, "a refused ingest writes no state");
    let out = ingest(&["--weights", "int8"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_store_folded_in_bf16_answers_and_refuses_f32_ingest() {
    let dir = std::env::temp_dir().join(format!("rwkv-ask-bf16-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ingest = |extra: &[&str]| ingest_src(&dir, extra);
    let out = ingest(&["--fold-precision", "bf16"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Asking needs no flag: the store's states resume whatever the re-reading precision.
    let (code, stdout, stderr) = ask(&["what does evaluate do?", "--max-tokens", "8", "--json"], &dir);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(v["sources"][0]["path"].as_str().unwrap().ends_with("eval.py"), "{v}");
    // An exact-fold run on it is refused, naming the bf16 store; so is an int8-fold run, with
    // the flag that fits.
    let out = ingest(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("+fold-bf16"));
    let out = ingest(&["--fold-precision", "int8"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("+fold-int8") && err.contains("pass --fold-precision bf16"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Files below `dir`.
/// `rwkv-ingest fixtures/code/src --json --store DIR EXTRA…`.
fn ingest_src(dir: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rwkv-ingest"))
        .current_dir(root())
        .args(["fixtures/code/src", "--json", "--store"])
        .arg(dir)
        .args(extra)
        .output()
        .unwrap()
}

fn summary_of(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap()
}

#[test]
fn bf16_state_stores_are_half_the_size_answer_and_keep_to_themselves() {
    let base = std::env::temp_dir().join(format!("rwkv-ask-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (exact, half) = (base.join("f32"), base.join("bf16"));
    let a = summary_of(&ingest_src(&exact, &["--state-precision", "f32"]));
    let b = summary_of(&ingest_src(&half, &[]));
    assert_eq!(
        (a["state_precision"].as_str(), b["state_precision"].as_str()),
        (Some("f32"), Some("bf16"))
    );
    assert_eq!(a["store_checkpoints"], b["store_checkpoints"], "{a} {b}");
    assert!(a["peak_rss_bytes"].as_u64().unwrap() > 1 << 20, "{a}");
    // The demo model's state is small: the default spacing is the floor.
    assert_eq!(a["checkpoint_every"], 4096);
    let (fa, fb) = (
        a["state_bytes_per_checkpoint"].as_u64().unwrap(),
        b["state_bytes_per_checkpoint"].as_u64().unwrap(),
    );
    assert_eq!(fa, 2 * fb);
    // Blobs are the state plus a header of a few hundred bytes: about half.
    let ratio = b["store_bytes"].as_f64().unwrap() / a["store_bytes"].as_f64().unwrap();
    assert!((0.5..0.55).contains(&ratio), "{ratio}: {a} {b}");

    // Each store refuses a run at the other precision with a named error, writing nothing.
    for (dir, flag, fits) in [
        (&exact, "bf16", "pass --state-precision f32"),
        (&half, "f32", "pass --state-precision bf16"),
    ] {
        let before = walk_count(&dir.join("blobs"));
        let out = ingest_src(dir, &["--state-precision", flag]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("made with model") && err.contains(fits), "{err}");
        assert_eq!(
            walk_count(&dir.join("blobs")),
            before,
            "a refused ingest writes no state"
        );
    }
    // A bad value is refused by name.
    let out = ingest_src(&half, &["--state-precision", "f16"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("f16"));

    // Both answer the same question from the same place, no flag needed.
    for dir in [&exact, &half] {
        let (code, stdout, stderr) = ask(&["what does evaluate do?", "--max-tokens", "8", "--json"], dir);
        assert_eq!(code, 0, "{stderr}");
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert!(v["sources"][0]["path"].as_str().unwrap().ends_with("eval.py"), "{v}");
    }
    // A job file's state_precision is used when the flag is absent, and the flag wins over it.
    let job = base.join("job.toml");
    let src = root().join("fixtures/code/src");
    std::fs::write(
        &job,
        format!(
            "inputs = [{:?}]\nstate_precision = \"f32\"\n",
            src.display().to_string()
        ),
    )
    .unwrap();
    let out = ingest_src(&half, &["--pipeline", job.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "the job file asks for f32 blobs");
    let again = summary_of(&ingest_src(
        &half,
        &["--pipeline", job.to_str().unwrap(), "--state-precision", "bf16"],
    ));
    assert_eq!(again["state_precision"], "bf16", "{again}");
    let again = summary_of(&ingest_src(&exact, &["--pipeline", job.to_str().unwrap()]));
    assert_eq!(again["state_precision"], "f32", "{again}");
    let _ = std::fs::remove_dir_all(&base);
}

fn walk_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| if e.path().is_dir() { walk_count(&e.path()) } else { 1 })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_damaged_manifest_names_the_repair() {
    let dir = ingest_fixtures("rwkv-ask-damaged");
    let manifest = dir.join("manifest.redb");
    let len = std::fs::metadata(&manifest).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&manifest)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let (code, _, err) = ask(&["what does main do", "--max-tokens", "4"], &dir);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("rwkv-ingest --repair"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_re_read_folds_the_gap_forward_reads_its_tail_or_skips_it_within_the_budget() {
    // `main` starts on line 3 of src/main.rs: the checkpoint at the file's start is 27 bytes
    // (tokens of the byte-level demo model) before it.
    let q = "how is main defined?";
    let timings = |extra: &[&str]| {
        let mut a = vec![q, "--max-tokens", "1"];
        a.extend_from_slice(extra);
        let v = json(&a);
        assert!(
            v["sources"][0]["path"].as_str().unwrap().ends_with("src/main.rs"),
            "{v}"
        );
        v["timings"].clone()
    };
    let n = |t: &serde_json::Value, k: &str| t[k].as_u64().unwrap();
    let forward = timings(&["--reread", "forward", "--read-tokens", "100000"]);
    assert_eq!(forward["reread"], "forward");
    assert_eq!(n(&forward, "gap_tokens"), 27, "{forward}");
    let skip = timings(&["--reread", "skip", "--read-tokens", "100000"]);
    assert_eq!(skip["reread"], "skip");
    assert_eq!(n(&forward, "read_tokens"), n(&skip, "read_tokens") + 27);
    // The gap's last lines within 20 tokens: its blank line.
    let tail = timings(&["--reread", "tail:20", "--read-tokens", "100000"]);
    assert_eq!(tail["reread"], "tail");
    assert_eq!(n(&tail, "read_tokens"), n(&skip, "read_tokens") + 1);
    // The default folds forward when everything fits; a small budget is kept, the unit cut at
    // a line and the other units left out.
    assert_eq!(timings(&[])["reread"], "forward");
    let small = timings(&["--read-tokens", "100"]);
    assert!(n(&small, "read_tokens") <= 100, "{small}");
    assert_ne!(small["reread"], "forward");
    let (code, _, err) = ask(&[q, "--reread", "sideways"], store());
    assert_eq!(code, 2);
    assert!(err.contains("expected forward, skip, tail:N or auto"), "{err}");
}
