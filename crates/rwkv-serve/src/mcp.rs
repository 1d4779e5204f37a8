//! MCP (Model Context Protocol) tools over stdio and streamable HTTP, with the official Rust SDK
//! (`rmcp`): the same operations as the native API, as plain-text tool results an agent reads.
//!
//! Tools: `search` (the lines that answer a question, with their sources), `ask` (a grounded
//! answer with its evidence), `read_file` (numbered lines of a stored document),
//! `list_documents` and `summarize`. Each delegates to [`App`]'s blocking operations on
//! Tokio's blocking pool. A result longer than [`crate::ServeOptions::tool_result_chars`]
//! characters is cut, and its last line says how many characters were left out. A failed
//! operation (an unknown store or document, a bad range, a busy server) is a tool error
//! (`isError: true`) carrying the message; arguments that do not fit a tool's schema are a
//! JSON-RPC `invalid params` error.
//!
//! Transports: [`serve_stdio`] (newline-delimited JSON-RPC on stdin/stdout, what agents launch)
//! and, inside the HTTP server, rmcp's streamable HTTP service at `/mcp`.

use std::fmt::Write as _;
use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::{QuitReason, ServerInitializeError};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use rwkv_heads::sample::SamplerConfig;
use rwkv_heads::{Evidence, Source};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::app::{App, AskStart};
use crate::error::{ApiError, ApiResult};

/// Errors serving MCP over stdio.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// The client did not complete the `initialize` handshake (or closed before it).
    #[error("the MCP session did not start: {0}")]
    Initialize(#[source] Box<ServerInitializeError>),
    /// The task serving the session failed.
    #[error("the MCP session failed: {0}")]
    Session(#[source] tokio::task::JoinError),
}

/// The MCP server: the tools over one [`App`]. Serve it with any rmcp transport
/// (`RwkvTools::new(app).serve(transport)`), or use [`serve_stdio`].
#[derive(Clone)]
pub struct RwkvTools {
    app: Arc<App>,
    tool_router: ToolRouter<RwkvTools>,
}

impl std::fmt::Debug for RwkvTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RwkvTools")
            .field("stores", &self.app.store_names())
            .finish_non_exhaustive()
    }
}

/// `search`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// The question or keywords, in plain words (e.g. "how are expressions evaluated?").
    pub question: String,
    /// The store to search (a store's name is its directory name); may be left out when the
    /// server serves one store.
    #[serde(default)]
    pub store: Option<String>,
    /// How many retrieved units to draw evidence from (1-20, default 3).
    #[serde(default)]
    pub top: Option<usize>,
}

/// `ask`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AskParams {
    /// The question, in plain words.
    pub question: String,
    /// The store to answer from; may be left out when the server serves one store.
    #[serde(default)]
    pub store: Option<String>,
    /// How many retrieved units to read (1-20, default 3).
    #[serde(default)]
    pub top: Option<usize>,
    /// Most tokens of the answer (default 256, at most the server's limit).
    #[serde(default)]
    pub max_tokens: Option<usize>,
}

/// `read_file`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadFileParams {
    /// The document: its path as listed by `list_documents`, its id, or a path suffix such as
    /// `src/main.rs`.
    pub path: String,
    /// The store holding it; may be left out when the server serves one store.
    #[serde(default)]
    pub store: Option<String>,
    /// First line to show, 1-based (default 1).
    #[serde(default)]
    pub start: Option<u64>,
    /// Last line to show, inclusive (default: the last line).
    #[serde(default)]
    pub end: Option<u64>,
}

/// `list_documents`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListDocumentsParams {
    /// The store to list; may be left out when the server serves one store.
    #[serde(default)]
    pub store: Option<String>,
}

/// `summarize`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SummarizeParams {
    /// A document or folder to summarize (a path as listed by `list_documents`, or a suffix of
    /// one); leave out (or `all`) for the whole store.
    #[serde(default)]
    pub path: Option<String>,
    /// The store; may be left out when the server serves one store.
    #[serde(default)]
    pub store: Option<String>,
}

#[tool_router]
impl RwkvTools {
    /// The tools over `app`.
    pub fn new(app: Arc<App>) -> Self {
        RwkvTools {
            app,
            tool_router: Self::tool_router(),
        }
    }

    /// The lines of the store's documents that answer a question, with their sources.
    #[tool(
        description = "Find the lines of the stored documents that answer a question (retrieval and evidence, no generation). Gives `path:line  text` lines, best first, then the units they come from as `path:start-end (kind name)`. Use read_file to see more around a line.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    pub async fn search(&self, Parameters(p): Parameters<SearchParams>) -> CallToolResult {
        let app = self.app.clone();
        let r = async move {
            let store = app.default_store(p.store.as_deref())?;
            let a = app.clone();
            let found = blocking(move || a.search(&store, &p.question, p.top)).await?;
            let mut out = String::new();
            if !found.answers {
                let _ = writeln!(
                    out,
                    "Store {:?} does not answer this question (support {:.2}: too few of its words are found together). Try other words, or look around with list_documents and read_file.",
                    found.store, found.support
                );
                if found.evidence.is_empty() {
                    return Ok(out);
                }
                out.push('\n');
            }
            let _ = writeln!(out, "Evidence from store {:?} (support {:.2}):", found.store, found.support);
            evidence_lines(&mut out, &found.evidence);
            if !found.sources.is_empty() {
                out.push_str("\nSources:\n");
                source_lines(&mut out, &found.sources);
            }
            Ok(out)
        }
        .await;
        self.result(r)
    }

    /// A grounded answer with its evidence and sources.
    #[tool(
        description = "Answer a question from the stored documents: the model reads the best matching units and writes an answer, given with the evidence lines (`path:line  text`) and sources (`path:start-end (kind name)`). With the bundled demo model no answer is written: the evidence and sources are given instead.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    pub async fn ask(&self, Parameters(p): Parameters<AskParams>) -> CallToolResult {
        let app = self.app.clone();
        let r = async move {
            let store = app.default_store(p.store.as_deref())?;
            let max_tokens = app.max_tokens(p.max_tokens, 256)?;
            let generate = !app.opts.demo;
            let opts = app.ask_options(p.top, Some(max_tokens), SamplerConfig::greedy(), generate);
            let (a, s) = (app.clone(), store.clone());
            let start = blocking(move || a.start_ask(&s, &p.question, &opts)).await?;
            let mut out = String::new();
            match start {
                AskStart::NotFound => {
                    let _ = writeln!(
                        out,
                        "Not found: nothing in store {store:?} answers this question. Try other words, or look around with list_documents and read_file."
                    );
                }
                AskStart::Done(a) => {
                    let _ = writeln!(
                        out,
                        "No answer was generated: this server runs the demo model, which finds evidence but cannot write answers. The evidence from store {store:?} (support {:.2}):",
                        a.support
                    );
                    evidence_lines(&mut out, &a.evidence);
                    if !a.sources.is_empty() {
                        out.push_str("\nSources:\n");
                        source_lines(&mut out, &a.sources);
                    }
                }
                AskStart::Generating(pending) => {
                    let (a, done) = pending.collect().await?;
                    out.push_str("Answer:\n");
                    out.push_str(a.text.trim());
                    out.push('\n');
                    if done.finish == "max_tokens" {
                        let _ = writeln!(out, "[the answer reached max_tokens ({max_tokens}) and was cut]");
                    }
                    let _ = writeln!(out, "\nEvidence from store {store:?} (support {:.2}):", a.support);
                    evidence_lines(&mut out, &a.evidence);
                    if !a.sources.is_empty() {
                        out.push_str("\nSources:\n");
                        source_lines(&mut out, &a.sources);
                    }
                }
            }
            Ok(out)
        }
        .await;
        self.result(r)
    }

    /// Lines of a stored document, numbered.
    #[tool(
        description = "Read lines of a stored document exactly as stored, numbered `N: text` (1-based). Give `start`/`end` for a range; the whole document by default.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    pub async fn read_file(&self, Parameters(p): Parameters<ReadFileParams>) -> CallToolResult {
        let app = self.app.clone();
        let r = async move {
            let store = app.default_store(p.store.as_deref())?;
            let a = app.clone();
            let f = blocking(move || a.read_file(&store, &p.path, p.start, p.end)).await?;
            let mut out = String::new();
            if f.lines.is_empty() {
                let _ = writeln!(out, "{} is empty", f.path);
                return Ok(out);
            }
            let _ = writeln!(out, "{}: lines {}-{} of {}", f.path, f.start, f.end, f.total_lines);
            for (i, line) in f.lines.iter().enumerate() {
                let _ = writeln!(out, "{}: {line}", f.start + i as u64);
            }
            Ok(out)
        }
        .await;
        self.result(r)
    }

    /// The documents of a store.
    #[tool(
        description = "List the documents of a store, one a line: `path  (N lines, M tokens)`.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    pub async fn list_documents(&self, Parameters(p): Parameters<ListDocumentsParams>) -> CallToolResult {
        let app = self.app.clone();
        let r = async move {
            let store = app.default_store(p.store.as_deref())?;
            let (a, s) = (app.clone(), store.clone());
            let docs = blocking(move || a.documents(&s)).await?;
            let mut out = String::new();
            let _ = writeln!(out, "{} in store {store:?}:", plural(docs.len() as u64, "document"));
            for d in &docs {
                let _ = writeln!(out, "{}  ({}, {} tokens)", d.path, plural(d.lines, "line"), d.tokens);
            }
            Ok(out)
        }
        .await;
        self.result(r)
    }

    /// A summary of a document, a folder or the whole store.
    #[tool(
        description = "Summarize a document, a folder or the whole store. With a model that can write: each document's summary and an overall one (cached in the store). With the demo model: each document's key lines (definitions and headings) as `path:line  text`.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    pub async fn summarize(&self, Parameters(p): Parameters<SummarizeParams>) -> CallToolResult {
        let app = self.app.clone();
        let r = async move {
            let store = app.default_store(p.store.as_deref())?;
            let generate = !app.opts.demo;
            let a = app.clone();
            let v = blocking(move || a.summarize(&store, p.path.as_deref(), generate)).await?;
            Ok(render_summary(&v))
        }
        .await;
        self.result(r)
    }
}

impl RwkvTools {
    /// A tool's text, capped, or its error.
    fn result(&self, r: ApiResult<String>) -> CallToolResult {
        match r {
            Ok(text) => CallToolResult::success(vec![ContentBlock::text(cap(text, self.app.opts.tool_result_chars))]),
            Err(e) => CallToolResult::error(vec![ContentBlock::text(cap(
                e.to_string(),
                self.app.opts.tool_result_chars,
            ))]),
        }
    }

    fn instructions(&self) -> String {
        let stores = self.app.store_names();
        let mut s = String::from(
            "rwkv-reader answers questions from stores of documents (code, books, web pages) folded by an RWKV model. \
             Tools: `search` finds the lines that answer a question (`path:line  text`) and their sources; \
             `ask` answers a question with its evidence and sources; `read_file` gives numbered lines of a stored document; \
             `list_documents` lists a store's documents; `summarize` summarizes a document, a folder or a whole store. \
             Start with search, then read_file around the lines it gives. ",
        );
        if self.app.opts.demo {
            s.push_str("This server runs the bundled demo model: `ask` and `summarize` give evidence and key lines, not written text. ");
        }
        let _ = write!(
            s,
            "Results longer than {} characters are cut (the last line says so): ask for less. ",
            self.app.opts.tool_result_chars
        );
        match stores.len() {
            0 => s.push_str("This server serves no store."),
            1 => {
                let _ = write!(
                    s,
                    "Store served: {:?} (the default, `store` may be left out).",
                    stores[0]
                );
            }
            _ => {
                let _ = write!(s, "Stores served (name one as `store`): {}.", stores.join(", "));
            }
        }
        s
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for RwkvTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("rwkv-reader", env!("CARGO_PKG_VERSION")))
            .with_instructions(self.instructions())
    }
}

/// Serve MCP over stdin/stdout until the client closes them (`rwkv-serve --mcp stdio`).
/// Nothing else may write to stdout meanwhile.
pub async fn serve_stdio(app: Arc<App>) -> Result<(), McpError> {
    let running = RwkvTools::new(app)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| McpError::Initialize(Box::new(e)))?;
    match running.waiting().await {
        Ok(QuitReason::JoinError(e)) | Err(e) => Err(McpError::Session(e)),
        Ok(_) => Ok(()),
    }
}

/// The MCP service mounted at `/mcp`: rmcp's streamable HTTP transport, stateless (every POST is
/// answered on its own, as JSON; no session is kept and no standing `GET` stream is opened, so
/// nothing holds a graceful shutdown open and any instance can answer), for every protocol
/// revision rmcp speaks (`initialize` clients of 2024-11-05 … 2025-11-25 and 2026-07-28's
/// `server/discover`). Without an API key only loopback `Host` headers are accepted (rmcp's
/// guard against DNS rebinding; the server then listens on loopback anyway); with a key, any
/// host (the key guards the route).
pub(crate) fn http_service(app: Arc<App>) -> axum::Router {
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_max_request_body_bytes(app.opts.body_limit);
    if app.opts.api_key.is_some() {
        config = config.disable_allowed_hosts();
    }
    let tools = RwkvTools::new(app);
    let service = StreamableHttpService::new(
        move || Ok(tools.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    axum::Router::new().fallback_service(service)
}

/// Run blocking work (retrieval, reading the store) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::from)?
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn evidence_lines(out: &mut String, evidence: &[Evidence]) {
    if evidence.is_empty() {
        out.push_str("(no line)\n");
    }
    for e in evidence {
        let _ = writeln!(out, "{}:{}  {}", e.path, e.line, e.text);
    }
}

fn source_lines(out: &mut String, sources: &[Source]) {
    for s in sources {
        let _ = write!(out, "{}:{}-{} ({}", s.path, s.line_start, s.line_end, s.kind);
        if !s.name.is_empty() {
            let _ = write!(out, " {}", s.name);
        }
        out.push_str(")\n");
    }
}

/// The outline form of [`App::summarize`] (no model writing).
#[derive(Deserialize)]
struct OutlineView {
    documents: Vec<OutlineDoc>,
}

#[derive(Deserialize)]
struct OutlineDoc {
    path: String,
    lines: u64,
    key_lines: Vec<KeyLineView>,
}

#[derive(Deserialize)]
struct KeyLineView {
    line: u64,
    text: String,
}

/// The written form of [`App::summarize`].
#[derive(Deserialize)]
struct SummaryView {
    summary: String,
    documents: Vec<DocSummaryView>,
}

#[derive(Deserialize)]
struct DocSummaryView {
    path: String,
    summary: String,
}

fn render_summary(v: &serde_json::Value) -> String {
    let mut out = String::new();
    if v.get("generated") == Some(&serde_json::Value::Bool(false)) {
        if let Ok(o) = OutlineView::deserialize(v) {
            let _ = writeln!(
                out,
                "No summary was written (this server's model cannot write): the key lines (definitions and headings) of {}.",
                plural(o.documents.len() as u64, "document")
            );
            for d in &o.documents {
                let _ = writeln!(out, "\n{}  ({})", d.path, plural(d.lines, "line"));
                if d.key_lines.is_empty() {
                    out.push_str("(no key line)\n");
                }
                for k in &d.key_lines {
                    let _ = writeln!(out, "{}:{}  {}", d.path, k.line, k.text);
                }
            }
            return out;
        }
    } else if let Ok(s) = SummaryView::deserialize(v) {
        out.push_str("Summary:\n");
        out.push_str(s.summary.trim());
        out.push('\n');
        if s.documents.len() > 1 {
            out.push_str("\nDocuments:\n");
            for d in &s.documents {
                let _ = writeln!(out, "{}: {}", d.path, d.summary.trim());
            }
        }
        return out;
    }
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// `text` cut to at most `max` characters (on a character boundary, at a line break when one is
/// near), its last line then saying how many characters were left out.
fn cap(text: String, max: usize) -> String {
    let total = text.chars().count();
    if total <= max {
        return text;
    }
    let note = |left: usize| {
        format!("\n[cut: {left} more characters not shown; ask for less (a line range, a smaller top, a path)]")
    };
    // The note for `total` is at least as long as the final one, so the result fits in `max`.
    let keep = max.saturating_sub(note(total).chars().count());
    let mut end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
    if let Some(nl) = text[..end].rfind('\n')
        && nl >= end - end / 4
    {
        end = nl;
    }
    let left = total - text[..end].chars().count();
    let mut out = text;
    out.truncate(end);
    out.push_str(&note(left));
    out
}

#[cfg(test)]
mod tests {
    use super::cap;

    #[test]
    fn short_text_is_kept() {
        assert_eq!(cap("abc\n".into(), 10), "abc\n");
        assert_eq!(cap("abc".into(), 3), "abc");
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary_with_a_note() {
        let text: String = "é€𝄞x".repeat(100);
        let total = text.chars().count();
        let out = cap(text.clone(), 150);
        assert!(out.chars().count() <= 150, "{}", out.chars().count());
        let (body, last) = out.rsplit_once('\n').unwrap();
        assert!(text.starts_with(body));
        let left = total - body.chars().count();
        assert!(last.starts_with(&format!("[cut: {left} more characters")), "{last}");
    }

    #[test]
    fn cut_prefers_a_line_break() {
        let text: String = (0..100).map(|i| format!("line {i:03} of the text\n")).collect();
        let out = cap(text.clone(), 400);
        let (body, last) = out.rsplit_once('\n').unwrap();
        assert!(body.ends_with("of the text"), "{body}");
        assert!(text.starts_with(body));
        let left = text.chars().count() - body.chars().count();
        assert!(last.contains(&format!("{left} more characters")));
        assert!(out.chars().count() <= 400);
    }
}
