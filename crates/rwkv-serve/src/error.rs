//! Errors as the OpenAI API shapes them: `{"error": {"message", "type", "code"}}` with the
//! matching HTTP status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The request is malformed or asks for something impossible (400).
    #[error("{0}")]
    BadRequest(String),
    /// No or a wrong API key (401).
    #[error("{0}")]
    Unauthorized(String),
    /// A path outside the allowed roots (403).
    #[error("{0}")]
    Forbidden(String),
    /// An unknown store, model, document, state or job (404).
    #[error("{0}")]
    NotFound(String),
    /// The body is larger than the limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// Too many generations queued or running (429, `Retry-After`).
    #[error("the server is busy: {0} generations are queued or running; retry shortly")]
    Busy(usize),
    /// Something failed on the server's side (500).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OpenAI error `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) | ApiError::TooLarge(_) => "invalid_request_error",
            ApiError::Unauthorized(_) => "authentication_error",
            ApiError::Forbidden(_) => "permission_error",
            ApiError::NotFound(_) => "not_found_error",
            ApiError::Busy(_) => "rate_limit_error",
            ApiError::Internal(_) => "server_error",
        }
    }

    /// The error as JSON.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.to_string(),
                "type": self.kind(),
                "code": self.status().as_u16(),
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status(), axum::Json(self.body())).into_response();
        if matches!(self, ApiError::Busy(_)) {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

impl From<rwkv_heads::Error> for ApiError {
    fn from(e: rwkv_heads::Error) -> Self {
        match e {
            rwkv_heads::Error::NoStore(_) => ApiError::NotFound(e.to_string()),
            rwkv_heads::Error::Stale(_) => ApiError::NotFound(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!("the request body is too large: {}", r.body_text()))
        } else {
            ApiError::BadRequest(format!("bad JSON body: {}", r.body_text()))
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::BadRequest(format!("bad query: {}", r.body_text()))
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!("the request body is too large: {}", r.body_text()))
        } else {
            ApiError::BadRequest(r.body_text())
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::Internal(format!("a request's work failed: {e}"))
    }
}

/// Result with [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;
