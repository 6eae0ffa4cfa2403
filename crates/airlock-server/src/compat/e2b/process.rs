//! envd's `process.Process` Connect service (JSON codec) over the service's processes
//! that outlive their request: Start and Connect stream a process's events (`start`
//! first, then output, then `end`); List, SendInput, SendSignal and CloseStdin act on
//! one by pid or tag; StreamInput feeds stdin from a client stream. A command keeps running when its stream hangs up, as in envd.

use std::collections::BTreeMap;
use std::sync::Arc;

use airlock_api::ExecRequest;
use airlock_api::TerminalSize;
use airlock_api::exec::b64;
use airlock_service::{ApiError, ProcessEvent, Selector, Service, StartOptions, bytes_body};
use axum::extract::State;
use axum::response::Response;
use base64::Engine as _;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Envd;
use super::connect::{Enveloped, Message, Unary, envelopes, stream};

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProcessConfig {
    #[serde(default)]
    cmd: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    envs: BTreeMap<String, String>,
    cwd: Option<String>,
}

/// A terminal as envd's `PTY` message has it.
#[derive(Deserialize, Default)]
pub struct PtyJson {
    size: Option<TerminalSize>,
}

impl PtyJson {
    /// The size asked for; envd's default when none is given.
    fn size(self) -> TerminalSize {
        self.size.unwrap_or(TerminalSize { cols: 80, rows: 24 })
    }
}

#[derive(Deserialize)]
pub struct StartRequest {
    process: Option<ProcessConfig>,
    pty: Option<PtyJson>,
    tag: Option<String>,
    stdin: Option<bool>,
}

#[derive(Deserialize, Default)]
pub struct SelectorJson {
    pid: Option<u32>,
    tag: Option<String>,
}

#[derive(Deserialize)]
pub struct SelectRequest {
    process: Option<SelectorJson>,
    #[serde(default)]
    input: Option<InputJson>,
    #[serde(default)]
    signal: Option<String>,
    #[serde(default)]
    pty: Option<PtyJson>,
}

#[derive(Deserialize)]
pub struct InputJson {
    stdin: Option<String>,
    pty: Option<String>,
}

fn selector(which: Option<SelectorJson>) -> Result<Selector, ApiError> {
    match which.unwrap_or_default() {
        SelectorJson { pid: Some(pid), .. } => Ok(Selector::Pid(pid)),
        SelectorJson { tag: Some(tag), .. } => Ok(Selector::Tag(tag)),
        _ => Err(ApiError::bad_request("name the process by pid or tag")),
    }
}

/// One event as envd's `ProcessEvent` in protobuf's JSON mapping (bytes in base64).
/// A process with a terminal writes to it, not to stdout: its output is `pty`.
fn event(event: ProcessEvent, terminal: bool) -> Result<Value, ApiError> {
    let inner = match event {
        ProcessEvent::Start { pid } => json!({"start": {"pid": pid}}),
        ProcessEvent::Stdout(bytes) if terminal => json!({"data": {"pty": b64(&bytes)}}),
        ProcessEvent::Stdout(bytes) => json!({"data": {"stdout": b64(&bytes)}}),
        ProcessEvent::Stderr(bytes) => json!({"data": {"stderr": b64(&bytes)}}),
        ProcessEvent::Exit { exit_code, .. } => json!({"end": {
            "exitCode": exit_code,
            "exited": true,
            "status": format!("exit status {exit_code}"),
        }}),
        ProcessEvent::Error { message } => {
            return Err(ApiError::internal("following the process", message));
        }
    };
    Ok(json!({"event": inner}))
}

fn events(events: airlock_service::ProcessEvents, terminal: bool) -> Response {
    stream(events.map(move |e| event(e, terminal)))
}

/// `Start`: runs `cmd args…` (the SDK's `commands.run` sends `/bin/bash -l -c LINE`).
/// stdin stays open unless the request says `stdin: false`, as envd does.
pub async fn start(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    Enveloped(req): Enveloped<StartRequest>,
) -> Result<Response, super::connect::ConnectError> {
    let config = req.process.unwrap_or_default();
    let mut cmd = vec![config.cmd];
    cmd.extend(config.args);
    let exec = ExecRequest {
        cmd: Some(cmd),
        env: config.envs,
        cwd: config.cwd.filter(|c| !c.is_empty()),
        ..ExecRequest::default()
    };
    let options = StartOptions {
        tag: req.tag,
        keep_stdin: req.stdin.unwrap_or(true),
        terminal: req.pty.map(PtyJson::size),
    };
    let (info, started) = service
        .start_process(&envd.caller, &envd.id, exec, options)
        .await?;
    Ok(events(started, info.terminal.is_some()))
}

/// `Connect`: a running process's events from now on.
pub async fn connect(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    Enveloped(req): Enveloped<SelectRequest>,
) -> Result<Response, super::connect::ConnectError> {
    let which = selector(req.process)?;
    let terminal = service.process(&envd.caller, &envd.id, &which)?.terminal;
    let attached = service.connect_process(&envd.caller, &envd.id, &which, false)?;
    Ok(events(attached, terminal.is_some()))
}

#[derive(Serialize)]
pub struct ListResponse {
    processes: Vec<Value>,
}

/// `List`: the running processes.
pub async fn list(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    Message(_): Message<Value>,
) -> Unary<ListResponse> {
    let processes = service
        .processes(&envd.caller, &envd.id)?
        .into_iter()
        .filter(|p| p.running)
        .map(|p| {
            let mut cmd = p.cmd.into_iter();
            let mut info = json!({
                "config": {"cmd": cmd.next().unwrap_or_default(), "args": cmd.collect::<Vec<_>>(),
                           "envs": {}, "cwd": p.cwd},
                "pid": p.pid,
            });
            if let Some(tag) = p.tag {
                info["tag"] = json!(tag);
            }
            info
        })
        .collect();
    Ok(axum::Json(ListResponse { processes }))
}

#[derive(Serialize)]
pub struct Empty {}

pub async fn send_input(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    Message(req): Message<SelectRequest>,
) -> Unary<Empty> {
    let which = selector(req.process)?;
    let data = stdin_bytes(req.input)?;
    service
        .send_input(&envd.caller, &envd.id, &which, bytes_body(data), false)
        .await?;
    Ok(axum::Json(Empty {}))
}

pub async fn close_stdin(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    Message(req): Message<SelectRequest>,
) -> Unary<Empty> {
    let which = selector(req.process)?;
    service
        .send_input(
            &envd.caller,
            &envd.id,
            &which,
            bytes_body(bytes::Bytes::new()),
            true,
        )
        .await?;
    Ok(axum::Json(Empty {}))
}

/// `SendSignal`: `SIGNAL_SIGTERM` or `SIGNAL_SIGKILL` (the whole tree).
pub async fn send_signal(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    Message(req): Message<SelectRequest>,
) -> Unary<Empty> {
    let which = selector(req.process)?;
    let signal = match req.signal.as_deref() {
        Some("SIGNAL_SIGKILL") | Some("9") => "SIGKILL",
        Some("SIGNAL_SIGTERM") | Some("15") => "SIGTERM",
        other => {
            return Err(ApiError::bad_request(format!(
                "signal {other:?} is not SIGTERM or SIGKILL"
            ))
            .into());
        }
    };
    service
        .signal_process(&envd.caller, &envd.id, &which, signal)
        .await?;
    Ok(axum::Json(Empty {}))
}

/// One message of a `StreamInput` stream.
#[derive(Deserialize)]
struct StreamInputMessage {
    start: Option<SelectRequest>,
    data: Option<SelectRequest>,
}

/// `StreamInput`: a client stream whose first message names the process and whose
/// `data` messages are its stdin, in order, written as they arrive. The answer is
/// Connect's client-streaming shape: one empty message, then the end (or the error).
pub async fn stream_input(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    body: axum::body::Body,
) -> Response {
    let outcome = async {
        let mut messages = Box::pin(envelopes(body).map(|item| {
            item.and_then(|(_, json)| {
                serde_json::from_slice::<StreamInputMessage>(&json)
                    .map_err(|e| ApiError::bad_request(format!("malformed message: {e}")))
            })
        }));
        let first = messages.next().await.transpose()?;
        let which = match first.and_then(|m| m.start) {
            Some(start) => selector(start.process)?,
            None => {
                return Err(ApiError::bad_request(
                    "a StreamInput stream starts with `start`",
                ));
            }
        };
        // Keepalives carry nothing; each `data` is one chunk of stdin.
        let input = messages.filter_map(|item| async move {
            match item {
                Ok(StreamInputMessage {
                    data: Some(data), ..
                }) => Some(stdin_bytes(data.input).map_err(|e| std::io::Error::other(e.message))),
                Ok(_) => None,
                Err(err) => Some(Err(std::io::Error::other(err.message))),
            }
        });
        service
            .send_input(&envd.caller, &envd.id, &which, Box::pin(input), false)
            .await
    }
    .await;
    stream(futures_util::stream::once(async move {
        outcome.map(|()| Empty {})
    }))
}

/// The input bytes of a `ProcessInput` (base64 in the JSON mapping): for stdin, or
/// typed at its terminal (`pty`); both go to what the process reads.
fn stdin_bytes(input: Option<InputJson>) -> Result<bytes::Bytes, ApiError> {
    let input = input.unwrap_or(InputJson {
        stdin: None,
        pty: None,
    });
    let text = input.stdin.or(input.pty).unwrap_or_default();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map(bytes::Bytes::from)
        .map_err(|_| ApiError::bad_request("input is base64"))
}

/// `Update` resizes a process's terminal.
pub async fn update(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    Message(req): Message<SelectRequest>,
) -> Unary<Empty> {
    let which = selector(req.process)?;
    let size = req
        .pty
        .and_then(|pty| pty.size)
        .ok_or_else(|| ApiError::bad_request("Update gives the terminal's new `pty.size`"))?;
    service
        .resize_terminal(&envd.caller, &envd.id, &which, size)
        .await?;
    Ok(axum::Json(Empty {}))
}
