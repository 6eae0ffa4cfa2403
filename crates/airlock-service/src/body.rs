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

/// A body read to its end when that came within a limit, or the stream again (what was
/// read put back in front of the rest) when it did not or broke.
pub(crate) enum Gathered {
    /// The whole body.
    Whole(Bytes),
    /// A body larger than the limit, or one that ended in an error: as it came.
    Stream(ByteStream),
}

/// Reads `body` while it stays within `limit` bytes. A small body then needs no pump and
/// no thread to feed it to the engine; a large one loses nothing.
pub(crate) async fn gather_small(mut body: ByteStream, limit: usize) -> Gathered {
    let mut seen: Vec<Bytes> = Vec::new();
    let mut size = 0;
    loop {
        match body.next().await {
            None => return Gathered::Whole(join(seen, size)),
            Some(Ok(chunk)) if size + chunk.len() <= limit => {
                size += chunk.len();
                seen.push(chunk);
            }
            Some(other) => {
                let front = seen.into_iter().map(Ok).chain([other]);
                return Gathered::Stream(Box::pin(futures_util::stream::iter(front).chain(body)));
            }
        }
    }
}

/// One buffer of the chunks, copying only when there is more than one.
fn join(mut chunks: Vec<Bytes>, size: usize) -> Bytes {
    if chunks.len() == 1 {
        return chunks.pop().unwrap_or_default();
    }
    let mut whole = bytes::BytesMut::with_capacity(size);
    for chunk in chunks {
        whole.extend_from_slice(&chunk);
    }
    whole.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: Vec<std::io::Result<&'static [u8]>>) -> ByteStream {
        byte_stream(futures_util::stream::iter(
            parts.into_iter().map(|p| p.map(Bytes::from_static)),
        ))
    }

    async fn collect(stream: ByteStream) -> (Vec<u8>, Option<std::io::ErrorKind>) {
        let mut out = Vec::new();
        let mut stream = stream;
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => out.extend_from_slice(&chunk),
                Err(e) => return (out, Some(e.kind())),
            }
        }
        (out, None)
    }

    #[tokio::test]
    async fn a_body_within_the_limit_comes_whole() {
        let body = chunks(vec![Ok(b"abc"), Ok(b"def")]);
        match gather_small(body, 6).await {
            Gathered::Whole(bytes) => assert_eq!(&bytes[..], b"abcdef"),
            Gathered::Stream(_) => panic!("a body of exactly the limit is small"),
        }
    }

    #[tokio::test]
    async fn a_larger_body_comes_back_whole_as_a_stream() {
        let body = chunks(vec![Ok(b"abc"), Ok(b"def"), Ok(b"g")]);
        let Gathered::Stream(stream) = gather_small(body, 6).await else {
            panic!("seven bytes are over a limit of six");
        };
        assert_eq!(collect(stream).await, (b"abcdefg".to_vec(), None));
    }

    #[tokio::test]
    async fn a_broken_body_keeps_its_error_after_what_came() {
        let broke = std::io::Error::from(std::io::ErrorKind::ConnectionAborted);
        let body = chunks(vec![Ok(b"ab"), Err(broke)]);
        let Gathered::Stream(stream) = gather_small(body, 64).await else {
            panic!("a broken body is never whole");
        };
        let aborted = Some(std::io::ErrorKind::ConnectionAborted);
        assert_eq!(collect(stream).await, (b"ab".to_vec(), aborted));
    }
}
