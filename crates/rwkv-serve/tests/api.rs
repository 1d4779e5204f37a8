//! The HTTP API in process (axum's router driven by `tower::ServiceExt::oneshot`): the native
//! and OpenAI routes over a store of `fixtures/code` folded with the demo model, concurrent
//! generations decoding together giving each the answer it gets alone, states out and back in,
//! ingest jobs, and every kind of bad input answered with a JSON error and the right status.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use rwkv_serve::{App, ServeOptions, router};
use serde_json::{Value, json};
use tower::ServiceExt;

mod common;
use common::{app_with, fixture, root};

fn app() -> Arc<App> {
    app_with(ServeOptions {
        model_id: "demo".into(),
        demo: true,
        ..ServeOptions::default()
    })
}

async fn call(app: &Arc<App>, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let (s, b) = call_raw(app, method, uri, body.map(|b| b.to_string().into_bytes()), &[]).await;
    let v = serde_json::from_slice(&b).unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&b)}));
    (s, v)
}

async fn call_raw(
    app: &Arc<App>,
    method: &str,
    uri: &str,
    body: Option<Vec<u8>>,
    headers: &[(&str, &str)],
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(body.map(Body::from).unwrap_or_else(Body::empty)).unwrap();
    let resp = router(app.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, bytes.to_vec())
}

/// The `data:` payloads of an SSE body.
fn sse_data(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
        .map(|s| s.to_string())
        .collect()
}

fn is_error(v: &Value, status: StatusCode, s: StatusCode) {
    assert_eq!(s, status, "{v}");
    assert!(
        v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a JSON error: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_models_documents_and_files() {
    let app = app();
    let (s, v) = call(&app, "GET", "/health", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "ok");
    let (s, v) = call(&app, "GET", "/v1/models", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"][0]["id"], "demo");
    let (s, v) = call(&app, "GET", "/v1/stores/code/documents", None).await;
    assert_eq!(s, StatusCode::OK);
    let docs = v["documents"].as_array().unwrap();
    let main = docs
        .iter()
        .find(|d| d["path"].as_str().unwrap().ends_with("src/main.rs"))
        .unwrap();
    assert!(main["tokens"].as_u64().unwrap() > 0 && !main["checkpoints"].as_array().unwrap().is_empty());
    let text = std::fs::read_to_string(root().join("fixtures/code/src/main.rs")).unwrap();
    let (s, v) = call(&app, "GET", "/v1/stores/code/file?path=src/main.rs&start=3&end=5", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let want: Vec<&str> = text.lines().skip(2).take(3).collect();
    assert_eq!(v["lines"], json!(want));
    assert_eq!(v["total_lines"], text.lines().count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_and_ask_quote_the_stored_lines() {
    let app = app();
    let (s, v) = call(
        &app,
        "POST",
        "/v1/search",
        Some(json!({"question": "What does eval do?"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["answers"], true);
    let ev = v["evidence"].as_array().unwrap();
    assert!(!ev.is_empty());
    for e in ev {
        let path = e["path"].as_str().unwrap();
        let file = std::fs::read_to_string(path).unwrap();
        let line = file.lines().nth(e["line"].as_u64().unwrap() as usize - 1).unwrap();
        assert_eq!(e["text"], line, "every evidence line is the stored file's line");
    }
    assert!(v["sources"][0]["path"].as_str().unwrap().ends_with("main.rs"));
    // The demo model answers with evidence only unless asked to generate.
    let (s, v) = call(&app, "POST", "/v1/ask", Some(json!({"question": "What does eval do?"}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["generated"], false);
    let (s, v) = call(
        &app,
        "POST",
        "/v1/ask",
        Some(json!({"question": "What does eval do?", "generate": true, "max_tokens": 8})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["generated"], true);
    assert!(v["timings"]["tokens"].as_u64().unwrap() >= 1);
    // Streamed: evidence first, text, then the whole answer.
    let (s, b) = call_raw(
        &app,
        "POST",
        "/v1/ask",
        Some(
            json!({"question": "What does eval do?", "generate": true, "max_tokens": 8, "stream": true})
                .to_string()
                .into_bytes(),
        ),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let events = sse_data(&b);
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert!(!first["evidence"].as_array().unwrap().is_empty());
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["text"], v["text"], "streamed and whole answers agree");
    // Nothing answers: 404 with a JSON error.
    let (s, v) = call(
        &app,
        "POST",
        "/v1/ask",
        Some(json!({"question": "zebra quagga okapi giraffe"})),
    )
    .await;
    is_error(&v, s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completions_plain_grounded_and_streamed() {
    let app = app();
    let req =
        json!({"model": "demo", "messages": [{"role": "user", "content": "fn add(a: i64, b: i64)"}], "max_tokens": 6});
    let (s, v) = call(&app, "POST", "/v1/chat/completions", Some(req.clone())).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    let text = v["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() >= 1);
    let mut sreq = req.clone();
    sreq["stream"] = json!(true);
    sreq["stream_options"] = json!({"include_usage": true});
    let (s, b) = call_raw(
        &app,
        "POST",
        "/v1/chat/completions",
        Some(sreq.to_string().into_bytes()),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let events = sse_data(&b);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let id = chunks[0]["id"].as_str().unwrap();
    let mut streamed = String::new();
    for c in &chunks {
        assert_eq!(c["id"], id);
        assert_eq!(c["object"], "chat.completion.chunk");
        assert!(c["created"].as_u64().is_some());
        assert_eq!(c["model"], "demo");
        if let Some(t) = c["choices"][0]["delta"]["content"].as_str() {
            streamed.push_str(t);
        }
    }
    assert_eq!(streamed, text, "streamed and whole completions agree (greedy)");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"].is_string()));
    assert!(chunks.last().unwrap()["usage"]["total_tokens"].as_u64().is_some());
    // Grounded in the store: evidence and sources beside the message.
    let g = json!({"model": "demo", "messages": [{"role": "user", "content": "What does eval do?"}], "max_tokens": 6, "rwkv": {"store": "code"}});
    let (s, v) = call(&app, "POST", "/v1/chat/completions", Some(g)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(!v["evidence"].as_array().unwrap().is_empty());
    assert!(v["sources"][0]["path"].as_str().unwrap().ends_with("main.rs"));
    // Completions.
    let (s, v) = call(
        &app,
        "POST",
        "/v1/completions",
        Some(json!({"model": "demo", "prompt": "fn main() {", "max_tokens": 5})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert_eq!(v["choices"][0]["finish_reason"], "length");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_asks_give_the_answers_asked_alone() {
    let app = app();
    let questions = [
        "What does eval do?",
        "How is an expression evaluated?",
        "What is the entry point?",
        "evaluate",
    ];
    let ask = |q: &str| json!({"question": q, "generate": true, "max_tokens": 12});
    let mut alone = Vec::new();
    for q in &questions {
        let (s, v) = call(&app, "POST", "/v1/ask", Some(ask(q))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        alone.push(v["text"].clone());
    }
    let mut handles = Vec::new();
    for i in 0..32 {
        let (app, body) = (app.clone(), ask(questions[i % questions.len()]));
        handles.push(tokio::spawn(
            async move { call(&app, "POST", "/v1/ask", Some(body)).await },
        ));
    }
    for (i, h) in handles.into_iter().enumerate() {
        let (s, v) = h.await.unwrap();
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(
            v["text"],
            alone[i % questions.len()],
            "request {i}: same answer as alone"
        );
    }
    assert_eq!(app.engine_load(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_out_and_back_continues_as_the_checkpoint_does() {
    let app = app();
    let f = fixture();
    let (_, v) = call(&app, "GET", "/v1/stores/code/documents", None).await;
    let main = v["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"].as_str().unwrap().ends_with("src/main.rs"))
        .unwrap()
        .clone();
    let key = main["checkpoints"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let (s, b) = call_raw(&app, "GET", &format!("/v1/stores/code/states/{key}"), None, &[]).await;
    assert_eq!(s, StatusCode::OK);
    let (s, up) = call_raw(
        &app,
        "POST",
        "/v1/states",
        Some(b.clone()),
        &[("content-type", "application/octet-stream")],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let up: Value = serde_json::from_slice(&up).unwrap();
    let tmp = up["state"].as_str().unwrap().to_string();
    let prompt = "\nfn twice(x: i64) -> i64 {";
    let body =
        |k: &str| json!({"model": "demo", "prompt": prompt, "max_tokens": 12, "rwkv": {"state": k, "store": "code"}});
    let (s, from_upload) = call(&app, "POST", "/v1/completions", Some(body(&tmp))).await;
    assert_eq!(s, StatusCode::OK, "{from_upload}");
    let (_, from_key) = call(&app, "POST", "/v1/completions", Some(body(&key))).await;
    assert_eq!(from_upload["choices"][0]["text"], from_key["choices"][0]["text"]);
    // What resuming that checkpoint directly gives (as rwkv-ask does).
    let lib = rwkv_heads::Library::open(&f.store, f.model, f.tokenizer.clone()).unwrap();
    let mut st = lib.restore_checkpoint(&key).unwrap();
    let toks = f.tokenizer.encode(prompt);
    let mut logits = f.model.forward_seq(&toks, &mut st, rwkv_model::Logits::Last).unwrap();
    let mut stream = rwkv_heads::TextStream::with_stops(f.tokenizer.as_ref(), &[]);
    let mut want = String::new();
    for i in 0..12 {
        let t = rwkv_heads::sample::Sampler::new(rwkv_heads::sample::SamplerConfig::greedy()).sample(&logits);
        want.push_str(&stream.push(f.tokenizer.as_ref(), t));
        if stream.finished().is_some() {
            break;
        }
        if i == 11 {
            want.push_str(&stream.end());
            break;
        }
        logits = f.model.forward_token(t, &mut st).unwrap();
    }
    assert_eq!(from_upload["choices"][0]["text"], want.as_str());
    // return_state: the final state comes back as a scratch key that can be fetched and used.
    let (s, v) = call(
        &app,
        "POST",
        "/v1/completions",
        Some(json!({"model": "demo", "prompt": "let x = 1;", "max_tokens": 3, "return_state": true})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let k = v["rwkv"]["state"].as_str().unwrap();
    assert!(k.starts_with(rwkv_serve::SCRATCH_PREFIX));
    let (s, _) = call_raw(&app, "GET", &format!("/v1/stores/code/states/{k}"), None, &[]).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = call_raw(
        &app,
        "GET",
        &format!("/v1/stores/code/states/{key}?layout=ai00"),
        None,
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let st = safetensors::SafeTensors::deserialize(&b).unwrap();
    assert_eq!(
        st.tensor("blocks.0.att.time_state").unwrap().dtype(),
        safetensors::Dtype::F16
    );
    // Garbage is refused as a state.
    let (s, b) = call_raw(&app, "POST", "/v1/states", Some(b"not a state".to_vec()), &[]).await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    is_error(&v, s, StatusCode::BAD_REQUEST);
    let (s, v) = call(&app, "GET", "/v1/stores/code/states/00ff", None).await;
    is_error(&v, s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_json_error_and_the_server_keeps_serving() {
    let app = app_with(ServeOptions {
        model_id: "demo".into(),
        demo: true,
        body_limit: 4096,
        ..ServeOptions::default()
    });
    let (s, b) = call_raw(&app, "POST", "/v1/chat/completions", Some(b"{not json".to_vec()), &[]).await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    is_error(&v, s, StatusCode::BAD_REQUEST);
    let (s, v) = call(
        &app,
        "POST",
        "/v1/search",
        Some(json!({"store": "nope", "question": "eval"})),
    )
    .await;
    is_error(&v, s, StatusCode::NOT_FOUND);
    let (s, v) = call(
        &app,
        "POST",
        "/v1/chat/completions",
        Some(json!({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]})),
    )
    .await;
    is_error(&v, s, StatusCode::NOT_FOUND);
    let big = json!({"model": "demo", "prompt": "x".repeat(10_000)});
    let (s, v) = call(&app, "POST", "/v1/completions", Some(big)).await;
    is_error(&v, s, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, v) = call(
        &app,
        "POST",
        "/v1/completions",
        Some(json!({"model": "demo", "prompt": "x", "max_tokens": 1_000_000})),
    )
    .await;
    is_error(&v, s, StatusCode::BAD_REQUEST);
    let (s, v) = call(
        &app,
        "POST",
        "/v1/completions",
        Some(json!({"model": "demo", "prompt": "x", "temperature": -1})),
    )
    .await;
    is_error(&v, s, StatusCode::BAD_REQUEST);
    let (s, v) = call(&app, "GET", "/v1/stores/code/file?path=../../etc/passwd", None).await;
    is_error(&v, s, StatusCode::NOT_FOUND);
    let (s, v) = call(&app, "GET", "/v1/nothing", None).await;
    is_error(&v, s, StatusCode::NOT_FOUND);
    // Ingest jobs are off without --allow-root.
    let (s, v) = call(&app, "POST", "/v1/stores/code/ingest", Some(json!({"paths": ["/etc"]}))).await;
    is_error(&v, s, StatusCode::FORBIDDEN);
    // An MCP client sending garbage gets a client error, not a hang or a crash.
    let (s, _) = call_raw(
        &app,
        "POST",
        "/mcp",
        Some(b"\x00garbage{".to_vec()),
        &[("accept", "application/json, text/event-stream")],
    )
    .await;
    assert!(s.is_client_error(), "{s}");
    let (s, v) = call(&app, "GET", "/health", None).await;
    assert_eq!(s, StatusCode::OK, "still serving: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_and_the_queue_limit() {
    let app = app_with(ServeOptions {
        model_id: "demo".into(),
        api_key: Some("sesame".into()),
        capacity: 1,
        ..ServeOptions::default()
    });
    let (s, _) = call_raw(&app, "GET", "/health", None, &[]).await;
    assert_eq!(s, StatusCode::OK, "health needs no key");
    let (s, b) = call_raw(&app, "GET", "/v1/models", None, &[]).await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    is_error(&v, s, StatusCode::UNAUTHORIZED);
    let (s, b) = call_raw(&app, "GET", "/v1/models", None, &[("authorization", "Bearer wrong")]).await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    is_error(&v, s, StatusCode::UNAUTHORIZED);
    let (s, _) = call_raw(&app, "GET", "/v1/models", None, &[("authorization", "Bearer sesame")]).await;
    assert_eq!(s, StatusCode::OK);
    // One long generation fills the queue: the next request gets 429 with Retry-After.
    let long = json!({"model": "demo", "prompt": "fn main() {", "max_tokens": 4000, "rwkv": {"ignore_stop": true}});
    let (a2, l2) = (app.clone(), long.clone());
    let h = tokio::spawn(async move {
        call_raw(
            &a2,
            "POST",
            "/v1/completions",
            Some(l2.to_string().into_bytes()),
            &[("authorization", "Bearer sesame")],
        )
        .await
    });
    while app.engine_load() == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let req = Request::builder()
        .method("POST")
        .uri("/v1/completions")
        .header("content-type", "application/json")
        .header("authorization", "Bearer sesame")
        .body(Body::from(
            json!({"model": "demo", "prompt": "x", "max_tokens": 2}).to_string(),
        ))
        .unwrap();
    let resp = router(app.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
    // A client that goes away stops its generation.
    h.abort();
    let t0 = std::time::Instant::now();
    while app.engine_load() != 0 {
        assert!(t0.elapsed().as_secs() < 30, "the abandoned generation stops");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // So does one that stops reading a stream after its first chunk.
    let req = Request::builder()
        .method("POST")
        .uri("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("authorization", "Bearer sesame")
        .body(Body::from(
            json!({"model": "demo", "messages": [{"role": "user", "content": "fn main() {"}], "max_tokens": 4000, "stream": true, "rwkv": {"ignore_stop": true}}).to_string(),
        ))
        .unwrap();
    let resp = router(app.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body().into_data_stream();
    use futures::StreamExt;
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("chat.completion.chunk"));
    assert_eq!(app.engine_load(), 1);
    drop(body);
    let t0 = std::time::Instant::now();
    while app.engine_load() != 0 {
        assert!(t0.elapsed().as_secs() < 30, "the abandoned generation stops");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_jobs_read_only_under_allowed_roots() {
    let dir = tempfile::tempdir().unwrap();
    let allowed = dir.path().join("allowed");
    std::fs::create_dir_all(&allowed).unwrap();
    std::fs::write(
        allowed.join("notes.py"),
        "def frobnicate_widgets(n):\n    return n * 2\n",
    )
    .unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.py"), "def secret(): pass\n").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&outside, allowed.join("link")).unwrap();
    let store = dir.path().join("fresh");
    let app = common::app_at(
        &store,
        ServeOptions {
            model_id: "demo".into(),
            demo: true,
            allow_roots: vec![allowed.clone()],
            ..ServeOptions::default()
        },
    );
    // An empty store: asks say so.
    let (s, v) = call(&app, "POST", "/v1/search", Some(json!({"question": "frobnicate"}))).await;
    is_error(&v, s, StatusCode::NOT_FOUND);
    for bad in [
        outside.display().to_string(),
        format!("{}/../outside", allowed.display()),
        allowed.join("link").display().to_string(),
    ] {
        let (s, v) = call(&app, "POST", "/v1/stores/fresh/ingest", Some(json!({"paths": [bad]}))).await;
        is_error(&v, s, StatusCode::FORBIDDEN);
    }
    assert!(!store.exists(), "nothing was written for a refused job");
    let (s, v) = call(
        &app,
        "POST",
        "/v1/stores/fresh/ingest",
        Some(json!({"paths": [allowed.join("notes.py").display().to_string()]})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let t0 = std::time::Instant::now();
    loop {
        let (s, v) = call(&app, "GET", &format!("/v1/jobs/{id}"), None).await;
        assert_eq!(s, StatusCode::OK);
        match v["status"].as_str().unwrap() {
            "running" => {}
            "done" => break,
            other => panic!("job ended {other}: {v}"),
        }
        assert!(t0.elapsed().as_secs() < 120);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (s, v) = call(
        &app,
        "POST",
        "/v1/search",
        Some(json!({"question": "What does frobnicate_widgets do?"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["sources"][0]["path"].as_str().unwrap().ends_with("notes.py"));
    let (s, v) = call(&app, "GET", "/v1/jobs/job-99", None).await;
    is_error(&v, s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_leaves_a_store_the_next_job_completes() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let src = root().join("crates/rwkv-index/src");
    let store = dir.path().join("idx");
    let app = App::new(
        f.model,
        f.tokenizer.clone(),
        std::slice::from_ref(&store),
        ServeOptions {
            model_id: "demo".into(),
            allow_roots: vec![root().join("crates")],
            ..ServeOptions::default()
        },
    )
    .unwrap();
    let body = json!({"paths": [src.canonicalize().unwrap().display().to_string()]});
    let wait = |id: String| {
        let app = app.clone();
        async move {
            let t0 = std::time::Instant::now();
            loop {
                let (_, v) = call(&app, "GET", &format!("/v1/jobs/{id}"), None).await;
                if v["status"] != "running" {
                    return v;
                }
                assert!(t0.elapsed().as_secs() < 300, "{v}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    let (s, v) = call(&app, "POST", "/v1/stores/idx/ingest", Some(body.clone())).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    // A second job on the same store is refused while the first runs.
    let (s, v2) = call(&app, "POST", "/v1/stores/idx/ingest", Some(body.clone())).await;
    is_error(&v2, s, StatusCode::BAD_REQUEST);
    let (s, _) = call(&app, "DELETE", &format!("/v1/jobs/{id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    let v = wait(id).await;
    assert!(v["status"] == "cancelled" || v["status"] == "done", "{v}");
    let files = std::fs::read_dir(&src).unwrap().count() as u64;
    if v["status"] == "cancelled" {
        assert!(v["documents_done"].as_u64().unwrap() < files, "{v}");
    }
    // The next job finishes what the cancelled one left.
    let (_, v) = call(&app, "POST", "/v1/stores/idx/ingest", Some(body)).await;
    let v = wait(v["id"].as_str().unwrap().to_string()).await;
    assert_eq!(v["status"], "done", "{v}");
    assert!(v["tokens_per_second"].as_f64().unwrap() >= 0.0);
    let (_, d) = call(&app, "GET", "/v1/stores/idx/documents", None).await;
    assert_eq!(d["documents"].as_array().unwrap().len() as u64, files, "{d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_folded_on_demand_is_committed_for_the_next_question() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("lazy");
    common::index_only_into(f.model, f.tokenizer.clone(), &root().join("fixtures/code"), &store);
    let app = common::app_at(
        &store,
        ServeOptions {
            model_id: "demo".into(),
            demo: true,
            ..ServeOptions::default()
        },
    );
    let ask = json!({"question": "What does eval do?", "generate": true, "max_tokens": 8});
    let (s, first) = call(&app, "POST", "/v1/ask", Some(ask.clone())).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    let path = first["sources"][0]["path"].as_str().unwrap().to_string();
    assert_eq!(
        first["sources"][0]["checkpoint"], "",
        "answered from a fold on demand: {first}"
    );
    // The server commits that document on a thread of its own.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let (_, v) = call(&app, "GET", "/v1/stores/lazy/documents", None).await;
        let doc = v["documents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["path"] == path.as_str())
            .cloned();
        if doc.is_some_and(|d| !d["checkpoints"].as_array().unwrap().is_empty()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{path} was not committed: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The next question resumes a stored checkpoint and says the same.
    let (s, second) = call(&app, "POST", "/v1/ask", Some(ask)).await;
    assert_eq!(s, StatusCode::OK, "{second}");
    assert_ne!(second["sources"][0]["checkpoint"], "", "{second}");
    assert_eq!(second["text"], first["text"]);
    assert_eq!(second["evidence"], first["evidence"]);
}
