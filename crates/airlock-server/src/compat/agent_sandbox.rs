//! The Kubernetes agent-sandbox runtime API under `/agent-sandbox`, so its unmodified SDK
//! (`SandboxDirectConnectionConfig(api_url=$AIRLOCK_URL/agent-sandbox, ...)`) drives an
//! Airlock sandbox. The sandbox is the one `X-Sandbox-ID` names; the credential is
//! `Authorization: Bearer`, resolved by the one authenticator. Paths come relative (the
//! SDK strips the leading `/`) and are taken from the sandbox's `/`. Every rule is the
//! service's: this face only parses, calls and encodes.
//!
//! Two generations of the runtime API are served: the legacy python-runtime routes a
//! direct connection speaks (`/execute`, `/upload`, `/download/…`, `/list/…`,
//! `/exists/…`) and sandboxd's `/v1/files/…`.

use crate::sendfile::SendQueue;
use std::sync::Arc;

use airlock_api::{ErrorCode, ExecRequest, FileEntry};
use airlock_service::{ApiError, ListFiles, Need, Principal, PutFile, Service};
use axum::Router;
use axum::body::Body;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::rest::body::stream;

/// The caller and the sandbox a request is for.
#[derive(Clone)]
struct Target {
    caller: Principal,
    id: String,
}

/// An error in the runtime's shape: `{"message"}` (sandboxd adds `"code"`).
struct Refusal(ApiError);

impl From<ApiError> for Refusal {
    fn from(err: ApiError) -> Self {
        Self(err)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({"code": self.0.code.name(), "message": self.0.message});
        (status, axum::Json(body)).into_response()
    }
}

type Answer<T> = Result<T, Refusal>;

pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/", get(|| async { axum::Json(json!({"status": "ok"})) }))
        .route("/execute", post(execute))
        .route("/upload", post(upload))
        .route("/download/{*path}", get(download))
        .route("/list/", get(list_root))
        .route("/list/{*path}", get(list))
        .route("/exists/{*path}", get(exists))
        .route(
            "/v1/files/{*path}",
            get(v1_get).head(v1_head).put(v1_put).delete(v1_delete),
        )
        .layer(axum::extract::DefaultBodyLimit::disable())
        .route_layer(middleware::from_fn_with_state(service.clone(), target))
        .with_state(service)
}

/// Resolves the credential and the sandbox before any handler runs.
async fn target(State(service): State<Arc<Service>>, mut request: Request, next: Next) -> Response {
    let authorization = super::header(&request, header::AUTHORIZATION.as_str());
    let id = super::header(&request, "x-sandbox-id");
    let caller = match service.authenticate(authorization.as_deref()).await {
        Ok(caller) => caller,
        Err(refused) => return Refusal(refused).into_response(),
    };
    let Some(id) = id else {
        let missing = ApiError::bad_request("send X-Sandbox-ID: the Airlock sandbox id");
        return Refusal(missing).into_response();
    };
    request.extensions_mut().insert(Target { caller, id });
    next.run(request).await
}

/// A path as the SDK sends it (relative, or absolute percent-encoded), from `/`.
fn absolute(path: &str) -> String {
    format!("/{}", path.trim_start_matches('/'))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Execute {
    command: String,
    timeout_seconds: Option<f64>,
}

/// `POST /execute {"command"}`: run through a shell, as the documentation's own examples
/// (`echo … > path`) need.
async fn execute(
    State(service): State<Arc<Service>>,
    axum::Extension(t): axum::Extension<Target>,
    crate::rest::json::Json(req): crate::rest::json::Json<Execute>,
) -> Answer<Response> {
    let exec = ExecRequest {
        shell: Some(req.command),
        timeout_ms: req.timeout_seconds.map(|s| (s * 1000.0).ceil() as u64),
        ..Default::default()
    };
    let result = service.exec(&t.caller, &t.id, exec).await?;
    let body = json!({
        "stdout": result.stdout,
        "stderr": result.stderr,
        "exit_code": result.exit_code,
    });
    Ok(axum::Json(body).into_response())
}

/// `POST /upload`: multipart; each part's filename is its destination, relative to `/`.
/// Parts stream straight into their atomic writes.
async fn upload(
    State(service): State<Arc<Service>>,
    axum::Extension(t): axum::Extension<Target>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Answer<Response> {
    let mut multipart = multipart
        .map_err(|e| ApiError::bad_request(format!("upload takes multipart/form-data: {e}")))?;
    let mut written = Vec::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the multipart body: {e}")))?
    {
        let Some(name) = field.file_name().map(absolute) else {
            continue;
        };
        let put = PutFile {
            parents: Some(true),
            ..PutFile::default()
        };
        let (outcome, broken) = crate::rest::multipart::stream_part(field, |body| {
            service.put_file(&t.caller, &t.id, &name, put, body)
        })
        .await;
        outcome?;
        if let Some(reason) = broken {
            return Err(
                ApiError::bad_request(format!("the multipart body broke: {reason}")).into(),
            );
        }
        written.push(name);
    }
    let message = format!("{} file(s) uploaded", written.len());
    Ok(axum::Json(json!({"message": message, "paths": written})).into_response())
}

/// `GET /download/{path}`: the bytes, streamed.
async fn download(
    State(service): State<Arc<Service>>,
    axum::Extension(t): axum::Extension<Target>,
    Path(path): Path<String>,
    queue: Option<axum::Extension<SendQueue>>,
) -> Answer<Response> {
    file_bytes(&service, &t, &absolute(&path), queue.as_deref()).await
}

async fn file_bytes(
    service: &Service,
    t: &Target,
    path: &str,
    queue: Option<&SendQueue>,
) -> Answer<Response> {
    let (content, entry) = service.open_file(&t.caller, &t.id, path).await?;
    // Without a Range header the whole file is the answer: nothing can be unsatisfiable.
    let Ok((body, _)) = crate::rest::range::ranged_body(content, entry.size, None, queue) else {
        return Err(ApiError::bad_request("no range was asked for").into());
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, entry.size.to_string()),
        ],
        body,
    )
        .into_response())
}

/// Every entry directly in `path`, all pages.
async fn entries(service: &Service, t: &Target, path: &str) -> Result<Vec<FileEntry>, ApiError> {
    let req = ListFiles {
        path: path.to_owned(),
        ..ListFiles::default()
    };
    service.list_all_files(&t.caller, &t.id, req).await
}

fn kind(entry: &FileEntry) -> &'static str {
    if entry.kind == "dir" {
        "directory"
    } else {
        "file"
    }
}

fn epoch_secs(rfc3339: &str) -> f64 {
    humantime::parse_rfc3339(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

async fn list_root(
    State(service): State<Arc<Service>>,
    axum::Extension(t): axum::Extension<Target>,
) -> Answer<Response> {
    legacy_list(&service, &t, "/").await
}

/// `GET /list/{path}` → `[{name, size, type, mod_time}]`.
async fn list(
    State(service): State<Arc<Service>>,
    axum::Extension(t): axum::Extension<Target>,
    Path(path): Path<String>,
) -> Answer<Response> {
    legacy_list(&service, &t, &absolute(&path)).await
}

async fn legacy_list(service: &Service, t: &Target, path: &str) -> Answer<Response> {
    let listed: Vec<_> = entries(service, t, path)
        .await?
        .iter()
        .map(|e| json!({"name": e.name, "size": e.size, "type": kind(e), "mod_time": epoch_secs(&e.mtime)}))
        .collect();
    Ok(axum::Json(listed).into_response())
}

/// `GET /exists/{path}` → `{path, exists}`.
async fn exists(
    State(service): State<Arc<Service>>,
    axum::Extension(t): axum::Extension<Target>,
    Path(path): Path<String>,
) -> Answer<Response> {
    // The door first, so a sandbox the caller may not reach is 404, not "false".
    service.require(&t.caller, &t.id, Need::Read)?;
    let exists = match service.stat_file(&t.caller, &t.id, &absolute(&path)).await {
        Ok(_) => true,
        Err(err) if err.code == ErrorCode::NotFound => false,
        Err(err) => return Err(err.into()),
    };
    Ok(axum::Json(json!({"path": path, "exists": exists})).into_response())
}

/// sandboxd `GET /v1/files/{path}`: a file's bytes, or a directory's listing.
async fn v1_get(
    State(service): State<Arc<Service>>,
    axum::Extension(t): axum::Extension<Target>,
    Path(path): Path<String>,
    queue: Option<axum::Extension<SendQueue>>,
) -> Answer<Response> {
    let path = absolute(&path);
    let entry = service.stat_file(&t.caller, &t.id, &path).await?;
    if entry.kind != "dir" {
        return file_bytes(&service, &t, &path, queue.as_deref()).await;
    }
    let listed: Vec<_> = entries(&service, &t, &path)
        .await?
        .iter()
        .map(|e| {
            json!({"name": e.name, "size": e.size, "type": kind(e),
                   "modified_at": e.mtime, "mode": format!("{:04o}", e.mode.0)})
        })
        .collect();
    Ok(axum::Json(json!({"path": path, "entries": listed})).into_response())
}

/// sandboxd `HEAD /v1/files/{path}`: 200 when it exists, 404 when not.
async fn v1_head(
    State(service): State<Arc<Service>>,
    axum::Extension(t): axum::Extension<Target>,
    Path(path): Path<String>,
) -> Answer<StatusCode> {
    service
        .stat_file(&t.caller, &t.id, &absolute(&path))
        .await?;
    Ok(StatusCode::OK)
}

#[derive(Deserialize)]
struct ModeQuery {
    mode: Option<String>,
}

/// sandboxd `PUT /v1/files/{path}?mode=0644`: the body, streamed, committed atomically;
/// parents are made.
async fn v1_put(
    State(service): State<Arc<Service>>,
    axum::Extension(t): axum::Extension<Target>,
    Path(path): Path<String>,
    crate::rest::json::Query(q): crate::rest::json::Query<ModeQuery>,
    body: Body,
) -> Answer<StatusCode> {
    let put = PutFile::from_text(
        q.mode.as_deref(),
        None,
        Default::default(),
        Some(true),
        None,
    )?;
    service
        .put_file(&t.caller, &t.id, &absolute(&path), put, stream(body))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct DeleteQuery {
    recursive: Option<bool>,
}

/// sandboxd `DELETE /v1/files/{path}[?recursive=true]`: 204, 404, or 409 for a
/// directory that is not empty.
async fn v1_delete(
    State(service): State<Arc<Service>>,
    axum::Extension(t): axum::Extension<Target>,
    Path(path): Path<String>,
    crate::rest::json::Query(q): crate::rest::json::Query<DeleteQuery>,
) -> Answer<StatusCode> {
    service
        .remove_file(&t.caller, &t.id, &absolute(&path), q.recursive)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
