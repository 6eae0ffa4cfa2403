//! `UploadFile` from a client that takes each byte into user space once (the REST SDK
//! sends its uploads with `sendfile` and never does).
//!
//! tonic's generated stubs take each chunk as a message that owns its bytes and copy it
//! into the call's send buffer: a read into a buffer, then a second pass over every byte
//! on the two cores the daemon is using too. Here the stream carries only where each
//! chunk lies in the file, and the encoder reads it from the file straight into the send
//! buffer, behind the message's few bytes of protobuf framing. The daemon sees the same
//! messages either way; what changes is only what the measuring client spends.

use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::sync::Arc;

use airlock_proto::v1 as pb;
use bytes::BufMut;
use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic_prost::ProstDecoder;

/// Bytes of the file per chunk message.
pub const CHUNK: u64 = 1 << 20;

/// One message of the call: the metadata, or a stretch of the file.
pub enum Piece {
    Metadata(Box<pb::UploadFileMetadata>),
    Chunk {
        file: Arc<File>,
        offset: u64,
        len: usize,
    },
}

/// The pieces of an upload of all of `file` (of `size` bytes), metadata first.
pub fn pieces(metadata: pb::UploadFileMetadata, file: File, size: u64) -> Vec<Piece> {
    let file = Arc::new(file);
    let chunks = (0..size)
        .step_by(CHUNK as usize)
        .map(|offset| Piece::Chunk {
            file: Arc::clone(&file),
            offset,
            len: CHUNK.min(size - offset) as usize,
        });
    std::iter::once(Piece::Metadata(Box::new(metadata)))
        .chain(chunks)
        .collect()
}

/// Encodes pieces as `UploadFileRequest`s; the answer is decoded as the stubs decode it.
#[derive(Default)]
pub struct PieceCodec;

impl Codec for PieceCodec {
    type Encode = Piece;
    type Decode = pb::UploadFileResponse;
    type Encoder = PieceEncoder;
    type Decoder = ProstDecoder<pb::UploadFileResponse>;

    fn encoder(&mut self) -> PieceEncoder {
        PieceEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

pub struct PieceEncoder;

/// `UploadFileRequest.chunk`: field 2, length-delimited.
const CHUNK_KEY: u8 = (2 << 3) | 2;

impl Encoder for PieceEncoder {
    type Item = Piece;
    type Error = Status;

    fn encode(&mut self, piece: Piece, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        match piece {
            Piece::Metadata(metadata) => {
                let message = pb::UploadFileRequest {
                    payload: Some(pb::upload_file_request::Payload::Metadata(*metadata)),
                };
                message
                    .encode(dst)
                    .map_err(|e| Status::internal(e.to_string()))
            }
            Piece::Chunk { file, offset, len } => {
                dst.reserve(len + 16);
                put_chunk(&file, offset, len, dst).map_err(|e| Status::internal(e.to_string()))
            }
        }
    }
}

/// Puts the chunk message of `len` bytes of `file` at `offset` into `dst`, the bytes read
/// from the file into `dst`'s spare capacity.
fn put_chunk(file: &File, offset: u64, len: usize, dst: &mut impl BufMut) -> io::Result<()> {
    dst.put_u8(CHUNK_KEY);
    prost::encoding::encode_varint(len as u64, dst);
    let mut done = 0;
    while done < len {
        // SAFETY: the slice is the buffer's spare capacity, written here and never read
        // before `advance_mut` counts exactly the bytes `pread` wrote.
        let spare: &mut [MaybeUninit<u8>] = unsafe { dst.chunk_mut().as_uninit_slice_mut() };
        let want = (len - done).min(spare.len());
        let (read, _) = rustix::io::pread(file, &mut spare[..want], offset + done as u64)?;
        if read.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was being sent",
            ));
        }
        let read = read.len();
        // SAFETY: `pread` initialised the first `read` bytes of the spare capacity.
        unsafe { dst.advance_mut(read) };
        done += read;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(bytes: &[u8]) -> File {
        let mut file = tempfile::tempfile().expect("a temporary file");
        file.write_all(bytes).expect("write");
        file
    }

    #[test]
    fn a_chunk_is_encoded_as_prost_encodes_the_same_message() {
        let bytes: Vec<u8> = (0..300_000u32).map(|n| (n % 251) as u8).collect();
        let file = file_of(&bytes);
        let mut ours = bytes::BytesMut::new();
        put_chunk(&file, 1000, 200_000, &mut ours).expect("encodes");
        let theirs = pb::UploadFileRequest {
            payload: Some(pb::upload_file_request::Payload::Chunk(
                bytes[1000..201_000].to_vec().into(),
            )),
        }
        .encode_to_vec();
        assert_eq!(&ours[..], &theirs[..]);
    }

    #[test]
    fn a_file_shorter_than_its_chunks_fails_the_chunk() {
        let file = file_of(b"short");
        let mut buf = bytes::BytesMut::new();
        let err = put_chunk(&file, 0, 10, &mut buf).expect_err("five bytes are not ten");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn pieces_cover_the_file_once_metadata_first() {
        let size = 2 * CHUNK + 5;
        let pieces = pieces(pb::UploadFileMetadata::default(), file_of(b""), size);
        assert!(matches!(pieces[0], Piece::Metadata(_)));
        let spans: Vec<(u64, usize)> = pieces[1..]
            .iter()
            .map(|p| match p {
                Piece::Chunk { offset, len, .. } => (*offset, *len),
                Piece::Metadata(_) => panic!("one metadata message"),
            })
            .collect();
        let c = CHUNK as usize;
        assert_eq!(spans, vec![(0, c), (CHUNK, c), (2 * CHUNK, 5)]);
    }
}
