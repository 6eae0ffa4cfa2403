//! `/v1/sandboxes/{id}/processes`: processes that outlive the request that started them.

use std::sync::Arc;

use airlock_api::{ExecRequest, ProcessInfo, SignalProcess, TerminalSize};
use airlock_service::{Principal, ProcessEvents, Selector, Service, StartOptions};
use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;

use super::body::stream;
use super::exec::encode;
use super::failure::Answer;
use super::json::{Json, Query};

type Caller = Extension<Principal>;

#[derive(Deserialize)]
pub struct StartQuery {
    /// A name to find it by later.
    tag: Option<String>,
    /// Keep stdin open for `POST .../stdin`.
    stdin: Option<bool>,
    /// Answer its events (NDJSON) instead of its description.
    stream: Option<bool>,
    /// Run it with a terminal of `COLSxROWS` (`80x24`) instead of pipes.
    terminal: Option<String>,
}

/// `COLSxROWS`.
fn terminal_size(text: &str) -> Result<TerminalSize, airlock_service::ApiError> {
    text.split_once('x')
        .and_then(|(cols, rows)| {
            Some(TerminalSize {
                cols: cols.parse().ok()?,
                rows: rows.parse().ok()?,
            })
        })
        .ok_or_else(|| {
            airlock_service::ApiError::bad_request(format!(
                "terminal {text:?} is not COLSxROWS, like 80x24"
            ))
        })
}

/// Starts a process; 201 with its description, or its events with `?stream=true` (the
/// process runs on if the client hangs up).
pub async fn start(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
    Query(q): Query<StartQuery>,
    Json(req): Json<ExecRequest>,
) -> Answer<Response> {
    let options = StartOptions {
        tag: q.tag,
        keep_stdin: q.stdin.unwrap_or(false),
        terminal: q.terminal.as_deref().map(terminal_size).transpose()?,
    };
    let (info, events) = service.start_process(&caller, &id, req, options).await?;
    if q.stream == Some(true) {
        return Ok(ndjson(events));
    }
    Ok((StatusCode::CREATED, axum::Json(info)).into_response())
}

#[derive(Deserialize)]
pub struct ListQuery {
    tag: Option<String>,
}

pub async fn list(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Answer<axum::Json<Vec<ProcessInfo>>> {
    let mut all = service.processes(&caller, &id)?;
    if let Some(tag) = q.tag {
        all.retain(|p| p.tag.as_deref() == Some(tag.as_str()));
    }
    Ok(axum::Json(all))
}

pub async fn get(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path((id, pid)): Path<(String, String)>,
) -> Answer<axum::Json<ProcessInfo>> {
    Ok(axum::Json(service.process(
        &caller,
        &id,
        &selector(&pid)?,
    )?))
}

#[derive(Deserialize)]
pub struct EventsQuery {
    /// Send the buffered output (the last MiB) before what comes next.
    replay: Option<bool>,
}

/// The process's events as NDJSON: `start`, then output, then `exit`.
pub async fn events(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path((id, pid)): Path<(String, String)>,
    Query(q): Query<EventsQuery>,
) -> Answer<Response> {
    let replay = q.replay.unwrap_or(false);
    let events = service.connect_process(&caller, &id, &selector(&pid)?, replay)?;
    Ok(ndjson(events))
}

#[derive(Deserialize)]
pub struct StdinQuery {
    /// Close stdin after this body.
    close: Option<bool>,
}

/// The body goes to the process's stdin (which it must have kept open: `?stdin=true`).
pub async fn stdin(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path((id, pid)): Path<(String, String)>,
    Query(q): Query<StdinQuery>,
    body: Body,
) -> Answer<StatusCode> {
    let close = q.close == Some(true);
    service
        .send_input(&caller, &id, &selector(&pid)?, stream(body), close)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn signal(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path((id, pid)): Path<(String, String)>,
    Json(req): Json<SignalProcess>,
) -> Answer<StatusCode> {
    service
        .signal_process(&caller, &id, &selector(&pid)?, &req.signal)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Resizes the process's terminal.
pub async fn resize(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path((id, pid)): Path<(String, String)>,
    Json(size): Json<TerminalSize>,
) -> Answer<StatusCode> {
    service
        .resize_terminal(&caller, &id, &selector(&pid)?, size)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Kills the process and everything it started.
pub async fn kill(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path((id, pid)): Path<(String, String)>,
) -> Answer<StatusCode> {
    service
        .signal_process(&caller, &id, &selector(&pid)?, "SIGKILL")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A process named in a path: its number.
fn selector(pid: &str) -> Result<Selector, airlock_service::ApiError> {
    pid.parse().map(Selector::Pid).map_err(|_| {
        airlock_service::ApiError::bad_request(format!("{pid:?} is not a process number"))
    })
}

fn ndjson(events: ProcessEvents) -> Response {
    let lines = events.map(|event| {
        let mut line = serde_json::to_vec(&encode(event)).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(line)
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response()
}
