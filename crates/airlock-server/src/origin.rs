//! The origin a client reached the daemon at (`http://host:port`), found by one rule for
//! both faces, so URLs the daemon hands out (signed URLs) work as handed out.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri, header};

/// Put on each gRPC request by the dispatcher (tonic's handlers see no URI); a REST
/// handler that needs it extracts it, so no other request pays for it.
#[derive(Debug, Clone)]
pub struct Origin(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(&parts.uri, &parts.headers))
    }
}

impl Origin {
    /// HTTP/1 names the host in `Host`, HTTP/2 in the URI's authority. A proxy that
    /// ends TLS says so with `X-Forwarded-Proto`.
    pub fn of(uri: &Uri, headers: &HeaderMap) -> Self {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let scheme = match text("x-forwarded-proto") {
            Some("https") => "https",
            _ => "http",
        };
        let host = uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| text(header::HOST.as_str()))
            .unwrap_or("localhost");
        Self(format!("{scheme}://{host}"))
    }
}
