//! `rwkv-bench qa --store DIR --questions FILE.jsonl...`: how often the evidence `rwkv-ask`
//! shows finds the code that answers a question (evidence hit@1 and hit@3, source hit@3,
//! abstention on questions the store cannot answer), and in the same run the grep baseline
//! (every word of the question that some stored file defines → its first definition), with the
//! time per question. Question files: see `rwkv_bench::qa` and `benches/qa/README.md`.

// A command-line tool: printing results to stdout is its job.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use rwkv_bench::qa::{Gold, QaQuestion, grep_baseline, hit_at, names_code, parse_questions};
use rwkv_heads::sample::SamplerConfig;
use rwkv_heads::{AskOptions, Library, Rank, Template};
use rwkv_model::tokenizer::Tokenizer;

mod serve_bench;

#[derive(Parser, Debug)]
#[command(
    name = "rwkv-bench",
    about = "Benchmarks of rwkv-reader against the tools its users have"
)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Retrieval quality on question sets with known answers, beside the grep baseline.
    Qa(QaArgs),
    /// rwkv-serve under load: aggregate decode tok/s of N concurrent streaming completions
    /// against one alone (alternated, same run), time to first token and latency p50/p99;
    /// with --store, 32 concurrent /v1/ask against the same asked one by one.
    Serve(serve_bench::ServeArgs),
    /// How the re-read before generation should reach the answering unit from the checkpoint
    /// before it: fold the gap forward, skip it, or start from a fresh state. For each
    /// answerable question, the model's bits/token of the best unit's text after the question
    /// in each way, grouped by the gap's length in tokens.
    Reread(RereadArgs),
}

/// Questions with the name of their set.
type Questions = Vec<(String, QaQuestion)>;

/// A store, the question files asked of it and its model.
#[derive(clap::Args, Debug)]
struct Asked {
    /// The store the questions are asked of.
    #[arg(long)]
    store: PathBuf,
    /// Question files (JSON lines), all asked of the store.
    #[arg(long, required = true, num_args = 1..)]
    questions: Vec<PathBuf>,
    /// Model (default: $RWKV_MODEL, else the bundled demo model); the store's own.
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    embedder: rwkv_cli::EmbedderArgs,
}

impl Asked {
    /// The model (the store's own), its tokenizer and the questions.
    fn load(&self) -> anyhow::Result<(rwkv_model::Model, Arc<dyn Tokenizer>, Questions)> {
        let (model_path, _demo) = rwkv_cli::resolve_model_path(self.model.as_deref())?;
        let model = rwkv_cli::load_model(&model_path, rwkv_model::Weights::Auto, rwkv_model::Device::Cpu)?.model;
        let tokenizer = rwkv_cli::choose_tokenizer("auto", &model)?;
        Ok((model, tokenizer, read_questions(&self.questions)?))
    }

    /// The store opened for questions.
    fn library<'m>(&self, model: &'m rwkv_model::Model, tokenizer: &Arc<dyn Tokenizer>) -> anyhow::Result<Library<'m>> {
        let embedder = self.embedder.load()?;
        Ok(Library::open(&self.store, model, tokenizer.clone())
            .with_context(|| format!("opening store {}", self.store.display()))?
            .with_embedder(embedder))
    }
}

#[derive(clap::Args, Debug)]
struct RereadArgs {
    #[command(flatten)]
    asked: Asked,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct QaArgs {
    #[command(flatten)]
    asked: Asked,
    /// Units retrieved (as `rwkv-ask --top`).
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// Ranking (as `rwkv-ask --rank`).
    #[arg(long, default_value = "bm25", value_parser = ["bm25", "model", "both"])]
    rank: String,
    /// Print every question with what each method quoted.
    #[arg(long, short)]
    verbose: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Write the score parts of the first 100 units of every question to this file (one JSON
    /// object per question; each unit with its name, kind and whether it is gold), for weighing
    /// them.
    #[arg(long, value_name = "FILE")]
    features: Option<std::path::PathBuf>,
}

/// A quoted line: path and line.
type Quoted = (String, u64);

/// Whether a retrieved unit answers: it holds a gold line, or it is a piece of the definition
/// whose name line is gold (its evidence quotes that line).
fn holds_gold(golds: &[Gold], c: &rwkv_heads::Candidate) -> bool {
    golds.iter().any(|g| {
        g.hits_range(&c.path, c.line_start, c.line_end) || (c.name_line > 0 && g.hits_line(&c.path, c.name_line))
    })
}
/// A cited source: path and line range.
type Cited = (String, u64, u64);

#[derive(Default, Debug, serde::Serialize)]
struct Tally {
    questions: usize,
    answerable: usize,
    unanswerable: usize,
    hit1: usize,
    hit3: usize,
    source3: usize,
    abstained_right: usize,
    abstained_wrong: usize,
}

impl Tally {
    fn pct(n: usize, d: usize) -> String {
        if d == 0 {
            "-".into()
        } else {
            format!("{n}/{d} ({:.0}%)", 100.0 * n as f64 / d as f64)
        }
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rwkv-bench: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    match &args.cmd {
        Cmd::Qa(a) => qa(a),
        Cmd::Serve(a) => serve_bench::run(a),
        Cmd::Reread(a) => reread(a),
    }
}

/// Questions, with their set's name, from question files.
fn read_questions(files: &[PathBuf]) -> anyhow::Result<Questions> {
    let mut questions: Questions = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        let set = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        for q in parse_questions(&text).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))? {
            questions.push((set.clone(), q));
        }
    }
    if questions.is_empty() {
        bail!("no questions");
    }
    Ok(questions)
}

/// The tail of the gap the fourth way reads (tokens).
const TAIL_TOKENS: usize = 128;

/// Gap lengths (tokens, inclusive) the re-read table groups by.
const GAP_BUCKETS: [(usize, usize); 5] = [(0, 0), (1, 128), (129, 512), (513, 2048), (2049, usize::MAX)];

fn reread(a: &RereadArgs) -> anyhow::Result<()> {
    use rwkv_model::likelihood::{log_likelihood, piece_tokens};
    let (model, tokenizer, questions) = a.asked.load()?;
    let lib = a.asked.library(&model, &tokenizer)?;
    let piece = piece_tokens(model.config().vocab);
    // Per bucket: questions, and the sums of bits/token (forward, skip, fresh), gap tokens and
    // unit tokens.
    let mut sums = [(0usize, [0f64; 4], 0usize, 0usize); GAP_BUCKETS.len()];
    let mut rows = Vec::new();
    for (set, q) in questions.iter().filter(|(_, q)| q.answerable) {
        let r = lib.retrieve(&q.question, 3, Rank::Bm25)?;
        let Some(c) = r.candidates.first().filter(|c| r.answers() && !c.checkpoint.is_empty()) else {
            continue;
        };
        let Some(text) = lib.text_of(&c.doc_id)? else { continue };
        let (from, start, end) = (c.checkpoint_offset as usize, c.byte_start as usize, c.byte_end as usize);
        let (Some(gap), Some(unit)) = (text.get(from.min(start)..start), text.get(start..end)) else {
            continue;
        };
        let head = tokenizer.encode(&format!("Question: {}\n\n", q.question));
        let gap_t = tokenizer.encode(gap);
        let unit_t = tokenizer.encode(unit);
        if unit_t.len() < 2 {
            continue;
        }
        let score = |mut state: rwkv_model::State, prefix: &[u32]| -> anyhow::Result<f64> {
            let toks: Vec<u32> = prefix.iter().chain(&unit_t).copied().collect();
            Ok(log_likelihood(&model, &mut state, &toks, prefix.len(), piece, |_| {})?.bits_per_token())
        };
        let with_gap: Vec<u32> = head.iter().chain(&gap_t).copied().collect();
        // The gap's last lines within TAIL_TOKENS: skip to them, then fold forward.
        let tail = rwkv_heads::last_lines(tokenizer.as_ref(), gap, TAIL_TOKENS);
        let with_tail: Vec<u32> = head.iter().chain(&tokenizer.encode(tail)).copied().collect();
        let bits = [
            score(lib.restore_checkpoint(&c.checkpoint)?, &with_gap)?,
            score(lib.restore_checkpoint(&c.checkpoint)?, &head)?,
            score(model.new_state(), &head)?,
            score(lib.restore_checkpoint(&c.checkpoint)?, &with_tail)?,
        ];
        let b = GAP_BUCKETS
            .iter()
            .position(|&(lo, hi)| (lo..=hi).contains(&gap_t.len()))
            .unwrap_or(0);
        let s = &mut sums[b];
        s.0 += 1;
        for (acc, v) in s.1.iter_mut().zip(bits) {
            *acc += v;
        }
        s.2 += gap_t.len();
        s.3 += unit_t.len();
        rows.push(serde_json::json!({"set": set, "question": q.question, "unit": format!("{}:{}-{}", c.path, c.line_start, c.line_end),
            "gap_tokens": gap_t.len(), "unit_tokens": unit_t.len(),
            "bits_per_token": {"forward": bits[0], "skip": bits[1], "fresh": bits[2], "skip_to_tail": bits[3]}}));
    }
    let mut table = Vec::new();
    let mut all = (0usize, [0f64; 4], 0usize, 0usize);
    for (&(lo, hi), s) in GAP_BUCKETS.iter().zip(&sums) {
        all.0 += s.0;
        for i in 0..4 {
            all.1[i] += s.1[i];
        }
        all.2 += s.2;
        all.3 += s.3;
        let label = match (lo, hi) {
            (0, 0) => "0 (unit at its checkpoint)".to_string(),
            (lo, usize::MAX) => format!("> {}", lo - 1),
            (lo, hi) => format!("{lo}–{hi}"),
        };
        table.push((label, *s));
    }
    table.push(("all".to_string(), all));
    if a.json {
        let t: Vec<_> = table
            .iter()
            .map(|(label, (n, b, g, u))| {
                let d = (*n).max(1) as f64;
                serde_json::json!({"gap": label, "questions": n, "forward": b[0] / d, "skip": b[1] / d, "fresh": b[2] / d, "skip_to_tail": b[3] / d,
                    "mean_gap_tokens": *g as f64 / d, "mean_unit_tokens": *u as f64 / d})
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"store": a.asked.store, "buckets": t, "questions": rows})
        );
        return Ok(());
    }
    println!(
        "bits/token of the best unit's text after the question, read four ways (store {})",
        a.asked.store.display()
    );
    println!(
        "| gap (tokens) | questions | forward | skip | skip to the gap's last {TAIL_TOKENS} tokens | fresh state | skip keeps of forward's gain | tail keeps | mean gap | mean unit |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (label, (n, b, g, u)) in &table {
        if *n == 0 {
            continue;
        }
        let d = *n as f64;
        let (f, s, z, t) = (b[0] / d, b[1] / d, b[2] / d, b[3] / d);
        let keep = |x: f64| {
            if z - f > 1e-9 {
                format!("{:.0}%", 100.0 * (z - x) / (z - f))
            } else {
                "-".into()
            }
        };
        println!(
            "| {label} | {n} | {f:.3} | {s:.3} | {t:.3} | {z:.3} | {} | {} | {:.0} | {:.0} |",
            keep(s),
            keep(t),
            *g as f64 / d,
            *u as f64 / d
        );
    }
    Ok(())
}

fn qa(a: &QaArgs) -> anyhow::Result<()> {
    let (model, tokenizer, questions) = a.asked.load()?;
    let lib = a.asked.library(&model, &tokenizer)?;
    // The stored texts, for the grep baseline.
    let mut docs: Vec<(String, String)> = Vec::new();
    for d in lib.store().documents()? {
        if let Some(t) = lib.text_of(&d.id)? {
            docs.push((d.source.clone(), t));
        }
    }
    let opts = AskOptions {
        top: a.top,
        max_tokens: 0,
        sampler: SamplerConfig::greedy(),
        template: Template::Plain,
        rank: match a.rank.as_str() {
            "model" => Rank::Model,
            "both" => Rank::Both,
            _ => Rank::Bm25,
        },
        generate: false,
        reread: rwkv_heads::Reread::default(),
        read_tokens: rwkv_heads::default_read_tokens(model.config()),
    };
    let (mut ours, mut grep) = (Tally::default(), Tally::default());
    // Evidence hit@1 of answerable questions that name code as code, and of those in words only:
    // (questions, ours, grep) each.
    let mut by_form = [(0usize, 0usize, 0usize); 2];
    let mut times_ms: Vec<f64> = Vec::new();
    let mut grep_ms: Vec<f64> = Vec::new();
    let mut rows = Vec::new();
    let mut features = match &a.features {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    for (set, q) in &questions {
        let golds: Vec<Gold> = q.gold.iter().map(|g| Gold::parse(g)).collect();
        // Timed cold, as one `rwkv-ask` process asks it: nothing embedded before.
        if let Some(e) = lib.embedder() {
            e.clear_cache();
        }
        let t = Instant::now();
        let found = lib.search(&q.question, &opts)?;
        times_ms.push(t.elapsed().as_secs_f64() * 1e3);
        if let Some(out) = &mut features {
            let wide = lib.retrieve(&q.question, 100, Rank::Bm25)?;
            let units: Vec<_> = wide
                .candidates
                .iter()
                .map(|c| {
                    serde_json::json!({"unit": format!("{}:{}-{}", c.path, c.line_start, c.line_end), "name": c.name,
                        "kind": c.kind, "gold": holds_gold(&golds, c),
                        "score": c.score, "f": c.features, "sim": c.meaning})
                })
                .collect();
            use std::io::Write as _;
            writeln!(
                out,
                "{}",
                serde_json::json!({"set": set, "question": q.question, "answerable": q.answerable,
                    "support": wide.support, "named": wide.named,
                    "meaning": wide.meaning, "best_score": wide.best_score, "terms": wide.terms,
                    "names": rwkv_heads::FEATURES, "units": units})
            )?;
        }
        let support = found.retrieval.support;
        let (lines, sources): (Vec<Quoted>, Vec<Cited>) = if found.answers() {
            (
                found.evidence.iter().map(|e| (e.path.clone(), e.line)).collect(),
                found
                    .retrieval
                    .candidates
                    .iter()
                    .map(|c| (c.path.clone(), c.line_start, c.line_end))
                    .collect(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let t = Instant::now();
        let base = grep_baseline(&q.question, &docs);
        grep_ms.push(t.elapsed().as_secs_f64() * 1e3);
        for (tally, quoted, srcs) in [(&mut ours, &lines, Some(&sources)), (&mut grep, &base, None)] {
            tally.questions += 1;
            let abstained = quoted.is_empty();
            if q.answerable {
                tally.answerable += 1;
                tally.hit1 += usize::from(hit_at(&golds, quoted, 1));
                tally.hit3 += usize::from(hit_at(&golds, quoted, 3));
                let src_hit = match srcs {
                    Some(s) => s
                        .iter()
                        .take(3)
                        .any(|(p, a, b)| golds.iter().any(|g| g.hits_range(p, *a, *b))),
                    None => quoted
                        .iter()
                        .take(3)
                        .any(|(p, l)| golds.iter().any(|g| g.path_matches(p) && g.hits_range(p, *l, *l))),
                };
                tally.source3 += usize::from(src_hit);
                tally.abstained_wrong += usize::from(abstained);
            } else {
                tally.unanswerable += 1;
                tally.abstained_right += usize::from(abstained);
            }
        }
        if q.answerable {
            let f = &mut by_form[usize::from(!names_code(&q.question))];
            f.0 += 1;
            f.1 += usize::from(hit_at(&golds, &lines, 1));
            f.2 += usize::from(hit_at(&golds, &base, 1));
        }
        if a.verbose {
            let mark = |quoted: &[(String, u64)]| {
                if !q.answerable {
                    if quoted.is_empty() { "abstain ok" } else { "ANSWERED" }
                } else if hit_at(&golds, quoted, 1) {
                    "hit@1"
                } else if hit_at(&golds, quoted, 3) {
                    "hit@3"
                } else if quoted.is_empty() {
                    "ABSTAINED"
                } else {
                    "miss"
                }
            };
            println!("[{set}] {}  (support {support:.2})", q.question);
            println!(
                "    gold: {}",
                if q.gold.is_empty() {
                    "-".to_string()
                } else {
                    q.gold.join(", ")
                }
            );
            println!("    ours {:<10} {}", mark(&lines), fmt_lines(&lines, &docs));
            println!("    grep {:<10} {}", mark(&base), fmt_lines(&base, &docs));
            if q.answerable {
                let wide = lib.retrieve(&q.question, 100, Rank::Bm25)?;
                let rank = wide.candidates.iter().position(|c| holds_gold(&golds, c));
                match rank {
                    Some(r) => {
                        let c = &wide.candidates[r];
                        println!(
                            "      gold unit at rank {}: {}:{}-{} {} {:?} [{}] {:.2}",
                            r + 1,
                            c.path,
                            c.line_start,
                            c.line_end,
                            c.kind,
                            c.name,
                            c.matched,
                            c.score
                        );
                    }
                    None => println!("      gold unit not in the first 100"),
                }
            }
            for c in found.retrieval.candidates.iter().take(3) {
                println!(
                    "      unit {}:{}-{} {} {:?} [{}] {:.2}",
                    c.path, c.line_start, c.line_end, c.kind, c.name, c.matched, c.score
                );
            }
        }
        rows.push(serde_json::json!({
            "set": set, "question": q.question, "answerable": q.answerable, "gold": q.gold,
            "support": support, "named": found.retrieval.named,
            "ours": lines.iter().map(|(p, l)| format!("{p}:{l}")).collect::<Vec<_>>(),
            "grep": base.iter().map(|(p, l)| format!("{p}:{l}")).collect::<Vec<_>>(),
        }));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let (t_ours, t_grep) = (median(&mut times_ms), median(&mut grep_ms));
    if a.json {
        println!(
            "{}",
            serde_json::json!({"ours": ours, "grep": grep, "median_ms": {"ours": t_ours, "grep": t_grep},
                "hit1_naming_code": {"questions": by_form[0].0, "ours": by_form[0].1, "grep": by_form[0].2},
                "hit1_words_only": {"questions": by_form[1].0, "ours": by_form[1].1, "grep": by_form[1].2},
                "store": a.asked.store, "questions": rows})
        );
        return Ok(());
    }
    println!(
        "{} questions ({} answerable, {} unanswerable) from {} file(s), store {}",
        ours.questions,
        ours.answerable,
        ours.unanswerable,
        a.asked.questions.len(),
        a.asked.store.display()
    );
    println!(
        "| method | evidence hit@1 | hit@3 | source hit@3 | abstained right | abstained wrongly | median ms/question |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, t, ms) in [("rwkv-ask evidence", &ours, t_ours), ("grep baseline", &grep, t_grep)] {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {ms:.1} |",
            Tally::pct(t.hit1, t.answerable),
            Tally::pct(t.hit3, t.answerable),
            Tally::pct(t.source3, t.answerable),
            Tally::pct(t.abstained_right, t.unanswerable),
            Tally::pct(t.abstained_wrong, t.answerable),
        );
    }
    for (label, (n, o, g)) in ["naming code", "in words only"].iter().zip(by_form) {
        println!(
            "evidence hit@1 of answerable questions {label}: rwkv-ask {}, grep {}",
            Tally::pct(o, n),
            Tally::pct(g, n)
        );
    }
    Ok(())
}

/// `path:line  text` of the first three quoted lines.
fn fmt_lines(lines: &[(String, u64)], docs: &[(String, String)]) -> String {
    if lines.is_empty() {
        return "(nothing)".into();
    }
    lines
        .iter()
        .take(3)
        .map(|(p, l)| {
            let text = docs
                .iter()
                .find(|d| &d.0 == p)
                .and_then(|d| d.1.lines().nth(*l as usize - 1))
                .unwrap_or("")
                .trim();
            let short: String = text.chars().take(60).collect();
            format!("{p}:{l} {short}")
        })
        .collect::<Vec<_>>()
        .join(" | ")
}
