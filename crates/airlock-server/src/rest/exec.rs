//! `POST /v1/sandboxes/{id}/exec`: a JSON result, or NDJSON events with `?stream=true`.

use std::sync::Arc;

use airlock_api::ExecRequest;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio_stream::wrappers::ReceiverStream;

use super::json::Json;
use crate::{ApiError, Service};

#[derive(Deserialize)]
pub struct ExecQuery {
    #[serde(default)]
    stream: bool,
}

pub async fn exec(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    Query(query): Query<ExecQuery>,
    Json(req): Json<ExecRequest>,
) -> Result<Response, ApiError> {
    if !query.stream {
        return Ok(axum::Json(service.exec(&id, req).await?).into_response());
    }
    let events = service.exec_stream(&id, req).await?;
    let lines = ReceiverStream::new(events).map(|event| {
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(line)
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}
