//! The gateway's side of the agent's commands: start one, and reach its streams, its
//! exit and its signals. Each stream is its own request, made as soon as the command
//! has started, so output flows while input is still being sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::{ReaderStream, StreamReader};

use crate::calls::{self, ARGS, OnCommand, Spawn, StopAll};

/// Bytes of a command's input held between the gateway's writer and its request.
const INPUT_BUFFER: usize = 64 * 1024;

/// The commands of one agent.
#[derive(Debug, Clone)]
pub struct AgentCommands {
    base: Arc<str>,
    secret: Arc<str>,
    http: reqwest::Client,
}

/// A command started through an agent: its pipes, or its terminal.
pub struct RemoteChild {
    /// Its input; dropping it closes the command's standard input.
    pub stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    pub stdout: Option<Box<dyn AsyncRead + Send + Unpin>>,
    pub stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
    pub terminal: Option<RemoteTerminal>,
    pub handle: RemoteCommand,
}

/// The gateway's side of a command's terminal in a pod.
#[derive(Debug, Clone)]
pub struct RemoteTerminal {
    agent: AgentCommands,
    name: Arc<str>,
}

impl RemoteTerminal {
    fn args(&self, size: Option<(u16, u16)>) -> OnCommand {
        OnCommand {
            size,
            ..OnCommand::of(&self.name)
        }
    }

    /// What the command writes to its terminal.
    pub fn output(&self) -> Box<dyn AsyncRead + Send + Unpin> {
        self.agent.output("terminal_output", &self.args(None))
    }

    /// What the command reads from its terminal; each writer is one request.
    pub fn input(&self) -> Box<dyn AsyncWrite + Send + Unpin> {
        self.agent.input("terminal_input", &self.args(None))
    }

    /// Sets the terminal's size (the command gets `SIGWINCH`).
    pub async fn resize(&self, cols: u16, rows: u16) -> std::io::Result<()> {
        self.agent
            .call("resize", &self.args(Some((cols, rows))))
            .await
            .map(drop)
    }
}

/// Waiting for and signalling a command started through an agent.
#[derive(Debug, Clone)]
pub struct RemoteCommand {
    agent: AgentCommands,
    name: Arc<str>,
    ended: Arc<AtomicBool>,
}

impl AgentCommands {
    /// The agent at `base` (`http://host:port`), reached with its sandbox's secret.
    pub fn new(base: &str, secret: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').into(),
            secret: secret.into(),
            http: crate::reach::agent_client(),
        }
    }

    fn request(&self, call: &str, args: &impl Serialize) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/v1/proc/{call}", self.base))
            .bearer_auth(&*self.secret)
            .header(ARGS, calls::encode(args))
    }

    /// Sends a call and fails unless it succeeded, with the agent's words.
    async fn call(&self, call: &str, args: &impl Serialize) -> std::io::Result<reqwest::Response> {
        accepted(self.request(call, args).send().await).await
    }

    /// Whether the agent answers (with this secret) within `within`.
    pub async fn alive(&self, within: Duration) -> bool {
        let asked = self
            .http
            .post(format!("{}/v1/health", self.base))
            .bearer_auth(&*self.secret)
            .timeout(within)
            .send()
            .await;
        matches!(asked, Ok(r) if r.status().is_success())
    }

    /// Starts `spawn` and opens its three streams, or its terminal.
    pub async fn spawn(&self, spawn: &Spawn) -> std::io::Result<RemoteChild> {
        self.call("spawn", spawn).await?;
        let name: Arc<str> = spawn.name.as_str().into();
        let handle = RemoteCommand {
            agent: self.clone(),
            name: name.clone(),
            ended: Arc::new(AtomicBool::new(false)),
        };
        if spawn.terminal.is_some() {
            return Ok(RemoteChild {
                stdin: None,
                stdout: None,
                stderr: None,
                terminal: Some(RemoteTerminal {
                    agent: self.clone(),
                    name,
                }),
                handle,
            });
        }
        let on = OnCommand::of(&name);
        Ok(RemoteChild {
            stdin: Some(self.input("stdin", &on)),
            stdout: Some(self.output("stdout", &on)),
            stderr: Some(self.output("stderr", &on)),
            terminal: None,
            handle,
        })
    }

    /// An input stream of a command: what is written to the answer goes out in one
    /// streamed request, which ends when the writer is dropped.
    fn input(&self, call: &str, args: &OnCommand) -> Box<dyn AsyncWrite + Send + Unpin> {
        let (writer, reader) = tokio::io::duplex(INPUT_BUFFER);
        let body = reqwest::Body::wrap_stream(ReaderStream::new(reader));
        let request = self.request(call, args).body(body);
        tokio::spawn(async move {
            if let Err(e) = accepted(request.send().await).await {
                tracing::debug!(%e, "a command's input ended early");
            }
        });
        Box::new(writer)
    }

    /// One of a command's output streams, read as it arrives.
    fn output(&self, call: &str, args: &OnCommand) -> Box<dyn AsyncRead + Send + Unpin> {
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
        let request = self.request(call, args);
        tokio::spawn(async move {
            let response = match accepted(request.send().await).await {
                Ok(response) => response,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let mut chunks = response.bytes_stream().map_err(std::io::Error::other);
            while let Some(chunk) = chunks.try_next().await.transpose() {
                if tx.send(chunk).await.is_err() {
                    return;
                }
            }
        });
        Box::new(StreamReader::new(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
    }

    /// Ends every command: SIGTERM, then SIGKILL after `grace`.
    pub async fn stop_all(&self, grace: Duration) -> std::io::Result<()> {
        let grace_ms = grace.as_millis().min(u64::MAX as u128) as u64;
        self.call("stop_all", &StopAll { grace_ms }).await.map(drop)
    }
}

impl RemoteCommand {
    fn args(&self, signal: Option<i32>) -> OnCommand {
        OnCommand {
            signal,
            ..OnCommand::of(&self.name)
        }
    }

    /// Waits for the command to end: its exit code, or 128 + the signal that ended it.
    pub async fn wait(&self) -> std::io::Result<i32> {
        let answer = self.agent.call("wait", &self.args(None)).await?;
        let code = answer.json::<i32>().await.map_err(std::io::Error::other)?;
        self.ended.store(true, Ordering::Release);
        Ok(code)
    }

    /// Whether [`RemoteCommand::wait`] has seen it end.
    pub fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Sends it signal number `signal`.
    pub async fn signal(&self, signal: i32) -> std::io::Result<()> {
        self.agent
            .call("signal", &self.args(Some(signal)))
            .await
            .map(drop)
    }

    /// Kills it and everything in its process group.
    pub async fn kill_all(&self) -> std::io::Result<()> {
        self.agent
            .call("kill_all", &self.args(None))
            .await
            .map(drop)
    }

    /// Lets the agent forget it.
    pub async fn finish(&self) -> std::io::Result<()> {
        self.agent.call("finish", &self.args(None)).await.map(drop)
    }
}

/// The response when the call succeeded; else an error with the agent's words.
async fn accepted(sent: reqwest::Result<reqwest::Response>) -> std::io::Result<reqwest::Response> {
    let response = sent.map_err(std::io::Error::other)?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    let kind = match status {
        reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::GONE => std::io::ErrorKind::NotFound,
        reqwest::StatusCode::UNAUTHORIZED => std::io::ErrorKind::PermissionDenied,
        _ => std::io::ErrorKind::Other,
    };
    Err(std::io::Error::new(
        kind,
        format!("the agent refused: {text}"),
    ))
}
