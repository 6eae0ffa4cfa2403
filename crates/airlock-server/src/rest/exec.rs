//! `POST /v1/sandboxes/{id}/exec`: a JSON result, or NDJSON events with `?stream=true`.

use std::sync::Arc;

use airlock_api::exec::Chunk;
use airlock_api::{ExecEvent, ExecRequest};
use airlock_service::{Principal, ProcessEvent, Service};
use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio_stream::wrappers::ReceiverStream;

use super::failure::Answer;
use super::json::{Json, Query};

#[derive(Deserialize)]
pub struct ExecQuery {
    stream: Option<bool>,
}

pub async fn exec(
    State(service): State<Arc<Service>>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    Query(query): Query<ExecQuery>,
    Json(req): Json<ExecRequest>,
) -> Answer<Response> {
    if query.stream != Some(true) {
        return Ok(axum::Json(service.exec(&caller, &id, req).await?).into_response());
    }
    let events = service.exec_stream(&caller, &id, req, None).await?;
    let lines = ReceiverStream::new(events).map(|event| {
        let mut line = serde_json::to_vec(&encode(event)).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(line)
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

/// JSON carries output as text when it is UTF-8, else as base64.
pub fn encode(event: ProcessEvent) -> ExecEvent {
    match event {
        ProcessEvent::Start { pid } => ExecEvent::Start { pid },
        ProcessEvent::Stdout(bytes) => ExecEvent::Stdout(Chunk::from_bytes(&bytes)),
        ProcessEvent::Stderr(bytes) => ExecEvent::Stderr(Chunk::from_bytes(&bytes)),
        ProcessEvent::Exit {
            exit_code,
            timed_out,
        } => ExecEvent::Exit {
            exit_code,
            timed_out,
        },
        ProcessEvent::Error { message } => ExecEvent::Error { message },
    }
}
