//! Whole-file uploads whose body the kernel moves from the socket into the file.
//!
//! hyper reads every request body into buffers of its own, and the engine copies those
//! into the page cache: two copies a byte. A client that asks for it instead sends its
//! `PUT` with `Connection: upgrade`, `Upgrade: airlock-body` and the body's length in
//! `X-Airlock-Length`, and no body. Once everything that could refuse the write has
//! passed (the token, the sandbox, the path, the options, an upload slot), the daemon
//! answers `101 Switching Protocols`; the client then sends exactly that many bytes, and
//! the daemon, having taken them into the file with `splice`, answers as a plain `PUT`
//! would (the same status and JSON) and closes the connection. A refusal before the
//! `101` is an ordinary answer on a connection that goes on.

use std::future::Future;
use std::os::fd::AsFd;
use std::time::Duration;

use airlock_fs::SocketBody;
use airlock_service::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::failure::{Answer, Failure};
use crate::http::Http1Io;
use crate::observe::RawBytes;

/// The `Upgrade` token a client names.
pub const PROTOCOL: &str = "airlock-body";
/// The header that carries the body's length.
pub const LENGTH: &str = "x-airlock-length";
/// The largest answer written after the body (a `WriteResult` or an error's JSON).
const ANSWER_LIMIT: usize = 64 * 1024;
/// How long, after an answer that ended the body early, what the client still sends is
/// read and thrown away so it reads the answer rather than a reset (as `lingering`).
const LINGER_TIME: Duration = Duration::from_secs(30);

/// The body's idle timeout, put on requests that ask for an upgrade by the envelope
/// (which owns it).
#[derive(Debug, Clone, Copy)]
pub struct Idle(pub Duration);

/// A request's ask for a raw body, if it made one.
pub struct RawBody(pub Option<Asked>);

/// What a raw body needs: the connection once answered `101`, the body's length, and
/// how long the client may go quiet.
pub struct Asked {
    upgrade: hyper::upgrade::OnUpgrade,
    len: u64,
    idle: Duration,
    /// Where the body's bytes are counted as received.
    counted: Option<RawBytes>,
}

impl<S: Send + Sync> FromRequestParts<S> for RawBody {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Failure> {
        let asks = parts
            .headers
            .get(header::UPGRADE)
            .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(PROTOCOL.as_bytes()));
        if !asks {
            return Ok(Self(None));
        }
        let bad = |why: &str| Failure(ApiError::bad_request(format!("{PROTOCOL}: {why}")));
        let len = parts
            .headers
            .get(LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .ok_or_else(|| bad(&format!("{LENGTH} must give the body's length in bytes")))?;
        if super::headers::has_body(&parts.headers) {
            return Err(bad("the request itself must have no body"));
        }
        // HTTP/2 has no upgrade, and hyper offers one only for a request that asked with
        // `Connection: upgrade`.
        let upgrade = parts
            .extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .ok_or_else(|| bad("needs HTTP/1.1 with Connection: upgrade"))?;
        // The envelope puts it on every request that asks for an upgrade: the face keeps
        // no idle timeout of its own.
        let Idle(idle) = *parts.extensions.get::<Idle>().ok_or_else(|| {
            Failure(ApiError::internal(
                "a raw body",
                "no idle timeout on the request",
            ))
        })?;
        let counted = parts.extensions.get::<RawBytes>().cloned();
        Ok(Self(Some(Asked {
            upgrade,
            len,
            idle,
            counted,
        })))
    }
}

impl Asked {
    /// The body's length, as the client announced it.
    pub fn length(&self) -> u64 {
        self.len
    }

    /// Answers `101` and, once the connection is handed over, gives `finish` the body
    /// and writes its answer on the connection.
    pub fn take_over<F, Fut>(self, finish: F) -> Response
    where
        F: FnOnce(SocketBody) -> Fut + Send + 'static,
        Fut: Future<Output = Answer<Response>> + Send + 'static,
    {
        let Self {
            upgrade,
            len,
            idle,
            counted,
        } = self;
        tokio::spawn(async move {
            let upgraded = match upgrade.await {
                Ok(upgraded) => upgraded,
                Err(err) => return tracing::debug!(%err, "a raw body's upgrade failed"),
            };
            let Ok(parts) = upgraded.downcast::<Http1Io>() else {
                return tracing::error!("a raw body's connection is of an unknown kind");
            };
            let mut io = parts.io.into_inner();
            // The engine reads through a descriptor of its own, on a blocking thread;
            // the answer goes out through the connection as hyper left it.
            let body = io
                .get_ref()
                .as_fd()
                .try_clone_to_owned()
                .and_then(|socket| SocketBody::new(socket, parts.read_buf.to_vec(), len, idle));
            let answer = match body {
                Ok(body) => {
                    let taken = body.taken();
                    let answer = finish(body).await.into_response();
                    if let Some(RawBytes(received)) = &counted {
                        received.inc_by(taken.load(std::sync::atomic::Ordering::Relaxed));
                    }
                    answer
                }
                Err(err) => {
                    let why = ApiError::bad_request(format!("{PROTOCOL}: {err}"));
                    Failure(why).into_response()
                }
            };
            let failed = !answer.status().is_success();
            if let Err(err) = write_answer(&mut io, answer).await {
                return tracing::debug!(%err, "a raw body's answer was not delivered");
            }
            if failed {
                linger(&mut io).await;
            }
        });
        let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static(PROTOCOL));
        response
    }
}

/// Writes `answer` as HTTP/1.1 on a connection it then closes.
async fn write_answer(io: &mut (impl AsyncWrite + Unpin), answer: Response) -> std::io::Result<()> {
    let (parts, body) = answer.into_parts();
    let body = axum::body::to_bytes(body, ANSWER_LIMIT)
        .await
        .map_err(std::io::Error::other)?;
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        parts.status.as_u16(),
        parts.status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH || name == header::CONNECTION {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    head.extend_from_slice(&body);
    io.write_all(&head).await?;
    io.flush().await?;
    io.shutdown().await
}

/// Reads and throws away what the client still sends after an answer that came before
/// its body's end, until it stops or [`LINGER_TIME`] passes.
async fn linger(io: &mut (impl AsyncRead + Unpin)) {
    let mut sink = vec![0u8; 64 * 1024];
    let drain = async {
        while let Ok(n) = io.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}
