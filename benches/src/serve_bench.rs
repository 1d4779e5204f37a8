//! `rwkv-bench serve`: the server in this process on a loopback port, driven over HTTP by
//! client threads (ureq), as a client would see it.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Model (default: $RWKV_MODEL, else the bundled demo model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Weights (as the tools' --weights).
    #[arg(long, default_value = "auto")]
    weights: String,
    /// A store for the /v1/ask part (made with the same model).
    #[arg(long)]
    store: Option<PathBuf>,
    /// Tokens each completion generates (stops ignored).
    #[arg(long, default_value_t = 64)]
    tokens: usize,
    /// Concurrent completions.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Alternated rounds of (one alone, N together).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent /v1/ask requests (with --store).
    #[arg(long, default_value_t = 32)]
    asks: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// One streamed completion as a client sees it.
#[derive(Debug, Clone, Copy)]
struct Run {
    ttft_ms: f64,
    total_ms: f64,
    tokens: usize,
}

fn stream_completion(base: &str, model: &str, prompt: &str, tokens: usize) -> anyhow::Result<Run> {
    let t0 = Instant::now();
    let resp = ureq::post(&format!("{base}/v1/chat/completions"))
        .send_json(json!({
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": tokens,
            "stream": true,
            "stream_options": {"include_usage": true},
            "rwkv": {"ignore_stop": true},
        }))
        .context("chat completion")?;
    let mut ttft = None;
    let mut n = 0;
    for line in std::io::BufReader::new(resp.into_reader()).lines() {
        let line = line?;
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let v: Value = serde_json::from_str(data)?;
        if v["choices"][0]["delta"]["content"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
        {
            ttft.get_or_insert_with(|| t0.elapsed().as_secs_f64() * 1e3);
        }
        if let Some(u) = v["usage"]["completion_tokens"].as_u64() {
            n = u as usize;
        }
    }
    let total = t0.elapsed().as_secs_f64() * 1e3;
    Ok(Run {
        ttft_ms: ttft.unwrap_or(total),
        total_ms: total,
        tokens: n,
    })
}

const PROMPTS: [&str; 8] = [
    "Write a function that parses a date.",
    "Explain what a hash map is.",
    "How do I read a file line by line?",
    "Sort a list of numbers in Python.",
    "What is a recurrent neural network?",
    "Describe the builder pattern.",
    "How does a B-tree store keys?",
    "Reverse a linked list.",
];

/// `n` completions at once; (aggregate tok/s, runs).
fn together(base: &str, model: &str, n: usize, tokens: usize) -> anyhow::Result<(f64, Vec<Run>)> {
    let t0 = Instant::now();
    let runs: Vec<anyhow::Result<Run>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|i| s.spawn(move || stream_completion(base, model, PROMPTS[i % PROMPTS.len()], tokens)))
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("client thread panicked")))
            })
            .collect()
    });
    let wall = t0.elapsed().as_secs_f64();
    let runs: Vec<Run> = runs.into_iter().collect::<anyhow::Result<_>>()?;
    let total: usize = runs.iter().map(|r| r.tokens).sum();
    Ok((total as f64 / wall, runs))
}

fn pct(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i.min(v.len() - 1)]
}

fn median(v: Vec<f64>) -> f64 {
    pct(v, 50.0)
}

pub fn run(a: &ServeArgs) -> anyhow::Result<()> {
    let (model_path, demo) = rwkv_cli::resolve_model_path(a.model.as_deref())?;
    let weights: rwkv_model::Weights = a.weights.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    let model = rwkv_cli::load_model(&model_path, weights, rwkv_model::Device::Cpu)?.model;
    let tokenizer = rwkv_cli::choose_tokenizer("auto", &model)?;
    let model: &'static rwkv_model::Model = Box::leak(Box::new(model));
    let stores: Vec<PathBuf> = a.store.iter().cloned().collect();
    let opts = rwkv_serve::ServeOptions {
        model_id: "bench".into(),
        template: rwkv_heads::Template::Chat,
        demo,
        capacity: (a.asks.max(a.concurrency) * 2).max(64),
        ..rwkv_serve::ServeOptions::default()
    };
    let app = rwkv_serve::App::new(model, tokenizer, &stores, opts)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let base = format!("http://{}", listener.local_addr()?);
    let app2: Arc<rwkv_serve::App> = app.clone();
    rt.spawn(async move {
        let _ = rwkv_serve::serve_http(app2, listener).await;
    });
    // Warm up (thread pools, scratch buffers).
    stream_completion(&base, "bench", "hello", 4)?;
    let mut single = Vec::new();
    let mut agg = Vec::new();
    let mut ttfts = Vec::new();
    let mut lats = Vec::new();
    for _ in 0..a.rounds.max(1) {
        let one = stream_completion(&base, "bench", PROMPTS[0], a.tokens)?;
        if one.tokens != a.tokens {
            bail!("a completion gave {} tokens, not {}", one.tokens, a.tokens);
        }
        single.push(one.tokens as f64 / ((one.total_ms - one.ttft_ms) / 1e3).max(1e-9));
        let (tps, runs) = together(&base, "bench", a.concurrency, a.tokens)?;
        agg.push(tps);
        ttfts.extend(runs.iter().map(|r| r.ttft_ms));
        lats.extend(runs.iter().map(|r| r.total_ms));
    }
    let (s, g) = (median(single.clone()), median(agg.clone()));
    let mut out = json!({
        "model": model_path.display().to_string(),
        "tokens": a.tokens,
        "concurrency": a.concurrency,
        "rounds": a.rounds,
        "single_decode_tok_s": single,
        "aggregate_tok_s": agg,
        "single_median_tok_s": s,
        "aggregate_median_tok_s": g,
        "speedup": g / s.max(1e-9),
        "ttft_p50_ms": pct(ttfts.clone(), 50.0),
        "ttft_p99_ms": pct(ttfts, 99.0),
        "latency_p50_ms": pct(lats.clone(), 50.0),
        "latency_p99_ms": pct(lats, 99.0),
    });
    if a.store.is_some() {
        out["asks"] = asks(&base, a.asks)?;
    }
    if a.json {
        println!("{out}");
        return Ok(());
    }
    println!(
        "rwkv-serve, {} ({} tokens per completion, {} rounds)",
        model_path.display(),
        a.tokens,
        a.rounds
    );
    println!("  one generation:        {s:>8.1} tok/s (decode, median)");
    println!(
        "  {} at once (aggregate): {g:>8.1} tok/s  = {:.2}x one",
        a.concurrency,
        g / s.max(1e-9)
    );
    println!(
        "  time to first token:   p50 {:.0} ms  p99 {:.0} ms;  latency p50 {:.0} ms  p99 {:.0} ms",
        out["ttft_p50_ms"].as_f64().unwrap_or(0.0),
        out["ttft_p99_ms"].as_f64().unwrap_or(0.0),
        out["latency_p50_ms"].as_f64().unwrap_or(0.0),
        out["latency_p99_ms"].as_f64().unwrap_or(0.0)
    );
    if let Some(q) = out.get("asks") {
        println!(
            "  {} concurrent /v1/ask: {} ok, {} same answer as alone; latency p50 {:.0} ms  p99 {:.0} ms (alone p50 {:.0} ms)",
            q["requests"],
            q["ok"],
            q["same_as_alone"],
            q["latency_p50_ms"].as_f64().unwrap_or(0.0),
            q["latency_p99_ms"].as_f64().unwrap_or(0.0),
            q["alone_p50_ms"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(())
}

fn ask(base: &str, q: &str) -> anyhow::Result<(String, f64)> {
    let t0 = Instant::now();
    let v: Value = ureq::post(&format!("{base}/v1/ask"))
        .send_json(json!({"question": q, "generate": true, "max_tokens": 32}))?
        .into_json()?;
    Ok((
        v["text"].as_str().unwrap_or_default().to_string(),
        t0.elapsed().as_secs_f64() * 1e3,
    ))
}

/// `n` concurrent asks against the same questions asked one by one.
fn asks(base: &str, n: usize) -> anyhow::Result<Value> {
    // Questions from the store's own definitions would be better; generic ones retrieve too.
    let qs = [
        "What does main do?",
        "How are errors handled?",
        "Where is the configuration read?",
        "What does the parser return?",
    ];
    let mut alone = Vec::new();
    let mut alone_ms = Vec::new();
    for q in &qs {
        let (t, ms) = ask(base, q)?;
        alone.push(t);
        alone_ms.push(ms);
    }
    let res: Vec<anyhow::Result<(String, f64)>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..n).map(|i| s.spawn(move || ask(base, qs[i % qs.len()]))).collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("client thread panicked")))
            })
            .collect()
    });
    let mut ok = 0;
    let mut same = 0;
    let mut lat = Vec::new();
    for (i, r) in res.into_iter().enumerate() {
        if let Ok((t, ms)) = r {
            ok += 1;
            same += usize::from(t == alone[i % qs.len()]);
            lat.push(ms);
        }
    }
    Ok(json!({
        "requests": n, "ok": ok, "same_as_alone": same,
        "latency_p50_ms": pct(lat.clone(), 50.0), "latency_p99_ms": pct(lat, 99.0),
        "alone_p50_ms": pct(alone_ms, 50.0),
    }))
}
