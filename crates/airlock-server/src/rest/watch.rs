//! `GET /v1/sandboxes/{id}/files/watch`: changes under a directory as NDJSON, one event a
//! line, beginning with the service's `ready` event.

use std::sync::Arc;

use airlock_service::{Principal, Service};
use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;

use super::failure::Answer;
use super::json::Query;

#[derive(Deserialize)]
pub struct WatchQuery {
    path: String,
    recursive: Option<bool>,
}

pub async fn watch(
    State(service): State<Arc<Service>>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<WatchQuery>,
) -> Answer<Response> {
    let events = service.watch(&caller, &id, &q.path, q.recursive).await?;
    let lines = events.map(|event| {
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(bytes::Bytes::from(line))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}
