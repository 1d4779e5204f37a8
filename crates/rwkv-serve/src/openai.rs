//! The OpenAI-compatible routes: `/v1/chat/completions` and `/v1/completions`, streaming (SSE
//! chunks ending `data: [DONE]`) or not, with the `rwkv` extension: `{"store": NAME}` grounds a
//! chat turn in a store (answered as `rwkv-ask` answers it; the response carries `evidence` and
//! `sources`), `{"state": KEY}` continues a completion from a saved state and `return_state`
//! gives the final state's key back.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use rwkv_heads::{Template, clean_user_text};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::app::{App, AskStart};
use crate::engine::{Done, Event};
use crate::error::{ApiError, ApiResult};
use crate::http::{blocking, body, sampler};

/// A message's content: text, or parts of which the text ones count.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
    Null(()),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

impl Content {
    fn text(&self) -> String {
        match self {
            Content::Text(s) => s.clone(),
            Content::Parts(p) => p
                .iter()
                .filter(|p| p.kind == "text")
                .filter_map(|p| p.text.clone())
                .collect::<Vec<_>>()
                .join("\n"),
            Content::Null(()) => String::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    #[serde(default = "no_content")]
    content: Content,
}

fn no_content() -> Content {
    Content::Null(())
}

/// `stop`: one text or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    fn list(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// The `rwkv` extension of a request.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Ext {
    /// Ground the chat turn in this store.
    store: Option<String>,
    /// Continue from this state (`tmp-…`, a checkpoint key of `store`, or `STORE:KEY`).
    state: Option<String>,
    /// Give the final state's key back.
    #[serde(default)]
    return_state: bool,
    /// Always generate `max_tokens` (benchmarks).
    #[serde(default)]
    ignore_stop: bool,
    /// Units read for a grounded turn.
    top: Option<usize>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChatRequest {
    model: String,
    messages: Vec<Message>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    max_tokens: Option<usize>,
    max_completion_tokens: Option<usize>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    seed: Option<u64>,
    stop: Option<Stop>,
    n: Option<usize>,
    #[serde(default)]
    return_state: bool,
    #[serde(default)]
    rwkv: Option<Ext>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Prompt {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
pub(crate) struct CompletionRequest {
    model: String,
    prompt: Prompt,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    max_tokens: Option<usize>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    seed: Option<u64>,
    stop: Option<Stop>,
    n: Option<usize>,
    #[serde(default)]
    return_state: bool,
    #[serde(default)]
    rwkv: Option<Ext>,
}

fn check_model(app: &App, model: &str, n: Option<usize>) -> ApiResult<()> {
    if model != app.opts.model_id {
        return Err(ApiError::NotFound(format!(
            "no model {model:?}: this server serves {:?} (see /v1/models)",
            app.opts.model_id
        )));
    }
    if n.is_some_and(|n| n != 1) {
        return Err(ApiError::BadRequest("only n = 1 is supported".into()));
    }
    Ok(())
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn new_id(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = format!("{:?}{n}{}", SystemTime::now(), std::process::id());
    format!("{prefix}-{}", &blake3::hash(seed.as_bytes()).to_hex()[..24])
}

fn finish_reason(f: &str) -> &'static str {
    match f {
        "max_tokens" => "length",
        _ => "stop",
    }
}

/// The prompt of a conversation in the server's template: earlier turns as they were, then the
/// last user message as the template asks it.
fn chat_prompt(template: &Template, messages: &[Message]) -> ApiResult<String> {
    let last = messages
        .iter()
        .rposition(|m| m.role == "user")
        .ok_or_else(|| ApiError::BadRequest("the messages hold no user message".into()))?;
    if messages[last + 1..].iter().any(|m| m.role != "system") {
        return Err(ApiError::BadRequest("the last message must be the user's".into()));
    }
    let mut out = String::new();
    let g1 = matches!(template, Template::G1 { .. });
    for m in &messages[..last] {
        let text = m.content.text();
        let text = if g1 {
            clean_user_text(&text)
        } else {
            text.trim().to_string()
        };
        match (m.role.as_str(), template) {
            ("system" | "developer", Template::Plain) => out.push_str(&format!("{text}\n\n")),
            ("system" | "developer", _) => out.push_str(&format!("System: {text}\n\n")),
            ("user", Template::Plain) => out.push_str(&format!("Question: {text}\n")),
            ("user", _) => out.push_str(&format!("User: {text}\n\n")),
            ("assistant", Template::Plain) => out.push_str(&format!("Answer: {text}\n\n")),
            ("assistant", _) => out.push_str(&format!("Assistant: {text}\n\n")),
            (r, _) => return Err(ApiError::BadRequest(format!("unknown message role {r:?}"))),
        }
    }
    out.push_str(&template.prompt(&messages[last].content.text()));
    Ok(out)
}

fn usage(d: &Done) -> Value {
    json!({
        "prompt_tokens": d.prompt_tokens,
        "completion_tokens": d.completion_tokens,
        "total_tokens": d.prompt_tokens + d.completion_tokens,
    })
}

fn timings(d: &Done) -> Value {
    json!({
        "queue_ms": d.queue_ms,
        "read_ms": d.read_ms,
        "first_token_ms": d.first_token_ms,
        "generate_ms": d.generate_ms,
        "tokens_per_second": d.completion_tokens as f64 / (d.generate_ms / 1e3).max(1e-9),
    })
}

/// What a streamed response needs to shape its chunks.
struct Shape {
    id: String,
    created: u64,
    model: String,
    chat: bool,
    include_usage: bool,
    /// Extra fields of the first chunk (a grounded turn's evidence and sources).
    first_extra: Option<Value>,
}

impl Shape {
    fn chunk(&self, text: Option<&str>, role: bool, finish: Option<&str>) -> Value {
        let choice = if self.chat {
            let mut delta = serde_json::Map::new();
            if role {
                delta.insert("role".into(), json!("assistant"));
            }
            if let Some(t) = text {
                delta.insert("content".into(), json!(t));
            }
            json!({"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null})
        } else {
            json!({"index": 0, "text": text.unwrap_or(""), "finish_reason": finish, "logprobs": null})
        };
        json!({
            "id": self.id,
            "object": if self.chat { "chat.completion.chunk" } else { "text_completion" },
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        })
    }
}

fn sse(
    shape: Shape,
    mut rx: mpsc::UnboundedReceiver<Event>,
    keep: Arc<App>,
    return_state: bool,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send {
    use std::task::Poll;
    let mut queue: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut first = true;
    let mut ended = false;
    futures::stream::poll_fn(move |cx| {
        loop {
            if let Some(d) = queue.pop_front() {
                return Poll::Ready(Some(Ok(SseEvent::default().data(d))));
            }
            if ended {
                return Poll::Ready(None);
            }
            if first {
                first = false;
                let mut c = shape.chunk(shape.chat.then_some(""), shape.chat, None);
                if let (Some(extra), Some(obj)) = (&shape.first_extra, c.as_object_mut())
                    && let Some(e) = extra.as_object()
                {
                    for (k, v) in e {
                        obj.insert(k.clone(), v.clone());
                    }
                }
                if shape.chat {
                    queue.push_back(c.to_string());
                }
                continue;
            }
            match rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    ended = true;
                    let e = ApiError::Internal("the engine stopped".into()).body();
                    queue.push_back(e.to_string());
                }
                Poll::Ready(Some(Event::Text(t))) => queue.push_back(shape.chunk(Some(&t), false, None).to_string()),
                Poll::Ready(Some(Event::Failed(e))) => {
                    ended = true;
                    queue.push_back(ApiError::Internal(e).body().to_string());
                    queue.push_back("[DONE]".into());
                }
                Poll::Ready(Some(Event::Done(mut d))) => {
                    ended = true;
                    let mut last = shape.chunk(None, false, Some(finish_reason(d.finish)));
                    if let Some(obj) = last.as_object_mut() {
                        let mut ext = json!({"timings": timings(&d)});
                        if return_state && let Some(st) = d.state.take() {
                            ext["state"] = json!(keep.keep_state(st));
                        }
                        obj.insert("rwkv".into(), ext);
                    }
                    queue.push_back(last.to_string());
                    if shape.include_usage {
                        let mut u = shape.chunk(None, false, None);
                        u["choices"] = json!([]);
                        u["usage"] = usage(&d);
                        queue.push_back(u.to_string());
                    }
                    queue.push_back("[DONE]".into());
                }
            }
        }
    })
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat(
    State(app): State<Arc<App>>,
    b: Result<Json<ChatRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let req = body(b)?;
    check_model(&app, &req.model, req.n)?;
    let ext = req.rwkv.unwrap_or_default();
    let max_tokens = app.max_tokens(req.max_completion_tokens.or(req.max_tokens), 256)?;
    let sampler = sampler(req.temperature, req.top_p, req.seed)?;
    let mut stops: Vec<String> = req.stop.map(Stop::list).unwrap_or_default();
    if stops.len() > 4 {
        return Err(ApiError::BadRequest("at most 4 stop texts".into()));
    }
    let return_state = req.return_state || ext.return_state;
    let shape = Shape {
        id: new_id("chatcmpl"),
        created: now_s(),
        model: req.model.clone(),
        chat: true,
        include_usage: req.stream_options.unwrap_or_default().include_usage,
        first_extra: None,
    };
    if let Some(store) = ext.store.clone() {
        // Grounded: the last user message is answered as `rwkv-ask` answers it.
        let question = req
            .messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(|m| m.content.text())
            .ok_or_else(|| ApiError::BadRequest("the messages hold no user message".into()))?;
        let opts = app.ask_options(ext.top, Some(max_tokens), sampler, true);
        let a2 = app.clone();
        let start = blocking(move || a2.start_ask(&store, &question, &opts)).await?;
        let pending = match start {
            AskStart::Generating(p) => *p,
            AskStart::NotFound | AskStart::Done(_) => {
                let msg = "Not found in this store (no matching documents).";
                let v = json!({
                    "id": shape.id, "object": "chat.completion", "created": shape.created, "model": shape.model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": msg}, "finish_reason": "stop", "logprobs": null}],
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                    "evidence": [], "sources": [], "rwkv": {"answered": false},
                });
                return Ok(Json(v).into_response());
            }
        };
        let grounding = json!({"evidence": pending.evidence, "sources": pending.sources, "support": pending.support});
        if req.stream {
            let shape = Shape {
                first_extra: Some(grounding),
                ..shape
            };
            return Ok(Sse::new(sse(shape, pending.rx, app.clone(), false))
                .keep_alive(KeepAlive::default())
                .into_response());
        }
        let (answer, done) = pending.collect().await?;
        let v = json!({
            "id": shape.id, "object": "chat.completion", "created": shape.created, "model": shape.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text}, "finish_reason": finish_reason(done.finish), "logprobs": null}],
            "usage": usage(&done),
            "evidence": answer.evidence, "sources": answer.sources,
            "rwkv": {"answered": true, "support": answer.support, "timings": answer.timings},
        });
        return Ok(Json(v).into_response());
    }
    let prompt = chat_prompt(&app.opts.template, &req.messages)?;
    stops.insert(0, app.opts.template.stop().to_string());
    let state = match &ext.state {
        Some(k) => {
            let (a2, k) = (app.clone(), k.clone());
            blocking(move || a2.state_by_key(None, &k)).await?
        }
        None => app.model.new_state(),
    };
    let tokens = app.tokenizer.encode(&prompt);
    let rx = app.generate(state, tokens, sampler, max_tokens, stops, ext.ignore_stop, return_state)?;
    respond(app, shape, rx, req.stream, return_state).await
}

/// `POST /v1/completions`.
pub(crate) async fn completions(
    State(app): State<Arc<App>>,
    b: Result<Json<CompletionRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let req = body(b)?;
    check_model(&app, &req.model, req.n)?;
    let ext = req.rwkv.unwrap_or_default();
    let prompt = match req.prompt {
        Prompt::One(s) => s,
        Prompt::Many(mut v) if v.len() == 1 => v.remove(0),
        Prompt::Many(_) => return Err(ApiError::BadRequest("give one prompt".into())),
    };
    let max_tokens = app.max_tokens(req.max_tokens, 16)?;
    let sampler = sampler(req.temperature, req.top_p, req.seed)?;
    let stops: Vec<String> = req.stop.map(Stop::list).unwrap_or_default();
    if stops.len() > 4 {
        return Err(ApiError::BadRequest("at most 4 stop texts".into()));
    }
    let return_state = req.return_state || ext.return_state;
    let state = match &ext.state {
        Some(k) => {
            let (a2, k, s) = (app.clone(), k.clone(), ext.store.clone());
            blocking(move || a2.state_by_key(s.as_deref(), &k)).await?
        }
        None => app.model.new_state(),
    };
    let tokens = app.tokenizer.encode(&prompt);
    let rx = app.generate(state, tokens, sampler, max_tokens, stops, ext.ignore_stop, return_state)?;
    let shape = Shape {
        id: new_id("cmpl"),
        created: now_s(),
        model: req.model.clone(),
        chat: false,
        include_usage: req.stream_options.unwrap_or_default().include_usage,
        first_extra: None,
    };
    respond(app, shape, rx, req.stream, return_state).await
}

async fn respond(
    app: Arc<App>,
    shape: Shape,
    rx: mpsc::UnboundedReceiver<Event>,
    stream: bool,
    return_state: bool,
) -> ApiResult<Response> {
    if stream {
        return Ok(Sse::new(sse(shape, rx, app, return_state))
            .keep_alive(KeepAlive::default())
            .into_response());
    }
    let (text, mut done) = crate::app::collect(rx).await?;
    let mut ext = json!({"timings": timings(&done)});
    if return_state && let Some(st) = done.state.take() {
        ext["state"] = json!(app.keep_state(st));
    }
    let choice = if shape.chat {
        json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason(done.finish), "logprobs": null})
    } else {
        json!({"index": 0, "text": text, "finish_reason": finish_reason(done.finish), "logprobs": null})
    };
    Ok(Json(json!({
        "id": shape.id,
        "object": if shape.chat { "chat.completion" } else { "text_completion" },
        "created": shape.created,
        "model": shape.model,
        "choices": [choice],
        "usage": usage(&done),
        "rwkv": ext,
    }))
    .into_response())
}
