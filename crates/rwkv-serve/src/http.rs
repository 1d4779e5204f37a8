//! The HTTP routes: health, models, the native API (`/v1/ask`, `/v1/search`, documents, files,
//! summaries, states, ingest jobs), the OpenAI-compatible API ([`crate::openai`]) and MCP over
//! streamable HTTP at `/mcp` ([`crate::mcp`]).

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use rwkv_heads::sample::SamplerConfig;
use serde::Deserialize;
use tower_http::cors::CorsLayer;
use tower_http::trace::TraceLayer;

use crate::app::{App, AskStart};
use crate::engine::Event;
use crate::error::{ApiError, ApiResult};
use crate::jobs::IngestRequest;

/// The whole router of a server (MCP included).
pub fn router(app: Arc<App>) -> Router {
    let limit = app.opts.body_limit;
    let mcp = crate::mcp::http_service(app.clone());
    let api = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(crate::openai::chat))
        .route("/v1/completions", post(crate::openai::completions))
        .route("/v1/ask", post(ask))
        .route("/v1/search", post(search))
        .route("/v1/summarize", post(summarize))
        .route("/v1/stores", get(stores))
        .route("/v1/stores/{name}/documents", get(documents))
        .route("/v1/stores/{name}/file", get(file))
        .route("/v1/stores/{name}/states/{key}", get(crate::states::get_state))
        .route("/v1/states", post(crate::states::put_state))
        .route("/v1/stores/{name}/ingest", post(ingest))
        .route("/v1/jobs/{id}", get(job).delete(cancel_job))
        .nest_service("/mcp", mcp)
        .route_layer(middleware::from_fn_with_state(app.clone(), auth));
    Router::new()
        .route("/health", get(health))
        .merge(api)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(CorsLayer::permissive())
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}

/// Every route but `/health` needs the key, when the server has one.
async fn auth(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if let Some(key) = &app.opts.api_key {
        let h = req.headers();
        let given = h
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| h.get("x-api-key").and_then(|v| v.to_str().ok()));
        match given {
            None => {
                return ApiError::Unauthorized("an API key is required: send `Authorization: Bearer KEY`".into())
                    .into_response();
            }
            Some(g) if !constant_time_eq(g.trim().as_bytes(), key.as_bytes()) => {
                return ApiError::Unauthorized("the API key is wrong".into()).into_response();
            }
            Some(_) => {}
        }
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route; see docs/guide.md, \"Serve\", for the API".into())
}

async fn health(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "model": app.opts.model_id,
        "stores": app.store_names(),
        "generations": app.engine.load(),
        "capacity": app.engine.capacity(),
        "uptime_s": app.started.elapsed().as_secs_f64(),
    }))
}

async fn models(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Json(serde_json::json!({
        "object": "list",
        "data": [{
            "id": app.opts.model_id,
            "object": "model",
            "created": created,
            "owned_by": "rwkv-reader",
            "stores": app.store_names(),
        }]
    }))
}

async fn stores(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    let list: Vec<serde_json::Value> = app
        .stores
        .iter()
        .map(|(name, slot)| {
            let lib = slot
                .lib
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            let documents = lib
                .and_then(|l| l.store().stats().ok())
                .map(|s| s.documents)
                .unwrap_or(0);
            serde_json::json!({"name": name, "dir": slot.dir.display().to_string(), "documents": documents})
        })
        .collect();
    Json(serde_json::json!({"stores": list}))
}

/// Run blocking work (retrieval, reading the store) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await?
}

/// A JSON body, its errors as JSON.
pub(crate) fn body<T>(b: Result<Json<T>, JsonRejection>) -> ApiResult<T> {
    Ok(b?.0)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchRequest {
    store: Option<String>,
    question: String,
    top: Option<usize>,
}

async fn search(State(app): State<Arc<App>>, b: Result<Json<SearchRequest>, JsonRejection>) -> ApiResult<Response> {
    let req = body(b)?;
    let store = app.default_store(req.store.as_deref())?;
    let r = blocking(move || app.search(&store, &req.question, req.top)).await?;
    Ok(Json(r).into_response())
}

/// `/v1/ask`'s request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AskRequest {
    pub store: Option<String>,
    pub question: String,
    pub top: Option<usize>,
    pub max_tokens: Option<usize>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub seed: Option<u64>,
    /// Generate an answer (default: yes, except with the demo model).
    pub generate: Option<bool>,
    #[serde(default)]
    pub stream: bool,
}

pub(crate) fn sampler(temperature: Option<f32>, top_p: Option<f32>, seed: Option<u64>) -> ApiResult<SamplerConfig> {
    let t = temperature.unwrap_or(0.0);
    let p = top_p.unwrap_or(1.0);
    if !(0.0..=100.0).contains(&t) || !t.is_finite() {
        return Err(ApiError::BadRequest(format!("temperature {t} is out of range (0 … 2)")));
    }
    if !(p > 0.0 && p <= 1.0) {
        return Err(ApiError::BadRequest(format!("top_p {p} is out of range (0 … 1]")));
    }
    Ok(SamplerConfig {
        temperature: t,
        top_p: p,
        seed: seed.unwrap_or(0),
        ..SamplerConfig::greedy()
    })
}

async fn ask(State(app): State<Arc<App>>, b: Result<Json<AskRequest>, JsonRejection>) -> ApiResult<Response> {
    let req = body(b)?;
    let store = app.default_store(req.store.as_deref())?;
    let generate = req.generate.unwrap_or(!app.opts.demo);
    let max_tokens = app.max_tokens(req.max_tokens, 256)?;
    let opts = app.ask_options(
        req.top,
        Some(max_tokens),
        sampler(req.temperature, req.top_p, req.seed)?,
        generate,
    );
    let question = req.question.clone();
    let a2 = app.clone();
    let start = blocking(move || a2.start_ask(&store, &question, &opts)).await?;
    let pending = match start {
        AskStart::NotFound => {
            return Err(ApiError::NotFound(
                "not found in this store (no matching documents)".into(),
            ));
        }
        AskStart::Done(a) => return Ok(Json(*a).into_response()),
        AskStart::Generating(p) => *p,
    };
    if !req.stream {
        let (answer, _) = pending.collect().await?;
        return Ok(Json(answer).into_response());
    }
    // SSE: `evidence` (with the sources) first, `text` chunks, then `done` with the whole answer.
    let first =
        serde_json::json!({"evidence": pending.evidence, "sources": pending.sources, "support": pending.support});
    let stream = async_stream(first, pending);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

fn async_stream(
    first: serde_json::Value,
    mut pending: crate::app::Pending,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send {
    let mut text = String::new();
    let mut sent_first = false;
    let mut finished = false;
    futures::stream::poll_fn(move |cx| {
        if finished {
            return std::task::Poll::Ready(None);
        }
        if !sent_first {
            sent_first = true;
            return std::task::Poll::Ready(Some(Ok(SseEvent::default().event("evidence").data(first.to_string()))));
        }
        match pending.rx.poll_recv(cx) {
            std::task::Poll::Pending => std::task::Poll::Pending,
            std::task::Poll::Ready(None) => {
                finished = true;
                std::task::Poll::Ready(None)
            }
            std::task::Poll::Ready(Some(Event::Text(t))) => {
                text.push_str(&t);
                let data = serde_json::json!({ "text": t }).to_string();
                std::task::Poll::Ready(Some(Ok(SseEvent::default().event("text").data(data))))
            }
            std::task::Poll::Ready(Some(Event::Done(d))) => {
                finished = true;
                let answer = pending.answer(std::mem::take(&mut text), &d);
                let data = serde_json::to_string(&answer).unwrap_or_default();
                std::task::Poll::Ready(Some(Ok(SseEvent::default().event("done").data(data))))
            }
            std::task::Poll::Ready(Some(Event::Failed(e))) => {
                finished = true;
                let data = ApiError::Internal(e).body().to_string();
                std::task::Poll::Ready(Some(Ok(SseEvent::default().event("error").data(data))))
            }
        }
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SummarizeRequest {
    store: Option<String>,
    /// A document, a folder, or `all` (the default).
    path: Option<String>,
    generate: Option<bool>,
}

async fn summarize(
    State(app): State<Arc<App>>,
    b: Result<Json<SummarizeRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let req = body(b)?;
    let store = app.default_store(req.store.as_deref())?;
    let generate = req.generate.unwrap_or(!app.opts.demo);
    let v = blocking(move || app.summarize(&store, req.path.as_deref(), generate)).await?;
    Ok(Json(v).into_response())
}

async fn documents(State(app): State<Arc<App>>, Path(name): Path<String>) -> ApiResult<Response> {
    let docs = blocking(move || app.documents(&name)).await?;
    Ok(Json(serde_json::json!({ "documents": docs })).into_response())
}

#[derive(Debug, Deserialize)]
struct FileQuery {
    path: String,
    start: Option<u64>,
    end: Option<u64>,
}

async fn file(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    q: Result<Query<FileQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let q = q?.0;
    let f = blocking(move || app.read_file(&name, &q.path, q.start, q.end)).await?;
    Ok(Json(f).into_response())
}

async fn ingest(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    b: Result<Json<IngestRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let req = body(b)?;
    let report = app.jobs.start(&app, &name, req)?;
    Ok((StatusCode::ACCEPTED, Json(report)).into_response())
}

async fn job(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(app.jobs.report(&id)?).into_response())
}

async fn cancel_job(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(app.jobs.cancel(&id)?).into_response())
}

/// Raw bytes, their errors as JSON.
pub(crate) fn bytes(b: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    Ok(b?)
}
