//! One port, two faces: gRPC requests (told by their content type) go to the gRPC router,
//! everything else to REST, and both are measured here, once.
//!
//! A plain service rather than an axum `Router` with a fallback and a middleware layer:
//! that pair cloned a boxed service and boxed a future twice per request, and told
//! gRPC from REST twice. By hand, one core, 1,000 × 1 KiB GETs: a probe with no outer
//! layer at all (and so no metrics) spent about 2 µs less of the daemon's CPU per GET (a
//! tenth of it); this service, which still measures, about 1 µs less.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use airlock_service::Service;
use axum::Router;
use axum::body::Body;
use axum::response::Response;
use hyper::body::Incoming;
use tower::ServiceExt;

use crate::h2_script::H2Sends;
use crate::observe::{Observer, observe};
use crate::origin::Origin;
use crate::sendfile::SendQueue;

/// The daemon's whole HTTP application: what each connection serves.
#[derive(Clone)]
pub(crate) struct Faces {
    observer: Arc<Observer>,
    rest: Router,
    grpc: Router,
    /// The connection's queue of file windows to send, when it can send them itself
    /// (HTTP/1): handed to each request, so a download can use it.
    send_queue: Option<SendQueue>,
    /// The same for an HTTP/2 connection: the scripts its downloads keep.
    h2_sends: Option<H2Sends>,
}

impl Faces {
    pub(crate) fn new(service: Arc<Service>, rest: Router, grpc: Router) -> Self {
        Self {
            observer: Arc::new(Observer::new(service)),
            rest,
            grpc,
            send_queue: None,
            h2_sends: None,
        }
    }

    /// The same application for one connection that sends file windows from `queue`.
    pub(crate) fn sending_files(mut self, queue: SendQueue) -> Self {
        self.send_queue = Some(queue);
        self
    }

    /// The same application for one HTTP/2 connection whose downloads keep scripts in
    /// `sends`.
    pub(crate) fn sending_files_h2(mut self, sends: H2Sends) -> Self {
        self.h2_sends = Some(sends);
        self
    }

    /// The count of bytes a connection of this face sends from files: gRPC's when
    /// `http2` (REST's downloads over HTTP/2 are read, not sent from their file), REST's
    /// (with E2B's and agent-sandbox's) otherwise.
    pub(crate) fn sent_from_file(&self, http2: bool) -> airlock_service::ByteCounter {
        self.observer.sent_from_file(http2)
    }

    async fn answer(self, request: axum::extract::Request) -> Response {
        let grpc = crate::grpc::is_grpc(request.headers());
        let Self {
            observer,
            rest,
            grpc: grpc_router,
            send_queue: _,
            h2_sends: _,
        } = self;
        observe(&observer, grpc, request, |mut request| async move {
            let answered = if grpc {
                // tonic's handlers see no URI; signed URLs need the origin.
                let origin = Origin::of(request.uri(), request.headers());
                request.extensions_mut().insert(origin);
                grpc_router.oneshot(request).await
            } else {
                rest.oneshot(request).await
            };
            let Ok(response) = answered;
            response
        })
        .await
    }
}

impl tower::Service<hyper::Request<Incoming>> for Faces {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: hyper::Request<Incoming>) -> Self::Future {
        let faces = self.clone();
        let mut request = request.map(Body::new);
        if let Some(queue) = &self.send_queue {
            request.extensions_mut().insert(queue.clone());
        }
        if let Some(sends) = &self.h2_sends {
            request.extensions_mut().insert(sends.clone());
        }
        Box::pin(async move { Ok(faces.answer(request).await) })
    }
}
