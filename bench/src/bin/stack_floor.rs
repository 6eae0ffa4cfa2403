//! The HTTP stack alone, for W3's by-hand comparisons: hyper and tokio set up as the daemon
//! sets them up (multi-threaded runtime, `TCP_NODELAY`, the same HTTP/1 builder), serving
//! `GET /NAME` with the file's bytes and `PUT /NAME` by writing the body to the file, and
//! nothing else: no routing, auth, audit, metrics, confined open or atomic commit. What
//! the daemon takes per 1 KiB request beyond this is its own work, not the stack's.
//!
//! Usage: `stack_floor DIR` prints the loopback address it listens on and serves until
//! killed. Names are single path components (letters, digits, `.`, `_`, `-`, not
//! starting with a dot), so nothing outside `DIR` is reachable.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

fn main() -> anyhow::Result<()> {
    let dir: PathBuf = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: stack_floor DIR"))?
        .into();
    let dir = Arc::new(dir);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            println!("{}", listener.local_addr()?);
            loop {
                let (tcp, _) = listener.accept().await?;
                tcp.set_nodelay(true)?;
                let dir = dir.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let dir = dir.clone();
                        async move { Ok::<_, Infallible>(answer(&dir, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(30))
                        .max_buf_size(128 * 1024)
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        })
}

async fn answer(dir: &Path, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let name = request.uri().path().trim_start_matches('/');
    if !is_plain_name(name) {
        return status(StatusCode::BAD_REQUEST);
    }
    let path = dir.join(name);
    if request.method() == Method::PUT {
        let Ok(body) = request.into_body().collect().await else {
            return status(StatusCode::BAD_REQUEST);
        };
        return match std::fs::write(&path, body.to_bytes()) {
            Ok(()) => status(StatusCode::CREATED),
            Err(_) => status(StatusCode::INTERNAL_SERVER_ERROR),
        };
    }
    match std::fs::read(&path) {
        Ok(bytes) => Response::new(Full::new(Bytes::from(bytes))),
        Err(_) => status(StatusCode::NOT_FOUND),
    }
}

/// One path component that names a file in the directory: no `/`, no `..`, no dotfile.
fn is_plain_name(name: &str) -> bool {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    !name.is_empty() && !name.starts_with('.') && name.chars().all(plain)
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}

#[cfg(test)]
mod tests {
    use super::is_plain_name;

    #[test]
    fn only_plain_names_in_the_directory_are_served() {
        for good in ["f1", "q3_999", "a.b-c"] {
            assert!(is_plain_name(good), "{good}");
        }
        for bad in ["", "..", "../etc", ".hidden", "a/b", "%2e%2e", "a b", "f\0"] {
            assert!(!is_plain_name(bad), "{bad}");
        }
    }
}
