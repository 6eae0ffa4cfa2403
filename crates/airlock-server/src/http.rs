//! Serving HTTP connections with bounds, so that no client, however slow or numerous,
//! can take the daemon from everyone else:
//! - at most `max_connections` are served at once; more wait in the kernel's backlog;
//! - a request's head must arrive whole within `header_timeout` (slowloris), and the
//!   connection buffers at most `READ_BUFFER` bytes of it (the REST face refuses heads
//!   over 32 KiB with 431);
//! - a client that stops reading a response for `idle_timeout` is dropped;
//! - a request body that stalls for `idle_timeout` fails (see `idle_body`).
//!
//! `axum::serve` has none of these, so this accept loop replaces it. Each connection
//! speaks HTTP/1.1 or, told by its preface, HTTP/2 (gRPC's h2c).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_io_timeout::TimeoutStream;

use crate::faces::Faces;
use crate::h2_script::H2Sends;
use crate::h2_sendfile::H2SendfileIo;
use crate::repoll::Repoll;
use crate::sendfile::{SendQueue, SendfileIo};

/// The ceiling of a connection's read buffer: hyper refuses a request head that does not
/// fit (431). Bodies are read through the same buffer, and a 1 GiB `curl -T` upload to a
/// tmpfs home measured about 40 % slower with 32 KiB than with this, so the REST face
/// enforces the smaller head limit itself.
const READ_BUFFER: usize = 128 * 1024;

/// HTTP/2 flow-control windows and frame size (gRPC's chunks are up to 8 MiB).
const H2_STREAM_WINDOW: u32 = 8 * 1024 * 1024;
const H2_CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
const H2_MAX_FRAME: u32 = 1024 * 1024;

/// How long open connections may take to finish after a shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The bounds on connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections
/// finish their requests for a few seconds.
pub async fn serve(
    listener: TcpListener,
    app: Faces,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit,
            () = &mut shutdown => break,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(err) => {
                // Out of descriptors or the like: pause rather than spin.
                tracing::warn!(%err, "accepting a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Small answers go out at once instead of waiting on the client's delayed ACK.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "TCP_NODELAY");
        }
        let app = app.clone();
        let closed = closed.clone();
        connections.spawn(Repoll::new(async move {
            serve_connection(tcp, app, limits, closed).await;
            drop(permit);
        }));
    }
    let _ = closing.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        tracing::info!(
            open = connections.len(),
            "closing connections still open after the grace period"
        );
        connections.abort_all();
    }
}

/// Which protocol a connection speaks, told by its first bytes within the head timeout:
/// HTTP/2 with prior knowledge (gRPC's h2c) begins with the preface `PRI * HTTP/2.0`, and
/// no HTTP/1 method begins with `PRI`. A client that sends nothing in time is dropped, as
/// one that sends half a head is (hyper's own sniffing would wait forever).
async fn speaks_http2(tcp: &tokio::net::TcpStream, timeout: Duration) -> Option<bool> {
    const PREFACE: &[u8] = b"PRI";
    let mut head = [0u8; 3];
    let sniff = async {
        loop {
            match tcp.peek(&mut head).await {
                Ok(0) | Err(_) => return None,
                Ok(n) if n >= PREFACE.len() => return Some(head == PREFACE),
                // Fewer bytes than we need so far: wait for more.
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    };
    tokio::time::timeout(timeout, sniff).await.ok().flatten()
}

/// Serves one connection until it ends or the daemon shuts down.
async fn serve_connection(
    tcp: tokio::net::TcpStream,
    app: Faces,
    limits: ConnectionLimits,
    mut closed: watch::Receiver<bool>,
) {
    let Some(http2) = speaks_http2(&tcp, limits.header_timeout).await else {
        return;
    };
    macro_rules! drive {
        ($connection:expr) => {{
            let connection = $connection;
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => log_end(result),
                _ = closed.wait_for(|closing| *closing).map(drop) => {
                    connection.as_mut().graceful_shutdown();
                    log_end(connection.await);
                }
            }
        }};
    }
    if http2 {
        // Large downloads' file bytes go by `sendfile` (`h2_sendfile`).
        let sends = H2Sends::default();
        let io = H2SendfileIo::new(tcp, sends.clone()).counting_into(app.sent_from_file(true));
        let io = timed(io, limits);
        // Windows sized for one fast stream: the defaults (64 KiB) would cap an upload
        // at one window per round trip.
        drive!(
            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .initial_stream_window_size(H2_STREAM_WINDOW)
                .initial_connection_window_size(H2_CONNECTION_WINDOW)
                .max_frame_size(H2_MAX_FRAME)
                .keep_alive_interval(Some(limits.idle_timeout))
                .keep_alive_timeout(limits.header_timeout)
                .serve_connection(io, TowerToHyperService::new(app.sending_files_h2(sends)))
        );
    } else {
        // Downloads are sent with `sendfile`, which needs hyper to queue body chunks
        // untouched (`writev`) rather than copy them into one buffer.
        let queue = SendQueue::default();
        let io = SendfileIo::new(tcp, queue.clone()).counting_into(app.sent_from_file(false));
        let io = timed(io, limits);
        drive!(
            hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(READ_BUFFER)
                .writev(true)
                .serve_connection(io, TowerToHyperService::new(app.sending_files(queue)))
                // A raw upload body (`rest::raw_body`) takes the connection over.
                .with_upgrades()
        );
    }
}

/// An HTTP/1 connection's stream as hyper holds it, so an upgraded connection can be
/// taken back as what it is.
pub(crate) type Http1Io = TokioIo<Pin<Box<TimeoutStream<SendfileIo>>>>;

/// A connection's stream, dropped once the client stops reading for the idle timeout.
fn timed<T: AsyncRead + AsyncWrite>(
    io: T,
    limits: ConnectionLimits,
) -> TokioIo<Pin<Box<TimeoutStream<T>>>> {
    let mut io = TimeoutStream::new(io);
    io.set_write_timeout(Some(limits.idle_timeout));
    TokioIo::new(Box::pin(io))
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(err) = result {
        tracing::debug!(%err, "connection ended");
    }
}
