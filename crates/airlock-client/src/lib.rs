//! Rust client for the Airlock daemon's HTTP API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), airlock_client::Error> {
//! use airlock_client::Client;
//! use airlock_api::{CreateSandbox, ExecRequest};
//!
//! let client = Client::from_env()?;
//! let sandbox = client.create(&CreateSandbox::default()).await?;
//! let run = ExecRequest { shell: Some("echo hello".into()), ..Default::default() };
//! let result = client.exec(&sandbox.id, &run).await?;
//! assert_eq!(result.stdout, "hello\n");
//! client.delete(&sandbox.id).await?;
//! # Ok(()) }
//! ```
//!
//! Files stream both ways from any `AsyncRead` and into any `AsyncWrite`; trees travel as
//! tar streams; large uploads can resume over the tus routes:
//!
//! ```no_run
//! # async fn demo(client: airlock_client::Client, id: &str) -> Result<(), airlock_client::Error> {
//! use airlock_client::{ArchiveFormat, WriteOptions};
//!
//! // Upload a local file of any size in constant memory (any `AsyncRead` goes through
//! // `write`; a file is cheapest through `write_file`).
//! let file = std::fs::File::open("model.bin").map_err(airlock_client::Error::Local)?;
//! let opts = WriteOptions { parents: true, ..WriteOptions::default() };
//! let written = client.write_file(id, "/workspace/model.bin", file, &opts).await?;
//! println!("stored {} bytes, crc64nvme {}", written.entry.size, written.crc64nvme);
//!
//! // Download a directory as one tar stream into a local file.
//! let mut out = tokio::fs::File::create("coverage.tar").await.map_err(airlock_client::Error::Local)?;
//! client.download_archive(id, "/workspace/coverage", ArchiveFormat::Tar, &mut out).await?;
//!
//! // Resumable: remember `url`; after a crash, ask where it stands and send the rest.
//! let url = client.create_upload(id, "/data/big.iso", 4 << 30, None, None).await?;
//! let offset = client.upload_offset(&url).await?.unwrap_or(0);
//! # let rest = tokio::io::empty();
//! let progress = client.upload_chunk(&url, offset, rest).await?;
//! assert!(progress.offset <= 4 << 30);
//! # Ok(()) }
//! ```

mod direct;
mod discover;
mod error;
mod file_chunks;
mod file_sink;
mod files;
mod raw_body;
mod resumable;
mod spliced;
mod tokens;
mod trees;
mod written_body;

use airlock_api::{
    CreateSandbox, ErrorBody, ExecEvent, ExecRequest, ExecResult, PoolInfo, Sandbox, Template,
};
use futures_util::{Stream, TryStreamExt};
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;

pub use airlock_api::{default_home, default_url};
pub use discover::token as discover_token;
pub use error::Error;
pub use file_chunks::FileChunks;
pub use file_sink::FileSink;
pub use files::{Download, WriteOptions};
/// A streamed request body (for template archives).
pub use reqwest::Body;
pub use resumable::UploadProgress;
pub use trees::{ArchiveFormat, BatchFile, Mtimes};
pub use written_body::{BodyWriter, WrittenBody, written_body};

/// Bytes per chunk when streaming a body up: large enough that a chunk costs one system
/// call on each side, small enough to still be in the CPU's cache when it is sent.
const CHUNK: usize = 256 * 1024;
/// A transfer that moves nothing for this long is abandoned.
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// The error of a transfer abandoned after [`IDLE_TIMEOUT`] with nothing moving.
pub(crate) fn stalled() -> Error {
    Error::Protocol(format!(
        "the daemon sent nothing for {} s",
        IDLE_TIMEOUT.as_secs()
    ))
}
/// Attempts for requests that are safe to repeat, when the daemon cannot be reached.
const ATTEMPTS: u32 = 3;
/// Idle pooled connections are dropped after this, before the daemon's head timeout.
pub(crate) const POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(20);

/// A connection to one Airlock daemon.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    /// Connections of the client's own, for downloads spliced into files.
    sockets: direct::Sockets,
}

impl Client {
    /// A client for the daemon at `base` (e.g. `http://127.0.0.1:7711`) with `token`.
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        let base = base.into().trim_end_matches('/').to_owned();
        // The daemon closes a keep-alive connection idle for its head timeout (30 s by
        // default); dropping ours sooner means a request never races that close.
        let http = reqwest::Client::builder()
            .pool_idle_timeout(POOL_IDLE)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            http,
            base,
            token: token.into(),
            sockets: direct::Sockets::default(),
        }
    }

    /// A client from `AIRLOCK_URL` and `AIRLOCK_TOKEN`, falling back to the local daemon's
    /// defaults (its address and the token file in its home).
    pub fn from_env() -> Result<Self, Error> {
        Ok(Self::new(default_url(), discover::token()?))
    }

    /// The daemon's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.raw_request(method, &format!("/v1{path}"))
    }

    /// A request to a path the daemon handed out (it already starts with `/v1`).
    pub(crate) fn raw_request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Runs a request that is safe to repeat, again (up to 3 times, backing off) when the
    /// daemon could not be reached at all. Anything the daemon answered is final.
    pub(crate) async fn idempotent<T, F, Fut>(&self, mut attempt: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            match attempt().await {
                Err(Error::Transport(e)) if e.is_connect() && tries < ATTEMPTS => {
                    tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(tries)))
                        .await;
                }
                other => return other,
            }
        }
    }

    /// Creates a sandbox.
    pub async fn create(&self, req: &CreateSandbox) -> Result<Sandbox, Error> {
        let made = self.create_pending(req).await?;
        self.until_settled(made).await
    }

    /// Creates a sandbox and answers at once, perhaps `pending` (on a cluster, before its
    /// pod runs); [`Client::create`] waits until it is not.
    pub async fn create_pending(&self, req: &CreateSandbox) -> Result<Sandbox, Error> {
        json(self.request(Method::POST, "/sandboxes").json(req)).await
    }

    /// Asks again while `sandbox` is pending. One that cannot be made is removed by the
    /// daemon, which then answers 404 with the reason; the daemon bounds the wait.
    pub async fn until_settled(&self, mut sandbox: Sandbox) -> Result<Sandbox, Error> {
        while sandbox.state == airlock_api::SandboxState::Pending {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            sandbox = self.get(&sandbox.id).await?;
        }
        Ok(sandbox)
    }

    /// Lists sandboxes.
    pub async fn list(&self) -> Result<Vec<Sandbox>, Error> {
        self.idempotent(|| json(self.request(Method::GET, "/sandboxes")))
            .await
    }

    /// One sandbox.
    pub async fn get(&self, id: &str) -> Result<Sandbox, Error> {
        let route = format!("/sandboxes/{id}");
        self.idempotent(|| json(self.request(Method::GET, &route)))
            .await
    }

    /// Starts a sandbox.
    pub async fn start(&self, id: &str) -> Result<Sandbox, Error> {
        json(self.request(Method::POST, &format!("/sandboxes/{id}/start"))).await
    }

    /// Stops a sandbox.
    pub async fn stop(&self, id: &str) -> Result<Sandbox, Error> {
        json(self.request(Method::POST, &format!("/sandboxes/{id}/stop"))).await
    }

    /// Deletes a sandbox.
    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        let route = format!("/sandboxes/{id}");
        self.idempotent(|| send(self.request(Method::DELETE, &route)))
            .await
            .map(drop)
    }

    /// Runs a command and waits for all of its output.
    pub async fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecResult, Error> {
        json(
            self.request(Method::POST, &format!("/sandboxes/{id}/exec"))
                .json(req),
        )
        .await
    }

    /// Runs a command, yielding its output as it happens; the last event is `Exit`.
    pub async fn exec_stream(
        &self,
        id: &str,
        req: &ExecRequest,
    ) -> Result<impl Stream<Item = Result<ExecEvent, Error>> + use<>, Error> {
        let response = send(
            self.request(Method::POST, &format!("/sandboxes/{id}/exec?stream=true"))
                .json(req),
        )
        .await?;
        Ok(ndjson_lines(response))
    }

    /// Lists templates.
    pub async fn templates(&self) -> Result<Vec<Template>, Error> {
        json(self.request(Method::GET, "/templates")).await
    }

    /// Registers a root filesystem template from a tar stream.
    pub async fn register_template(
        &self,
        name: &str,
        tar: impl Into<reqwest::Body>,
    ) -> Result<Template, Error> {
        json(
            self.request(Method::PUT, &format!("/templates/{name}"))
                .body(tar),
        )
        .await
    }

    /// Every warm pool (admin token only).
    pub async fn pools(&self) -> Result<Vec<PoolInfo>, Error> {
        self.idempotent(|| json(self.request(Method::GET, "/warm-pools")))
            .await
    }

    /// Keeps `size` started sandboxes of `template` ready (admin token only; 0 empties it).
    pub async fn size_pool(&self, template: &str, size: usize) -> Result<PoolInfo, Error> {
        let body = serde_json::json!({ "size": size });
        json(
            self.request(Method::PUT, &format!("/warm-pools/{template}"))
                .json(&body),
        )
        .await
    }

    /// Deletes a registered template.
    pub async fn delete_template(&self, name: &str) -> Result<(), Error> {
        send(self.request(Method::DELETE, &format!("/templates/{name}")))
            .await
            .map(drop)
    }
}

pub(crate) async fn send(request: RequestBuilder) -> Result<Response, Error> {
    let response = request.send().await?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.bytes().await.unwrap_or_default();
    Err(answer_error(status, &body))
}

/// The error an answer of `status` with `body` stands for.
pub(crate) fn answer_error(status: reqwest::StatusCode, body: &[u8]) -> Error {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => Error::Api {
            status: status.as_u16(),
            code: parsed.error.code,
            message: parsed.error.message,
        },
        Err(_) => Error::Protocol(format!("HTTP {status}: {}", String::from_utf8_lossy(body))),
    }
}

/// A response header as text, if present and printable.
pub(crate) fn header_text(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

pub(crate) async fn json<T: DeserializeOwned>(request: RequestBuilder) -> Result<T, Error> {
    let bytes = send(request).await?.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Protocol(format!("unexpected answer: {e}")))
}

/// Splits a streamed body into JSON lines, holding at most one partial line.
pub(crate) fn ndjson_lines<T: DeserializeOwned>(
    response: Response,
) -> impl Stream<Item = Result<T, Error>> {
    let mut pending = Vec::new();
    response
        .bytes_stream()
        .map_err(Error::from)
        .map_ok(move |chunk| {
            pending.extend_from_slice(&chunk);
            let mut events = Vec::new();
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                events.push(
                    serde_json::from_slice(&line)
                        .map_err(|e| Error::Protocol(format!("bad event: {e}"))),
                );
            }
            futures_util::stream::iter(events)
        })
        .try_flatten()
}
