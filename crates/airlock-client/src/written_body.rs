//! A request body that blocking code writes (a tar packer), sent in the writer's own
//! buffers.
//!
//! Through a pipe (`tokio::io::duplex` behind a `BufWriter`) every byte of a tree upload
//! was copied three times before the socket: into the `BufWriter`, into the pipe, and out
//! of it into the body's chunk, with the request's task woken once per pipe-full. Here the
//! writer fills a buffer of [`CHUNK`] bytes and hands it over whole as one of the body's
//! chunks.

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::Frame;
use tokio::sync::mpsc;

use crate::CHUNK;

/// Chunks written ahead of the socket.
const AHEAD: usize = 4;

/// What the writer hands the body.
enum Handed {
    Chunk(Bytes),
    End,
    Failed(io::Error),
}

/// A body and the writer that fills it, for a blocking thread. `seen` is told each chunk's
/// size as it is handed over (a progress bar). The body ends only at
/// [`BodyWriter::finish`]: a writer dropped before it, or [`BodyWriter::fail`]ed, breaks
/// the body, so the request fails instead of sending a prefix as if it were whole.
pub fn written_body(seen: impl FnMut(usize) + Send + 'static) -> (BodyWriter, WrittenBody) {
    let (tx, rx) = mpsc::channel(AHEAD);
    let writer = BodyWriter {
        tx,
        buffer: Vec::with_capacity(CHUNK),
        seen: Box::new(seen),
    };
    (writer, WrittenBody { rx, ended: false })
}

/// The writing end: `std::io::Write` for a blocking thread (it blocks while the body is
/// a few chunks ahead of the socket).
pub struct BodyWriter {
    tx: mpsc::Sender<Handed>,
    buffer: Vec<u8>,
    seen: Box<dyn FnMut(usize) + Send>,
}

impl BodyWriter {
    /// Sends what is buffered and ends the body.
    pub fn finish(mut self) -> io::Result<()> {
        if !self.buffer.is_empty() {
            self.hand_over(0)?;
        }
        self.send(Handed::End)
    }

    /// Breaks the body with `error`: the request fails with it.
    pub fn fail(self, error: io::Error) {
        let _ = self.tx.blocking_send(Handed::Failed(error));
    }

    /// Sends the buffer as a chunk, leaving one of `next` bytes' room (none after the
    /// last).
    fn hand_over(&mut self, next: usize) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(next));
        (self.seen)(chunk.len());
        self.send(Handed::Chunk(Bytes::from(chunk)))
    }

    fn send(&self, handed: Handed) -> io::Result<()> {
        self.tx.blocking_send(handed).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the request stopped taking its body",
            )
        })
    }
}

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buffer.len());
        self.buffer.extend_from_slice(&data[..n]);
        if self.buffer.len() == CHUNK {
            self.hand_over(CHUNK)?;
        }
        Ok(n)
    }

    /// Sends nothing: chunks go when full, and the last at [`BodyWriter::finish`]. A
    /// flush after every small write would make the body as many small chunks.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The body's end, for the request.
pub struct WrittenBody {
    rx: mpsc::Receiver<Handed>,
    ended: bool,
}

impl http_body::Body for WrittenBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let handed = ready!(self.rx.poll_recv(cx));
        Poll::Ready(match handed {
            Some(Handed::Chunk(chunk)) => Some(Ok(Frame::data(chunk))),
            Some(Handed::End) => {
                self.ended = true;
                None
            }
            Some(Handed::Failed(error)) => {
                self.ended = true;
                Some(Err(error))
            }
            None => {
                self.ended = true;
                Some(Err(io::Error::other(
                    "the body's writer stopped before its end",
                )))
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

impl From<WrittenBody> for reqwest::Body {
    fn from(body: WrittenBody) -> Self {
        reqwest::Body::wrap(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    /// Everything the body yields: its bytes, each chunk's size, and how it ended.
    async fn drain(mut body: WrittenBody) -> (Vec<u8>, Vec<usize>, Option<String>) {
        let (mut all, mut sizes) = (Vec::new(), Vec::new());
        loop {
            let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
            match frame {
                None => return (all, sizes, None),
                Some(Ok(frame)) => {
                    let chunk = frame.into_data().unwrap_or_default();
                    sizes.push(chunk.len());
                    all.extend_from_slice(&chunk);
                }
                Some(Err(e)) => return (all, sizes, Some(e.to_string())),
            }
        }
    }

    #[tokio::test]
    async fn small_writes_make_full_chunks_and_a_short_last_one() {
        let (mut writer, body) = written_body(|_| {});
        let bytes: Vec<u8> = (0..CHUNK * 2 + 1000).map(|n| (n % 251) as u8).collect();
        let expected = bytes.clone();
        let writing = tokio::task::spawn_blocking(move || {
            for piece in bytes.chunks(700) {
                writer.write_all(piece)?;
                writer.flush()?;
            }
            writer.finish()
        });
        let (all, sizes, ended) = drain(body).await;
        writing.await.expect("joined").expect("written");
        assert_eq!(all, expected);
        assert_eq!(sizes, vec![CHUNK, CHUNK, 1000]);
        assert_eq!(ended, None);
    }

    #[tokio::test]
    async fn a_writer_that_stops_before_finishing_breaks_the_body() {
        let (mut writer, body) = written_body(|_| {});
        let writing = tokio::task::spawn_blocking(move || {
            writer.write_all(&vec![1u8; CHUNK + 5]).expect("written");
            drop(writer);
        });
        let (all, _, ended) = drain(body).await;
        writing.await.expect("joined");
        assert_eq!(
            all.len(),
            CHUNK,
            "what was handed over came, the rest did not"
        );
        assert!(ended.is_some_and(|e| e.contains("before its end")));
    }

    #[tokio::test]
    async fn a_failed_writer_breaks_the_body_with_its_error() {
        let (writer, body) = written_body(|_| {});
        std::thread::spawn(move || writer.fail(io::Error::other("the tree could not be read")));
        let (_, _, ended) = drain(body).await;
        assert_eq!(ended.as_deref(), Some("the tree could not be read"));
    }

    #[tokio::test]
    async fn a_body_dropped_stops_the_writer() {
        let (mut writer, body) = written_body(|_| {});
        drop(body);
        let outcome = tokio::task::spawn_blocking(move || writer.write_all(&vec![0u8; CHUNK]))
            .await
            .expect("joined");
        assert_eq!(
            outcome.expect_err("nobody takes it").kind(),
            io::ErrorKind::BrokenPipe
        );
    }

    #[tokio::test]
    async fn seen_is_told_each_chunk() {
        let counted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let total = counted.clone();
        let (mut writer, body) = written_body(move |n| {
            total.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        });
        let writing = tokio::task::spawn_blocking(move || {
            writer.write_all(&vec![3u8; CHUNK + 17])?;
            writer.finish()
        });
        drain(body).await;
        writing.await.expect("joined").expect("written");
        assert_eq!(
            counted.load(std::sync::atomic::Ordering::Relaxed),
            CHUNK + 17
        );
    }
}
