//! `rwkv-serve`: the stores behind an OpenAI-compatible HTTP API, a native API and an MCP
//! server, with one model held once.
//!
//! - [`App`]: the model, the served stores (by directory name), the decode [`engine`] and the
//!   scratch area of states; the operations every front end shares (search, ask, documents,
//!   file lines, summaries, states).
//! - [`router`]: the HTTP routes (axum): `/health`, `/v1/models`, `/v1/chat/completions`,
//!   `/v1/completions`, `/v1/ask`, `/v1/search`, `/v1/summarize`, `/v1/stores/…`, `/v1/states`,
//!   `/v1/jobs/…` and MCP at `/mcp`.
//! - [`mcp`]: the same operations as MCP tools, over stdio ([`mcp::serve_stdio`]) or HTTP.
//! - [`engine`]: one thread runs every forward pass; concurrent generations decode together,
//!   one set of products per step.
#![deny(missing_docs)]

mod app;
pub mod engine;
mod error;
mod http;
mod jobs;
pub mod mcp;
mod openai;
mod states;

pub use app::{App, DocumentInfo, FileLines, SCRATCH_PREFIX, SearchResult, ServeOptions, StartError, store_name};
pub use error::{ApiError, ApiResult};
pub use http::router;
pub use jobs::JobReport;

/// Serve `app` over HTTP on `listener` until Ctrl-C (or SIGTERM).
pub async fn serve_http(app: std::sync::Arc<App>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async {
            #[cfg(unix)]
            {
                let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                        return;
                    }
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            #[cfg(not(unix))]
            {
                let _ = tokio::signal::ctrl_c().await;
            }
        })
        .await
}
