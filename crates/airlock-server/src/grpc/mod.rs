//! The gRPC face (package `airlock.v1`), served on the daemon's port beside REST: Files,
//! Sandboxes, Exec, Processes and Tokens over the same service, plus the standard health service and server
//! reflection (v1 and v1alpha), so grpcurl and grpc_health_probe need no proto files.
//! Handlers only decode, call the service and encode.

mod batch;
mod convert;
mod download;
mod exec;
mod files;
mod processes;
mod sandboxes;
pub(crate) mod status;
mod tokens;
pub(crate) mod unframe;
pub(crate) mod upload;
pub(crate) mod wire;

use std::sync::Arc;

use airlock_proto::v1::exec_server::ExecServer;
use airlock_proto::v1::files_server::FilesServer;
use airlock_proto::v1::processes_server::ProcessesServer;
use airlock_proto::v1::sandboxes_server::SandboxesServer;
use airlock_proto::v1::tokens_server::TokensServer;
use airlock_service::{Principal, Service};
use tonic::service::Routes;
use tonic::{Request, Status};

/// The largest message either side may send: chunks of any size up to this. The file
/// itself has no cap; it is streamed.
pub const MESSAGE_LIMIT: usize = 8 * 1024 * 1024;

/// Every gRPC service, as one router for the daemon's dispatcher. Airlock's own
/// services sit behind [`authenticate`]; health and reflection answer anyone, as
/// probes and grpcurl expect.
pub fn router(service: Arc<Service>) -> axum::Router {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    let files = FilesServer::new(files::FilesFace(service.clone()))
        .max_decoding_message_size(MESSAGE_LIMIT)
        .max_encoding_message_size(MESSAGE_LIMIT);
    let sandboxes = SandboxesServer::new(sandboxes::SandboxesFace(service.clone()))
        .max_decoding_message_size(MESSAGE_LIMIT);
    let tokens = TokensServer::new(tokens::TokensFace(service.clone()));
    let processes = ProcessesServer::new(processes::ProcessesFace(service.clone()))
        .max_decoding_message_size(MESSAGE_LIMIT)
        .max_encoding_message_size(MESSAGE_LIMIT);
    let exec = ExecServer::new(exec::ExecFace(service.clone()))
        .max_decoding_message_size(MESSAGE_LIMIT)
        .max_encoding_message_size(MESSAGE_LIMIT);
    tokio::spawn(async move {
        health_reporter
            .set_serving::<FilesServer<files::FilesFace>>()
            .await;
        health_reporter
            .set_serving::<SandboxesServer<sandboxes::SandboxesFace>>()
            .await;
        health_reporter
            .set_serving::<ExecServer<exec::ExecFace>>()
            .await;
        health_reporter
            .set_serving::<TokensServer<tokens::TokensFace>>()
            .await;
        health_reporter
            .set_serving::<ProcessesServer<processes::ProcessesFace>>()
            .await;
    });
    let mut routes = Routes::new(health)
        .add_service(files)
        .add_service(sandboxes)
        .add_service(tokens)
        .add_service(processes)
        .add_service(exec);
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(airlock_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    match (reflection().build_v1(), reflection().build_v1alpha()) {
        (Ok(v1), Ok(v1alpha)) => routes = routes.add_service(v1).add_service(v1alpha),
        (Err(err), _) | (_, Err(err)) => tracing::error!(%err, "gRPC reflection is off"),
    }
    routes
        .prepare()
        .into_axum_router()
        // The two calls that carry files, served by hand ahead of tonic's routes to
        // them, so that no chunk is copied: see `wire` and `unframe`.
        .route(
            download::PATH,
            axum::routing::post(download::serve).with_state(service.clone()),
        )
        .route(
            upload::PATH,
            axum::routing::post(upload::serve).with_state(service.clone()),
        )
        .layer(axum::middleware::from_fn_with_state(service, authenticate))
}

/// Services anyone may call: health checks and reflection.
fn is_public(path: &str) -> bool {
    path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.")
}

/// Resolves the caller of every Airlock RPC (through the same authenticator REST uses)
/// and puts it on the request, or answers UNAUTHENTICATED.
async fn authenticate(
    axum::extract::State(service): axum::extract::State<Arc<Service>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if is_public(request.uri().path()) {
        return next.run(request).await;
    }
    let header = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match service.authenticate(header).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(refused) => status::status(refused).into_http(),
    }
}

/// The caller [`authenticate`] put on a request.
fn caller<T>(request: &Request<T>) -> Result<Principal, Status> {
    caller_in(request.extensions()).cloned()
}

/// The caller [`authenticate`] put on a request, from its extensions.
fn caller_in(extensions: &axum::http::Extensions) -> Result<&Principal, Status> {
    extensions
        .get::<Principal>()
        .ok_or_else(|| Status::unauthenticated("no caller"))
}

/// A call served by hand (see `wire`): `call` gets the caller [`authenticate`] put on
/// the request, the request's headers and its body; a refusal is answered trailers-only.
async fn hand_framed(
    request: axum::extract::Request,
    call: impl AsyncFnOnce(
        &Principal,
        &axum::http::HeaderMap,
        axum::body::Body,
    ) -> Result<axum::response::Response, Status>,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let answered = async {
        let caller = caller_in(&parts.extensions)?;
        call(caller, &parts.headers, body).await
    };
    answered.await.unwrap_or_else(Status::into_http)
}

/// Whether a request is gRPC (by its content type), for the daemon's dispatcher.
pub fn is_grpc(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}
