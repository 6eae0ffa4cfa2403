//! Request metrics for both faces, measured once around the dispatcher: requests by
//! face, route template and status, time to the answer's head, and body bytes each way.
//! A gRPC call's status is in its trailers when it streamed, so it is recorded when the
//! trailers pass (or, for a call cut short, when its body is dropped: `cancelled`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use airlock_service::{FaceBytes, Service};
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::Response;
use http_body::Frame;

/// The route template REST matched, put on its answer for this layer to read.
#[derive(Debug, Clone)]
pub struct RouteLabel(pub axum::extract::MatchedPath);

/// The count a raw body's bytes go into, put on each REST request that asks for an
/// upgrade: such a body bypasses hyper's, which this layer counts otherwise.
#[derive(Clone)]
pub struct RawBytes(pub airlock_service::ByteCounter);

/// A route no face knew; one label for all of them keeps label sets bounded.
const UNMATCHED: &str = "unmatched";

/// What the layer measures with: the service's metrics, and each face's byte counters,
/// taken once.
pub struct Observer {
    service: Arc<Service>,
    rest: FaceBytes,
    grpc: FaceBytes,
}

impl Observer {
    pub fn new(service: Arc<Service>) -> Self {
        let metrics = service.metrics();
        Self {
            rest: metrics.face_bytes("rest"),
            grpc: metrics.face_bytes("grpc"),
            service,
        }
    }

    /// gRPC's count of bytes sent from files, or REST's.
    pub fn sent_from_file(&self, grpc: bool) -> airlock_service::ByteCounter {
        let face = if grpc { &self.grpc } else { &self.rest };
        face.sent_from_file.clone()
    }
}

/// Measures one request, of the face `grpc` says, as `next` answers it.
pub async fn observe<Answer>(
    observer: &Observer,
    grpc: bool,
    mut request: Request,
    next: impl FnOnce(Request) -> Answer,
) -> Response
where
    Answer: Future<Output = Response>,
{
    let started = Instant::now();
    let service = &observer.service;
    let (face, bytes) = if grpc {
        ("grpc", &observer.grpc)
    } else {
        ("rest", &observer.rest)
    };
    // A gRPC call's route is its method; REST's is its template, found by the router.
    let rpc = grpc.then(|| request.uri().path().to_owned());
    if !grpc && request.headers().contains_key(axum::http::header::UPGRADE) {
        request
            .extensions_mut()
            .insert(RawBytes(bytes.received.clone()));
    }
    // A body known to be empty (a GET's) has nothing to count.
    let request = if http_body::Body::is_end_stream(request.body()) {
        request
    } else {
        request.map(|body| {
            Body::new(Counting {
                inner: body,
                bytes: bytes.received.clone(),
                service: service.clone(),
                rpc: None,
            })
        })
    };
    let response = next(request).await;
    let seconds = started.elapsed().as_secs_f64();
    let mut rpc_end = None;
    if let Some(rpc) = rpc {
        match grpc_status(response.headers()) {
            // Trailers-only: the call ended with its head.
            Some(status) => record_rpc(service, &rpc, status, seconds),
            None => rpc_end = Some((rpc, seconds)),
        }
    } else {
        let route = response
            .extensions()
            .get::<RouteLabel>()
            .map_or(UNMATCHED, |r| r.0.as_str());
        let status = response.status().as_u16();
        service.metrics().request(face, route, status, seconds);
    }
    response.map(|body| {
        Body::new(Counting {
            inner: body,
            bytes: bytes.sent.clone(),
            service: service.clone(),
            rpc: rpc_end,
        })
    })
}

/// A `grpc-status` that is not a number is counted as UNKNOWN.
fn grpc_status(headers: &HeaderMap) -> Option<u16> {
    headers.get("grpc-status").map(|v| {
        std::str::from_utf8(v.as_bytes())
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(UNKNOWN)
    })
}

/// gRPC's status for a call its client left before the trailers.
const CANCELLED: u16 = 1;

/// gRPC's status for an error no other code names.
const UNKNOWN: u16 = 2;

/// gRPC's status for a method no service has.
const UNIMPLEMENTED: u16 = 12;

/// Records one RPC; calls to methods no service has share one label.
fn record_rpc(service: &Service, rpc: &str, status: u16, seconds: f64) {
    let route = if status == UNIMPLEMENTED {
        UNMATCHED
    } else {
        rpc
    };
    service.metrics().request("grpc", route, status, seconds);
}

/// A body that counts its bytes into the metrics, and records a streamed RPC's status
/// from its trailers.
struct Counting {
    inner: Body,
    /// Where its bytes are counted.
    bytes: airlock_service::ByteCounter,
    service: Arc<Service>,
    /// A gRPC answer still owed its request metric: the method and time to head.
    rpc: Option<(String, f64)>,
}

impl http_body::Body for Counting {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.bytes.inc_by(data.len() as u64);
            } else if let Some(trailers) = frame.trailers_ref()
                && let Some((rpc, seconds)) = self.rpc.take()
            {
                let status = grpc_status(trailers).unwrap_or(0);
                record_rpc(&self.service, &rpc, status, seconds);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        // A streamed call whose trailers never went: the client left, or the
        // connection broke.
        if let Some((rpc, seconds)) = self.rpc.take() {
            record_rpc(&self.service, &rpc, CANCELLED, seconds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_status(value: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "grpc-status",
            axum::http::HeaderValue::from_bytes(value).unwrap(),
        );
        headers
    }

    #[test]
    fn grpc_statuses_are_numbers_and_garbage_counts_as_unknown() {
        assert_eq!(grpc_status(&HeaderMap::new()), None);
        assert_eq!(grpc_status(&with_status(b"0")), Some(0));
        assert_eq!(grpc_status(&with_status(b"12")), Some(UNIMPLEMENTED));
        assert_eq!(grpc_status(&with_status(b"ok")), Some(2));
        assert_eq!(grpc_status(&with_status(b"\xff")), Some(2));
        assert_eq!(grpc_status(&with_status(b"99999999")), Some(2));
    }
}
