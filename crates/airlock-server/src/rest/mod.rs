//! The REST face: routing, auth and request logging. Handlers only parse, call the
//! service and encode.

mod archive;
mod batch;
pub(crate) mod body;
mod exec;
mod failure;
pub(crate) mod files;
pub(crate) mod headers;
mod idle_body;
pub(crate) mod json;
pub(crate) mod multipart;
mod openapi;
mod pools;
mod processes;
pub(crate) mod range;
mod sandboxes;
mod signed;
mod templates;
mod tokens;
pub(crate) mod tus;
mod watch;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use airlock_service::{ApiError, Principal, Service};

use failure::Failure;

/// JSON bodies (creation with inline files) may be this large.
pub(crate) const JSON_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// The whole HTTP surface. A request body that sends nothing for `idle` fails.
pub fn router(service: Arc<Service>, idle: std::time::Duration) -> Router {
    let v1 = Router::new()
        .route("/sandboxes", post(sandboxes::create).get(sandboxes::list))
        .route(
            "/sandboxes/{id}",
            get(sandboxes::get).delete(sandboxes::delete),
        )
        .route("/sandboxes/{id}/start", post(sandboxes::start))
        .route("/sandboxes/{id}/stop", post(sandboxes::stop))
        .route("/sandboxes/{id}/exec", post(exec::exec))
        .route(
            "/sandboxes/{id}/processes",
            post(processes::start).get(processes::list),
        )
        .route(
            "/sandboxes/{id}/processes/{pid}",
            get(processes::get).delete(processes::kill),
        )
        .route(
            "/sandboxes/{id}/processes/{pid}/events",
            get(processes::events),
        )
        .route(
            "/sandboxes/{id}/processes/{pid}/stdin",
            post(processes::stdin).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(
            "/sandboxes/{id}/processes/{pid}/signal",
            post(processes::signal),
        )
        .route(
            "/sandboxes/{id}/processes/{pid}/resize",
            post(processes::resize),
        )
        .route(
            "/sandboxes/{id}/files",
            get(files::list).delete(files::delete),
        )
        .route(
            "/sandboxes/{id}/files/",
            get(files::list).delete(files::delete),
        )
        .route("/sandboxes/{id}/files/stat", get(files::stat))
        .route("/sandboxes/{id}/files/mkdir", post(files::mkdir))
        .route("/sandboxes/{id}/files/move", post(files::rename))
        .route("/sandboxes/{id}/files/compose", post(files::compose))
        .route("/sandboxes/{id}/files/watch", get(watch::watch))
        .route(
            "/sandboxes/{id}/files/batch",
            post(batch::batch).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(
            "/sandboxes/{id}/files/archive",
            get(archive::download)
                .put(archive::upload)
                .post(archive::download_paths)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        // Uploads stream to disk in constant memory, so they take no body size cap.
        .route(
            "/sandboxes/{id}/files/content",
            get(files::download)
                .put(files::upload)
                .post(files::patch)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .merge(tus_routes())
        .route("/templates", get(templates::list))
        .route("/warm-pools", get(pools::list))
        .route("/warm-pools/{template}", put(pools::size))
        .route(
            "/templates/{name}",
            put(templates::register).delete(templates::delete),
        )
        .fallback(unknown_route)
        .layer(axum::extract::DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .route("/tokens", post(tokens::create).get(tokens::list))
        .route("/tokens/{token}", axum::routing::delete(tokens::revoke))
        .route("/sandboxes/{id}/tokens", post(tokens::create_for_sandbox))
        .route("/sandboxes/{id}/files/signed-url", post(signed::sign))
        .route_layer(middleware::from_fn_with_state(
            service.clone(),
            require_token,
        ))
        // Added after the token check, so the description needs no token.
        .route("/openapi.json", get(openapi::document))
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
        .nest("/v1", v1)
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
        .layer(middleware::from_fn_with_state(idle, idle_body::idle_bodies))
        .layer(middleware::from_fn(close_after_refused_body))
        .layer(middleware::from_fn(refuse_large_heads))
        .layer(middleware::from_fn(log_request))
}

/// A request's URI and headers together may be this large; more is answered 431.
const MAX_HEAD: usize = 32 * 1024;

/// Nothing legitimate needs a larger head (the longest path, percent-encoded, is 12 KiB),
/// and a small one bounds what every handler may be asked to parse.
async fn refuse_large_heads(request: Request, next: Next) -> Response {
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    // Requests arrive in origin form: the path and query are the whole URI.
    let uri = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if uri + header_bytes > MAX_HEAD {
        let mut response = Failure(ApiError::new(
            airlock_api::ErrorCode::HeadersTooLarge,
            format!(
                "the request's URI and headers are over {} KiB",
                MAX_HEAD >> 10
            ),
        ))
        .into_response();
        headers::close_connection(&mut response);
        return response;
    }
    next.run(request).await
}

/// Resumable uploads (tus 1.0), with the protocol's version check on every route.
fn tus_routes() -> Router<Arc<Service>> {
    use axum::routing::{head, options};
    Router::new()
        .route(
            "/sandboxes/{id}/uploads",
            options(tus::options).post(tus::create),
        )
        .route(
            "/sandboxes/{id}/uploads/{upload}",
            head(tus::status)
                .patch(tus::append)
                .delete(tus::terminate)
                .options(tus::options),
        )
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(middleware::from_fn(tus::tus_protocol))
}

/// An error answered before a request body was read (a 409 for an upload, say) leaves
/// the rest of that body on the connection; asking the client to close it keeps the
/// next request on a keep-alive connection from failing.
async fn close_after_refused_body(request: Request, next: Next) -> Response {
    let has_body = headers::has_body(request.headers());
    let mut response = next.run(request).await;
    let status = response.status();
    if has_body && (status.is_client_error() || status.is_server_error()) {
        headers::close_connection(&mut response);
    }
    response
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

/// One line per request: method, path, status, time. Never headers, so never tokens.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| crate::observe::RouteLabel(m.as_str().to_owned()));
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    let status = response.status();
    let micros = started.elapsed().as_micros() as u64;
    if status.is_server_error() {
        tracing::error!(%method, %path, status = status.as_u16(), micros, "request");
    } else if status == StatusCode::NOT_FOUND || status.is_client_error() {
        tracing::info!(%method, %path, status = status.as_u16(), micros, "request");
    } else {
        tracing::debug!(%method, %path, status = status.as_u16(), micros, "request");
    }
    response
}
