//! gRPC's framing by hand, for the two calls whose bytes must not be copied: `DownloadFile`
//! on its way out (here) and `UploadFile` on its way in (`unframe`, with the prefix check
//! here). tonic's encoder writes every message into a buffer of its own, which copies
//! each chunk of a file once more than REST does (about a tenth of the daemon's time per
//! byte sent). Here a chunk leaves as the reference-counted bytes it was read into, behind
//! a small frame holding its 5-byte message prefix and protobuf field key. Requests are
//! read by tonic's rules and words: no compression, messages no larger than the limit.

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue};
use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
use tonic::Status;

/// gRPC's message prefix: a compressed flag and a big-endian length.
pub const PREFIX: usize = 5;

/// The one request message of a unary or server-streaming call, read whole (it is
/// small), with tonic's codes for the ways it can be wrong.
pub async fn read_request<M: Message + Default>(
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<M, Status> {
    refuse_compression(headers)?;
    let body = axum::body::to_bytes(body, limit.saturating_add(PREFIX))
        .await
        .map_err(|err| {
            match err
                .into_inner()
                .downcast::<http_body_util::LengthLimitError>()
            {
                Ok(_) => Status::out_of_range(format!(
                    "Error, decoded message length too large: the limit is: {limit} bytes"
                )),
                Err(err) => Status::internal(format!("reading the request: {err}")),
            }
        })?;
    decode_request(&body, limit)
}

/// The first message of a request's whole body, as [`read_request`] reads it (and the
/// fuzzer: these are a client's bytes).
pub fn decode_request<M: Message + Default>(body: &[u8], limit: usize) -> Result<M, Status> {
    if body.is_empty() {
        return Err(Status::internal("Missing request message."));
    }
    let Some((prefix, message)) = body.split_first_chunk::<PREFIX>() else {
        return Err(Status::internal("Unexpected EOF decoding stream."));
    };
    let length = message_len(prefix, limit)?;
    let message = message
        .get(..length)
        .ok_or_else(|| Status::internal("Unexpected EOF decoding stream."))?;
    M::decode(message).map_err(|err| Status::internal(format!("decoding the request: {err}")))
}

/// The length a message's prefix gives, if the message is uncompressed and within the
/// limit; otherwise tonic's code and words for what is wrong.
pub fn message_len(prefix: &[u8; PREFIX], limit: usize) -> Result<usize, Status> {
    match prefix[0] {
        0 => {}
        1 => {
            return Err(Status::internal(
                "protocol error: received message with compressed-flag but no grpc-encoding was specified",
            ));
        }
        other => {
            return Err(Status::internal(format!(
                "protocol error: received message with invalid compression flag: {other} (valid flags are 0 and 1)"
            )));
        }
    }
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    if len > limit {
        return Err(Status::out_of_range(format!(
            "Error, decoded message length too large: found {len} bytes, the limit is: {limit} bytes"
        )));
    }
    Ok(len)
}

/// Only `identity` is spoken, as by tonic without its compression features.
pub fn refuse_compression(headers: &HeaderMap) -> Result<(), Status> {
    match headers.get("grpc-encoding").map(HeaderValue::as_bytes) {
        None | Some(b"identity") => Ok(()),
        Some(other) => {
            let mut status = Status::unimplemented(format!(
                "Content is compressed with `{}` which isn't supported",
                String::from_utf8_lossy(other)
            ));
            status
                .metadata_mut()
                .insert("grpc-accept-encoding", "identity".parse().expect("ascii"));
            Err(status)
        }
    }
}

/// A whole message, prefixed.
pub fn message(message: &impl Message) -> Bytes {
    let len = message.encoded_len();
    let mut out = BytesMut::with_capacity(PREFIX + len);
    out.put_u8(0);
    out.put_u32(len as u32);
    message.encode_raw(&mut out);
    out.freeze()
}

/// The prefix and field key of a message whose only field is `field` of `len` bytes
/// (`bytes` or an embedded message): sent just before those bytes, it makes them one
/// message on the wire, exactly as prost would have encoded it.
pub fn bytes_field_head(field: u32, len: usize) -> Bytes {
    let key_len = encoded_len_varint(u64::from(field << 3));
    let message_len = key_len + encoded_len_varint(len as u64) + len;
    let mut out = BytesMut::with_capacity(PREFIX + 16);
    out.put_u8(0);
    out.put_u32(message_len as u32);
    encode_key(field, WireType::LengthDelimited, &mut out);
    encode_varint(len as u64, &mut out);
    out.freeze()
}

/// The trailers ending a stream: `grpc-status` 0, or the status it failed with.
pub fn trailers(outcome: Result<(), Status>) -> HeaderMap {
    let status = outcome.err().unwrap_or_else(|| Status::ok(""));
    let mut trailers = HeaderMap::new();
    if let Err(unwritable) = status.add_header(&mut trailers) {
        trailers.clear();
        // A message that cannot be a header value still leaves its code.
        let _ = Status::new(unwritable.code(), "").add_header(&mut trailers);
    }
    trailers
}

/// A unary call's answer: its one message, then `grpc-status` 0.
pub fn unary(answer: &impl Message) -> axum::response::Response {
    use futures_util::stream;
    let frames = [
        http_body::Frame::data(message(answer)),
        http_body::Frame::trailers(trailers(Ok(()))),
    ];
    response(axum::body::Body::new(http_body_util::StreamBody::new(
        stream::iter(frames.map(Ok::<_, std::convert::Infallible>)),
    )))
}

/// A 200 answer of gRPC content, whose body carries the messages and then the trailers.
pub fn response(body: axum::body::Body) -> axum::response::Response {
    let mut response = axum::response::Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_proto::v1 as pb;
    use pb::download_file_response::Payload;

    #[test]
    fn a_head_and_its_bytes_are_the_message_prost_would_send() {
        for len in [0, 1, 127, 128, 16_383, 16_384, 262_144, 8 << 20] {
            let chunk = Bytes::from(vec![7u8; len]);
            let whole = message(&pb::DownloadFileResponse {
                payload: Some(Payload::Chunk(chunk.clone())),
            });
            let mut split = BytesMut::from(&bytes_field_head(2, len)[..]);
            split.extend_from_slice(&chunk);
            assert_eq!(split.freeze(), whole, "a chunk of {len} bytes");
        }
    }

    #[test]
    fn a_message_is_prefixed_with_flag_zero_and_its_length() {
        let header = pb::DownloadFileResponse {
            payload: Some(Payload::Header(pb::DownloadFileHeader {
                size_bytes: 300,
                ..Default::default()
            })),
        };
        let framed = message(&header);
        assert_eq!(framed[0], 0);
        let len = u32::from_be_bytes(framed[1..5].try_into().unwrap()) as usize;
        assert_eq!(len, framed.len() - 5);
        assert_eq!(
            pb::DownloadFileResponse::decode(&framed[5..]).unwrap(),
            header
        );
    }

    fn request(body: &[u8]) -> axum::body::Body {
        axum::body::Body::from(body.to_vec())
    }

    fn read(
        headers: &HeaderMap,
        body: &[u8],
        limit: usize,
    ) -> Result<pb::GetUploadRequest, Status> {
        futures_executor(read_request(headers, request(body), limit))
    }

    fn futures_executor<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_request_is_read_and_every_bad_frame_gets_tonics_code() {
        let good = pb::GetUploadRequest {
            sandbox_id: "abc".into(),
            upload_id: "u1".into(),
        };
        let none = HeaderMap::new();
        assert_eq!(read(&none, &message(&good), 1024).unwrap(), good);
        let code = |headers: &HeaderMap, body: &[u8], limit| {
            read(headers, body, limit).unwrap_err().code()
        };
        assert_eq!(code(&none, b"", 1024), tonic::Code::Internal, "no message");
        assert_eq!(
            code(&none, &[0, 0, 0], 1024),
            tonic::Code::Internal,
            "a cut prefix"
        );
        assert_eq!(
            code(&none, &[0, 0, 0, 0, 9, 1], 1024),
            tonic::Code::Internal,
            "a cut message"
        );
        let mut compressed = message(&good).to_vec();
        compressed[0] = 1;
        assert_eq!(
            code(&none, &compressed, 1024),
            tonic::Code::Internal,
            "compressed"
        );
        compressed[0] = 2;
        assert_eq!(
            code(&none, &compressed, 1024),
            tonic::Code::Internal,
            "a bad flag"
        );
        assert_eq!(
            code(&none, &[0, 0, 0, 4, 1, 0xff, 0xff, 0xff, 0xff], 1024),
            tonic::Code::OutOfRange,
            "a length past the limit"
        );
        assert_eq!(
            code(&none, &message(&good), 4),
            tonic::Code::OutOfRange,
            "a body past the limit"
        );
        assert_eq!(
            code(&none, &[0, 0, 0, 0, 2, 0xff, 0xff], 1024),
            tonic::Code::Internal,
            "not protobuf"
        );
        let mut gzip = HeaderMap::new();
        gzip.insert("grpc-encoding", "gzip".parse().unwrap());
        let refused = read(&gzip, &message(&good), 1024).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unimplemented);
        assert_eq!(
            refused.metadata().get("grpc-accept-encoding").unwrap(),
            "identity"
        );
        gzip.insert("grpc-encoding", "identity".parse().unwrap());
        assert_eq!(read(&gzip, &message(&good), 1024).unwrap(), good);
    }

    #[test]
    fn trailers_carry_the_status() {
        let ok = trailers(Ok(()));
        assert_eq!(ok.get("grpc-status").unwrap(), "0");
        assert!(ok.get("grpc-message").is_none());
        let failed = trailers(Err(Status::not_found("no such file: /a b")));
        assert_eq!(failed.get("grpc-status").unwrap(), "5");
        assert_eq!(
            failed.get("grpc-message").unwrap(),
            "no%20such%20file:%20/a%20b"
        );
    }
}
