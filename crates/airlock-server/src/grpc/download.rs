//! `DownloadFile`: a header, then the file's bytes (a range of them) or a directory's tar
//! stream, in chunks. Served by [`serve`], which frames the chunks itself (see
//! [`super::wire`]); tonic's generated server does not serve it.

use std::sync::Arc;

use airlock_proto::v1 as pb;
use airlock_proto::v1::download_file_response::Payload;
use airlock_service::{
    ByteStream, FileWindow, Principal, SendsFiles, Service, byte_window, mtime_text,
};
use axum::extract::State;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body::Frame;
use tonic::Status;

use super::status::status;
use super::upload::archive_format;
use super::{MESSAGE_LIMIT, wire};
use crate::h2_script::{H2Download, H2Sends};

/// The route [`serve`] answers.
pub const PATH: &str = "/airlock.v1.Files/DownloadFile";

/// The field number of `DownloadFileResponse.chunk`; the tests below check it against
/// prost's encoding.
const CHUNK_FIELD: u32 = 2;

/// The header, the bytes that follow it, and the script that follows them when they are
/// a file's window sent by `sendfile` (`h2_script`).
type Opened = (pb::DownloadFileHeader, ByteStream, Option<H2Download>);

/// Windows at least this large go by `sendfile` where the connection can.
const SENDFILE_FROM: u64 = 1024 * 1024;

/// The route's handler: the request read and the answer framed by hand, each chunk sent
/// as the bytes it was read into.
pub async fn serve(
    State(service): State<Arc<Service>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let sends = request.extensions().get::<H2Sends>().cloned();
    super::hand_framed(request, async |caller, headers, body| {
        let r = wire::read_request(headers, body, MESSAGE_LIMIT).await?;
        let (header, chunks, script) = open(&service, caller, r, sends.as_ref()).await?;
        Ok(wire::response(framed(header, chunks, script)))
    })
    .await
}

/// The header as one message, then each chunk as a head and its own bytes, then the
/// trailers: `grpc-status` 0 at the end, or the read's error where it broke. Each data
/// frame enters `script`, if there is one, as it is yielded.
fn framed(
    header: pb::DownloadFileHeader,
    chunks: ByteStream,
    script: Option<H2Download>,
) -> axum::body::Body {
    use futures_util::stream;
    let header = wire::message(&pb::DownloadFileResponse {
        payload: Some(Payload::Header(header)),
    });
    // The stream is put down once it has ended or failed: what follows is its trailers.
    let frames = stream::unfold(Some(chunks), |chunks| async move {
        let mut chunks = chunks?;
        Some(match chunks.next().await {
            Some(Ok(chunk)) => (chunk_frames(chunk), Some(chunks)),
            Some(Err(err)) => {
                let broke = status(airlock_service::ApiError::internal("reading", err));
                (vec![Frame::trailers(wire::trailers(Err(broke)))], None)
            }
            None => (vec![Frame::trailers(wire::trailers(Ok(())))], None),
        })
    })
    .flat_map(stream::iter);
    let body = stream::once(std::future::ready(Frame::data(header)))
        .chain(frames)
        .inspect(move |frame| {
            if let (Some(script), Some(data)) = (&script, frame.data_ref()) {
                script.record(data);
            }
        });
    axum::body::Body::new(http_body_util::StreamBody::new(
        body.map(Ok::<_, std::convert::Infallible>),
    ))
}

/// A chunk as messages of at most the limit, each a head and a slice of the chunk (no
/// copy).
fn chunk_frames(mut chunk: Bytes) -> Vec<Frame<Bytes>> {
    // The key and the length's varint, which share the message limit with the bytes.
    const ROOM: usize = 16;
    let mut frames = Vec::with_capacity(2);
    while !chunk.is_empty() {
        let piece = chunk.split_to(chunk.len().min(MESSAGE_LIMIT - ROOM));
        frames.push(Frame::data(wire::bytes_field_head(
            CHUNK_FIELD,
            piece.len(),
        )));
        frames.push(Frame::data(piece));
    }
    frames
}

async fn open(
    service: &Service,
    caller: &Principal,
    r: pb::DownloadFileRequest,
    sends: Option<&H2Sends>,
) -> Result<Opened, Status> {
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
        return Ok((header, tar.boxed(), None));
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
    let script = sends
        .filter(|_| len >= SENDFILE_FROM)
        .and_then(H2Sends::download);
    let send = script.as_ref().map(|s| s as &dyn SendsFiles);
    let body = match content.window_sent_by(start, len, send) {
        FileWindow::Bytes(bytes) => {
            futures_util::stream::iter((!bytes.is_empty()).then_some(Ok(bytes))).boxed()
        }
        FileWindow::Stream(chunks) => chunks,
    };
    // Kept only if the window went to it (a file on this machine).
    let script = script.filter(H2Download::has_file);
    Ok((header, body, script))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// The messages in `frames`' data, decoded by prost.
    fn decode(frames: Vec<Frame<Bytes>>) -> Vec<pb::DownloadFileResponse> {
        let wire: Vec<u8> = frames
            .into_iter()
            .flat_map(|f| f.into_data().unwrap().to_vec())
            .collect();
        let mut rest = &wire[..];
        let mut messages = vec![];
        while !rest.is_empty() {
            assert_eq!(rest[0], 0, "uncompressed");
            let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
            assert!(len <= MESSAGE_LIMIT, "a message of {len} bytes");
            messages.push(pb::DownloadFileResponse::decode(&rest[5..5 + len]).unwrap());
            rest = &rest[5 + len..];
        }
        messages
    }

    #[test]
    fn chunks_become_chunk_messages_within_the_limit() {
        let chunk = Bytes::from(
            (0..MESSAGE_LIMIT * 2 + 3)
                .map(|i| i as u8)
                .collect::<Vec<_>>(),
        );
        let messages = decode(chunk_frames(chunk.clone()));
        assert_eq!(messages.len(), 3);
        let mut joined = vec![];
        for message in messages {
            let Some(Payload::Chunk(bytes)) = message.payload else {
                panic!("not a chunk: {message:?}");
            };
            joined.extend_from_slice(&bytes);
        }
        assert_eq!(joined, chunk);
        assert!(chunk_frames(Bytes::new()).is_empty());
    }
}
