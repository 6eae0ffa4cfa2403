//! envd's `process.Process` Connect service (JSON codec) over the service's processes
//! that outlive their request: Start and Connect stream a process's events (`start`
//! first, then output, then `end`); List, SendInput, SendSignal and CloseStdin act on
//! one by pid or tag. A command keeps running when its stream hangs up, as in envd.

use std::collections::BTreeMap;
use std::sync::Arc;

use airlock_api::ExecRequest;
use airlock_api::exec::b64;
use airlock_service::{ApiError, ProcessEvent, Selector, Service, bytes_body};
use axum::extract::State;
use axum::response::Response;
use base64::Engine as _;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Envd;
use super::connect::{Enveloped, Message, Unary, stream};

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

#[derive(Deserialize)]
pub struct StartRequest {
    process: Option<ProcessConfig>,
    pty: Option<Value>,
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
}

#[derive(Deserialize)]
pub struct InputJson {
    stdin: Option<String>,
}

fn selector(which: Option<SelectorJson>) -> Result<Selector, ApiError> {
    match which.unwrap_or_default() {
        SelectorJson { pid: Some(pid), .. } => Ok(Selector::Pid(pid)),
        SelectorJson { tag: Some(tag), .. } => Ok(Selector::Tag(tag)),
        _ => Err(ApiError::bad_request("name the process by pid or tag")),
    }
}

/// One event as envd's `ProcessEvent` in protobuf's JSON mapping (bytes in base64).
fn event(event: ProcessEvent) -> Result<Value, ApiError> {
    let inner = match event {
        ProcessEvent::Start { pid } => json!({"start": {"pid": pid}}),
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

fn events(events: airlock_service::ProcessEvents) -> Response {
    stream(events.map(event))
}

/// `Start`: runs `cmd args…` (the SDK's `commands.run` sends `/bin/bash -l -c LINE`).
/// stdin stays open unless the request says `stdin: false`, as envd does.
pub async fn start(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    Enveloped(req): Enveloped<StartRequest>,
) -> Result<Response, super::connect::ConnectError> {
    if req.pty.is_some() {
        return Err(ApiError::bad_request("Airlock sandboxes have no terminals (PTY)").into());
    }
    let config = req.process.unwrap_or_default();
    let mut cmd = vec![config.cmd];
    cmd.extend(config.args);
    let exec = ExecRequest {
        cmd: Some(cmd),
        env: config.envs,
        cwd: config.cwd.filter(|c| !c.is_empty()),
        ..ExecRequest::default()
    };
    let keep_stdin = req.stdin.unwrap_or(true);
    let (_, started) = service
        .start_process(&envd.caller, &envd.id, exec, req.tag, keep_stdin)
        .await?;
    Ok(events(started))
}

/// `Connect`: a running process's events from now on.
pub async fn connect(
    State(service): State<Arc<Service>>,
    axum::Extension(envd): axum::Extension<Envd>,
    Enveloped(req): Enveloped<SelectRequest>,
) -> Result<Response, super::connect::ConnectError> {
    let which = selector(req.process)?;
    let attached = service.connect_process(&envd.caller, &envd.id, &which, false)?;
    Ok(events(attached))
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
    let data = req
        .input
        .and_then(|i| i.stdin)
        .map(|text| base64::engine::general_purpose::STANDARD.decode(text))
        .transpose()
        .map_err(|_| ApiError::bad_request("stdin is base64"))?
        .unwrap_or_default();
    service
        .send_input(
            &envd.caller,
            &envd.id,
            &which,
            bytes_body(data.into()),
            false,
        )
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

/// `Update` resizes a terminal; there are none, so it is refused.
pub async fn update(Message(_): Message<Value>) -> Unary<Empty> {
    Err(ApiError::bad_request("Airlock sandboxes have no terminals (PTY) to resize").into())
}
