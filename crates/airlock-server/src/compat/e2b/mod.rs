//! The E2B face: its control plane under `/e2b` and its in-sandbox daemon, envd, under
//! `/e2b/envd`, so the unmodified E2B SDKs drive Airlock sandboxes when pointed there:
//! `E2B_API_URL=$AIRLOCK_URL/e2b`, `E2B_SANDBOX_URL=$AIRLOCK_URL/e2b/envd`,
//! `E2B_API_KEY=<an Airlock API token>`. Every credential goes through the one
//! authenticator; every rule is the service's.

mod connect;
mod control;
mod files;
mod filesystem;
mod process;
pub(crate) mod proto_codec;

use std::sync::Arc;

use airlock_service::{ApiError, Principal, Service};

use crate::compat::header;
use crate::rest::json::QueryParams;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

/// The envd version reported to the SDKs: as new as the newest feature gate of the
/// pinned SDKs (network-mount watches, 0.6.4), so they stream uploads as octet-stream
/// instead of buffering multipart, send stdin, and read entries in watch events.
pub const ENVD_VERSION: &str = "0.6.4";

/// Where a relative path starts: the sandbox user's home, as envd resolves it.
const HOME: &str = "/home/user";

/// An error in E2B's REST shape: `{"code": <status>, "message"}`.
pub struct Failure(ApiError);

impl From<ApiError> for Failure {
    fn from(err: ApiError) -> Self {
        Self(err)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = self.0.code.status();
        let body = serde_json::json!({"code": status, "message": self.0.message});
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(body)).into_response()
    }
}

/// A path as envd takes it: absolute, or relative to the user's home.
fn resolve(path: &str) -> Result<String, ApiError> {
    if path.is_empty() {
        return Err(ApiError::bad_request("name a path"));
    }
    Ok(if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{HOME}/{path}")
    })
}

/// The caller and sandbox of an envd request.
#[derive(Clone)]
pub struct Envd {
    caller: Principal,
    id: String,
}

/// `/e2b`: the control plane.
pub fn control_router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/v2/sandboxes", post(control::create).get(control::list))
        .route("/sandboxes", post(control::create))
        .route("/v2/sandboxes/{id}/connect", post(control::connect))
        .route("/sandboxes/{id}/connect", post(control::connect))
        .route("/sandboxes/{id}/resume", post(control::resume))
        .route("/sandboxes/{id}", get(control::get).delete(control::kill))
        .route("/sandboxes/{id}/timeout", post(control::timeout))
        .route("/sandboxes/{id}/pause", post(control::pause))
        .route_layer(middleware::from_fn_with_state(service.clone(), api_key))
        .with_state(service)
}

/// `/e2b/envd`: the in-sandbox daemon's REST and Connect routes.
pub fn envd_router(service: Arc<Service>) -> Router {
    let checked = Router::new()
        .route("/files", get(files::read).post(files::write))
        // SeaCloud's envd-compatible extensions.
        .route("/file", get(files::read).post(files::write_raw))
        .route("/files/content", get(files::read))
        .route("/files/batch", post(files::write))
        .route("/files/compose", post(files::compose))
        .route("/filesystem.Filesystem/Stat", post(filesystem::stat))
        .route("/filesystem.Filesystem/MakeDir", post(filesystem::make_dir))
        .route("/filesystem.Filesystem/Move", post(filesystem::rename))
        .route("/filesystem.Filesystem/ListDir", post(filesystem::list_dir))
        .route("/filesystem.Filesystem/Remove", post(filesystem::remove))
        .route(
            "/filesystem.Filesystem/WatchDir",
            post(filesystem::watch_dir),
        )
        .route(
            "/filesystem.Filesystem/CreateWatcher",
            post(filesystem::create_watcher),
        )
        .route(
            "/filesystem.Filesystem/GetWatcherEvents",
            post(filesystem::get_watcher_events),
        )
        .route(
            "/filesystem.Filesystem/RemoveWatcher",
            post(filesystem::remove_watcher),
        )
        .route("/process.Process/Start", post(process::start))
        .route("/process.Process/Connect", post(process::connect))
        .route("/process.Process/List", post(process::list))
        .route("/process.Process/SendInput", post(process::send_input))
        .route("/process.Process/SendSignal", post(process::send_signal))
        .route("/process.Process/CloseStdin", post(process::close_stdin))
        .route("/process.Process/Update", post(process::update))
        .route("/process.Process/StreamInput", post(process::stream_input))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .route_layer(middleware::from_fn(proto_codec::binary_codec))
        .route_layer(middleware::from_fn_with_state(
            service.clone(),
            access_token,
        ))
        .with_state(service);
    // Health answers anyone, as envd's does.
    Router::new()
        .route("/health", get(|| async { StatusCode::NO_CONTENT }))
        .merge(checked)
        .fallback(delete(unknown).fallback(unknown))
}

async fn unknown(request: Request) -> Failure {
    Failure(ApiError::not_found(format!(
        "envd has no route {} {}",
        request.method(),
        request.uri().path()
    )))
}

/// The control plane's credential: `X-API-KEY`, an Airlock API token.
async fn api_key(
    State(service): State<Arc<Service>>,
    mut request: Request,
    next: Next,
) -> Response {
    let key = header(&request, "x-api-key").map(|key| format!("Bearer {key}"));
    match service.authenticate(key.as_deref()).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(refused) => Failure(refused).into_response(),
    }
}

/// envd's credential, `X-Access-Token` (the sandbox token create and connect handed
/// out), and the sandbox, `E2b-Sandbox-Id`; or, on `/files`, a URL the SDK signed.
async fn access_token(
    State(service): State<Arc<Service>>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = header(&request, "x-access-token").map(|t| format!("Bearer {t}"));
    let id = header(&request, "e2b-sandbox-id");
    if token.is_none() && is_signed(&request) {
        return match signed(&service, id.as_deref(), &request) {
            Ok(envd) => {
                request.extensions_mut().insert(envd);
                next.run(request).await
            }
            Err(refused) => Failure(refused).into_response(),
        };
    }
    let caller = match service.authenticate(token.as_deref()).await {
        Ok(caller) => caller,
        Err(refused) => return Failure(refused).into_response(),
    };
    let Some(id) = id else {
        return Failure(ApiError::bad_request("send E2b-Sandbox-Id")).into_response();
    };
    request.extensions_mut().insert(Envd { caller, id });
    next.run(request).await
}

/// `/files` with a `signature` parameter and no token: a URL from the SDK's
/// `download_url` or `upload_url`.
fn is_signed(request: &Request) -> bool {
    request.uri().path().ends_with("/files")
        && QueryParams::names(request.uri().query(), "signature")
}

/// The caller and sandbox a signed URL stands for; `id`, when the request names one,
/// must be the sandbox that signed.
fn signed(service: &Service, id: Option<&str>, request: &Request) -> Result<Envd, ApiError> {
    let params = QueryParams::parse(request.uri().query().unwrap_or_default())?;
    let signature = airlock_service::EnvdSignature {
        path: params.at_most_once("path")?.unwrap_or_default(),
        write: request.method() == axum::http::Method::POST,
        user: params.at_most_once("username")?.unwrap_or_default(),
        signature: params.once("signature")?,
        expiration: params.at_most_once("signature_expiration")?,
    };
    let (id, caller) = service.authenticate_envd_signature(id, &signature)?;
    Ok(Envd { caller, id })
}

/// `/files` at the daemon's root: the SDKs build signed file URLs from the sandbox URL's
/// origin, dropping its path, so they arrive here. Only signed requests are taken.
pub fn signed_files_router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/files", get(files::read).post(files::write))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .route_layer(middleware::from_fn_with_state(service.clone(), signed_only))
        .with_state(service)
}

async fn signed_only(
    State(service): State<Arc<Service>>,
    mut request: Request,
    next: Next,
) -> Response {
    if !is_signed(&request) {
        let refused = ApiError::new(
            airlock_api::ErrorCode::Unauthorized,
            "/files takes a signed URL; envd lives under /e2b/envd",
        );
        return Failure(refused).into_response();
    }
    let id = header(&request, "e2b-sandbox-id");
    match signed(&service, id.as_deref(), &request) {
        Ok(envd) => {
            request.extensions_mut().insert(envd);
            next.run(request).await
        }
        Err(refused) => Failure(refused).into_response(),
    }
}
