//! An archive download's bytes, whose end says whether the packing finished.
//!
//! The packing thread writes into a pipe, and the pipe's end alone cannot tell a whole
//! archive from one whose packing failed half-way: both just stop. A tar cut between two
//! entries also reads as a whole, smaller one, so a client would take it for the tree.
//! Here the pipe's end waits for the packing's outcome, and a failure ends the stream
//! with an error: REST then breaks the response off and gRPC answers with a status.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::Stream;
use tokio::io::DuplexStream;
use tokio::sync::oneshot;
use tokio_util::io::ReaderStream;

/// How the packing ended: `Err` carries what went wrong, for the client's error.
pub(crate) type PackOutcome = Result<(), String>;

/// The bytes packed so far, then the packing's outcome.
pub struct PackedStream {
    bytes: ReaderStream<DuplexStream>,
    outcome: Option<oneshot::Receiver<PackOutcome>>,
}

impl PackedStream {
    pub(crate) fn new(
        bytes: ReaderStream<DuplexStream>,
        outcome: oneshot::Receiver<PackOutcome>,
    ) -> Self {
        Self {
            bytes,
            outcome: Some(outcome),
        }
    }
}

impl Stream for PackedStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(item) = ready!(Pin::new(&mut self.bytes).poll_next(cx)) {
            return Poll::Ready(Some(item));
        }
        let Some(outcome) = self.outcome.as_mut() else {
            return Poll::Ready(None);
        };
        // The pipe can end before the outcome is sent (the sink is dropped first on some
        // paths), so the end waits for it.
        let told = ready!(Pin::new(outcome).poll(cx));
        self.outcome = None;
        Poll::Ready(match told {
            Ok(Ok(())) => None,
            Ok(Err(why)) => Some(Err(std::io::Error::other(format!(
                "the archive was cut short: {why}"
            )))),
            // The packing thread ended without a word: it panicked.
            Err(_) => Some(Err(std::io::Error::other(
                "the archive was cut short: packing stopped",
            ))),
        })
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
            told.send(Err("a directory could not be read".into()))
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
}
