//! Airlock's gRPC face as a benchmark client sees it: a file streamed up with UploadFile
//! and down with DownloadFile, over one HTTP/2 connection.

use std::path::Path;

use crate::{grpc_download, grpc_upload};
use airlock_client::FileSink;
use airlock_proto::v1 as pb;
use airlock_proto::v1::files_client::FilesClient;
use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tonic::transport::Channel;

/// A connected Files client with the bearer token on every call.
pub struct GrpcFiles {
    client: FilesClient<Channel>,
    channel: Channel,
    token: String,
}

impl GrpcFiles {
    /// Connects to the daemon at `url` (`http://host:port`).
    pub async fn connect(url: &str, token: &str) -> anyhow::Result<Self> {
        // h2's default is 16 KiB frames: a GiB down would be 65,536 of them.
        Self::connect_framed(url, token, 1 << 20).await
    }

    /// The same, asking the daemon for DATA frames of at most `max_frame` bytes.
    pub async fn connect_framed(url: &str, token: &str, max_frame: u32) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(url.to_owned())?
            .initial_stream_window_size(8 << 20)
            .initial_connection_window_size(16 << 20)
            .max_frame_size(max_frame)
            .connect()
            .await?;
        let client = FilesClient::new(channel.clone())
            .max_decoding_message_size(16 << 20)
            .max_encoding_message_size(16 << 20);
        Ok(Self {
            client,
            channel,
            token: token.to_owned(),
        })
    }

    /// Streams `from` in sandbox `id` through the one-copy reader
    /// ([`crate::grpc_download`]), dropping each chunk; answers the bytes it got.
    pub async fn download_discarding(&mut self, id: &str, from: &str) -> anyhow::Result<u64> {
        self.download_chunks(id, from, async |_| Ok(())).await
    }

    /// Streams `from` in sandbox `id` through the one-copy reader, handing `each` every
    /// chunk as the slice of the HTTP/2 frame it arrived in; answers the bytes it got.
    async fn download_chunks(
        &mut self,
        id: &str,
        from: &str,
        mut each: impl AsyncFnMut(Bytes) -> anyhow::Result<()>,
    ) -> anyhow::Result<u64> {
        let ask = download_request(id, from);
        let mut got = 0;
        grpc_download::download(&mut self.channel, &self.token, &ask, async |piece| {
            if let grpc_download::Piece::Chunk(chunk) = piece {
                got += chunk.len() as u64;
                each(chunk).await?;
            }
            Ok(())
        })
        .await?;
        Ok(got)
    }

    fn request<T>(&self, message: T) -> anyhow::Result<tonic::Request<T>> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {}", self.token).parse()?);
        Ok(request)
    }

    /// Streams the local file `from` to `to` in sandbox `id`, each chunk read from the
    /// file straight into the call's send buffer ([`crate::grpc_upload`]).
    pub async fn upload(&mut self, id: &str, from: &Path, to: &str) -> anyhow::Result<()> {
        let file = std::fs::File::open(from)?;
        let size = file.metadata()?.len();
        let metadata = pb::UploadFileMetadata {
            sandbox_id: id.to_owned(),
            remote_path: to.to_owned(),
            size_bytes: Some(size),
            ..Default::default()
        };
        let pieces = grpc_upload::pieces(metadata, file, size);
        let mut grpc =
            tonic::client::Grpc::new(self.channel.clone()).max_encoding_message_size(16 << 20);
        grpc.ready().await?;
        let path =
            tonic::codegen::http::uri::PathAndQuery::from_static("/airlock.v1.Files/UploadFile");
        let request = self.request(futures_util::stream::iter(pieces))?;
        grpc.client_streaming(request, path, grpc_upload::PieceCodec)
            .await?;
        Ok(())
    }

    /// Streams `from` in sandbox `id` into the local file `to`; answers the bytes it got.
    /// Each chunk goes to a writing thread (the SDK's `FileSink`, as `read_to_file` does)
    /// as the slice of the HTTP/2 frame it arrived in ([`crate::grpc_download`]).
    pub async fn download(&mut self, id: &str, from: &str, to: &Path) -> anyhow::Result<u64> {
        let mut sink = FileSink::new(std::fs::File::create(to)?);
        let got = self
            .download_chunks(id, from, async |chunk| Ok(sink.send(chunk).await?))
            .await?;
        sink.finish().await?;
        Ok(got)
    }

    /// The same with the generated stubs, which copy each frame into a buffer of their own
    /// and cut the chunks from it.
    pub async fn download_with_stubs(
        &mut self,
        id: &str,
        from: &str,
        to: &Path,
    ) -> anyhow::Result<u64> {
        let mut stream = self.download_stream(id, from).await?;
        let mut sink = FileSink::new(std::fs::File::create(to)?);
        let mut got = 0;
        while let Some(chunk) = next_chunk(&mut stream).await? {
            got += chunk.len() as u64;
            sink.send(chunk).await?;
        }
        sink.finish().await?;
        Ok(got)
    }

    /// Streams `from` in sandbox `id` into `out`; answers the bytes it got.
    pub async fn download_into(
        &mut self,
        id: &str,
        from: &str,
        out: &mut (impl AsyncWrite + Unpin),
    ) -> anyhow::Result<u64> {
        let mut stream = self.download_stream(id, from).await?;
        let mut got = 0;
        while let Some(chunk) = next_chunk(&mut stream).await? {
            out.write_all(&chunk).await?;
            got += chunk.len() as u64;
        }
        Ok(got)
    }

    /// Starts a DownloadFile call for `from` in sandbox `id`.
    async fn download_stream(
        &mut self,
        id: &str,
        from: &str,
    ) -> anyhow::Result<tonic::Streaming<pb::DownloadFileResponse>> {
        let ask = download_request(id, from);
        Ok(self
            .client
            .download_file(self.request(ask)?)
            .await?
            .into_inner())
    }
}

/// The DownloadFile request for all of `from` in sandbox `id`.
fn download_request(id: &str, from: &str) -> pb::DownloadFileRequest {
    pb::DownloadFileRequest {
        sandbox_id: id.to_owned(),
        remote_path: from.to_owned(),
        ..Default::default()
    }
}

/// The next chunk of file data a download sends, skipping its other messages.
async fn next_chunk(
    stream: &mut tonic::Streaming<pb::DownloadFileResponse>,
) -> anyhow::Result<Option<Bytes>> {
    use pb::download_file_response::Payload;
    while let Some(message) = stream.message().await? {
        if let Some(Payload::Chunk(chunk)) = message.payload {
            return Ok(Some(chunk));
        }
    }
    Ok(None)
}
