//! gRPC clients of a test daemon: the generated stubs over a real HTTP/2 connection to
//! the daemon's one port, with the bearer token on every call.
#![allow(dead_code)]

use airlock_proto::v1 as pb;
use airlock_proto::v1::exec_client::ExecClient;
use airlock_proto::v1::files_client::FilesClient;
use airlock_proto::v1::sandboxes_client::SandboxesClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

use super::Daemon;

/// Puts `authorization: Bearer <token>` on every call.
#[derive(Clone)]
pub struct Bearer(pub String);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let value = format!("Bearer {}", self.0)
            .parse()
            .map_err(|_| Status::internal("token"))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }
}

pub type Authed = InterceptedService<Channel, Bearer>;

/// The Files client the tests use.
pub type FilesAuthed = FilesClient<Authed>;

/// The largest message the tests send or accept.
const LIMIT: usize = 16 * 1024 * 1024;

pub async fn channel(daemon: &Daemon) -> Channel {
    Channel::from_shared(daemon.url.clone())
        .unwrap()
        .initial_stream_window_size(8 << 20)
        .initial_connection_window_size(16 << 20)
        .connect()
        .await
        .unwrap()
}

pub async fn files_with(daemon: &Daemon, token: &str) -> FilesClient<Authed> {
    FilesClient::with_interceptor(channel(daemon).await, Bearer(token.to_owned()))
        .max_decoding_message_size(LIMIT)
        .max_encoding_message_size(LIMIT)
}

pub async fn files(daemon: &Daemon) -> FilesClient<Authed> {
    files_with(daemon, &daemon.token).await
}

pub async fn sandboxes(daemon: &Daemon) -> SandboxesClient<Authed> {
    SandboxesClient::with_interceptor(channel(daemon).await, Bearer(daemon.token.clone()))
}

pub async fn exec(daemon: &Daemon) -> ExecClient<Authed> {
    ExecClient::with_interceptor(channel(daemon).await, Bearer(daemon.token.clone()))
}

/// The messages of a plain upload: metadata, then `data` in chunks of `chunk` bytes.
pub fn upload_messages(
    meta: pb::UploadFileMetadata,
    data: &[u8],
    chunk: usize,
) -> Vec<pb::UploadFileRequest> {
    use pb::upload_file_request::Payload;
    let mut messages = vec![pb::UploadFileRequest {
        payload: Some(Payload::Metadata(meta)),
    }];
    messages.extend(data.chunks(chunk.max(1)).map(|c| pb::UploadFileRequest {
        payload: Some(Payload::Chunk(bytes::Bytes::copy_from_slice(c))),
    }));
    messages
}

/// Metadata for a plain write of `path` in `id`.
pub fn meta(id: &str, path: &str) -> pb::UploadFileMetadata {
    pb::UploadFileMetadata {
        sandbox_id: id.to_owned(),
        remote_path: path.to_owned(),
        ..Default::default()
    }
}

/// Downloads a file (or archive): its header and all its bytes.
pub async fn download(
    files: &mut FilesClient<Authed>,
    request: pb::DownloadFileRequest,
) -> Result<(pb::DownloadFileHeader, Vec<u8>), Status> {
    use pb::download_file_response::Payload;
    let mut stream = files.download_file(request).await?.into_inner();
    let mut header = None;
    let mut body = Vec::new();
    while let Some(message) = stream.message().await? {
        match message.payload {
            Some(Payload::Header(h)) => header = Some(h),
            Some(Payload::Chunk(c)) => body.extend_from_slice(&c),
            None => {}
        }
    }
    Ok((header.expect("a header first"), body))
}

/// The download request for `path` in `id`.
pub fn get(id: &str, path: &str) -> pb::DownloadFileRequest {
    pb::DownloadFileRequest {
        sandbox_id: id.to_owned(),
        remote_path: path.to_owned(),
        ..Default::default()
    }
}

/// What a hand-made gRPC call got back: the status code and message (from the headers of
/// a trailers-only answer, else from the trailers) and the data frames' bytes.
#[derive(Debug)]
pub struct RawAnswer {
    pub code: tonic::Code,
    pub message: String,
    pub data: Vec<u8>,
}

/// One call to `path` whose request body is exactly `frames` (each its own HTTP/2 data
/// frame, bytes as given: the test frames the messages, or fails to), for what the
/// generated stubs cannot send.
pub async fn raw_call(
    daemon: &Daemon,
    path: &str,
    frames: Vec<Vec<u8>>,
    headers: &[(&'static str, &str)],
) -> RawAnswer {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let body = http_body_util::StreamBody::new(tokio_stream::iter(frames.into_iter().map(|f| {
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(bytes::Bytes::from(f)))
    })));
    let mut request = tonic::codegen::http::Request::post(format!("{}{path}", daemon.url))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {}", daemon.token));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(tonic::body::Body::new(body)).unwrap();
    let response = channel(daemon).await.oneshot(request).await.unwrap();
    let head = response.headers().clone();
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let status = Status::from_header_map(&head)
        .or_else(|| Status::from_header_map(&trailers))
        .expect("a grpc-status");
    RawAnswer {
        code: status.code(),
        message: status.message().to_owned(),
        data: collected.to_bytes().to_vec(),
    }
}

/// A message as gRPC frames it: uncompressed, its length, its bytes.
pub fn framed(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}
