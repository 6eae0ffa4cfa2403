//! Airlock's gRPC face as a benchmark client sees it: a file streamed up with UploadFile
//! and down with DownloadFile, over one HTTP/2 connection.

use std::path::Path;

use crate::grpc_upload;
use airlock_proto::v1 as pb;
use airlock_proto::v1::files_client::FilesClient;
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
        let channel = Channel::from_shared(url.to_owned())?
            .initial_stream_window_size(8 << 20)
            .initial_connection_window_size(16 << 20)
            // h2's default is 16 KiB frames: a GiB down would be 65,536 of them.
            .max_frame_size(1 << 20)
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
    pub async fn download(&mut self, id: &str, from: &str, to: &Path) -> anyhow::Result<u64> {
        let mut out = tokio::fs::File::create(to).await?;
        let got = self.download_into(id, from, &mut out).await?;
        out.flush().await?;
        Ok(got)
    }

    /// Streams `from` in sandbox `id` into `out`; answers the bytes it got.
    pub async fn download_into(
        &mut self,
        id: &str,
        from: &str,
        out: &mut (impl AsyncWrite + Unpin),
    ) -> anyhow::Result<u64> {
        use pb::download_file_response::Payload;
        let ask = pb::DownloadFileRequest {
            sandbox_id: id.to_owned(),
            remote_path: from.to_owned(),
            ..Default::default()
        };
        let mut stream = self
            .client
            .download_file(self.request(ask)?)
            .await?
            .into_inner();
        let mut got = 0;
        while let Some(message) = stream.message().await? {
            if let Some(Payload::Chunk(chunk)) = message.payload {
                out.write_all(&chunk).await?;
                got += chunk.len() as u64;
            }
        }
        Ok(got)
    }
}
