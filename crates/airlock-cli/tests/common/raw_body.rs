//! `PUT /content` and tus `PATCH` with a raw body (the `airlock-body` upgrade), made by
//! hand on a socket so a test controls every byte: what the head asks, how much of the
//! body is sent, and when the connection closes.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::files::Files;

/// The lines of the daemon's request counts for routes containing `route`: where a test
/// sees that a body went raw (a `101`) or plain.
pub async fn answered(daemon: &super::Daemon, route: &str) -> Vec<String> {
    super::metrics::text(daemon)
        .await
        .lines()
        .filter(|l| l.starts_with("airlock_requests_total") && l.contains(route))
        .map(str::to_owned)
        .collect()
}

/// The bytes the daemon counted as received over REST.
pub async fn received(daemon: &super::Daemon) -> u64 {
    super::metrics::sample(daemon, "airlock_received_bytes_total{face=\"rest\"}").await as u64
}

/// How the client behaves after the go-ahead.
#[derive(Debug, Clone, Copy)]
pub enum Send {
    /// The whole body, then waits for the answer.
    Whole,
    /// This many bytes of it, then closes the connection.
    CutAt(usize),
    /// This many bytes of it, then holds the connection open and silent for a minute
    /// (a client whose network went away).
    StallAt(usize),
}

/// A raw `PUT` of `body` to `path` (with `extra` query pairs and `headers`; the length
/// announced is the body's unless `headers` give `x-airlock-length`). Answers the status of the
/// answer that ended the exchange (a refusal before the `101`, or the answer after the
/// body) and its JSON, and whether the `101` came.
pub async fn put(
    f: &Files,
    path: &str,
    extra: &[(&str, &str)],
    headers: &[(&str, &str)],
    body: &[u8],
    send: Send,
) -> (u16, Value, bool) {
    let mut query = vec![("path", path)];
    query.extend_from_slice(extra);
    let url = f.url("/content", &query);
    let exchange = raw(f, "PUT", &url, headers, body, send).await;
    (exchange.status, exchange.json, exchange.upgraded)
}

/// How a raw exchange ended.
pub struct Exchange {
    /// The status of the answer that ended it (0 when the client cut it).
    pub status: u16,
    /// That answer's head, in lower case.
    pub head: String,
    /// Its body as JSON (`Null` when it is none).
    pub json: Value,
    /// Whether the `101` came.
    pub upgraded: bool,
}

impl Exchange {
    /// A header of the answer, in lower case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(str::trim)
    }
}

/// A raw tus `PATCH` of `body` at `offset` to the upload at `location` (the path the
/// creation answered), with `headers` too.
pub async fn patch(
    f: &Files,
    location: &str,
    offset: u64,
    headers: &[(&str, &str)],
    body: &[u8],
    send: Send,
) -> Exchange {
    let origin = f.base.split("/v1/").next().unwrap();
    let url = reqwest::Url::parse(&format!("{origin}{location}")).unwrap();
    let offset = offset.to_string();
    let mut all = vec![
        ("tus-resumable", "1.0.0"),
        ("content-type", "application/offset+octet-stream"),
        ("upload-offset", offset.as_str()),
    ];
    all.extend_from_slice(headers);
    raw(f, "PATCH", &url, &all, body, send).await
}

/// A `method` request to `url` asking for a raw body, then `body` sent as `send` says.
pub async fn raw(
    f: &Files,
    method: &str,
    url: &reqwest::Url,
    headers: &[(&str, &str)],
    body: &[u8],
    send: Send,
) -> Exchange {
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let authority = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nhost: {authority}\r\nauthorization: Bearer {}\r\n\
         connection: upgrade\r\nupgrade: airlock-body\r\n",
        f.token
    );
    if !headers.iter().any(|(name, _)| *name == "x-airlock-length") {
        head += &format!("x-airlock-length: {}\r\n", body.len());
    }
    for (name, value) in headers {
        head += &format!("{name}: {value}\r\n");
    }
    head += "\r\n";
    let mut stream = TcpStream::connect(&authority).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    // The daemon's answer after the body may come right behind its `101` (a refusal
    // found at once), so what is read past one answer is kept for the next.
    let mut carry = Vec::new();
    let (status, head, json) = read_answer(&mut stream, &mut carry).await;
    if status != 101 {
        return Exchange {
            status,
            head,
            json,
            upgraded: false,
        };
    }
    let cut = |upgraded| Exchange {
        status: 0,
        head: String::new(),
        json: Value::Null,
        upgraded,
    };
    match send {
        Send::Whole => {
            // The daemon may answer (and stop reading) before the end: what it refused.
            let _ = stream.write_all(body).await;
        }
        Send::CutAt(n) => {
            stream.write_all(&body[..n]).await.unwrap();
            drop(stream);
            return cut(true);
        }
        Send::StallAt(n) => {
            stream.write_all(&body[..n]).await.unwrap();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(stream);
            });
            return cut(true);
        }
    }
    let (status, head, json) = read_answer(&mut stream, &mut carry).await;
    Exchange {
        status,
        head,
        json,
        upgraded: true,
    }
}

/// Reads one answer after the bytes `carry` holds: its status, its head in lower case and
/// its body as JSON (`Null` when it is none). What was read past it is left in `carry`.
async fn read_answer(stream: &mut TcpStream, carry: &mut Vec<u8>) -> (u16, String, Value) {
    let mut buffer = std::mem::take(carry);
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut chunk))
            .await
            .expect("the daemon answers within 30 s")
            .unwrap();
        assert!(n > 0, "the daemon closed the connection without an answer");
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = buffer[end + 4..].to_vec();
    if body.len() < length {
        let start = body.len();
        body.resize(length, 0);
        stream.read_exact(&mut body[start..]).await.unwrap();
    }
    *carry = body.split_off(length);
    (
        status,
        head,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}
