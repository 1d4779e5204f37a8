//! States over HTTP: a store's checkpoint (or a scratch state) as a safetensors file, and
//! states uploaded back into the scratch area.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::http::{blocking, bytes};

#[derive(Debug, Deserialize)]
pub(crate) struct StateQuery {
    /// `rwkv` (ours, the default) or `ai00` (what ai00_server and web-rwkv load).
    layout: Option<String>,
}

/// `GET /v1/stores/{name}/states/{key}`.
pub(crate) async fn get_state(
    State(app): State<Arc<App>>,
    Path((name, key)): Path<(String, String)>,
    q: Result<Query<StateQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let layout = q?.0.layout.unwrap_or_else(|| "rwkv".into());
    if layout != "rwkv" && layout != "ai00" {
        return Err(ApiError::BadRequest(format!("layout {layout:?}: use rwkv or ai00")));
    }
    let a2 = app.clone();
    let bytes = blocking(move || {
        let state = a2.state_by_key(Some(&name), &key)?;
        let spec = a2.model.state_spec();
        if layout == "ai00" {
            ai00_bytes(&state, &spec)
        } else {
            Ok(state.to_bytes(&spec, a2.tokenizer.id()))
        }
    })
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"state.safetensors\"",
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `POST /v1/states`: a state file (ours) into the scratch area; answers its key.
pub(crate) async fn put_state(State(app): State<Arc<App>>, b: Result<Bytes, BytesRejection>) -> ApiResult<Response> {
    let b = bytes(b)?;
    let a2 = app.clone();
    let key = blocking(move || {
        let (state, _) = rwkv_model::State::from_bytes(
            std::path::Path::new("<uploaded state>"),
            &b,
            &a2.model.state_spec(),
            Some(a2.tokenizer.id()),
        )
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(a2.keep_state(state))
    })
    .await?;
    Ok(axum::Json(serde_json::json!({ "state": key })).into_response())
}

/// The ai00/web-rwkv state file: safetensors, f16, one `blocks.{i}.att.time_state` `[H, N, N]`
/// per layer with the last two dimensions transposed from the official order (as the official
/// state-tuning files are); the token-shift vectors have no place in it.
fn ai00_bytes(state: &rwkv_model::State, spec: &rwkv_model::StateSpec) -> ApiResult<Vec<u8>> {
    if spec.generation != rwkv_model::Generation::V7 || spec.wkv_shape.len() != 3 {
        return Err(ApiError::BadRequest("the ai00 layout is for RWKV-7 states".into()));
    }
    let (h, n) = (spec.wkv_shape[0], spec.wkv_shape[1]);
    let mut bufs: Vec<(String, Vec<u8>)> = Vec::with_capacity(state.layers.len());
    for (i, l) in state.layers.iter().enumerate() {
        let mut out = Vec::with_capacity(h * n * n * 2);
        for hh in 0..h {
            for a in 0..n {
                for b in 0..n {
                    let v = l.wkv[hh * n * n + b * n + a];
                    out.extend_from_slice(&half::f16::from_f32(v).to_le_bytes());
                }
            }
        }
        bufs.push((format!("blocks.{i}.att.time_state"), out));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bufs
        .iter()
        .map(|(name, data)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![h, n, n], data)
                .map(|v| (name.clone(), v))
                .map_err(|e| ApiError::Internal(e.to_string()))
        })
        .collect::<ApiResult<_>>()?;
    safetensors::serialize(views, None).map_err(|e| ApiError::Internal(e.to_string()))
}
