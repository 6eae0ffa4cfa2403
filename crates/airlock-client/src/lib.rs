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

mod discover;
mod error;

use airlock_api::{
    CreateSandbox, ErrorBody, ExecEvent, ExecRequest, ExecResult, Sandbox, Template,
};
use futures_util::{Stream, TryStreamExt};
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;

pub use airlock_api::{default_home, default_url};
pub use discover::token as discover_token;
pub use error::Error;
/// A streamed request body (for template archives).
pub use reqwest::Body;

/// A connection to one Airlock daemon.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// A client for the daemon at `base` (e.g. `http://127.0.0.1:7711`) with `token`.
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        let base = base.into().trim_end_matches('/').to_owned();
        Self {
            http: reqwest::Client::new(),
            base,
            token: token.into(),
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

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}/v1{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Creates a sandbox.
    pub async fn create(&self, req: &CreateSandbox) -> Result<Sandbox, Error> {
        json(self.request(Method::POST, "/sandboxes").json(req)).await
    }

    /// Lists sandboxes.
    pub async fn list(&self) -> Result<Vec<Sandbox>, Error> {
        json(self.request(Method::GET, "/sandboxes")).await
    }

    /// One sandbox.
    pub async fn get(&self, id: &str) -> Result<Sandbox, Error> {
        json(self.request(Method::GET, &format!("/sandboxes/{id}"))).await
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
        send(self.request(Method::DELETE, &format!("/sandboxes/{id}")))
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

    /// Deletes a registered template.
    pub async fn delete_template(&self, name: &str) -> Result<(), Error> {
        send(self.request(Method::DELETE, &format!("/templates/{name}")))
            .await
            .map(drop)
    }
}

async fn send(request: RequestBuilder) -> Result<Response, Error> {
    let response = request.send().await?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.bytes().await.unwrap_or_default();
    Err(match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(parsed) => Error::Api {
            status: status.as_u16(),
            code: parsed.error.code,
            message: parsed.error.message,
        },
        Err(_) => Error::Protocol(format!("HTTP {status}: {}", String::from_utf8_lossy(&body))),
    })
}

async fn json<T: DeserializeOwned>(request: RequestBuilder) -> Result<T, Error> {
    let bytes = send(request).await?.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Protocol(format!("unexpected answer: {e}")))
}

/// Splits a streamed body into JSON lines, holding at most one partial line.
fn ndjson_lines(response: Response) -> impl Stream<Item = Result<ExecEvent, Error>> {
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
