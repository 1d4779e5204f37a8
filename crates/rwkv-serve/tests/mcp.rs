//! The MCP server through a real rmcp client: in process over a pipe (what `--mcp stdio`
//! serves) and over streamable HTTP at `/mcp` of the whole router on a real socket (with the
//! legacy `initialize` handshake and with the stateless 2026-07-28 lifecycle, with and without
//! an API key), over a store of `fixtures/code` folded with the demo model.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use rmcp::model::{CallToolRequestParams, CallToolResult, ProtocolVersion};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt, ServiceExt};
use rwkv_serve::mcp::RwkvTools;
use rwkv_serve::{App, ServeOptions, router};
use serde_json::{Value, json};

mod common;
use common::{app_with, root};

fn demo() -> ServeOptions {
    ServeOptions {
        model_id: "demo".into(),
        demo: true,
        ..ServeOptions::default()
    }
}

type Client = RunningService<RoleClient, ()>;

/// A client connected to `app`'s tools over an in-process pipe.
async fn piped(app: Arc<App>) -> Client {
    let (server_end, client_end) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        if let Ok(s) = RwkvTools::new(app).serve(server_end).await {
            let _ = s.waiting().await;
        }
    });
    ().serve(client_end).await.unwrap()
}

fn params(tool: &'static str, v: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(tool).with_arguments(v.as_object().unwrap().clone())
}

async fn call(client: &Client, tool: &'static str, v: Value) -> CallToolResult {
    client.call_tool(params(tool, v)).await.unwrap()
}

fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ok_text(r: &CallToolResult) -> String {
    assert_ne!(r.is_error, Some(true), "{}", text(r));
    text(r)
}

fn err_text(r: &CallToolResult) -> String {
    assert_eq!(r.is_error, Some(true), "a tool error: {}", text(r));
    let t = text(r);
    assert!(!t.is_empty());
    t
}

/// Every `path:line  text` line of a result is that line of the stored file; how many there are.
fn check_quoted_lines(out: &str) -> usize {
    let mut n = 0;
    for l in out.lines() {
        let Some((loc, quoted)) = l.split_once("  ") else {
            continue;
        };
        let Some((path, line)) = loc.rsplit_once(':') else {
            continue;
        };
        let Ok(line) = line.parse::<usize>() else { continue };
        if !Path::new(path).is_file() {
            continue;
        }
        let file = std::fs::read_to_string(path).unwrap();
        assert_eq!(file.lines().nth(line - 1).unwrap(), quoted, "{l}");
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_over_a_pipe() {
    let client = piped(app_with(demo())).await;
    let info = client.peer_info().unwrap();
    let server = info.server_info.as_ref().unwrap();
    assert_eq!(server.name, "rwkv-reader");
    let instructions = info.instructions.clone().unwrap();
    assert!(
        instructions.contains("\"code\"") && instructions.contains("read_file"),
        "{instructions}"
    );

    let tools = client.list_all_tools().await.unwrap();
    let names: BTreeSet<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["ask", "list_documents", "read_file", "search", "summarize"])
    );
    let search = tools.iter().find(|t| t.name == "search").unwrap();
    let props = search.input_schema["properties"].as_object().unwrap();
    assert!(props["question"]["description"].as_str().unwrap().contains("question"));
    assert_eq!(search.input_schema["required"], json!(["question"]));
    assert!(search.annotations.as_ref().unwrap().read_only_hint == Some(true));

    // search: the answering lines, exactly as stored, then the sources.
    let out = ok_text(&call(&client, "search", json!({"question": "What does eval do?"})).await);
    assert!(out.contains("Evidence from store \"code\""), "{out}");
    assert!(check_quoted_lines(&out) >= 1, "{out}");
    let sources = out.split_once("\nSources:\n").unwrap().1;
    let first = sources.lines().next().unwrap();
    assert!(first.contains("main.rs:") && first.contains(" ("), "{first}");
    // A question the store does not answer is said so plainly.
    let out = ok_text(&call(&client, "search", json!({"question": "zebra quagga okapi giraffe"})).await);
    assert!(out.contains("does not answer"), "{out}");

    // read_file: numbered lines, exactly as stored.
    let file = std::fs::read_to_string(root().join("fixtures/code/src/main.rs")).unwrap();
    let out = ok_text(
        &call(
            &client,
            "read_file",
            json!({"path": "src/main.rs", "start": 3, "end": 5}),
        )
        .await,
    );
    let mut lines = out.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .ends_with(&format!("lines 3-5 of {}", file.lines().count())),
        "{out}"
    );
    let want: Vec<String> = file
        .lines()
        .enumerate()
        .skip(2)
        .take(3)
        .map(|(i, l)| format!("{}: {l}", i + 1))
        .collect();
    assert_eq!(lines.collect::<Vec<_>>(), want);

    // list_documents and summarize (the demo model: key lines).
    let out = ok_text(&call(&client, "list_documents", json!({})).await);
    assert!(
        out.lines()
            .any(|l| l.contains("src/main.rs  (") && l.contains(" lines, ") && l.ends_with(" tokens)")),
        "{out}"
    );
    let out = ok_text(&call(&client, "summarize", json!({"path": "src/main.rs"})).await);
    assert!(out.contains("key lines") && check_quoted_lines(&out) >= 1, "{out}");

    // ask with the demo model: evidence, no written answer; nothing found: said so.
    let out = ok_text(&call(&client, "ask", json!({"question": "What does eval do?"})).await);
    assert!(
        out.starts_with("No answer was generated") && check_quoted_lines(&out) >= 1,
        "{out}"
    );
    let out = ok_text(&call(&client, "ask", json!({"question": "zebra quagga okapi giraffe"})).await);
    assert!(out.starts_with("Not found"), "{out}");

    // Failures are tool errors with the message.
    let e = err_text(&call(&client, "search", json!({"question": "eval", "store": "nope"})).await);
    assert!(e.contains("no store named \"nope\"") && e.contains("code"), "{e}");
    let e = err_text(&call(&client, "read_file", json!({"path": "no/such/file.rs"})).await);
    assert!(e.contains("no document"), "{e}");
    let e = err_text(
        &call(
            &client,
            "read_file",
            json!({"path": "src/main.rs", "start": 5, "end": 2}),
        )
        .await,
    );
    assert!(e.contains("lines 5-2"), "{e}");
    let e = err_text(&call(&client, "search", json!({"question": "  "})).await);
    assert!(e.contains("empty"), "{e}");
    let e = err_text(&call(&client, "ask", json!({"question": "eval", "max_tokens": 1_000_000})).await);
    assert!(e.contains("limit"), "{e}");

    // Arguments that do not fit the schema are tool errors (rmcp reports a failed
    // deserialization so); an unknown tool is a JSON-RPC error.
    for (tool, bad) in [
        ("search", json!({"question": 42})),
        ("search", json!({})),
        ("search", json!({"questoin": "eval"})),
        ("read_file", json!({"path": "src/main.rs", "start": -1})),
    ] {
        let e = err_text(&call(&client, tool, bad.clone()).await);
        assert!(e.contains("parameters"), "{tool} {bad}: {e}");
    }
    let r = client.call_tool(params("no_such_tool", json!({}))).await;
    assert!(r.is_err(), "{r:?}");
    // The session still works after them.
    ok_text(&call(&client, "list_documents", json!({"store": "code"})).await);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_results_are_cut_with_a_note() {
    let full_client = piped(app_with(demo())).await;
    let full = ok_text(&call(&full_client, "read_file", json!({"path": "src/main.rs"})).await);
    let cap = 300;
    assert!(full.chars().count() > cap, "the fixture is long enough");
    let client = piped(app_with(ServeOptions {
        tool_result_chars: cap,
        ..demo()
    }))
    .await;
    let out = ok_text(&call(&client, "read_file", json!({"path": "src/main.rs"})).await);
    assert!(out.chars().count() <= cap, "{}", out.chars().count());
    let (body, note) = out.rsplit_once('\n').unwrap();
    assert!(full.starts_with(body), "a prefix of the whole result");
    let left = full.chars().count() - body.chars().count();
    assert!(
        note.starts_with(&format!("[cut: {left} more characters not shown")),
        "{note}"
    );
    // Short results are whole.
    let out = ok_text(
        &call(
            &client,
            "read_file",
            json!({"path": "src/main.rs", "start": 1, "end": 2}),
        )
        .await,
    );
    assert!(!out.contains("[cut:"), "{out}");
    full_client.cancel().await.unwrap();
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_writes_an_answer_with_a_model_that_writes() {
    let client = piped(app_with(ServeOptions {
        model_id: "code".into(),
        demo: false,
        ..ServeOptions::default()
    }))
    .await;
    let out = ok_text(
        &call(
            &client,
            "ask",
            json!({"question": "What does eval do?", "max_tokens": 6}),
        )
        .await,
    );
    assert!(out.starts_with("Answer:\n"), "{out}");
    assert!(
        out.contains("\nEvidence from store \"code\"") && out.contains("\nSources:\n"),
        "{out}"
    );
    assert!(check_quoted_lines(&out) >= 1, "{out}");
    client.cancel().await.unwrap();
}

/// `router(app)` served on a loopback socket; its address.
async fn listen(app: Arc<App>) -> std::net::SocketAddr {
    // The workspace's reqwest has no TLS provider of its own; the client builds one even for http.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router(app)).await;
    });
    addr
}

async fn http_checks(client: &Client) {
    assert_eq!(
        client.peer_info().unwrap().server_info.as_ref().unwrap().name,
        "rwkv-reader"
    );
    assert_eq!(client.list_all_tools().await.unwrap().len(), 5);
    let out = ok_text(&call(client, "search", json!({"question": "What does eval do?"})).await);
    assert!(check_quoted_lines(&out) >= 1, "{out}");
    let e = err_text(&call(client, "list_documents", json!({"store": "nope"})).await);
    assert!(e.contains("no store named"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_over_streamable_http_at_mcp() {
    let addr = listen(app_with(demo())).await;
    for uri in [format!("http://{addr}/mcp"), format!("http://{addr}/mcp/")] {
        // The `initialize` handshake (sessions; what 2025 clients do).
        let client = ().serve(StreamableHttpClientTransport::from_uri(uri.clone())).await.unwrap();
        http_checks(&client).await;
        client.cancel().await.unwrap();
        // The stateless 2026-07-28 lifecycle (`server/discover`, no session).
        let client = ()
            .serve_with_lifecycle(
                StreamableHttpClientTransport::from_uri(uri.clone()),
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                },
            )
            .await
            .unwrap();
        http_checks(&client).await;
        client.cancel().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_over_http_needs_the_api_key() {
    let addr = listen(app_with(ServeOptions {
        api_key: Some("sesame".into()),
        ..demo()
    }))
    .await;
    let uri = format!("http://{addr}/mcp");
    let refused = ().serve(StreamableHttpClientTransport::from_uri(uri.clone())).await;
    assert!(refused.is_err(), "no key: refused");
    let wrong = StreamableHttpClientTransportConfig::with_uri(uri.clone()).auth_header("open");
    assert!(
        ().serve(StreamableHttpClientTransport::from_config(wrong))
            .await
            .is_err(),
        "a wrong key: refused"
    );
    let right = StreamableHttpClientTransportConfig::with_uri(uri).auth_header("sesame");
    let client = ().serve(StreamableHttpClientTransport::from_config(right)).await.unwrap();
    http_checks(&client).await;
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_clients_do_not_hold_a_graceful_shutdown_open() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = app_with(demo());
    let server = tokio::spawn(async move {
        axum::serve(listener, router(app))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    let client = ().serve(StreamableHttpClientTransport::from_uri(format!("http://{addr}/mcp"))).await.unwrap();
    http_checks(&client).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    let done = tokio::time::timeout(std::time::Duration::from_secs(10), server).await;
    assert!(
        matches!(done, Ok(Ok(Ok(())))),
        "the server stops with a client connected: {done:?}"
    );
    drop(client);
}
