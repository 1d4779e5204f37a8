//! `rwkv-bench qa --store DIR --questions FILE.jsonl...`: how often the evidence `rwkv-ask`
//! shows finds the code that answers a question (evidence hit@1 and hit@3, source hit@3,
//! abstention on questions the store cannot answer), and in the same run the grep baseline
//! (every word of the question that some stored file defines → its first definition), with the
//! time per question. Question files: see `rwkv_bench::qa` and `benches/qa/README.md`.

// A command-line tool: printing results to stdout is its job.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use rwkv_bench::qa::{Gold, QaQuestion, grep_baseline, hit_at, names_code, parse_questions};
use rwkv_heads::sample::SamplerConfig;
use rwkv_heads::{AskOptions, Library, Rank, Template};

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
}

#[derive(clap::Args, Debug)]
struct QaArgs {
    /// The store the questions are asked of.
    #[arg(long)]
    store: PathBuf,
    /// Question files (JSON lines), all asked of the store.
    #[arg(long, required = true, num_args = 1..)]
    questions: Vec<PathBuf>,
    /// Model (default: $RWKV_MODEL, else the bundled demo model); the store's own.
    #[arg(long)]
    model: Option<PathBuf>,
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
}

/// A quoted line: path and line.
type Quoted = (String, u64);
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
    }
}

fn qa(a: &QaArgs) -> anyhow::Result<()> {
    let (model_path, _demo) = rwkv_cli::resolve_model_path(a.model.as_deref())?;
    let model = rwkv_cli::load_model(&model_path, rwkv_model::Weights::Auto, rwkv_model::Device::Cpu)?.model;
    let tokenizer = rwkv_cli::choose_tokenizer("auto", &model)?;
    let lib = Library::open(&a.store, &model, tokenizer.clone())
        .with_context(|| format!("opening store {}", a.store.display()))?;
    let mut questions: Vec<(String, QaQuestion)> = Vec::new();
    for f in &a.questions {
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
    };
    let (mut ours, mut grep) = (Tally::default(), Tally::default());
    // Evidence hit@1 of answerable questions that name code as code, and of those in words only:
    // (questions, ours, grep) each.
    let mut by_form = [(0usize, 0usize, 0usize); 2];
    let mut times_ms: Vec<f64> = Vec::new();
    let mut grep_ms: Vec<f64> = Vec::new();
    let mut rows = Vec::new();
    for (set, q) in &questions {
        let golds: Vec<Gold> = q.gold.iter().map(|g| Gold::parse(g)).collect();
        let t = Instant::now();
        let found = lib.search(&q.question, &opts)?;
        times_ms.push(t.elapsed().as_secs_f64() * 1e3);
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
                let rank = wide
                    .candidates
                    .iter()
                    .position(|c| golds.iter().any(|g| g.hits_range(&c.path, c.line_start, c.line_end)));
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
            "support": support,
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
                "store": a.store, "questions": rows})
        );
        return Ok(());
    }
    println!(
        "{} questions ({} answerable, {} unanswerable) from {} file(s), store {}",
        ours.questions,
        ours.answerable,
        ours.unanswerable,
        a.questions.len(),
        a.store.display()
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
