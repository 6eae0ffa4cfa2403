//! Who is working on a resumable upload, and how a newer request takes it over.
//!
//! One request at a time may work on an upload: two appends interleaved would corrupt it.
//! But a client often learns that its connection broke before the daemon does (the
//! daemon sees only silence until a timeout), and then asks where the upload stands and
//! sends the rest. Refusing it as busy would make it wait out the daemon's idle timeout,
//! and the offset it was told would be stale by the time the old request ended. So, as
//! tusd does, a newer request asks the one holding the upload to stop: the old append
//! keeps the bytes it already has at hand (they are saved as usual), ends, and lets go,
//! and the newer request goes on from the offset that left.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::Stream;
use std::future::Future;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::ApiError;
use crate::body::ByteStream;

/// How long a newer request waits for the one holding an upload to let go.
const TAKEOVER_WAIT: Duration = Duration::from_secs(10);

/// How often it looks again meanwhile.
const TAKEOVER_POLL: Duration = Duration::from_millis(5);

/// The uploads with a request working on them, each with the signal that asks it to stop.
/// Keyed by sandbox and upload, so that no caller can reach into another sandbox's
/// uploads by naming one of their ids.
#[derive(Debug, Default)]
pub(crate) struct UploadClaims {
    held: Mutex<HashMap<String, CancellationToken>>,
}

/// A request's hold on an upload, let go when dropped.
pub(crate) struct Claim<'a> {
    claims: &'a UploadClaims,
    key: String,
    stop: CancellationToken,
}

impl UploadClaims {
    /// Holds `upload` if nobody does; otherwise leaves it be (a 409).
    pub(crate) fn try_claim(&self, sandbox: &str, upload: &str) -> Result<Claim<'_>, ApiError> {
        self.claim_or_holder(&key(sandbox, upload))
            .map_err(|_| busy(upload))
    }

    /// Holds `upload`, asking a request that holds it to stop and waiting for it to let
    /// go (a 409 if it has not within `TAKEOVER_WAIT`).
    pub(crate) async fn take(&self, sandbox: &str, upload: &str) -> Result<Claim<'_>, ApiError> {
        self.take_within(sandbox, upload, TAKEOVER_WAIT).await
    }

    async fn take_within(
        &self,
        sandbox: &str,
        upload: &str,
        wait: Duration,
    ) -> Result<Claim<'_>, ApiError> {
        let deadline = Instant::now() + wait;
        let key = key(sandbox, upload);
        loop {
            match self.claim_or_holder(&key) {
                Ok(claim) => return Ok(claim),
                Err(holder) => holder.cancel(),
            }
            if Instant::now() >= deadline {
                return Err(busy(upload));
            }
            tokio::time::sleep(TAKEOVER_POLL).await;
        }
    }

    fn claim_or_holder(&self, key: &str) -> Result<Claim<'_>, CancellationToken> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(holder) = held.get(key) {
            return Err(holder.clone());
        }
        let stop = CancellationToken::new();
        held.insert(key.to_owned(), stop.clone());
        Ok(Claim {
            claims: self,
            key: key.to_owned(),
            stop,
        })
    }
}

impl Claim<'_> {
    /// Whether a newer request asked for the upload.
    pub(crate) fn taken_over(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Resolves once a newer request asks for the upload.
    pub(crate) fn stopped(&self) -> WaitForCancellationFutureOwned {
        self.stop.clone().cancelled_owned()
    }

    /// `body`, broken off with an error once a newer request asks for the upload: after
    /// what has already arrived, so that bytes the client did send are kept.
    pub(crate) fn stoppable(&self, body: ByteStream) -> ByteStream {
        Box::pin(UntilTakenOver {
            body,
            stop: Box::pin(self.stop.clone().cancelled_owned()),
            over: false,
        })
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.claims
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

fn key(sandbox: &str, upload: &str) -> String {
    format!("{sandbox}/{upload}")
}

fn busy(upload: &str) -> ApiError {
    ApiError::conflict(format!("upload {upload} is busy with another request"))
}

struct UntilTakenOver {
    body: ByteStream,
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
    over: bool,
}

impl Stream for UntilTakenOver {
    type Item = std::io::Result<bytes::Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.over {
            // The rest is the face's to drain (or not): the engine is done with it.
            return Poll::Ready(None);
        }
        let stopping = self.stop.as_mut().poll(cx).is_ready();
        match self.body.as_mut().poll_next(cx) {
            Poll::Pending if stopping => {
                self.over = true;
                // Not `Interrupted`: readers take that as "try again".
                Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "a newer request for this upload took it over",
                ))))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures_util::StreamExt;

    #[test]
    fn a_held_upload_is_refused_to_a_try_and_free_again_once_let_go() {
        let claims = UploadClaims::default();
        let first = claims.try_claim("s", "u1").expect("free");
        assert!(claims.try_claim("s", "u1").is_err());
        assert!(
            claims.try_claim("s", "u2").is_ok(),
            "another upload is free"
        );
        drop(first);
        assert!(claims.try_claim("s", "u1").is_ok());
    }

    #[tokio::test]
    async fn a_newer_request_asks_the_holder_to_stop_and_gets_it_when_let_go() {
        let claims = std::sync::Arc::new(UploadClaims::default());
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
        let holder = claims.try_claim("s", "u").expect("free");
        let body = holder.stoppable(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)));
        tx.send(Ok(Bytes::from_static(b"sent")))
            .await
            .expect("send");
        let (got, taken) = tokio::join!(
            async {
                // The holder reads on until its body breaks off, then lets go, as the
                // engine does.
                let mut body = body;
                let mut got = Vec::new();
                while let Some(item) = body.next().await {
                    let broke = item.is_err();
                    got.push(item);
                    if broke {
                        break;
                    }
                }
                drop(holder);
                // The body ends there, whatever the client still sends.
                tx.send(Ok(Bytes::from_static(b"late")))
                    .await
                    .expect("send");
                assert!(body.next().await.is_none());
                got
            },
            claims.take("s", "u"),
        );
        assert!(taken.is_ok(), "the newer request holds the upload");
        assert_eq!(got.len(), 2, "what had arrived, then the stop: {got:?}");
        assert_eq!(
            got[0].as_ref().expect("bytes"),
            &Bytes::from_static(b"sent")
        );
        let stop = got[1].as_ref().expect_err("ended by the takeover");
        assert_eq!(stop.kind(), std::io::ErrorKind::ConnectionAborted);
    }

    #[tokio::test]
    async fn a_holder_that_never_lets_go_leaves_the_newer_request_a_conflict() {
        let claims = UploadClaims::default();
        let stuck = claims.try_claim("s", "u").expect("free");
        let wait = Duration::from_millis(50);
        let err = claims
            .take_within("s", "u", wait)
            .await
            .err()
            .expect("still held");
        assert!(stuck.stop.is_cancelled(), "it was asked to stop");
        assert!(err.to_string().contains("busy"), "{err}");
    }

    #[tokio::test]
    async fn the_same_upload_id_in_another_sandbox_is_neither_refused_nor_stopped() {
        let claims = UploadClaims::default();
        let theirs = claims.try_claim("their-sandbox", "u").expect("free");
        let ours = claims
            .take_within("our-sandbox", "u", Duration::from_millis(50))
            .await;
        assert!(ours.is_ok());
        assert!(
            !theirs.stop.is_cancelled(),
            "their append was not asked to stop"
        );
    }

    #[tokio::test]
    async fn a_body_nobody_asks_for_streams_to_its_end() {
        let claims = UploadClaims::default();
        let claim = claims.try_claim("s", "u").expect("free");
        let items = [Ok(Bytes::from_static(b"a")), Ok(Bytes::from_static(b"b"))];
        let body = claim.stoppable(Box::pin(futures_util::stream::iter(items)));
        let got: Vec<_> = body.collect().await;
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(Result::is_ok));
    }
}
