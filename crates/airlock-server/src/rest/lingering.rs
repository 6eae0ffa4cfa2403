//! Lingering close for request bodies a handler let go of unread.
//!
//! A handler that answers before reading its body to the end (a refusal: a bad path, no
//! quota, an upload at another offset or taken over by a newer request) drops the body.
//! hyper then reads only what has already arrived and shuts the socket with the rest
//! unread, and the kernel answers the client's next write with a reset, often before the
//! client has read the answer: it sees "broken pipe" instead of its 409. So, as nginx's
//! lingering close does, what is left of a dropped body comes back here and is read and
//! thrown away after the answer has gone out, for as long as the client keeps sending
//! (within [`LINGER_TIME`], each gap under [`LINGER_QUIET`]).
//!
//! The drain starts only once the handler has answered, never when the body is dropped:
//! hyper sends `100 Continue` to a client that asked for it (the TypeScript SDK does, for
//! every streamed body) when the body is first read before an answer, and the client
//! would then send a body nobody wants.
//!
//! This is the REST face's business, not the service's: it is how an HTTP/1.1 connection
//! ends, and nothing a gRPC stream needs.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body::{Frame, SizeHint};
use tokio::sync::oneshot;

/// The longest a dropped body is read after its answer (nginx's `lingering_time`).
const LINGER_TIME: Duration = Duration::from_secs(30);
/// How long the client may go quiet before the drain gives up (nginx's
/// `lingering_timeout`).
const LINGER_QUIET: Duration = Duration::from_secs(5);

/// A request body that, dropped before its end, hands what is left back to the
/// [`Unread`] made with it. Generic, so that it and the body it wraps are one allocation
/// per request, not two: every upload passes through it.
struct ReturningBody<B: Returnable> {
    /// Taken only by `drop`.
    inner: Option<B>,
    back: Option<oneshot::Sender<Body>>,
}

/// What a returning body can wrap: a request body that can become an axum [`Body`].
pub trait Returnable:
    http_body::Body<Data = Bytes, Error = axum::Error> + Send + Unpin + 'static
{
}

impl<B> Returnable for B where
    B: http_body::Body<Data = Bytes, Error = axum::Error> + Send + Unpin + 'static
{
}

/// Where the rest of a body dropped unread comes back to.
pub struct Unread(oneshot::Receiver<Body>);

/// `body`, and the slot its unread rest comes back to if the handler drops it early.
pub fn returning(body: impl Returnable) -> (Body, Unread) {
    let (back, rest) = oneshot::channel();
    let body = ReturningBody {
        inner: Some(body),
        back: Some(back),
    };
    (Body::new(body), Unread(rest))
}

impl Unread {
    /// Reads and throws away, in the background, what is left of a body the handler
    /// dropped unread. Call it once the handler has answered. A body something still
    /// holds then (a task that reads on after the answer) is left to it: no task is
    /// spawned to wait for it, so a request read to its end costs no spawn.
    pub fn linger(mut self) {
        if let Ok(rest) = self.0.try_recv() {
            tokio::spawn(drain(rest));
        }
    }
}

async fn drain(rest: Body) {
    let mut rest = rest.into_data_stream();
    let steady = async {
        while let Ok(Some(Ok(_))) = tokio::time::timeout(LINGER_QUIET, rest.next()).await {}
    };
    let _ = tokio::time::timeout(LINGER_TIME, steady).await;
}

impl<B: Returnable> http_body::Body for ReturningBody<B> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = Pin::new(inner).poll_frame(cx);
        if matches!(frame, Poll::Ready(None | Some(Err(_)))) {
            // Read to its end, or broken (the client went away or quiet): nothing is
            // left to drain.
            self.back = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(B::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map(B::size_hint).unwrap_or_default()
    }
}

impl<B: Returnable> Drop for ReturningBody<B> {
    fn drop(&mut self) {
        if let (Some(back), Some(inner)) = (self.back.take(), self.inner.take())
            && !inner.is_end_stream()
        {
            // Boxed only here, for a body left unread.
            let _ = back.send(Body::new(inner));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(chunks: Vec<&'static [u8]>) -> Body {
        let chunks = chunks
            .into_iter()
            .map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c)));
        Body::from_stream(futures_util::stream::iter(chunks))
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_comes_back_with_its_rest() {
        let (body, unread) = returning(streamed(vec![b"read", b"rest"]));
        let mut stream = body.into_data_stream();
        assert_eq!(&stream.next().await.unwrap().unwrap()[..], b"read");
        drop(stream);
        let rest = unread.0.await.expect("the rest came back");
        let rest = axum::body::to_bytes(rest, 64).await.unwrap();
        assert_eq!(&rest[..], b"rest");
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_leaves_nothing_to_drain() {
        let (body, unread) = returning(streamed(vec![b"all", b"of it"]));
        let all = axum::body::to_bytes(body, 64).await.unwrap();
        assert_eq!(&all[..], b"allof it");
        assert!(unread.0.await.is_err(), "nothing came back");
    }

    #[tokio::test]
    async fn a_broken_body_leaves_nothing_to_drain() {
        let broken = futures_util::stream::iter([
            Ok(Bytes::from_static(b"a")),
            Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
            Ok(Bytes::from_static(b"never read")),
        ]);
        let (body, unread) = returning(Body::from_stream(broken));
        let mut stream = body.into_data_stream();
        assert!(stream.next().await.unwrap().is_ok());
        assert!(stream.next().await.unwrap().is_err());
        drop(stream);
        assert!(unread.0.await.is_err(), "nothing came back");
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_gives_up_on_a_client_that_goes_quiet() {
        let (_client, quiet) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let quiet = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(quiet));
        tokio::time::timeout(LINGER_QUIET * 2, drain(quiet))
            .await
            .expect("the drain ended though the client never closed");
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_gives_up_on_a_client_that_never_stops() {
        let endless = futures_util::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"more")), ()))
        });
        tokio::time::timeout(LINGER_TIME * 2, drain(Body::from_stream(endless)))
            .await
            .expect("the drain ended though the client kept sending");
    }
}
