//! `DownloadFile`: a header, then the file's bytes (a range of them) or a directory's tar
//! stream, in chunks.

use airlock_proto::v1 as pb;
use airlock_proto::v1::download_file_response::Payload;
use airlock_service::{FileWindow, Principal, Service, byte_window, mtime_text};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tonic::Status;

use super::status::status;
use super::upload::archive_format;

type Out = std::pin::Pin<Box<dyn Stream<Item = Result<pb::DownloadFileResponse, Status>> + Send>>;

pub async fn download_file(
    service: &Service,
    caller: &Principal,
    r: pb::DownloadFileRequest,
) -> Result<Out, Status> {
    if r.as_archive {
        let format = archive_format(r.archive_format);
        let tar = if r.paths.is_empty() {
            service
                .archive(caller, &r.sandbox_id, &r.remote_path, format)
                .await
        } else {
            service
                .archive_paths(caller, &r.sandbox_id, &r.remote_path, r.paths, format)
                .await
        }
        .map_err(status)?;
        let header = pb::DownloadFileHeader {
            is_archive: true,
            ..Default::default()
        };
        return Ok(with_header(header, tar));
    }
    let (content, entry) = service
        .open_file(caller, &r.sandbox_id, &r.remote_path)
        .await
        .map_err(status)?;
    let (start, len) = byte_window(entry.size, r.offset, r.length).map_err(status)?;
    let header = pb::DownloadFileHeader {
        size_bytes: len,
        mode: entry.mode,
        mtime: mtime_text(&entry),
        is_archive: false,
        file_size: entry.size,
        offset: start,
        etag: entry.etag(),
        sha256: None,
    };
    let body = match content.window(start, len) {
        FileWindow::Bytes(bytes) => {
            futures_util::stream::iter((!bytes.is_empty()).then_some(Ok(bytes))).boxed()
        }
        FileWindow::Stream(chunks) => chunks,
    };
    Ok(with_header(header, body))
}

fn with_header(
    header: pb::DownloadFileHeader,
    body: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
) -> Out {
    let first = futures_util::stream::once(async move {
        Ok(pb::DownloadFileResponse {
            payload: Some(Payload::Header(header)),
        })
    });
    let chunks = body.map(|chunk| match chunk {
        Ok(bytes) => Ok(pb::DownloadFileResponse {
            payload: Some(Payload::Chunk(bytes)),
        }),
        Err(err) => Err(status(airlock_service::ApiError::internal("reading", err))),
    });
    Box::pin(first.chain(chunks))
}
