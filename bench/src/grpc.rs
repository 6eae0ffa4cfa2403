//! Airlock's gRPC face as a benchmark client sees it: a file streamed up with UploadFile
//! and down with DownloadFile, in 4 MiB chunks over one HTTP/2 connection.

use std::path::Path;

use airlock_proto::v1 as pb;
use airlock_proto::v1::files_client::FilesClient;
use futures_util::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tonic::transport::Channel;

/// Bytes per chunk message.
const CHUNK: usize = 1 << 20;

/// A connected Files client with the bearer token on every call.
pub struct GrpcFiles {
    client: FilesClient<Channel>,
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
        let client = FilesClient::new(channel)
            .max_decoding_message_size(16 << 20)
            .max_encoding_message_size(16 << 20);
        Ok(Self {
            client,
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

    /// Streams the local file `from` to `to` in sandbox `id`.
    pub async fn upload(&mut self, id: &str, from: &Path, to: &str) -> anyhow::Result<()> {
        use pb::upload_file_request::Payload;
        let file = tokio::fs::File::open(from).await?;
        let first = pb::UploadFileRequest {
            payload: Some(Payload::Metadata(pb::UploadFileMetadata {
                sandbox_id: id.to_owned(),
                remote_path: to.to_owned(),
                ..Default::default()
            })),
        };
        let chunks = tokio_util::io::ReaderStream::with_capacity(file, CHUNK)
            .take_while(|c| std::future::ready(c.is_ok()))
            .map(|c| pb::UploadFileRequest {
                payload: Some(Payload::Chunk(c.unwrap_or_default())),
            });
        let stream = futures_util::stream::once(async { first }).chain(chunks);
        self.client.upload_file(self.request(stream)?).await?;
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
