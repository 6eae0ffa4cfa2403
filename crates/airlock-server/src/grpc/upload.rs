//! `UploadFile` and the resumable-upload calls. A plain upload streams into an atomic
//! write; an archive into an all-or-nothing extraction; with `upload_id`, the chunks
//! continue the same resumable upload tus speaks, so either face may finish it.
//! `UploadFile` is served by [`serve`], which reads the chunks as the frames that carried
//! them (see [`super::unframe`]); tonic's generated server does not serve it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use airlock_proto::v1 as pb;
use airlock_proto::v1::upload_file_request::Payload;
use airlock_service::{
    ApiError, ArchiveFormat, ArchiveUpload, ByteStream, ChecksumText, NewUpload, Principal,
    PutFile, Service, parse_mtime,
};
use axum::extract::State;
use futures_util::{Stream, StreamExt};
use prost::Message;
use tonic::Status;

use super::status::{invalid, status};
use super::unframe::{Part, Unframed};
use super::{MESSAGE_LIMIT, convert, wire};

/// The route [`serve`] answers.
pub const PATH: &str = "/airlock.v1.Files/UploadFile";

/// The field number of `UploadFileRequest.chunk`, whose bytes are streamed uncopied.
const CHUNK_FIELD: u32 = 2;

/// What a request's message carries: the metadata, a chunk (or part of one), or nothing.
type Incoming = Result<Option<Payload>, Status>;

/// The route's handler: chunks taken from the request's frames without a copy, the
/// answer one message.
pub async fn serve(
    State(service): State<Arc<Service>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    super::hand_framed(request, async |caller, headers, body| {
        wire::refuse_compression(headers)?;
        let incoming = Unframed::new(body, MESSAGE_LIMIT, CHUNK_FIELD).map(|part| match part? {
            Part::Piece(bytes) => Ok(Some(Payload::Chunk(bytes))),
            Part::Message(message) => pb::UploadFileRequest::decode(message)
                .map(|m| m.payload)
                .map_err(|err| Status::internal(format!("decoding a message: {err}"))),
        });
        Ok(wire::unary(&upload_file(&service, caller, incoming).await?))
    })
    .await
}

async fn upload_file(
    service: &Service,
    caller: &Principal,
    mut incoming: impl Stream<Item = Incoming> + Send + Unpin + 'static,
) -> Result<pb::UploadFileResponse, Status> {
    let meta = match incoming.next().await.transpose()? {
        Some(Some(Payload::Metadata(meta))) => meta,
        _ => {
            return Err(invalid(
                "the first message of UploadFile must be `metadata`",
            ));
        }
    };
    let received = Arc::new(AtomicU64::new(0));
    // A plain write's declared size is checked as the stream ends, before the commit.
    let declared = (meta.upload_id.is_empty() && !meta.is_archive)
        .then_some(meta.size_bytes)
        .flatten();
    let body = chunks(incoming, received.clone(), declared);
    let id = meta.sandbox_id.as_str();
    let mut answer = pb::UploadFileResponse::default();
    if !meta.upload_id.is_empty() {
        let offset = match meta.offset {
            Some(offset) => offset,
            None => {
                let record = service.upload_status(caller, id, &meta.upload_id).await;
                record.map_err(status)?.offset
            }
        };
        let state = service
            .append_upload(caller, id, &meta.upload_id, offset, None, body)
            .await
            .map_err(status)?;
        answer.result = state.done.clone().map(convert::written);
        answer.upload = Some(convert::upload(state));
    } else if meta.is_archive {
        let upload = ArchiveUpload {
            path: meta.remote_path,
            format: archive_format(meta.archive_format),
            max_entries: meta.max_entries,
            max_bytes: meta.max_bytes,
            mtimes: meta.mtimes,
        };
        let made = service.extract_archive(caller, id, upload, body).await;
        answer.archive = Some(convert::archive(made.map_err(status)?));
    } else {
        let put = write_options(&meta).map_err(status)?;
        let (written, _) = service
            .put_file(caller, id, &meta.remote_path, put, body)
            .await
            .map_err(status)?;
        answer.result = Some(convert::written(written));
    }
    answer.bytes_written = received.load(Ordering::Relaxed);
    Ok(answer)
}

/// A plain write's options from the metadata, read by the service's rules.
pub(crate) fn write_options(meta: &pb::UploadFileMetadata) -> Result<PutFile, ApiError> {
    PutFile {
        mode: meta.mode,
        mtime: meta.mtime.as_deref().map(parse_mtime).transpose()?,
        parents: meta.parents,
        overwrite: meta.overwrite,
        checks: ChecksumText {
            algorithm: meta.checksum.as_deref(),
            crc64nvme: meta.crc64nvme.as_deref(),
            sha256: meta.sha256.as_deref(),
        }
        .parse()?,
    }
    .checked()
}

pub async fn create_upload(
    service: &Service,
    caller: &Principal,
    r: pb::CreateUploadRequest,
) -> Result<pb::UploadStatus, Status> {
    let mtime = r
        .mtime
        .as_deref()
        .map(parse_mtime)
        .transpose()
        .map_err(status)?;
    let new = NewUpload {
        path: r.remote_path,
        length: r.size_bytes,
        mode: r.mode,
        mtime: mtime.map(|(secs, _)| secs),
        overwrite: r.overwrite,
        sha256: r.sha256,
        crc64nvme: r.crc64nvme,
        checksum: r.checksum,
        metadata: String::new(),
    }
    .checked()
    .map_err(status)?;
    let state = service
        .create_upload(caller, &r.sandbox_id, new)
        .await
        .map_err(status)?;
    Ok(convert::upload(state))
}

/// An unset format is told by the stream's first bytes.
pub fn archive_format(format: i32) -> Option<ArchiveFormat> {
    match pb::ArchiveFormat::try_from(format) {
        Ok(pb::ArchiveFormat::Tar) => Some(ArchiveFormat::Tar),
        Ok(pb::ArchiveFormat::TarZstd) => Some(ArchiveFormat::TarZst),
        _ => None,
    }
}

/// The chunks after the metadata as the service's body, counted. A broken stream, a
/// second metadata message, or a count other than `declared` ends the body with an
/// error, so a plain write commits nothing.
fn chunks(
    incoming: impl Stream<Item = Incoming> + Send + 'static,
    received: Arc<AtomicU64>,
    declared: Option<u64>,
) -> ByteStream {
    use std::io::{Error, ErrorKind};
    let aborted = |why: String| Error::new(ErrorKind::ConnectionAborted, why);
    let counted = received.clone();
    let body = incoming.map(move |message| match message {
        Ok(Some(Payload::Chunk(chunk))) => {
            counted.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            Ok(chunk)
        }
        Ok(_) => Err(aborted("only chunks may follow the metadata".into())),
        Err(status) => Err(aborted(format!("the stream broke: {}", status.message()))),
    });
    let check = futures_util::stream::once(async move {
        match declared {
            Some(size) if received.load(Ordering::Relaxed) != size => Err(aborted(format!(
                "the stream carried {} bytes, the metadata said {size}",
                received.load(Ordering::Relaxed)
            ))),
            _ => Ok(bytes::Bytes::new()),
        }
    });
    airlock_service::byte_stream(body.chain(check))
}
