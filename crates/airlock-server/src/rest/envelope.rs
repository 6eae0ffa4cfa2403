//! What every REST request passes through on its way to a route and back: the head's size
//! check, the idle timeout on its body, the close after a refused body and the lingering
//! drain of what the route left unread, the route's label for the metrics, and the log
//! line. One layer, not five: each layer clones the boxed
//! service under it and boxes a future per request, which W3's 1 KiB requests paid for
//! in full.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use airlock_service::ApiError;

use super::failure::Failure;
use super::headers;
use super::idle_body::IdleBody;
use super::lingering::{self, Unread};
use crate::observe::RouteLabel;

/// A request's URI and headers together may be this large; more is answered 431.
const MAX_HEAD: usize = 32 * 1024;

pub async fn envelope(State(idle): State<Duration>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let uri = request.uri().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| RouteLabel(m.clone()));
    let refused_body = headers::has_body(request.headers());
    let mut response = match head_too_large(&request) {
        Some(refusal) => refusal,
        None => {
            let (mut request, unread) = guard_body(request, idle);
            if request.headers().contains_key(axum::http::header::UPGRADE) {
                // A raw upload body keeps to the same idle timeout as any body.
                request.extensions_mut().insert(super::raw_body::Idle(idle));
            }
            let response = next.run(request).await;
            if let Some(unread) = unread {
                unread.linger();
            }
            response
        }
    };
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    let status = response.status();
    if refused_body && (status.is_client_error() || status.is_server_error()) {
        // The rest of a refused request's body is drained in the background, but that
        // drain may give up before its end (`lingering`): the client learns now that
        // this connection takes no further request.
        headers::close_connection(&mut response);
    }
    log(&method, uri.path(), status, started);
    response
}

/// Nothing legitimate needs a larger head (the longest path, percent-encoded, is 12 KiB),
/// and a small one bounds what every handler may be asked to parse.
fn head_too_large(request: &Request) -> Option<Response> {
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
    if uri + header_bytes <= MAX_HEAD {
        return None;
    }
    let mut response = Failure(ApiError::new(
        airlock_api::ErrorCode::HeadersTooLarge,
        format!(
            "the request's URI and headers are over {} KiB",
            MAX_HEAD >> 10
        ),
    ))
    .into_response();
    headers::close_connection(&mut response);
    Some(response)
}

/// A body that sends nothing for `idle` fails, and what the route leaves of it unread
/// comes back to be drained. A request known to have no body (a GET, say) has nothing to
/// time or drain, and skips the allocations and the clock read.
fn guard_body(request: Request, idle: Duration) -> (Request, Option<Unread>) {
    if http_body::Body::is_end_stream(request.body()) {
        return (request, None);
    }
    let (parts, body) = request.into_parts();
    let (body, unread) = lingering::returning(IdleBody::new(body, idle));
    (Request::from_parts(parts, body), Some(unread))
}

/// One line per request: method, path, status, time. Never headers, so never tokens.
/// The fields are evaluated only when the line's level is enabled.
fn log(method: &axum::http::Method, path: &str, status: StatusCode, started: Instant) {
    let micros = || started.elapsed().as_micros() as u64;
    let code = status.as_u16();
    if status.is_server_error() {
        tracing::error!(%method, %path, status = code, micros = micros(), "request");
    } else if status == StatusCode::NOT_FOUND || status.is_client_error() {
        tracing::info!(%method, %path, status = code, micros = micros(), "request");
    } else {
        tracing::debug!(%method, %path, status = code, micros = micros(), "request");
    }
}
