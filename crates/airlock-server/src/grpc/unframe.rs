//! A body's gRPC messages as they arrive, for `UploadFile`, whose chunks must not be
//! copied (and for clients reading a `DownloadFile` answer the same way: the crate
//! exports it): tonic's decoder gathers every message into a buffer of its own before
//! prost reads it. Here a message that is nothing but one length-delimited field (a
//! chunk) is passed on as the pieces of the HTTP/2 frames that carried it, by reference
//! count; any other message (the metadata, or a chunk encoded some other way) is gathered
//! whole for prost. Only each message's prefix and field head are read byte by byte.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::Stream;
use http_body::Body;
use prost::encoding::{WireType, decode_varint};
use tonic::Status;

use super::wire::{self, PREFIX};

/// A varint is at most ten bytes; a head longer than two of them is no chunk's.
const MAX_HEAD: usize = 20;

/// What the body holds next.
#[derive(Debug, PartialEq)]
pub enum Part {
    /// A whole message other than the streamed field, for prost to decode.
    Message(Bytes),
    /// Bytes of the streamed field, in order; one message's pieces follow each other.
    Piece(Bytes),
}

/// The messages of a body.
pub struct Unframed {
    body: axum::body::Body,
    /// The body's trailers, once they have passed (a gRPC answer's status).
    trailers: Option<axum::http::HeaderMap>,
    /// The key of the field that is streamed: its number, length-delimited.
    key: u64,
    limit: usize,
    /// The unread rest of the last data frame.
    pending: Bytes,
    state: State,
}

enum State {
    /// Reading a message's prefix.
    Prefix(BytesMut),
    /// Reading its first key and, when that is the streamed field's, the field's length.
    Head {
        len: usize,
        head: BytesMut,
    },
    /// Passing on this many more bytes of the streamed field.
    Streaming(usize),
    /// Gathering a whole message of `len` bytes.
    Whole {
        len: usize,
        message: BytesMut,
    },
    Done,
}

impl Unframed {
    /// The messages of `body`, each at most `limit` bytes, with `field`'s bytes streamed.
    pub fn new<B>(body: B, limit: usize, field: u32) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        Self {
            body: axum::body::Body::new(body),
            trailers: None,
            key: u64::from(field << 3 | WireType::LengthDelimited as u32),
            limit,
            pending: Bytes::new(),
            state: State::Prefix(BytesMut::with_capacity(PREFIX)),
        }
    }

    /// Moves on with the pending bytes; answers a part when one is ready.
    fn step(&mut self) -> Result<Option<Part>, Status> {
        match &mut self.state {
            State::Prefix(prefix) => {
                let n = (PREFIX - prefix.len()).min(self.pending.len());
                prefix.put(self.pending.split_to(n));
                if prefix.len() < PREFIX {
                    return Ok(None);
                }
                let prefix: &[u8; PREFIX] = prefix[..].try_into().expect("five bytes");
                let len = wire::message_len(prefix, self.limit)?;
                self.next_message();
                if len == 0 {
                    return Ok(Some(Part::Message(Bytes::new())));
                }
                self.state = State::Head {
                    len,
                    head: BytesMut::with_capacity(MAX_HEAD),
                };
                Ok(None)
            }
            State::Head { len, head } => {
                let len = *len;
                while head.len() < len && !self.pending.is_empty() {
                    head.put_u8(self.pending.get_u8());
                    match shape(self.key, head, len) {
                        Shape::More => continue,
                        Shape::Whole if head.len() == len => break,
                        Shape::Whole => {
                            let message = std::mem::take(head);
                            self.state = State::Whole { len, message };
                        }
                        // An empty chunk carries nothing to pass on.
                        Shape::Streamed(0) => self.next_message(),
                        Shape::Streamed(left) => self.state = State::Streaming(left),
                    }
                    return Ok(None);
                }
                if head.len() < len {
                    return Ok(None);
                }
                // The whole message is in the head: a short one, or one whose key and
                // length were never complete (prost will say what is wrong with it).
                let message = std::mem::take(head).freeze();
                self.next_message();
                Ok(Some(Part::Message(message)))
            }
            State::Streaming(left) => {
                let piece = self.pending.split_to((*left).min(self.pending.len()));
                *left -= piece.len();
                if *left == 0 {
                    self.next_message();
                }
                Ok(Some(Part::Piece(piece)))
            }
            State::Whole { len, message } => {
                let n = (*len - message.len()).min(self.pending.len());
                message.put(self.pending.split_to(n));
                if message.len() < *len {
                    return Ok(None);
                }
                let message = std::mem::take(message).freeze();
                self.next_message();
                Ok(Some(Part::Message(message)))
            }
            State::Done => Ok(None),
        }
    }

    /// The trailers the body ended with, once the stream has ended.
    pub fn trailers(&self) -> Option<&axum::http::HeaderMap> {
        self.trailers.as_ref()
    }

    fn next_message(&mut self) {
        self.state = State::Prefix(BytesMut::with_capacity(PREFIX));
    }
}

/// What a message's head says so far about the message.
enum Shape {
    /// Not enough of it yet to tell.
    More,
    /// One streamed field filling the message, with this many bytes to come.
    Streamed(usize),
    /// Anything else: to be gathered whole.
    Whole,
}

/// The shape `head` (the first bytes of a message of `len` bytes) shows: the streamed
/// field's key and a length that fills the rest exactly, or something else.
fn shape(streamed: u64, head: &[u8], len: usize) -> Shape {
    if head.len() >= MAX_HEAD {
        return Shape::Whole;
    }
    let mut rest = head;
    let Some(key) = whole_varint(&mut rest) else {
        return Shape::More;
    };
    if key != streamed {
        return Shape::Whole;
    }
    let Some(field_len) = whole_varint(&mut rest) else {
        return Shape::More;
    };
    if rest.is_empty() && head.len() as u64 + field_len == len as u64 {
        Shape::Streamed(field_len as usize)
    } else {
        Shape::Whole
    }
}

/// A varint at the start of `bytes` if all of it is there.
fn whole_varint(bytes: &mut &[u8]) -> Option<u64> {
    let end = bytes.iter().position(|b| b & 0x80 == 0)?;
    let mut varint = &bytes[..=end];
    let value = decode_varint(&mut varint).ok()?;
    *bytes = &bytes[end + 1..];
    Some(value)
}

impl Stream for Unframed {
    type Item = Result<Part, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if matches!(this.state, State::Done) {
                return Poll::Ready(None);
            }
            if !this.pending.is_empty() {
                match this.step() {
                    Ok(Some(part)) => return Poll::Ready(Some(Ok(part))),
                    Ok(None) if !this.pending.is_empty() => continue,
                    Ok(None) => {}
                    Err(status) => {
                        this.state = State::Done;
                        return Poll::Ready(Some(Err(status)));
                    }
                }
            }
            match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.pending = data,
                    Err(frame) => this.trailers = frame.into_trailers().ok(),
                },
                Some(Err(err)) => {
                    this.state = State::Done;
                    let broke = Status::unknown(format!("reading the body: {err}"));
                    return Poll::Ready(Some(Err(broke)));
                }
                None => {
                    let between = matches!(&this.state, State::Prefix(p) if p.is_empty());
                    this.state = State::Done;
                    if !between {
                        let cut = Status::internal("Unexpected EOF decoding stream.");
                        return Poll::Ready(Some(Err(cut)));
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_proto::v1 as pb;
    use futures_util::StreamExt;
    use pb::upload_file_request::Payload;
    use prost::Message;

    const LIMIT: usize = 1 << 20;

    /// A message, prefixed as gRPC sends it.
    fn framed(message: &impl Message) -> Vec<u8> {
        wire::message(message).to_vec()
    }

    fn chunk(bytes: Vec<u8>) -> pb::UploadFileRequest {
        pb::UploadFileRequest {
            payload: Some(Payload::Chunk(bytes.into())),
        }
    }

    fn meta(path: &str) -> pb::UploadFileRequest {
        pb::UploadFileRequest {
            payload: Some(Payload::Metadata(pb::UploadFileMetadata {
                remote_path: path.into(),
                ..Default::default()
            })),
        }
    }

    /// Every part of `wire` sent in data frames of the given sizes (cycled).
    fn parts(wire: &[u8], sizes: &[usize]) -> Vec<Result<Part, Status>> {
        let mut frames = vec![];
        let mut rest = Bytes::copy_from_slice(wire);
        for size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            frames.push(rest.split_to((*size).min(rest.len())));
        }
        let body = axum::body::Body::from_stream(futures_util::stream::iter(
            frames.into_iter().map(Ok::<_, std::convert::Infallible>),
        ));
        let parsed = Unframed::new(body, LIMIT, 2).collect::<Vec<_>>();
        futures_util::FutureExt::now_or_never(parsed).expect("a body in memory is ready")
    }

    /// What the parts say: metadata paths, and the chunk bytes between them joined.
    fn meaning(parts: Vec<Result<Part, Status>>) -> Vec<Result<String, tonic::Code>> {
        let mut said = vec![];
        let mut bytes = vec![];
        let flush = |said: &mut Vec<_>, bytes: &mut Vec<u8>| {
            if !bytes.is_empty() {
                said.push(Ok(format!(
                    "{} bytes, sum {}",
                    bytes.len(),
                    bytes.iter().map(|&b| u64::from(b)).sum::<u64>()
                )));
                bytes.clear();
            }
        };
        for part in parts {
            match part {
                Ok(Part::Piece(piece)) => bytes.extend_from_slice(&piece),
                Ok(Part::Message(m)) => match pb::UploadFileRequest::decode(m).unwrap().payload {
                    Some(Payload::Chunk(c)) => bytes.extend_from_slice(&c),
                    Some(Payload::Metadata(m)) => {
                        flush(&mut said, &mut bytes);
                        said.push(Ok(m.remote_path));
                    }
                    None => {
                        flush(&mut said, &mut bytes);
                        said.push(Ok("empty".into()));
                    }
                },
                Err(status) => {
                    flush(&mut said, &mut bytes);
                    said.push(Err(status.code()));
                }
            }
        }
        flush(&mut said, &mut bytes);
        said
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn messages_read_alike_however_the_frames_cut_them() {
        let mut wire = framed(&meta("/first"));
        let mut chunks = vec![];
        for (i, len) in [0, 1, 127, 128, 300, 16_384, 70_000, LIMIT - 8]
            .into_iter()
            .enumerate()
        {
            let bytes = pattern(len, i as u8);
            wire.extend(framed(&chunk(bytes.clone())));
            chunks.extend(bytes);
        }
        wire.extend(framed(&pb::UploadFileRequest::default()));
        wire.extend(framed(&meta("/second")));
        let want = vec![
            Ok("/first".to_string()),
            Ok(format!(
                "{} bytes, sum {}",
                chunks.len(),
                chunks.iter().map(|&b| u64::from(b)).sum::<u64>()
            )),
            Ok("empty".into()),
            Ok("/second".into()),
        ];
        for sizes in [
            &[1][..],
            &[2, 3, 5],
            &[7, 4096],
            &[16_384],
            &[1 << 20],
            &[wire.len()],
        ] {
            assert_eq!(meaning(parts(&wire, sizes)), want, "frames of {sizes:?}");
        }
    }

    #[test]
    fn the_trailers_a_body_ends_with_are_kept() {
        use http_body::Frame;
        let mut trailers = axum::http::HeaderMap::new();
        trailers.insert("grpc-status", axum::http::HeaderValue::from_static("5"));
        let frames = [
            Frame::data(Bytes::from(framed(&chunk(vec![7; 10])))),
            Frame::trailers(trailers.clone()),
        ];
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(
            frames.map(Ok::<_, std::convert::Infallible>),
        ));
        let mut unframed = Unframed::new(body, LIMIT, 2);
        assert!(unframed.trailers().is_none());
        let parts = futures_util::FutureExt::now_or_never((&mut unframed).collect::<Vec<_>>());
        assert_eq!(parts.expect("in memory").len(), 1);
        assert_eq!(unframed.trailers(), Some(&trailers));
    }

    #[test]
    fn a_chunk_is_handed_on_as_the_frame_that_carried_it() {
        let body = pattern(100_000, 9);
        let wire = Bytes::from(framed(&chunk(body.clone())));
        let start = wire.as_ptr() as usize;
        let frame = axum::body::Body::from(wire.clone());
        let parsed = Unframed::new(frame, LIMIT, 2).collect::<Vec<_>>();
        let parsed = futures_util::FutureExt::now_or_never(parsed).unwrap();
        let [Ok(Part::Piece(piece))] = &parsed[..] else {
            panic!("one piece: {parsed:?}");
        };
        assert_eq!(&piece[..], &body[..]);
        let at = piece.as_ptr() as usize;
        assert!(
            at > start && at < start + wire.len(),
            "the piece is not the frame's memory"
        );
    }

    #[test]
    fn a_chunk_encoded_another_way_is_gathered_whole() {
        // The chunk's field twice (prost keeps the last), and the chunk beside an unknown
        // field: neither is one field filling its message.
        let mut twice = vec![0x12, 2, b'a', b'b', 0x12, 3, b'x', b'y', b'z'];
        let mut beside = vec![0x12, 1, b'q', 0x18, 1];
        for message in [&mut twice, &mut beside] {
            let mut wire = vec![0];
            wire.extend_from_slice(&(message.len() as u32).to_be_bytes());
            wire.append(message);
            let got = parts(&wire, &[1]);
            let [Ok(Part::Message(m))] = &got[..] else {
                panic!("one message: {got:?}");
            };
            assert!(pb::UploadFileRequest::decode(m.clone()).is_ok());
        }
        assert_eq!(
            meaning(parts(
                &[
                    0, 0, 0, 0, 9, 0x12, 2, b'a', b'b', 0x12, 3, b'x', b'y', b'z'
                ],
                &[3]
            )),
            vec![Ok("3 bytes, sum 363".into())]
        );
    }

    #[test]
    fn bad_frames_end_the_stream_with_tonics_codes() {
        let good = framed(&chunk(b"hello".to_vec()));
        let code = |wire: &[u8]| meaning(parts(wire, &[4])).pop().unwrap();
        assert_eq!(
            meaning(parts(&good, &[4])),
            vec![Ok("5 bytes, sum 532".into())]
        );
        let mut compressed = good.clone();
        compressed[0] = 1;
        assert_eq!(code(&compressed), Err(tonic::Code::Internal));
        compressed[0] = 7;
        assert_eq!(code(&compressed), Err(tonic::Code::Internal));
        let too_long = [0, 0, 0x10, 0, 1, 0x12];
        assert_eq!(code(&too_long), Err(tonic::Code::OutOfRange));
        for cut in [1, 4, 5, 7, good.len() - 1] {
            assert_eq!(
                code(&good[..cut]),
                Err(tonic::Code::Internal),
                "cut at {cut}"
            );
        }
        assert!(parts(&[], &[1]).is_empty());
        // After an error, nothing more: the rest of the body is not read as messages.
        let mut then_more = compressed.clone();
        then_more.extend(good);
        assert_eq!(parts(&then_more, &[100]).len(), 1);
    }
}
