//! The folding modes of `rwkv-ingest`: ingest (from flags or a job file), `--gc`, `--repair`,
//! `--merge`; progress bars on a terminal and a closing summary (text or `--json`).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use rwkv_cli::{ExitCode, choose_tokenizer, load_model, peak_rss_bytes, resolve_model_path};
use rwkv_model::{Model, StatePrecision};
use rwkv_pipeline::{IngestFlags, IngestSettings, JobSpec, Progress, Summary};
use rwkv_store::FoldKind;

use super::Args;

/// An ingest, `--gc`, `--repair` or `--merge` with the settings
/// [`IngestSettings::resolve`] makes of the command line and the job file.
pub(crate) fn main(args: &Args, matches: &clap::ArgMatches) -> anyhow::Result<ExitCode> {
    let spec = match &args.pipeline {
        Some(p) => Some(JobSpec::load(p)?),
        None => None,
    };
    // Before the model loads: a worker without its index stops at once.
    let settings = IngestSettings::resolve(flags(args, matches)?, spec.as_ref(), |k| std::env::var(k).ok())?;
    let (model_path, demo) = resolve_model_path(settings.model.as_deref())?;
    let mut model = load_model(&model_path, settings.weights, settings.device)?.model;
    model.set_fold_precision(settings.fold_precision);
    let tokenizer = choose_tokenizer(&settings.tokenizer, &model)?;
    let store_dir = settings.store.clone();
    let ident = rwkv_reader::store_identity(
        &model,
        model.fold_precision(),
        settings.state_precision,
        tokenizer.as_ref(),
    );

    if args.gc {
        let r = rwkv_pipeline::gc(&store_dir, ident)?;
        print_map(args.json, "gc", &r)?;
        return Ok(ExitCode::Success);
    }
    if args.repair {
        let r = rwkv_pipeline::repair(&store_dir, ident)?;
        if args.json {
            println!(
                "{}",
                serde_json::to_string(&serde_json::json!({
                    "documents": r.documents, "checkpoints": r.checkpoints,
                    "incomplete_documents": r.incomplete_documents,
                    "old_manifest": r.old_manifest.map(|p| p.display().to_string()),
                }))?
            );
        } else {
            eprintln!(
                "repaired {}: {} documents, {} checkpoints restored; {} incomplete documents will be folded again by the next ingest",
                store_dir.display(),
                r.documents,
                r.checkpoints,
                r.incomplete_documents.len()
            );
        }
        return Ok(ExitCode::Success);
    }
    if !args.merge.is_empty() {
        let started = std::time::Instant::now();
        let reports = rwkv_pipeline::merge(&store_dir, ident.clone(), &args.merge)?;
        let stats = rwkv_store::Store::open_read_only(&store_dir, ident)?.stats()?;
        if args.json {
            let per: Vec<_> = args
                .merge
                .iter()
                .zip(&reports)
                .map(|(o, r)| {
                    serde_json::json!({
                        "store": o.display().to_string(),
                        "documents_added": r.documents_added, "documents_replaced": r.documents_replaced,
                        "documents_kept": r.documents_kept, "checkpoints_copied": r.checkpoints_copied,
                        "bytes_copied": r.bytes_copied,
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string(&serde_json::json!({
                    "store": store_dir.display().to_string(),
                    "merged": per,
                    "store_documents": stats.documents,
                    "store_checkpoints": stats.checkpoints,
                    "store_bytes": stats.blob_bytes,
                    "wall_seconds": started.elapsed().as_secs_f64(),
                }))?
            );
        } else {
            for (o, r) in args.merge.iter().zip(reports) {
                eprintln!(
                    "merged {}: {} documents added, {} replaced, {} kept, {} checkpoints copied",
                    o.display(),
                    r.documents_added,
                    r.documents_replaced,
                    r.documents_kept,
                    r.checkpoints_copied
                );
            }
            eprintln!(
                "store {}: {} documents, {} checkpoints",
                store_dir.display(),
                stats.documents,
                stats.checkpoints
            );
        }
        return Ok(ExitCode::Success);
    }

    let cfg = settings.ingest_config()?;
    if demo && !args.json {
        eprintln!(
            "note: using the bundled demo model (a tiny code model); real answers need a real checkpoint (--model)"
        );
    }
    let bars = Bars::new(!args.json && std::io::stderr().is_terminal());
    let summary = rwkv_pipeline::ingest(&cfg, &model, tokenizer, &bars).map_err(|e| {
        // A store of the same model made another way: say which flags fit it.
        let hint = store_hint(&e, &model);
        let err = anyhow::Error::new(e).context("ingest");
        match hint {
            Some(h) => err.context(h),
            None => err,
        }
    })?;
    bars.finish();
    print_summary(args.json, &summary, &store_dir, cfg.shard, peak_rss_bytes())?;
    Ok(if summary.failed > 0 {
        ExitCode::Partial
    } else {
        ExitCode::Success
    })
}

/// What the command line gives: a flag with a default counts only when given there (by
/// `matches`' value source, not by comparing with its default), so a job file's value wins over
/// the default.
fn flags(args: &Args, matches: &clap::ArgMatches) -> anyhow::Result<IngestFlags> {
    let on_cli = |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    Ok(IngestFlags {
        inputs: args.inputs.clone(),
        model: args.model.clone(),
        tokenizer: on_cli("tokenizer").then(|| args.tokenizer.clone()),
        store: on_cli("store").then(|| args.store.clone()),
        checkpoint_every: args.checkpoint_every,
        fold_jobs: args.fold_jobs,
        source_jobs: args.sources.jobs,
        lanes: args.lanes,
        fold_precision: args.fold_precision,
        state_precision: args.state_precision,
        weights: args.weights.given()?,
        device: args.weights.device,
        shard: args.shard,
        corpus_state: args.corpus_state,
        compress: args.compress,
        no_verify: args.no_verify,
        index_only: args.index_only,
        sources: args.sources.options(),
    })
}

/// For a store refused because it holds states of this very model made another way (other
/// weights, fold precision or state precision: [`rwkv_store::FoldKind`] of its fingerprint):
/// what it holds and the flags that fit it.
fn store_hint(e: &rwkv_pipeline::Error, model: &Model) -> Option<String> {
    let rwkv_pipeline::Error::Store(rwkv_store::Error::FingerprintMismatch {
        store_fingerprint,
        requested_fingerprint,
        ..
    }) = e
    else {
        return None;
    };
    let (theirs_model, theirs) = FoldKind::parse(store_fingerprint)?;
    let (ours_model, ours) = FoldKind::parse(requested_fingerprint)?;
    if theirs_model != model.fingerprint() || ours_model != model.fingerprint() {
        return None;
    }
    let (mut holds, mut fixes) = (Vec::new(), Vec::new());
    match (theirs.weights_rounded, ours.weights_rounded) {
        (a, b) if a == b => {}
        (None, None) => {}
        (Some(w), _) => {
            holds.push(format!("folded with {w} weights"));
            fixes.push(format!("pass --weights {w}"));
        }
        (None, Some(w)) => {
            holds.push("folded with the checkpoint's own weights".to_string());
            fixes.push(format!("drop --weights {w}"));
        }
    }
    let fold_of = |k: &FoldKind<'_>| {
        if k.fold_bf16 {
            "bf16"
        } else if k.fold_int8 {
            "int8"
        } else {
            "f32"
        }
    };
    match (fold_of(&theirs), fold_of(&ours)) {
        (a, b) if a == b => {}
        ("f32", b) => {
            holds.push("exact (f32-folded)".to_string());
            fixes.push(format!("drop --fold-precision {b}"));
        }
        (a, _) => {
            holds.push(format!("{a}-folded"));
            fixes.push(format!("pass --fold-precision {a}"));
        }
    }
    if theirs.state_bf16 != ours.state_bf16 {
        let p = if theirs.state_bf16 {
            StatePrecision::Bf16
        } else {
            StatePrecision::F32
        };
        holds.push(format!("stored as {p}"));
        fixes.push(format!("pass --state-precision {p}"));
    }
    (!fixes.is_empty()).then(|| {
        format!(
            "this store holds states {}: {} (or use another --store)",
            holds.join(", "),
            fixes.join(", ")
        )
    })
}

fn print_map(json: bool, what: &str, m: &std::collections::BTreeMap<&'static str, u64>) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(m)?);
    } else {
        let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
        eprintln!("{what}: {}", parts.join(", "));
    }
    Ok(())
}

fn print_summary(
    json: bool,
    s: &Summary,
    store: &std::path::Path,
    shard: Option<(u64, u64)>,
    peak_rss: Option<u64>,
) -> anyhow::Result<()> {
    if json {
        let mut v = serde_json::to_value(s)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("peak_rss_bytes".into(), peak_rss.into());
            if let Some((i, n)) = shard {
                o.insert("shard".into(), serde_json::json!({"index": i, "count": n}));
            }
        }
        println!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    if let Some((i, n)) = shard {
        eprintln!("shard {i}/{n}");
    }
    eprintln!(
        "{} documents: {} folded, {} unchanged, {} removed, {} skipped, {} failed",
        s.documents, s.folded, s.unchanged, s.removed, s.skipped, s.failed
    );
    if s.indexed > 0 {
        eprintln!("{} documents indexed without folding (--index-only)", s.indexed);
    }
    if s.refolded_corrupt > 0 {
        eprintln!(
            "{} documents had damaged checkpoints and were folded again",
            s.refolded_corrupt
        );
    }
    let mut reasons = std::collections::BTreeMap::<&str, u64>::new();
    for k in &s.skips {
        *reasons.entry(&k.reason).or_default() += 1;
    }
    for (r, n) in reasons {
        eprintln!("  {n} × {r}");
    }
    eprintln!(
        "{} tokens in {:.1} s ({:.0} tokens/s), {} checkpoints written",
        s.tokens, s.wall_seconds, s.tokens_per_second, s.checkpoints
    );
    if s.store_unfolded > 0 {
        eprintln!(
            "{} documents of the store are indexed but not folded: asking re-reads them from their start; rwkv-ingest without --index-only folds them",
            s.store_unfolded
        );
    }
    eprintln!(
        "store {}: {} documents, {} checkpoints, {:.1} MB of state ({} state, {:.2} MB a checkpoint, one every {} tokens)",
        store.display(),
        s.store_documents,
        s.store_checkpoints,
        s.store_bytes as f64 / 1e6,
        s.state_precision,
        s.state_bytes_per_checkpoint as f64 / 1e6,
        s.checkpoint_every
    );
    if let Some(b) = peak_rss {
        eprintln!("peak memory (RSS) {:.1} MB", b as f64 / 1e6);
    }
    if let Some(c) = &s.corpus_state {
        eprintln!("corpus state: {c}");
    }
    Ok(())
}

/// indicatif bars: documents and tokens (hidden when stderr is not a terminal).
struct Bars {
    multi: Option<MultiProgress>,
    docs: ProgressBar,
    tokens: ProgressBar,
    current: Mutex<()>,
    /// Set once the index phase said how many tokens the fold reads (the bar's length).
    total_known: std::sync::atomic::AtomicBool,
}

impl Bars {
    fn new(show: bool) -> Self {
        if !show {
            return Bars {
                multi: None,
                docs: ProgressBar::hidden(),
                tokens: ProgressBar::hidden(),
                current: Mutex::new(()),
                total_known: Default::default(),
            };
        }
        let multi = MultiProgress::new();
        let docs = multi.add(ProgressBar::new_spinner());
        docs.set_style(
            ProgressStyle::with_template("{spinner} {pos} documents {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        docs.enable_steady_tick(Duration::from_millis(120));
        let tokens = multi.add(ProgressBar::new(0));
        tokens.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} tokens  {per_sec}  ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Bars {
            multi: Some(multi),
            docs,
            tokens,
            current: Mutex::new(()),
            total_known: Default::default(),
        }
    }
    fn finish(&self) {
        self.docs.finish_and_clear();
        self.tokens.finish_and_clear();
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

impl Progress for Bars {
    fn start(&self, name: &str, tokens: u64) {
        let _g = self.current.lock();
        if !self.total_known.load(std::sync::atomic::Ordering::Relaxed) {
            self.tokens.inc_length(tokens);
        }
        self.docs.set_message(name.to_string());
    }
    fn tokens(&self, n: u64) {
        self.tokens.inc(n);
    }
    fn done(&self, _name: &str, _outcome: &str) {
        self.docs.inc(1);
    }
    fn skipped(&self, input: &str, reason: &str) {
        if self.multi.is_some() {
            self.docs.println(format!("skipped {input}: {reason}"));
        }
    }
    fn index_rebuilt(&self, reason: &str) {
        let line = format!("the store's index was rebuilt from its stored texts ({reason}); nothing is refolded");
        if self.multi.is_some() {
            self.docs.println(line);
        } else {
            eprintln!("{line}");
        }
    }
    fn indexed(&self, documents: u64, new: u64, seconds: f64, to_fold: u64) {
        let mut line = format!(
            "indexed {documents} documents ({new} new or changed) in {seconds:.1} s: rwkv-ask answers from them now"
        );
        if to_fold > 0 {
            line.push_str(&format!("; folding {to_fold} tokens"));
            self.tokens.set_length(to_fold);
            self.total_known.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if self.multi.is_some() {
            self.docs.println(line);
        } else {
            eprintln!("{line}");
        }
    }
}
