//! `DownloadFile` into a client that takes each byte into user space once (the REST SDK
//! `splice`s its downloads into a file and never does).
//!
//! tonic's generated stubs copy every HTTP/2 DATA frame into a buffer of their own and cut
//! each message out of it. A chunk handed to a writing thread keeps that buffer alive, so
//! the next message goes into a fresh allocation: a second pass over every byte, and new
//! pages to fault in, on the two cores the daemon is using too. Here the answer is read by
//! the gRPC face's own reader of `UploadFile` requests (`airlock_server::GrpcUnframed`),
//! which passes a message's `chunk` on as slices of the frames that carried it, however
//! they split it. The daemon sends the same messages either way; what changes is only
//! what the measuring client spends.

use airlock_proto::v1 as pb;
use airlock_proto::v1::download_file_response::Payload;
use airlock_server::{GrpcPart, GrpcUnframed};
use bytes::Bytes;
use futures_util::StreamExt;
use prost::Message;
use tonic::codegen::{Service, http};
use tonic::transport::Channel;

/// `DownloadFileResponse.chunk`'s field number: the field streamed.
const CHUNK_FIELD: u32 = 2;
/// The most one message may take (the daemon sends at most 8 MiB).
const MESSAGE_LIMIT: usize = 16 << 20;

/// What a response carries, in order.
#[derive(Debug, PartialEq)]
pub enum Piece {
    Header(pb::DownloadFileHeader),
    /// Some of the file's bytes: a slice of a frame as it arrived.
    Chunk(Bytes),
}

/// Reads the messages of `body`, handing each piece to `each`; answers the trailers it
/// ended with, if any.
async fn read_pieces<B>(
    body: B,
    each: &mut impl AsyncFnMut(Piece) -> anyhow::Result<()>,
) -> anyhow::Result<Option<http::HeaderMap>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut messages = GrpcUnframed::new(body, MESSAGE_LIMIT, CHUNK_FIELD);
    while let Some(part) = messages.next().await {
        let payload = match part? {
            GrpcPart::Piece(chunk) => Some(Payload::Chunk(chunk)),
            // The header, or a chunk encoded some other way (gathered whole).
            GrpcPart::Message(message) => pb::DownloadFileResponse::decode(message)?.payload,
        };
        match payload {
            Some(Payload::Header(header)) => each(Piece::Header(header)).await?,
            Some(Payload::Chunk(chunk)) if !chunk.is_empty() => each(Piece::Chunk(chunk)).await?,
            _ => {}
        }
    }
    Ok(messages.trailers().cloned())
}

/// Calls DownloadFile over `channel` and hands each piece to `each` as it is decoded;
/// fails with the call's status if it does not end with `grpc-status` 0.
pub async fn download(
    channel: &mut Channel,
    token: &str,
    ask: &pb::DownloadFileRequest,
    mut each: impl AsyncFnMut(Piece) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let request = http::Request::post("/airlock.v1.Files/DownloadFile")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        .body(tonic::body::Body::new(http_body_util::Full::new(
            airlock_server::grpc_framed(ask),
        )))?;
    std::future::poll_fn(|cx| channel.poll_ready(cx)).await?;
    let response = channel.call(request).await?;
    anyhow::ensure!(
        response.status() == http::StatusCode::OK,
        "DownloadFile answered HTTP {}",
        response.status()
    );
    // A call that fails before any message answers with its status in the headers.
    ended_well(response.headers())?;
    let trailers = read_pieces(response.into_body(), &mut each).await?;
    let trailers = trailers.ok_or_else(|| anyhow::anyhow!("the call ended without its status"))?;
    ended_well(&trailers)
}

/// Fails with the call's status (tonic decodes its code and percent-encoded message) if
/// `headers` hold one other than OK.
fn ended_well(headers: &http::HeaderMap) -> anyhow::Result<()> {
    match tonic::Status::from_header_map(headers) {
        Some(status) if status.code() != tonic::Code::Ok => {
            anyhow::bail!("DownloadFile failed: {status}")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Frame;
    use http_body_util::StreamBody;

    /// Messages framed as a daemon frames them: a 5-byte prefix, then the message.
    fn stream_of(messages: &[pb::DownloadFileResponse]) -> Vec<u8> {
        messages
            .iter()
            .flat_map(|m| airlock_server::grpc_framed(m).to_vec())
            .collect()
    }

    /// The pieces `read_pieces` hands on from a body of these frames.
    fn decoded(frames: impl IntoIterator<Item = Vec<u8>>) -> anyhow::Result<Vec<Piece>> {
        let frames: Vec<_> = frames
            .into_iter()
            .map(|f| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(f))))
            .collect();
        let body = StreamBody::new(futures_util::stream::iter(frames));
        let mut out = Vec::new();
        let mut each = async |piece| {
            out.push(piece);
            Ok(())
        };
        let read = read_pieces(body, &mut each);
        futures_util::FutureExt::now_or_never(read).expect("a body in memory is ready")?;
        Ok(out)
    }

    /// The header and the file's bytes joined, as a writer would see them.
    fn joined(pieces: Vec<Piece>) -> (Vec<pb::DownloadFileHeader>, Vec<u8>) {
        let mut headers = Vec::new();
        let mut bytes = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Header(header) => headers.push(header),
                Piece::Chunk(chunk) => bytes.extend_from_slice(&chunk),
            }
        }
        (headers, bytes)
    }

    fn example() -> (
        Vec<pb::DownloadFileResponse>,
        pb::DownloadFileHeader,
        Vec<u8>,
    ) {
        let header = pb::DownloadFileHeader {
            size_bytes: 300,
            mode: 0o644,
            ..Default::default()
        };
        let data: Vec<u8> = (0..300u32).map(|n| (n * 7) as u8).collect();
        let messages = vec![
            pb::DownloadFileResponse {
                payload: Some(Payload::Header(header.clone())),
            },
            pb::DownloadFileResponse {
                payload: Some(Payload::Chunk(Bytes::copy_from_slice(&data[..200]))),
            },
            // An empty chunk is a message of a few bytes, with nothing to pass on.
            pb::DownloadFileResponse {
                payload: Some(Payload::Chunk(Bytes::new())),
            },
            pb::DownloadFileResponse {
                payload: Some(Payload::Chunk(Bytes::copy_from_slice(&data[200..]))),
            },
        ];
        (messages, header, data)
    }

    #[test]
    fn every_split_of_the_frames_gives_the_same_header_and_bytes() {
        let (messages, header, data) = example();
        let stream = stream_of(&messages);
        for cut in 0..=stream.len() {
            let frames = [stream[..cut].to_vec(), stream[cut..].to_vec()];
            let (headers, bytes) = joined(decoded(frames).expect("decoded"));
            assert_eq!(headers, std::slice::from_ref(&header), "cut at {cut}");
            assert_eq!(bytes, data, "cut at {cut}");
        }
        let one_byte_frames = stream.iter().map(|b| vec![*b]);
        let (headers, bytes) = joined(decoded(one_byte_frames).expect("decoded"));
        assert_eq!((headers, bytes), (vec![header], data));
    }

    #[test]
    fn a_stream_cut_inside_a_message_is_an_error() {
        let (messages, _, _) = example();
        let stream = stream_of(&messages);
        for cut in [1, 5, 6, stream.len() - 1] {
            assert!(decoded([stream[..cut].to_vec()]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn bad_framing_is_refused_not_guessed() {
        let compressed = vec![1, 0, 0, 0, 2, 0x12, 0];
        // Field 2 as a varint (wire type 0).
        let varint_field = vec![0, 0, 0, 0, 2, 0x10, 1];
        // A chunk that claims more bytes than its message holds.
        let overlong = vec![0, 0, 0, 0, 3, 0x12, 9, 1];
        // A message (a header) claiming a gigabyte.
        let huge_header = vec![0, 0x40, 0, 0, 6, 0x0a, 0x80, 0x80, 0x80, 0x80, 0x04];
        for bad in [compressed, varint_field, overlong, huge_header] {
            assert!(decoded([bad.clone()]).is_err(), "{bad:?}");
        }
    }
}
