//! MCP (Model Context Protocol) tools over stdio and streamable HTTP. (Being written.)

use std::sync::Arc;

use crate::app::App;

/// The MCP service mounted at `/mcp`.
pub(crate) fn http_service(app: Arc<App>) -> axum::Router {
    let _ = app;
    axum::Router::new()
}
