//! The REST face: routing, auth and request logging. Handlers only parse, call the
//! service and encode.

mod archive;
mod batch;
pub(crate) mod body;
mod envelope;
mod exec;
mod failure;
pub(crate) mod files;
pub(crate) mod headers;
mod idle_body;
pub(crate) mod json;
mod lingering;
pub(crate) mod multipart;
mod openapi;
mod pools;
mod processes;
pub(crate) mod range;
mod raw_body;
mod sandboxes;
mod signed;
mod templates;
mod tokens;
pub(crate) mod tus;
mod watch;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use airlock_service::{ApiError, Principal, Service};

use failure::Failure;

/// JSON bodies (creation with inline files) may be this large.
pub(crate) const JSON_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// The whole HTTP surface. A request body that sends nothing for `idle` fails.
///
/// Uploads stream to disk in constant memory and take no size cap; a JSON body is held
/// to [`JSON_BODY_LIMIT`] by its extractor (`json::Json`). So routes carry no
/// `DefaultBodyLimit` layer but where a multipart body streams: each layer nests the
/// route once more, and the nesting is cloned per request (a 1 KiB GET made 17 fewer
/// allocations without the two its route had).
pub fn router(service: Arc<Service>, idle: std::time::Duration) -> Router {
    let v1 = Router::new()
        .route(
            "/v1/sandboxes",
            post(sandboxes::create).get(sandboxes::list),
        )
        .route(
            "/v1/sandboxes/{id}",
            get(sandboxes::get).delete(sandboxes::delete),
        )
        .route("/v1/sandboxes/{id}/start", post(sandboxes::start))
        .route("/v1/sandboxes/{id}/stop", post(sandboxes::stop))
        .route("/v1/sandboxes/{id}/exec", post(exec::exec))
        .route(
            "/v1/sandboxes/{id}/processes",
            post(processes::start).get(processes::list),
        )
        .route(
            "/v1/sandboxes/{id}/processes/{pid}",
            get(processes::get).delete(processes::kill),
        )
        .route(
            "/v1/sandboxes/{id}/processes/{pid}/events",
            get(processes::events),
        )
        .route(
            "/v1/sandboxes/{id}/processes/{pid}/stdin",
            post(processes::stdin),
        )
        .route(
            "/v1/sandboxes/{id}/processes/{pid}/signal",
            post(processes::signal),
        )
        .route(
            "/v1/sandboxes/{id}/processes/{pid}/resize",
            post(processes::resize),
        )
        .route(
            "/v1/sandboxes/{id}/files",
            get(files::list).delete(files::delete),
        )
        .route(
            "/v1/sandboxes/{id}/files/",
            get(files::list).delete(files::delete),
        )
        .route("/v1/sandboxes/{id}/files/stat", get(files::stat))
        .route("/v1/sandboxes/{id}/files/mkdir", post(files::mkdir))
        .route("/v1/sandboxes/{id}/files/move", post(files::rename))
        .route("/v1/sandboxes/{id}/files/compose", post(files::compose))
        .route("/v1/sandboxes/{id}/files/watch", get(watch::watch))
        .route(
            "/v1/sandboxes/{id}/files/batch",
            // axum's multipart reader would hold the whole body to 2 MB.
            post(batch::batch).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/sandboxes/{id}/files/archive",
            get(archive::download)
                .put(archive::upload)
                .post(archive::download_paths),
        )
        .route(
            "/v1/sandboxes/{id}/files/content",
            get(files::download).put(files::upload).post(files::patch),
        )
        .merge(tus_routes())
        .route("/v1/templates", get(templates::list))
        .route("/v1/warm-pools", get(pools::list))
        .route("/v1/warm-pools/{template}", put(pools::size))
        .route(
            "/v1/templates/{name}",
            put(templates::register).delete(templates::delete),
        )
        .route("/v1/tokens", post(tokens::create).get(tokens::list))
        .route("/v1/tokens/{token}", axum::routing::delete(tokens::revoke))
        .route(
            "/v1/sandboxes/{id}/tokens",
            post(tokens::create_for_sandbox),
        )
        .route("/v1/sandboxes/{id}/files/signed-url", post(signed::sign))
        .route_layer(middleware::from_fn_with_state(
            service.clone(),
            require_token,
        ))
        // Added after the token check, so the description needs no token.
        .route("/v1/openapi.json", get(openapi::document))
        .with_state(service.clone());
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(metrics)
                .route_layer(middleware::from_fn_with_state(
                    service.clone(),
                    require_token,
                ))
                .with_state(service.clone()),
        )
        // Merged, not nested: a nested router rewrites every request's URI to strip
        // its prefix, an allocation and a parse per request for nothing.
        .merge(v1)
        .nest(
            "/agent-sandbox",
            crate::compat::agent_sandbox::router(service.clone()),
        )
        .nest(
            "/e2b/envd",
            crate::compat::e2b::envd_router(service.clone()),
        )
        .nest("/e2b", crate::compat::e2b::control_router(service.clone()))
        .merge(crate::compat::e2b::signed_files_router(service.clone()))
        .fallback(unknown_route)
        .layer(middleware::from_fn_with_state(idle, envelope::envelope))
}

/// Resumable uploads (tus 1.0), with the protocol's version check on every route.
fn tus_routes() -> Router<Arc<Service>> {
    use axum::routing::{head, options};
    Router::new()
        .route(
            "/v1/sandboxes/{id}/uploads",
            options(tus::options).post(tus::create),
        )
        .route(
            "/v1/sandboxes/{id}/uploads/{upload}",
            head(tus::status)
                .patch(tus::append)
                .delete(tus::terminate)
                .options(tus::options),
        )
        .layer(middleware::from_fn(tus::tus_protocol))
}

/// Every `/v1` route needs `Authorization: Bearer <token>`, or, on a file's content
/// route, a signed URL's parameters; the handlers get the caller either names as a
/// [`Principal`].
async fn require_token(
    State(service): State<Arc<Service>>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = if presented.is_none() && signed::presents_signature(&request) {
        signed::admit(&service, &request)
    } else {
        service.authenticate(presented).await
    };
    match caller {
        Ok(caller) => {
            request.extensions_mut().insert::<Principal>(caller);
            next.run(request).await
        }
        Err(refused) => unauthorized(refused),
    }
}

/// `GET /metrics`: the OpenMetrics exposition, for the admin token alone.
async fn metrics(
    State(service): State<Arc<Service>>,
    axum::Extension(caller): axum::Extension<Principal>,
) -> Response {
    match service.metrics_text(&caller) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(refused) => Failure(refused).into_response(),
    }
}

fn unauthorized(refused: ApiError) -> Response {
    let mut response = Failure(refused).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

async fn unknown_route(request: Request) -> Failure {
    Failure(ApiError::not_found(format!(
        "no route {} {}",
        request.method(),
        request.uri().path()
    )))
}
