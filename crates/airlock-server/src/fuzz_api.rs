//! Entry points for the fuzz targets in `fuzz/`: the parsers that read what clients
//! send, reachable without a daemon. Not part of the API; hidden from the docs.

use airlock_proto::v1 as pb;
use axum::extract::FromRequest;
use prost::Message;

/// `Range` against a file of `size` bytes: the (start, len) it selects, if any.
pub fn range(value: &str, size: u64) -> Option<(u64, u64)> {
    crate::rest::range::parse_range(value, size)
        .ok()
        .map(|r| (r.start, r.len))
}

/// tus `Upload-Metadata`: the destination it names, or the error message.
pub fn tus_metadata(raw: &str, length: u64) -> Result<String, String> {
    airlock_service::NewUpload::from_tus_metadata(raw, length)
        .map(|new| new.path)
        .map_err(|e| e.to_string())
}

/// tus `Upload-Checksum`: whether it is accepted.
pub fn tus_checksum(value: &str) -> bool {
    let mut headers = axum::http::HeaderMap::new();
    let Ok(value) = axum::http::HeaderValue::from_str(value) else {
        return false;
    };
    headers.insert("upload-checksum", value);
    matches!(crate::rest::tus::chunk_checksum(&headers), Ok(Some(_)))
}

/// The per-file write options a batch part or a query carries (`sum` is tried as every
/// checksum option at once).
pub fn write_options(mode: Option<&str>, mtime: Option<&str>, sum: Option<&str>) -> bool {
    let checksums = airlock_service::ChecksumText {
        algorithm: sum,
        crc64nvme: sum,
        sha256: sum,
    };
    airlock_service::PutFile::from_text(mode, mtime, checksums, None, None).is_ok()
}

/// Reads `body` as the multipart stream of a batch request with `boundary`, as the batch
/// route does (fields, their names and headers, every chunk), and returns the bytes read.
pub fn multipart(boundary: &str, body: Vec<u8>) -> usize {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(async {
        let Ok(request) = axum::http::Request::builder()
            .method("POST")
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(axum::body::Body::from(body))
        else {
            return 0;
        };
        let Ok(mut multipart) = axum::extract::Multipart::from_request(request, &()).await else {
            return 0;
        };
        let mut total = 0;
        while let Ok(Some(mut field)) = multipart.next_field().await {
            let header = |name: &str| field.headers().get(name).and_then(|v| v.to_str().ok());
            write_options(
                header("x-airlock-mode"),
                header("x-airlock-mtime"),
                header("x-airlock-sha256"),
            );
            let _ = field.file_name().or(field.name());
            while let Ok(Some(chunk)) = field.chunk().await {
                total += chunk.len();
            }
        }
        total
    })
}

/// The gRPC messages that carry paths and write options, decoded from arbitrary bytes and
/// read as the gRPC face reads them: an upload's metadata (path, mode, mtime, sha256,
/// archive format), a download's range (the bytes also read as a whole gRPC request body,
/// prefix and all, as `DownloadFile`'s route reads it), a batch file's header; or, for `kind` 3 mod 4,
/// the request of an envd Connect method (`kind / 4` picks it) in the binary codec, put
/// in protobuf's JSON mapping and back, which must give the same message. Returns
/// whether the message was accepted.
pub fn grpc_message(kind: u8, bytes: &[u8]) -> bool {
    match kind % 4 {
        0 => match pb::UploadFileRequest::decode(bytes)
            .ok()
            .and_then(|r| r.payload)
        {
            Some(pb::upload_file_request::Payload::Metadata(meta)) => {
                let _ = crate::grpc::upload::archive_format(meta.archive_format);
                airlock_fs::SandboxPath::parse(&meta.remote_path).is_ok()
                    && crate::grpc::upload::write_options(&meta).is_ok()
            }
            _ => false,
        },
        1 => {
            // The same bytes as a whole request body, read as `DownloadFile`'s route does.
            let framed = crate::grpc::wire::decode_request::<pb::DownloadFileRequest>(
                bytes,
                crate::grpc::MESSAGE_LIMIT,
            );
            download_window(kind, framed.ok())
                | download_window(kind, pb::DownloadFileRequest::decode(bytes).ok())
        }
        3 => crate::compat::e2b::proto_codec::fuzz_roundtrip(usize::from(kind / 4), bytes),
        _ => match pb::WriteFilesRequest::decode(bytes)
            .ok()
            .and_then(|r| r.payload)
        {
            Some(pb::write_files_request::Payload::File(file)) => {
                airlock_fs::SandboxPath::parse(&file.path).is_ok()
                    && airlock_service::PutFile::from_text(
                        None,
                        file.mtime.as_deref(),
                        airlock_service::ChecksumText {
                            algorithm: file.checksum.as_deref(),
                            crc64nvme: file.crc64nvme.as_deref(),
                            sha256: file.sha256.as_deref(),
                        },
                        None,
                        None,
                    )
                    .is_ok()
            }
            _ => false,
        },
    }
}

/// A download request's range read against a file of a size `kind` picks: an accepted
/// range lies inside the file.
fn download_window(kind: u8, request: Option<pb::DownloadFileRequest>) -> bool {
    request.is_some_and(|r| {
        let size = u64::from(kind) * 4099;
        match airlock_service::byte_window(size, r.offset, r.length) {
            Ok((start, len)) => {
                assert!(start <= size && start.checked_add(len).is_some_and(|end| end <= size));
                airlock_fs::SandboxPath::parse(&r.remote_path).is_ok()
            }
            Err(_) => false,
        }
    })
}

/// What an `UploadFile` request body says (each metadata message, the chunk bytes
/// between them joined, an empty message), and whether all of it read without error.
type UploadReading = (Vec<String>, bool);

/// An `UploadFile` request body cut into data frames of `frame` bytes (at least one),
/// read as the gRPC face reads it, chunks streamed out of the frames, and read the plain
/// way (each message gathered whole, then decoded by prost): both readings must fail
/// alike, and say the same when they do not. Returns whether the body was read.
pub fn grpc_upload_body(frame: u8, bytes: &[u8]) -> bool {
    let streamed = read_streamed(usize::from(frame.max(1)), bytes);
    let whole = read_whole(bytes);
    assert_eq!(streamed.1, whole.1, "one reading failed, the other did not");
    if whole.1 {
        assert_eq!(streamed.0, whole.0, "the readings differ");
    }
    whole.1
}

/// The gRPC face's reading.
fn read_streamed(frame: usize, bytes: &[u8]) -> UploadReading {
    use crate::grpc::unframe::{Part, Unframed};
    use futures_util::StreamExt;
    let frames: Vec<bytes::Bytes> = bytes
        .chunks(frame)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let body = axum::body::Body::from_stream(futures_util::stream::iter(
        frames.into_iter().map(Ok::<_, std::convert::Infallible>),
    ));
    let parts = Unframed::new(body, crate::grpc::MESSAGE_LIMIT, 2).collect::<Vec<_>>();
    let parts = futures_util::FutureExt::now_or_never(parts).expect("a body in memory is ready");
    let mut said = Said::default();
    for part in parts {
        let payload = match part {
            Ok(Part::Piece(piece)) => Some(pb::upload_file_request::Payload::Chunk(piece)),
            Ok(Part::Message(m)) => match pb::UploadFileRequest::decode(m) {
                Ok(r) => r.payload,
                Err(_) => return said.end(false),
            },
            Err(_) => return said.end(false),
        };
        said.hear(payload);
    }
    said.end(true)
}

/// The plain reading.
fn read_whole(mut bytes: &[u8]) -> UploadReading {
    let mut said = Said::default();
    while !bytes.is_empty() {
        let Some((prefix, rest)) = bytes.split_first_chunk::<5>() else {
            return said.end(false);
        };
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        if prefix[0] != 0 || len > crate::grpc::MESSAGE_LIMIT || rest.len() < len {
            return said.end(false);
        }
        match pb::UploadFileRequest::decode(&rest[..len]) {
            Ok(r) => said.hear(r.payload),
            Err(_) => return said.end(false),
        }
        bytes = &rest[len..];
    }
    said.end(true)
}

/// A reading as it goes.
#[derive(Default)]
struct Said {
    said: Vec<String>,
    bytes: Vec<u8>,
}

impl Said {
    fn hear(&mut self, payload: Option<pb::upload_file_request::Payload>) {
        use pb::upload_file_request::Payload;
        if let Some(Payload::Chunk(chunk)) = payload {
            self.bytes.extend_from_slice(&chunk);
            return;
        }
        self.flush();
        self.said.push(match payload {
            Some(Payload::Metadata(m)) => format!("metadata {m:?}"),
            _ => "empty".into(),
        });
    }

    fn flush(&mut self) {
        if !self.bytes.is_empty() {
            self.said.push(format!("bytes {:?}", self.bytes));
            self.bytes.clear();
        }
    }

    fn end(mut self, read: bool) -> UploadReading {
        self.flush();
        (self.said, read)
    }
}
