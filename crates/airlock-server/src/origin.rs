//! The origin a client reached the daemon at (`http://host:port`), found once for both
//! faces, so URLs the daemon hands out (signed URLs) work as handed out.

use axum::http::{HeaderMap, Uri, header};

/// Put on every request by the dispatcher.
#[derive(Debug, Clone)]
pub struct Origin(pub String);

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
