//! `GET /v1/sandboxes/{id}/files/watch`: changes under a directory as NDJSON, one event a
//! line, beginning with a `ready` line once the watch is in place.

use std::sync::Arc;

use airlock_api::WatchEvent;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio_stream::wrappers::ReceiverStream;

use super::json::Query;
use crate::{ApiError, Service};

#[derive(Deserialize)]
pub struct WatchQuery {
    path: String,
    #[serde(default)]
    recursive: bool,
}

pub async fn watch(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    Query(q): Query<WatchQuery>,
) -> Result<Response, ApiError> {
    let events = service.watch(&id, &q.path, q.recursive).await?;
    let ready = WatchEvent {
        kind: "ready".into(),
        path: q.path.clone(),
        from: None,
        dir: true,
        message: None,
    };
    let lines = futures_util::stream::once(async move { ready })
        .chain(ReceiverStream::new(events).map(|e| WatchEvent {
            kind: e.kind.name().into(),
            path: e.path,
            from: e.from,
            dir: e.is_dir,
            message: e.message,
        }))
        .map(|event| {
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
