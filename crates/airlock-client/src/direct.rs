//! A request made on a socket of the client's own: a `GET` for downloads whose body the
//! kernel moves into a file ([`crate::spliced`]), a `PUT` or `PATCH` whose body the kernel sends
//! from one ([`crate::raw_body`]). reqwest reads every body into buffers of its own, and
//! owns its sockets; this asks over plain HTTP/1.1 and hands back the socket with the
//! answer's head, so the body can go straight to or from it.
//!
//! Only what that needs: an `http://` base and no proxy in the environment (reqwest
//! would honour one; anything else is left to reqwest), answers with a
//! `Content-Length`, and a few idle connections kept for the next download, as
//! reqwest's pool would, so many small downloads neither pay a connect each nor leave a
//! closed socket each in `TIME_WAIT`.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use reqwest::{StatusCode, Url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Error, IDLE_TIMEOUT, POOL_IDLE};

/// The most an answer's head may take, headers and all.
const HEAD_LIMIT: usize = 64 * 1024;
/// Idle connections kept.
const KEPT: usize = 4;

/// Where a direct `GET` goes, and what it says.
pub(crate) struct Target {
    /// `host:port`, to connect to and to name in `Host`.
    authority: String,
    /// The request's head, whole.
    head: String,
}

impl Target {
    /// A `GET` of `url` with `token`, or `None` where reqwest must make it: another
    /// scheme, credentials in the URL, a proxy in the environment, or a token that is no
    /// header value.
    pub(crate) fn get(url: &Url, token: &str) -> Option<Self> {
        Self::new("GET", url, token, "accept: */*\r\n")
    }

    /// A request of `method` to `url`, with `extra` header lines (each ending in CRLF),
    /// that asks to send its body of `len` bytes raw once answered `101` (the daemon's
    /// `airlock-body` upgrade); `None` as for [`Target::get`].
    pub(crate) fn raw(method: &str, url: &Url, token: &str, len: u64, extra: &str) -> Option<Self> {
        let asks = format!(
            "connection: upgrade\r\nupgrade: airlock-body\r\nx-airlock-length: {len}\r\naccept: application/json\r\n{extra}"
        );
        Self::new(method, url, token, &asks)
    }

    /// A request of `method` with `extra` header lines (each ending in CRLF).
    fn new(method: &str, url: &Url, token: &str, extra: &str) -> Option<Self> {
        let proxied = ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
        let plain_token = token
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
        if url.scheme() != "http" || proxied || !plain_token || !url.username().is_empty() {
            return None;
        }
        // An IPv6 address comes in brackets, as `Host` and the resolver want it.
        let authority = format!("{}:{}", url.host_str()?, url.port_or_known_default()?);
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let head = format!(
            "{method} {target} HTTP/1.1\r\nhost: {authority}\r\nauthorization: Bearer {token}\r\n{extra}\r\n"
        );
        Some(Self { authority, head })
    }
}

/// An answer's head, and the connection its body follows on.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    /// `Content-Length`; `None` for any other framing.
    pub(crate) length: Option<u64>,
    /// Whether the connection may carry another request after the body.
    pub(crate) reusable: bool,
    headers: Vec<(String, Vec<u8>)>,
    /// Body bytes read with the head.
    pub(crate) early: Vec<u8>,
    pub(crate) stream: TcpStream,
}

impl Answer {
    /// A header's value as text (the first, if repeated); `name` in lower case.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        value(&self.headers, name).map(str::to_owned)
    }

    /// Reads the rest of a body of at most [`HEAD_LIMIT`] bytes (an error's JSON).
    pub(crate) async fn small_body(mut self, pool: &Sockets) -> Result<Vec<u8>, Error> {
        let length = self.length.unwrap_or(0);
        if length > HEAD_LIMIT as u64 {
            return Err(Error::Protocol(format!(
                "HTTP {}: an error of {length} bytes",
                self.status
            )));
        }
        let mut body = std::mem::take(&mut self.early);
        let start = body.len();
        body.resize(length as usize, 0);
        if start < body.len() {
            within_idle(self.stream.read_exact(&mut body[start..])).await?;
        }
        if self.reusable
            && let Ok(stream) = self.stream.into_std()
        {
            pool.put(stream);
        }
        Ok(body)
    }
}

/// Idle connections, newest last.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sockets(Arc<Mutex<Vec<(std::net::TcpStream, SocketAddr, Instant)>>>);

impl Sockets {
    /// Keeps `stream` (not blocking, its whole last answer read) for the next request
    /// to its peer.
    pub(crate) fn put(&self, stream: std::net::TcpStream) {
        let Ok(peer) = stream.peer_addr() else { return };
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= KEPT {
            kept.remove(0);
        }
        kept.push((stream, peer, Instant::now()));
    }

    /// A kept connection to `authority`'s address that is still open and has nothing
    /// unread on it (a closed one reads as end of file; one with bytes waiting is out of
    /// step with its requests).
    fn take(&self, peers: &[SocketAddr]) -> Option<TcpStream> {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((stream, peer, at)) = kept.pop() {
            let fresh = at.elapsed() < POOL_IDLE && peers.contains(&peer);
            let mut probe = [0u8; 1];
            let quiet =
                matches!(stream.peek(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
            if fresh && quiet {
                return TcpStream::from_std(stream).ok();
            }
        }
        None
    }
}

/// Sends `target`'s request and reads the answer's head: on a kept connection if one
/// is open, and once more on a new one if that connection turns out closed before any
/// answer. `None` if the daemon cannot be reached this way (reqwest then tries, and
/// says why it cannot).
pub(crate) async fn ask(target: &Target, pool: &Sockets) -> Result<Option<Answer>, Error> {
    let Ok(peers) = tokio::net::lookup_host(&target.authority).await else {
        return Ok(None);
    };
    let peers: Vec<_> = peers.collect();
    if let Some(kept) = pool.take(&peers)
        && let Ok(answer) = exchange(kept, target).await
    {
        return Ok(Some(answer));
    }
    let Ok(Ok(stream)) = tokio::time::timeout(IDLE_TIMEOUT, TcpStream::connect(&peers[..])).await
    else {
        return Ok(None);
    };
    stream.set_nodelay(true).map_err(broken)?;
    exchange(stream, target).await.map(Some)
}

/// One request and its answer's head on `stream`.
async fn exchange(mut stream: TcpStream, target: &Target) -> Result<Answer, Error> {
    within_idle(stream.write_all(target.head.as_bytes())).await?;
    read_answer(stream, Vec::new()).await
}

/// Reads an answer's head from `stream`, after `start` (bytes of it read already).
pub(crate) async fn read_answer(mut stream: TcpStream, start: Vec<u8>) -> Result<Answer, Error> {
    let mut filled = start.len();
    let mut buffer = start;
    buffer.resize(filled.max(8 * 1024), 0);
    loop {
        if filled > 0 {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut headers);
            let status = parsed
                .parse(&buffer[..filled])
                .map_err(|e| Error::Protocol(format!("the daemon's answer is not HTTP: {e}")))?;
            if let httparse::Status::Complete(end) = status {
                return answer(&parsed, buffer[end..filled].to_vec(), stream);
            }
        }
        if filled == buffer.len() {
            if buffer.len() >= HEAD_LIMIT {
                return Err(Error::Protocol(format!(
                    "the daemon's answer had no end of its head in {HEAD_LIMIT} bytes"
                )));
            }
            buffer.resize(buffer.len() * 2, 0);
        }
        let n = within_idle(stream.read(&mut buffer[filled..])).await?;
        if n == 0 {
            return Err(Error::Protocol(
                "the daemon closed the connection before it answered".into(),
            ));
        }
        filled += n;
    }
}

/// The parts of a parsed head that a download needs.
fn answer(
    parsed: &httparse::Response<'_, '_>,
    early: Vec<u8>,
    stream: TcpStream,
) -> Result<Answer, Error> {
    let status = StatusCode::from_u16(parsed.code.unwrap_or(0))
        .map_err(|e| Error::Protocol(format!("the daemon's answer has no status: {e}")))?;
    let headers: Vec<(String, Vec<u8>)> = parsed
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect();
    let count = |name: &str| headers.iter().filter(|(n, _)| n == name).count();
    // Only a body framed by exactly one length, and not encoded, is taken as it comes.
    let length = (count("content-length") == 1
        && count("transfer-encoding") == 0
        && count("content-encoding") == 0)
        .then(|| value(&headers, "content-length")?.parse().ok())
        .flatten();
    let closes = value(&headers, "connection").is_some_and(|c| c.eq_ignore_ascii_case("close"));
    Ok(Answer {
        status,
        length,
        reusable: parsed.version == Some(1) && !closes && length.is_some(),
        headers,
        early,
        stream,
    })
}

/// The first value of the header `name` (lower case) in `headers`, as trimmed text.
fn value<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    let (_, v) = headers.iter().find(|(n, _)| n == name)?;
    std::str::from_utf8(v).ok().map(str::trim)
}

/// `io` on the connection within [`IDLE_TIMEOUT`], its error as the SDK's.
pub(crate) async fn within_idle<T>(
    io: impl std::future::Future<Output = io::Result<T>>,
) -> Result<T, Error> {
    tokio::time::timeout(IDLE_TIMEOUT, io)
        .await
        .map_err(|_| crate::stalled())?
        .map_err(broken)
}

/// A failed read or write on the connection to the daemon.
pub(crate) fn broken(error: io::Error) -> Error {
    Error::Protocol(format!("the connection to the daemon broke: {error}"))
}
