//! Request bodies as the service takes them: a stream of byte chunks with backpressure,
//! from any face. The engine writes from a blocking thread, so the stream is pumped into
//! a bounded channel that a blocking reader drains.

use std::pin::Pin;

use airlock_fs::{PieceReader, Pieces};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

/// A body: chunks of bytes, or the error that broke the stream. A face marks a client
/// that went quiet as `TimedOut` and one that went away as `ConnectionAborted`.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Pieces queued between the face and the writing thread.
const PUMP_DEPTH: usize = 8;
/// The largest piece queued: a face's chunk may be megabytes (a gRPC message), so it is
/// split (without copying) to keep what the pump holds under 2 × `PUMP_DEPTH` × this (the
/// queue, and the batch the reader took from it).
const PIECE: usize = 256 * 1024;

/// The pump's queue, as the engine's reader waits on it (from the blocking pool). It takes
/// every piece waiting at once: freeing the queue's slots together wakes the pump once,
/// not once a piece, when the engine is the slower side (a tree of small files).
pub(crate) struct Pumped {
    queue: mpsc::Receiver<std::io::Result<Bytes>>,
    /// The batch taken, newest first, so the next piece is popped off the end.
    taken: Vec<std::io::Result<Bytes>>,
}

impl Pieces for Pumped {
    type Piece = Bytes;

    fn next_piece(&mut self) -> Option<std::io::Result<Bytes>> {
        if self.taken.is_empty() {
            self.queue.blocking_recv_many(&mut self.taken, PUMP_DEPTH);
            self.taken.reverse();
        }
        self.taken.pop()
    }
}

/// What the blocking engine reads a body through: the pump's pieces, each read where it
/// lies.
pub(crate) type BodyReader = PieceReader<Pumped>;

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
/// path, checksum), the pump lets go of the body at once: what the client still sends is
/// the face's to deal with (REST drains it after the answer, as nginx's lingering close
/// does; a gRPC stream needs nothing).
pub(crate) struct BodyPump {
    pump: tokio::task::JoinHandle<()>,
}

impl BodyPump {
    /// The reader for the engine, and the pump to `finish` once the engine is done.
    pub(crate) fn new(mut body: ByteStream) -> (BodyReader, Self) {
        let (tx, rx) = mpsc::channel(PUMP_DEPTH);
        let reader = PieceReader::new(Pumped {
            queue: rx,
            taken: Vec::with_capacity(PUMP_DEPTH),
        });
        let pump = tokio::spawn(async move {
            loop {
                // The engine may give up while the client is silent (a refusal before it
                // read a byte, a client stalled mid-body): noticed at once, so the answer
                // never waits for the body's idle timeout.
                let item = tokio::select! {
                    biased;
                    () = tx.closed() => return,
                    item = body.next() => item,
                };
                let Some(item) = item else { return };
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
                    return;
                }
            }
        });
        (reader, Self { pump })
    }

    /// Waits until the body is consumed or let go of.
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
    use std::io::Read;

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

    /// Reads a pumped body to its end on a blocking thread, as the engine does.
    async fn pumped(stream: ByteStream) -> (Vec<u8>, Option<std::io::ErrorKind>) {
        let (mut reader, pump) = BodyPump::new(stream);
        let read = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut buf = [0; 3];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => return (out, None),
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                    Err(e) => return (out, Some(e.kind())),
                }
            }
        });
        let outcome = read.await.unwrap();
        pump.finish().await;
        outcome
    }

    #[tokio::test]
    async fn the_engine_reads_every_piece_in_order_across_small_reads() {
        let body = chunks(vec![Ok(b"ab"), Ok(b""), Ok(b"cdefg"), Ok(b"h")]);
        assert_eq!(pumped(body).await, (b"abcdefgh".to_vec(), None));
        let big = Bytes::from(vec![7u8; PIECE * 2 + 5]);
        let body = byte_stream(futures_util::stream::iter([Ok(big.clone())]));
        assert_eq!(pumped(body).await, (big.to_vec(), None));
    }

    #[tokio::test]
    async fn pieces_taken_in_batches_keep_their_order_and_the_error_its_place() {
        // More pieces than the queue holds, each different, with an error at the end:
        // the reader starts late, so it takes full batches.
        let mut parts: Vec<std::io::Result<Bytes>> = (0..PUMP_DEPTH as u8 * 3 + 1)
            .map(|i| Ok(Bytes::from(vec![i; 5])))
            .collect();
        let expected: Vec<u8> = parts
            .iter()
            .flat_map(|p| p.as_ref().unwrap().to_vec())
            .collect();
        parts.push(Err(std::io::ErrorKind::ConnectionAborted.into()));
        let (mut reader, pump) = BodyPump::new(byte_stream(futures_util::stream::iter(parts)));
        let read = tokio::task::spawn_blocking(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let mut out = Vec::new();
            let err = reader.read_to_end(&mut out).unwrap_err();
            (out, err.kind())
        });
        let (out, err) = read.await.unwrap();
        pump.finish().await;
        assert_eq!(out, expected);
        assert_eq!(err, std::io::ErrorKind::ConnectionAborted);
    }

    #[tokio::test]
    async fn a_broken_body_reaches_the_engine_as_its_error_after_what_came() {
        let broke = std::io::Error::from(std::io::ErrorKind::ConnectionAborted);
        let body = chunks(vec![Ok(b"abcd"), Err(broke)]);
        let aborted = Some(std::io::ErrorKind::ConnectionAborted);
        assert_eq!(pumped(body).await, (b"abcd".to_vec(), aborted));
    }

    #[tokio::test]
    async fn an_engine_that_gives_up_on_a_silent_body_is_answered_at_once() {
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(1);
        let silent = byte_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
        let (reader, pump) = BodyPump::new(silent);
        // A refusal before the engine reads a byte.
        drop(reader);
        tokio::time::timeout(std::time::Duration::from_secs(5), pump.finish())
            .await
            .expect("the pump ends without a byte from the client");
        assert!(tx.is_closed(), "the pump let go of the body");
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
