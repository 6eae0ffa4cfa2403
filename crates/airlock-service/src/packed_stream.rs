//! An archive download's bytes, whose end says whether the packing finished.
//!
//! The packing thread writes into a pipe, and the pipe's end alone cannot tell a whole
//! archive from one whose packing failed half-way: both just stop. A tar cut between two
//! entries also reads as a whole, smaller one, so a client would take it for the tree.
//! Here the pipe's end waits for the packing's outcome, and a failure ends the stream
//! with an error: REST then breaks the response off and gRPC answers with a status.
//!
//! A packing that fails before its first bytes (the directory swapped for a symlink since
//! it was checked, say) is still an answer's status: [`PackedStream::started`] waits for
//! those bytes before the answer's head is sent.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::Stream;
use tokio::io::DuplexStream;
use tokio::sync::oneshot;
use tokio_util::io::ReaderStream;

/// How the packing ended.
pub(crate) type PackOutcome = Result<(), airlock_fs::FsError>;

/// The bytes packed so far, then the packing's outcome.
pub struct PackedStream {
    bytes: ReaderStream<DuplexStream>,
    outcome: Option<oneshot::Receiver<PackOutcome>>,
    /// The first bytes, taken by [`PackedStream::started`] and sent first.
    head: Option<Bytes>,
}

impl PackedStream {
    pub(crate) fn new(
        bytes: ReaderStream<DuplexStream>,
        outcome: oneshot::Receiver<PackOutcome>,
    ) -> Self {
        Self {
            bytes,
            outcome: Some(outcome),
            head: None,
        }
    }

    /// Waits for the packing's first bytes. A packing that failed before writing any is
    /// its error, which the caller can still answer with a status.
    pub(crate) async fn started(mut self) -> Result<Self, airlock_fs::FsError> {
        use futures_util::StreamExt;
        match self.bytes.next().await {
            Some(Ok(first)) => {
                self.head = Some(first);
                Ok(self)
            }
            Some(Err(e)) => Err(airlock_fs::FsError::from_io("the archive", e)),
            None => match self.outcome.take() {
                Some(outcome) => told(outcome.await).map(|()| self),
                None => Ok(self),
            },
        }
    }
}

/// The packing's outcome as it was received; a packing thread that ended without a word
/// (it panicked) is a failure too.
fn told(received: Result<PackOutcome, oneshot::error::RecvError>) -> PackOutcome {
    received.unwrap_or_else(|_| {
        Err(airlock_fs::FsError::from_io(
            "the archive",
            std::io::Error::other("packing stopped"),
        ))
    })
}

impl Stream for PackedStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(head) = self.head.take() {
            return Poll::Ready(Some(Ok(head)));
        }
        if let Some(item) = ready!(Pin::new(&mut self.bytes).poll_next(cx)) {
            return Poll::Ready(Some(item));
        }
        let Some(outcome) = self.outcome.as_mut() else {
            return Poll::Ready(None);
        };
        // The pipe can end before the outcome is sent (the sink is dropped first on some
        // paths), so the end waits for it.
        let outcome = told(ready!(Pin::new(outcome).poll(cx)));
        self.outcome = None;
        Poll::Ready(outcome.err().map(|why| {
            Err(std::io::Error::other(format!(
                "the archive was cut short: {why}"
            )))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;

    async fn read_all(
        outcome: impl FnOnce(oneshot::Sender<PackOutcome>),
    ) -> Vec<std::io::Result<Bytes>> {
        let (reader, mut writer) = tokio::io::duplex(1024);
        let (told, heard) = oneshot::channel();
        writer.write_all(b"some bytes").await.unwrap();
        drop(writer);
        let stream = PackedStream::new(ReaderStream::new(reader), heard);
        let collecting = tokio::spawn(stream.collect::<Vec<_>>());
        tokio::task::yield_now().await;
        outcome(told);
        collecting.await.unwrap()
    }

    #[tokio::test]
    async fn a_whole_archive_ends_cleanly_even_if_told_after_the_pipe_ends() {
        let items = read_all(|told| told.send(Ok(())).unwrap()).await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].as_ref().unwrap().as_ref(), b"some bytes");
    }

    #[tokio::test]
    async fn a_failed_packing_ends_with_an_error() {
        let items = read_all(|told| {
            told.send(Err(airlock_fs::FsError::from_io(
                "/t",
                std::io::Error::other("a directory could not be read"),
            )))
            .unwrap()
        })
        .await;
        assert_eq!(items.len(), 2);
        let err = items[1].as_ref().unwrap_err().to_string();
        assert!(err.contains("could not be read"), "{err}");
    }

    #[tokio::test]
    async fn a_packing_that_vanished_ends_with_an_error() {
        let items = read_all(drop).await;
        assert_eq!(items.len(), 2);
        assert!(items[1].is_err());
    }

    #[tokio::test]
    async fn a_packing_that_fails_before_its_first_bytes_is_an_error_to_answer_with() {
        let (reader, writer) = tokio::io::duplex(1024);
        let (told, heard) = oneshot::channel();
        drop(writer);
        told.send(Err(airlock_fs::FsError::from_io(
            "/t",
            std::io::Error::from_raw_os_error(2),
        )))
        .unwrap();
        let started = PackedStream::new(ReaderStream::new(reader), heard)
            .started()
            .await;
        let err = started.err().expect("a failure before any byte passed");
        assert_eq!(err.kind(), airlock_fs::FsErrorKind::NotFound);
    }

    #[tokio::test]
    async fn a_started_stream_sends_its_first_bytes_first() {
        let (reader, mut writer) = tokio::io::duplex(1024);
        let (told, heard) = oneshot::channel();
        writer.write_all(b"first").await.unwrap();
        let stream = PackedStream::new(ReaderStream::new(reader), heard)
            .started()
            .await
            .unwrap();
        let collecting = tokio::spawn(stream.collect::<Vec<_>>());
        writer.write_all(b" then more").await.unwrap();
        drop(writer);
        told.send(Ok(())).unwrap();
        let items = collecting.await.unwrap();
        let all: Vec<u8> = items
            .into_iter()
            .flat_map(|i| i.unwrap().to_vec())
            .collect();
        assert_eq!(all, b"first then more");
    }
}
