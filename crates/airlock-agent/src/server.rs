//! The agent's side: each call runs on the blocking pool against the engine over the
//! pod's root, with bodies streamed both ways.

use std::io::{BufRead, Seek, Write};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use airlock_fs::{FsError, FsResult, PieceReader, Pieces, SandboxFs};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::calls::{self, ARGS, RESULT};
use crate::commands::Commands;

/// Bytes per chunk of a streamed answer, and chunks queued ahead of the socket.
const CHUNK: usize = 256 * 1024;
const AHEAD: usize = 4;
/// How long a watch waits for events before it looks whether its client is still there.
const WATCH_TICK: Duration = Duration::from_millis(500);

#[derive(Clone)]
struct Agent {
    fs: Arc<dyn SandboxFs>,
    commands: Arc<Commands>,
    secret: Arc<str>,
}

/// Serves the directory `root` at `listen` to callers that present `secret`, until
/// `stop` completes (the CLI's: SIGTERM or SIGINT, caught before this is called). Prints
/// the bound address on stdout once it listens (so `--listen 127.0.0.1:0` can be used
/// and found).
/// With `chroot`, commands run chrooted into `root` (a sidecar serving another
/// container's root); otherwise they run in the agent's own root with `root` joined to
/// their working directory.
pub async fn serve(
    listen: &str,
    root: &std::path::Path,
    secret: &str,
    chroot: bool,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    if secret.len() < 16 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the secret must be at least 16 bytes",
        ));
    }
    // The operator names the root: following a link there is what they mean.
    let opened = airlock_fs::Root::open_following(root).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("opening the root {}: {e}", root.display()),
        )
    })?;
    let fs: Arc<dyn SandboxFs> = Arc::new(opened);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("{}", listener.local_addr()?);
    tracing::info!(root = %root.display(), addr = %listener.local_addr()?, "agent serving");
    let commands = Commands::new(root, chroot);
    // Stopped at once, not drained: the agent stops with its pod, and nothing it was
    // doing outlives the pod.
    tokio::select! {
        served = axum::serve(listener, router_with(fs, commands, secret)) => served,
        () = stop => Ok(()),
    }
}

/// The agent's routes over `fs` (files) and `root` (where commands start), for callers
/// that present `secret`.
pub fn router(fs: Arc<dyn SandboxFs>, root: &std::path::Path, secret: &str) -> axum::Router {
    router_with(fs, Commands::new(root, false), secret)
}

fn router_with(fs: Arc<dyn SandboxFs>, commands: Commands, secret: &str) -> axum::Router {
    let agent = Agent {
        fs,
        commands: Arc::new(commands),
        secret: secret.into(),
    };
    axum::Router::new()
        .route("/v1/fs/{call}", axum::routing::post(call))
        .route("/v1/proc/{call}", axum::routing::post(command_call))
        .route("/v1/health", axum::routing::post(|| async { "ok" }))
        .layer(axum::middleware::from_fn_with_state(
            agent.clone(),
            require_secret,
        ))
        .with_state(agent)
}

/// Every call, health included, must carry the sandbox's secret.
async fn require_secret(
    State(agent): State<Agent>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !bool::from(presented.as_bytes().ct_eq(agent.secret.as_bytes())) {
        return (StatusCode::UNAUTHORIZED, "the sandbox's secret is required").into_response();
    }
    next.run(request).await
}

fn args_header(headers: &HeaderMap) -> &str {
    headers
        .get(ARGS)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn call(
    State(agent): State<Agent>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match dispatch(agent.fs, &name, args_header(&headers), body).await {
        Ok(response) => response,
        Err(refused) => *refused,
    }
}

async fn command_call(
    State(agent): State<Agent>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match agent
        .commands
        .dispatch(&name, args_header(&headers), body)
        .await
    {
        Ok(response) => response,
        Err(refused) => *refused,
    }
}

/// An answer that ends a call early (boxed: a response is large).
type Refused = Box<Response>;

/// A malformed call: the gateway and this agent disagree about the protocol.
fn bad(message: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, message.into()).into_response()
}

fn args<T: for<'de> serde::Deserialize<'de>>(text: &str) -> Result<T, Refused> {
    calls::decode(text).map_err(|e| Box::new(bad(e)))
}

/// The engine's refusal, in its wire form.
fn refused(err: &FsError) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(err.to_wire())).into_response()
}

/// Runs `op` on the blocking pool; the engine's refusal ends the call.
async fn run<T: Send + 'static>(
    op: impl FnOnce() -> FsResult<T> + Send + 'static,
) -> Result<T, Refused> {
    match tokio::task::spawn_blocking(op).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(Box::new(refused(&err))),
        Err(e) => Err(Box::new(
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        )),
    }
}

/// Runs `op` on the blocking pool and answers its result as JSON.
async fn answer<T: Serialize + Send + 'static>(
    op: impl FnOnce() -> FsResult<T> + Send + 'static,
) -> Result<Response, Refused> {
    run(op).await.map(|value| axum::Json(value).into_response())
}

/// A request body's chunks, each waited for on the runtime from the blocking pool.
struct BodyChunks {
    stream: axum::body::BodyDataStream,
    runtime: tokio::runtime::Handle,
}

impl Pieces for BodyChunks {
    type Piece = Bytes;

    fn next_piece(&mut self) -> Option<std::io::Result<Bytes>> {
        let next = self.runtime.block_on(self.stream.next());
        next.map(|chunk| chunk.map_err(std::io::Error::other))
    }
}

/// The request body as a blocking reader (only for use on the blocking pool): it goes
/// back to the runtime once per chunk, not once per read.
fn reader(body: Body) -> impl BufRead + Send + 'static {
    PieceReader::new(BodyChunks {
        stream: body.into_data_stream(),
        runtime: tokio::runtime::Handle::current(),
    })
}

async fn dispatch(
    fs: Arc<dyn SandboxFs>,
    name: &str,
    text: &str,
    body: Body,
) -> Result<Response, Refused> {
    match name {
        "stat" => {
            let a: calls::OnPath = args(text)?;
            answer(move || fs.stat(&a.path)).await
        }
        "require_dir" => {
            let a: calls::OnPath = args(text)?;
            answer(move || fs.require_dir(&a.path)).await
        }
        "list" => {
            let a: calls::List = args(text)?;
            answer(move || fs.list(&a.dir, a.depth, a.limit, a.cursor.as_ref())).await
        }
        "checksums" => {
            let a: calls::Sums = args(text)?;
            answer(move || fs.checksums(&a.path, a.checks)).await
        }
        "write_file" => {
            let a: calls::Write = args(text)?;
            let mut input = reader(body);
            answer(move || fs.write_file(&a.path, &mut input, a.opts)).await
        }
        "write_in_place" => {
            let a: calls::WriteInPlace = args(text)?;
            let mut input = reader(body);
            answer(move || fs.write_in_place(&a.path, &mut input, a.at, a.owner, a.checks)).await
        }
        "mkdir" => {
            let a: calls::Mkdir = args(text)?;
            answer(move || fs.mkdir(&a.path, a.mode, a.owner, a.parents)).await
        }
        "rename" => {
            let a: calls::Rename = args(text)?;
            answer(move || fs.rename(&a.from, &a.to, a.overwrite)).await
        }
        "remove" => {
            let a: calls::Remove = args(text)?;
            answer(move || fs.remove(&a.path, a.recursive)).await
        }
        "compose" => {
            let a: calls::Compose = args(text)?;
            answer(move || fs.compose(&a.sources, &a.dest, a.opts)).await
        }
        "unpack" => {
            let a: calls::Unpack = args(text)?;
            let mut input = reader(body);
            answer(move || fs.unpack(&a.dir, &mut input, a.how)).await
        }
        "create_partial" => {
            let a: calls::CreatePartial = args(text)?;
            answer(move || fs.create_partial(&a.dest, a.parents, a.owner)).await
        }
        "open_partial" => {
            let a: calls::Partial = args(text)?;
            answer(move || fs.open_partial(&a.dest, &a.name).map(drop)).await
        }
        "append_partial" => {
            let a: calls::Partial = args(text)?;
            let mut input = reader(body);
            answer(move || {
                let mut file = fs.open_partial(&a.dest, &a.name)?;
                let io = |e| FsError::from_io(a.dest.as_str(), e);
                if let Some(at) = a.at {
                    file.cut_to(at).map_err(io)?;
                }
                std::io::copy(&mut input, &mut file).map_err(io)?;
                file.flush().map_err(io)
            })
            .await
        }
        "cut_partial" => {
            let a: calls::Partial = args(text)?;
            let Some(at) = a.at else {
                return Err(Box::new(bad("a cut needs `at`")));
            };
            answer(move || {
                let mut file = fs.open_partial(&a.dest, &a.name)?;
                file.cut_to(at)
                    .map_err(|e| FsError::from_io(a.dest.as_str(), e))
            })
            .await
        }
        "commit_partial" => {
            let a: calls::CommitPartial = args(text)?;
            answer(move || fs.commit_partial(&a.dest, &a.name, a.opts)).await
        }
        "discard_partial" => {
            let a: calls::Partial = args(text)?;
            answer(move || fs.discard_partial(&a.dest, &a.name)).await
        }
        "sweep" => {
            let a: calls::Sweep = args(text)?;
            let before =
                UNIX_EPOCH + Duration::from_nanos(a.before_ns.min(u64::MAX as u128) as u64);
            let keep = a.keep.into_iter().collect();
            answer(move || Ok(fs.sweep_leftovers(before, &keep))).await
        }
        "read" => {
            let a: calls::Read = args(text)?;
            let offset = a.offset;
            let (mut file, entry) = run(move || fs.open_read(&a.path)).await?;
            let body = stream_out(move |out| {
                file.seek(std::io::SeekFrom::Start(offset))?;
                std::io::copy(&mut file, out).map(drop)
            });
            Ok(([(RESULT, calls::encode(&entry))], body).into_response())
        }
        "pack" => {
            let a: calls::Pack = args(text)?;
            let (checked, dir) = (fs.clone(), a.dir.clone());
            run(move || checked.require_dir(&dir)).await?;
            let body = stream_out(move |out| {
                let packed = match &a.rels {
                    Some(rels) => fs.pack_paths(&a.dir, rels, out),
                    None => fs.pack(&a.dir, out),
                };
                packed.map_err(std::io::Error::other)
            });
            Ok(body.into_response())
        }
        "watch" => {
            let a: calls::Watch = args(text)?;
            let feed = run(move || fs.watch(&a.dir, a.recursive)).await?;
            Ok(watch_lines(feed).into_response())
        }
        other => Err(Box::new(
            (StatusCode::NOT_FOUND, format!("no call {other:?}")).into_response(),
        )),
    }
}

/// A body written by `produce` on the blocking pool. If it fails, the body ends with an
/// error, so the connection is cut and the gateway never takes a partial stream for a
/// whole one.
fn stream_out(
    produce: impl FnOnce(&mut dyn Write) -> std::io::Result<()> + Send + 'static,
) -> Body {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            tx: tx.clone(),
            buf: BytesMut::with_capacity(CHUNK),
        };
        let produced = produce(&mut out).and_then(|()| out.flush());
        if let Err(e) = produced {
            let _ = tx.blocking_send(Err(e));
        }
    });
    Body::from_stream(ReceiverStream::new(rx))
}

/// Writes into a channel in chunks of [`CHUNK`] bytes, waiting for room.
struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: BytesMut,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.buf.reserve(CHUNK);
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the gateway went away")
        })
    }
}

/// A watch as JSON lines, one event each, until the directory goes or the gateway does.
fn watch_lines(mut feed: Box<dyn airlock_fs::WatchFeed>) -> Body {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut batch = Vec::new();
        while !tx.is_closed() && feed.is_alive() {
            if let Err(err) = feed.next_events(&mut batch, WATCH_TICK) {
                let _ = tx.blocking_send(Err(std::io::Error::other(err.to_string())));
                return;
            }
            for event in batch.drain(..) {
                let mut line = serde_json::to_vec(&event).unwrap_or_default();
                line.push(b'\n');
                if tx.blocking_send(Ok(Bytes::from(line))).is_err() {
                    return;
                }
            }
        }
    });
    Body::from_stream(ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[tokio::test]
    async fn a_stream_the_agent_cannot_finish_ends_in_an_error_not_an_end() {
        // Two chunks' worth and a bit, then the producer fails: the gateway must see an
        // error after the bytes, never a clean end it would take for the whole stream.
        let body = stream_out(|out| {
            out.write_all(&vec![7; 2 * CHUNK + 10])?;
            Err(std::io::Error::other("the tree changed under the pack"))
        });
        let mut stream = body.into_data_stream();
        let mut bytes = 0;
        let mut ended_in_error = false;
        while let Some(piece) = stream.next().await {
            match piece {
                Ok(piece) => bytes += piece.len(),
                Err(_) => ended_in_error = true,
            }
        }
        assert_eq!(
            bytes,
            2 * CHUNK,
            "only whole chunks went before the failure"
        );
        assert!(ended_in_error);
    }
}
