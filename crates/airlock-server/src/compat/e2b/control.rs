//! E2B's control plane under `/e2b`: creating, connecting to, listing, inspecting,
//! timing, pausing (stopping) and killing sandboxes, in the JSON shapes the E2B SDKs
//! read. `X-API-KEY` carries an Airlock API token. A created or connected sandbox comes
//! with an `envdAccessToken`: a write token for that sandbox alone, which the SDK then
//! sends to envd and signs file URLs with.

use std::collections::BTreeMap;
use std::sync::Arc;

use airlock_api::{CreateSandbox, Sandbox, SandboxState};
use airlock_service::{ApiError, Principal, Service};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ENVD_VERSION, Failure};

/// What E2B calls its default template; Airlock's is `host`.
const E2B_DEFAULT_TEMPLATE: &str = "base";
/// E2B's default lifetime, in seconds.
const DEFAULT_TIMEOUT_SECS: u64 = 300;

type Answer = Result<Response, Failure>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSandbox {
    #[serde(rename = "templateID")]
    template_id: String,
    timeout: Option<u64>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    env_vars: BTreeMap<String, String>,
}

/// `base` is Airlock's `host` unless a template named `base` is registered.
fn template_for(service: &Service, caller: &Principal, asked: &str) -> Result<String, ApiError> {
    if asked != E2B_DEFAULT_TEMPLATE {
        return Ok(asked.to_owned());
    }
    let registered = service
        .templates(caller)?
        .iter()
        .any(|t| t.name == E2B_DEFAULT_TEMPLATE);
    Ok(if registered { asked } else { "host" }.to_owned())
}

/// The sandbox as create and connect answer it, with its envd access token.
fn created(service: &Service, caller: &Principal, sandbox: &Sandbox, template: &str) -> Answer {
    // Derived, not drawn: the SDK signs file URLs with it, and the daemon must check
    // those signatures.
    let token = service.envd_token(caller, &sandbox.id)?;
    let body = json!({
        "templateID": template,
        "sandboxID": sandbox.id,
        "clientID": "airlock",
        "envdVersion": ENVD_VERSION,
        "envdAccessToken": token,
        "alias": template,
    });
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

/// `POST /v2/sandboxes` (and the older `/sandboxes`).
pub async fn create(
    State(service): State<Arc<Service>>,
    axum::Extension(caller): axum::Extension<Principal>,
    crate::rest::json::Json(req): crate::rest::json::Json<NewSandbox>,
) -> Answer {
    let template = template_for(&service, &caller, &req.template_id)?;
    let made = service
        .create(
            &caller,
            CreateSandbox {
                template: Some(template),
                env: req.env_vars,
                labels: req.metadata,
                ttl_secs: Some(req.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS)),
                ..CreateSandbox::default()
            },
        )
        .await?;
    // E2B's SDKs use a sandbox as soon as its create answers.
    let made = service.until_settled(&caller, &made.id).await?;
    created(&service, &caller, &made, &req.template_id)
}

#[derive(Deserialize)]
pub struct Timeout {
    timeout: Option<u64>,
}

/// `POST /v2/sandboxes/{id}/connect`: resumes a paused (stopped) sandbox, sets its
/// timeout, and hands out an envd token.
pub async fn connect(
    State(service): State<Arc<Service>>,
    axum::Extension(caller): axum::Extension<Principal>,
    Path(id): Path<String>,
    crate::rest::json::Json(req): crate::rest::json::Json<Timeout>,
) -> Answer {
    let mut sandbox = service.get(&caller, &id)?;
    if sandbox.state != SandboxState::Running {
        sandbox = service.start(&caller, &id).await?;
    }
    if let Some(secs) = req.timeout {
        sandbox = service.set_timeout(&caller, &id, secs)?;
    }
    let template = sandbox.template.clone();
    let mut answer = created(&service, &caller, &sandbox, &template)?;
    *answer.status_mut() = StatusCode::OK;
    Ok(answer)
}

/// `POST /sandboxes/{id}/resume` (older SDKs): as connect.
pub async fn resume(
    state: State<Arc<Service>>,
    caller: axum::Extension<Principal>,
    id: Path<String>,
    body: crate::rest::json::Json<Timeout>,
) -> Answer {
    let mut answer = connect(state, caller, id, body).await?;
    *answer.status_mut() = StatusCode::CREATED;
    Ok(answer)
}

/// A sandbox as listings and `get_info` show it.
fn listed(sandbox: &Sandbox) -> Value {
    let state = match sandbox.state {
        SandboxState::Running => "running",
        _ => "paused",
    };
    let started = sandbox
        .started_at
        .clone()
        .unwrap_or_else(|| sandbox.created_at.clone());
    json!({
        "templateID": sandbox.template,
        "alias": sandbox.template,
        "sandboxID": sandbox.id,
        "clientID": "airlock",
        "startedAt": started,
        "endAt": sandbox.expires_at.clone().unwrap_or_else(|| "9999-12-31T23:59:59Z".into()),
        "cpuCount": sandbox.limits.cpus.map_or(1, |c| c.ceil() as u64),
        "memoryMB": sandbox.limits.memory_mb.unwrap_or(0),
        "diskSizeMB": sandbox.limits.disk_mb.unwrap_or(0),
        "metadata": sandbox.labels,
        "state": state,
        "envdVersion": ENVD_VERSION,
    })
}

#[derive(Deserialize)]
pub struct ListQuery {
    /// `key=value&key2=value2`, URL-encoded, as the SDK sends it.
    metadata: Option<String>,
    /// `running`, `paused`, or both, comma-separated.
    state: Option<String>,
}

/// `GET /v2/sandboxes`: every sandbox the key reaches, filtered by metadata and state.
pub async fn list(
    State(service): State<Arc<Service>>,
    axum::Extension(caller): axum::Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Answer {
    let wanted = match q.metadata.as_deref() {
        Some(metadata) => crate::rest::json::QueryParams::parse(metadata)?.0,
        None => Vec::new(),
    };
    let states: Option<Vec<&str>> = q.state.as_deref().map(|s| s.split(',').collect());
    let all: Vec<Value> = service
        .list(&caller)?
        .iter()
        .filter(|s| wanted.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map(listed)
        .filter(|s| {
            states
                .as_ref()
                .is_none_or(|states| states.iter().any(|st| s["state"] == *st))
        })
        .collect();
    Ok(axum::Json(all).into_response())
}

/// `GET /sandboxes/{id}`.
pub async fn get(
    State(service): State<Arc<Service>>,
    axum::Extension(caller): axum::Extension<Principal>,
    Path(id): Path<String>,
) -> Answer {
    Ok(axum::Json(listed(&service.get(&caller, &id)?)).into_response())
}

/// `DELETE /sandboxes/{id}`.
pub async fn kill(
    State(service): State<Arc<Service>>,
    axum::Extension(caller): axum::Extension<Principal>,
    Path(id): Path<String>,
) -> Answer {
    service.delete(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /sandboxes/{id}/timeout {"timeout"}`.
pub async fn timeout(
    State(service): State<Arc<Service>>,
    axum::Extension(caller): axum::Extension<Principal>,
    Path(id): Path<String>,
    crate::rest::json::Json(req): crate::rest::json::Json<Timeout>,
) -> Answer {
    let secs = req
        .timeout
        .ok_or_else(|| ApiError::bad_request("give the timeout in seconds"))?;
    service.set_timeout(&caller, &id, secs)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /sandboxes/{id}/pause`: Airlock stops it (its files stay; connect starts it).
pub async fn pause(
    State(service): State<Arc<Service>>,
    axum::Extension(caller): axum::Extension<Principal>,
    Path(id): Path<String>,
) -> Answer {
    service.stop(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
