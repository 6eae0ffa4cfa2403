//! Request bodies as the service takes them: a stream of byte chunks with backpressure,
//! from any face. The engine writes from a blocking thread, so the stream is pumped into
//! a bounded channel that a blocking reader drains.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::io::{StreamReader, SyncIoBridge};

/// A body: chunks of bytes, or the error that broke the stream. A face marks a client
/// that went quiet as `TimedOut` and one that went away as `ConnectionAborted`.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// How long a refused body's remainder is still read and discarded.
const LINGER: Duration = Duration::from_secs(2);
/// Pieces queued between the face and the writing thread.
const PUMP_DEPTH: usize = 8;
/// The largest piece queued: a face's chunk may be megabytes (a gRPC message), so it is
/// split (without copying) to keep what the queue holds near `PUMP_DEPTH` × this.
const PIECE: usize = 256 * 1024;

/// What the blocking engine reads a body through.
pub(crate) type BodyReader =
    SyncIoBridge<StreamReader<ReceiverStream<std::io::Result<Bytes>>, Bytes>>;

/// Wraps any stream of chunks as a [`ByteStream`].
pub fn byte_stream(
    stream: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
) -> ByteStream {
    Box::pin(stream)
}

/// A body of one chunk (none when empty).
pub fn bytes_body(bytes: Bytes) -> ByteStream {
    let chunk = (!bytes.is_empty()).then_some(Ok(bytes));
    Box::pin(futures_util::stream::iter(chunk))
}

/// Feeds a body to the engine's blocking reader. If the engine gives up first (quota, bad
/// path, checksum), the pump keeps draining what the client is still sending for a
/// moment, as nginx's lingering close does, so the client gets to read the error answer
/// instead of a broken pipe.
pub(crate) struct BodyPump {
    pump: tokio::task::JoinHandle<()>,
}

impl BodyPump {
    /// The reader for the engine, and the pump to `finish` once the engine is done.
    pub(crate) fn new(mut body: ByteStream) -> (BodyReader, Self) {
        let (tx, rx) = tokio::sync::mpsc::channel(PUMP_DEPTH);
        let reader = SyncIoBridge::new(StreamReader::new(ReceiverStream::new(rx)));
        let pump = tokio::spawn(async move {
            while let Some(item) = body.next().await {
                let mut sent = true;
                match item {
                    Ok(mut chunk) => {
                        while sent && !chunk.is_empty() {
                            let piece = chunk.split_to(chunk.len().min(PIECE));
                            sent = tx.send(Ok(piece)).await.is_ok();
                        }
                    }
                    Err(e) => sent = tx.send(Err(e)).await.is_ok(),
                }
                if !sent {
                    let drain = async { while let Some(Ok(_)) = body.next().await {} };
                    let _ = tokio::time::timeout(LINGER, drain).await;
                    return;
                }
            }
        });
        (reader, Self { pump })
    }

    /// Waits until the body is consumed or the lingering drain is over.
    pub(crate) async fn finish(self) {
        let _ = self.pump.await;
    }
}
