//! `DownloadFile` into a client that copies each byte once, as the REST SDK does.
//!
//! tonic's generated stubs copy every HTTP/2 DATA frame into a buffer of their own and cut
//! each message out of it. A chunk handed to a writing thread keeps that buffer alive, so
//! the next message goes into a fresh allocation: a second pass over every byte, and new
//! pages to fault in, on the two cores the daemon is using too. Writing a GiB into a file
//! took the stubs about twice the REST SDK's time (`bench/run`, W1), while into
//! `/dev/null` they kept up. Here the response's frames are read as the HTTP/2 stack
//! hands them over, and a message's `chunk` is passed on as slices of those frames,
//! however the frames split it. The daemon sends the same messages either way; what
//! changes is only what the measuring client spends.

use airlock_proto::v1 as pb;
use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;
use prost::Message;
use tonic::codegen::{Service, http};
use tonic::transport::Channel;

/// `DownloadFileResponse`'s fields: the header, then the file's bytes.
const HEADER_FIELD: u64 = 1;
const CHUNK_FIELD: u64 = 2;
/// Protobuf's wire type for length-delimited fields (bytes, strings, messages).
const LENGTH_DELIMITED: u64 = 2;
/// The most a header message may take; a bigger one is not a header.
const HEADER_LIMIT: usize = 64 * 1024;

/// What a response carries, in order.
#[derive(Debug, PartialEq)]
pub enum Piece {
    Header(pb::DownloadFileHeader),
    /// Some of the file's bytes: a slice of a frame as it arrived.
    Chunk(Bytes),
}

/// Where the decoder is within the stream of length-prefixed messages.
#[derive(Debug)]
enum State {
    /// Reading a message's 5-byte prefix (compression flag, big-endian length).
    Prefix(Vec<u8>),
    /// Reading a field's key and length (two varints) with `left` bytes of the message
    /// still to come.
    FieldHead { left: usize, head: Vec<u8> },
    /// Inside a field's `want` remaining bytes: passed on if it is the chunk, else kept.
    Field {
        left: usize,
        field: u64,
        want: usize,
        kept: Vec<u8>,
    },
}

/// Turns a DownloadFile response's DATA frames into [`Piece`]s.
#[derive(Debug)]
pub struct Unframer {
    state: State,
}

impl Default for Unframer {
    fn default() -> Self {
        Self {
            state: State::Prefix(Vec::with_capacity(5)),
        }
    }
}

impl Unframer {
    /// Decodes all of `frame`, appending what it completes to `out`.
    pub fn feed(&mut self, mut frame: Bytes, out: &mut Vec<Piece>) -> anyhow::Result<()> {
        while !frame.is_empty() {
            match &mut self.state {
                State::Prefix(head) => {
                    take_up_to(head, 5, &mut frame);
                    if head.len() == 5 {
                        anyhow::ensure!(head[0] == 0, "a compressed message: none was asked for");
                        let left = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
                        self.state = State::FieldHead {
                            left: left as usize,
                            head: Vec::new(),
                        };
                    }
                }
                State::FieldHead { left, head } => {
                    // The key and the length are at most 20 bytes: taken one at a time.
                    head.push(frame[0]);
                    frame = frame.slice(1..);
                    *left -= 1;
                    if let Some((key, want)) = key_and_length(head)? {
                        anyhow::ensure!(
                            key & 7 == LENGTH_DELIMITED,
                            "field {} is not length-delimited",
                            key >> 3
                        );
                        anyhow::ensure!(want <= *left, "a field runs past its message");
                        anyhow::ensure!(
                            key >> 3 == CHUNK_FIELD || want <= HEADER_LIMIT,
                            "field {} of {want} bytes is too big for a header",
                            key >> 3
                        );
                        self.state = State::Field {
                            left: *left - want,
                            field: key >> 3,
                            want,
                            kept: Vec::new(),
                        };
                    } else {
                        anyhow::ensure!(*left > 0, "a message ends inside a field's head");
                    }
                }
                State::Field {
                    field, want, kept, ..
                } => {
                    let piece = frame.split_to((*want).min(frame.len()));
                    *want -= piece.len();
                    if *field == CHUNK_FIELD {
                        out.push(Piece::Chunk(piece));
                    } else {
                        kept.put_slice(&piece);
                    }
                }
            }
            self.settle(out)?;
        }
        Ok(())
    }

    /// Moves past a field or message that is complete (an empty one needs no data).
    fn settle(&mut self, out: &mut Vec<Piece>) -> anyhow::Result<()> {
        loop {
            match &mut self.state {
                State::FieldHead { left: 0, head } if head.is_empty() => {
                    self.state = State::Prefix(Vec::with_capacity(5));
                }
                State::Field {
                    left,
                    field,
                    want: 0,
                    kept,
                } => {
                    if *field == HEADER_FIELD {
                        out.push(Piece::Header(pb::DownloadFileHeader::decode(&kept[..])?));
                    }
                    self.state = State::FieldHead {
                        left: *left,
                        head: Vec::new(),
                    };
                }
                _ => return Ok(()),
            }
        }
    }

    /// Fails unless the stream ended between messages.
    pub fn finish(&self) -> anyhow::Result<()> {
        match &self.state {
            State::Prefix(head) if head.is_empty() => Ok(()),
            _ => anyhow::bail!("the response ended inside a message"),
        }
    }
}

/// Moves bytes from the front of `from` into `head` until it holds `size`.
fn take_up_to(head: &mut Vec<u8>, size: usize, from: &mut Bytes) {
    let take = (size - head.len()).min(from.len());
    head.extend_from_slice(&from.split_to(take));
}

/// The field's key and length once `head` holds both varints, `None` while it does not.
fn key_and_length(head: &[u8]) -> anyhow::Result<Option<(u64, usize)>> {
    let mut values = [0u64; 2];
    let mut at = 0;
    for value in &mut values {
        let mut shift = 0;
        loop {
            let Some(&byte) = head.get(at) else {
                return Ok(None);
            };
            at += 1;
            anyhow::ensure!(shift < 64, "a varint longer than ten bytes");
            *value |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte < 0x80 {
                break;
            }
        }
    }
    Ok(Some((values[0], usize::try_from(values[1])?)))
}

/// Calls DownloadFile over `channel` and hands each piece to `each` as it is decoded;
/// fails with the call's status if it does not end with `grpc-status` 0.
pub async fn download(
    channel: &mut Channel,
    token: &str,
    ask: &pb::DownloadFileRequest,
    mut each: impl AsyncFnMut(Piece) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut framed = BytesMut::with_capacity(5 + ask.encoded_len());
    framed.put_u8(0);
    framed.put_u32(u32::try_from(ask.encoded_len())?);
    ask.encode(&mut framed)?;
    let request = http::Request::post("/airlock.v1.Files/DownloadFile")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        .body(tonic::body::Body::new(http_body_util::Full::new(
            framed.freeze(),
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
    let mut body = response.into_body();
    let mut unframer = Unframer::default();
    let mut pieces = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        match frame.into_data() {
            Ok(data) => {
                unframer.feed(data, &mut pieces)?;
                for piece in pieces.drain(..) {
                    each(piece).await?;
                }
            }
            Err(frame) => {
                if let Some(trailers) = frame.trailers_ref() {
                    ended_well(trailers)?;
                    unframer.finish()?;
                    return Ok(());
                }
            }
        }
    }
    anyhow::bail!("the call ended without its status")
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
    use pb::download_file_response::Payload;

    /// Messages framed as a daemon frames them: a 5-byte prefix, then the message.
    fn stream_of(messages: &[pb::DownloadFileResponse]) -> Vec<u8> {
        let mut out = Vec::new();
        for message in messages {
            out.push(0);
            out.extend_from_slice(&(message.encoded_len() as u32).to_be_bytes());
            message.encode(&mut out).expect("encoded");
        }
        out
    }

    fn decoded(frames: impl IntoIterator<Item = Vec<u8>>) -> anyhow::Result<Vec<Piece>> {
        let mut unframer = Unframer::default();
        let mut out = Vec::new();
        for frame in frames {
            unframer.feed(Bytes::from(frame), &mut out)?;
        }
        unframer.finish()?;
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
        // A header field claiming a gigabyte.
        let huge_header = vec![0, 0x40, 0, 0, 6, 0x0a, 0x80, 0x80, 0x80, 0x80, 0x04];
        for bad in [compressed, varint_field, overlong, huge_header] {
            assert!(decoded([bad.clone()]).is_err(), "{bad:?}");
        }
    }
}
