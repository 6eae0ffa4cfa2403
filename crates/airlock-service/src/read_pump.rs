//! A window of a file as a stream of chunks. The file is a [`FileReader`] (blocking, and
//! perhaps not on this machine), so one blocking thread reads ahead into a short queue:
//! the reader stays at most `AHEAD` chunks in front of the socket, and stops as soon as
//! the receiver goes away.

use std::io::Read;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use airlock_fs::FileReader;

use crate::body::ByteStream;

/// Chunks read ahead of the socket.
const AHEAD: usize = 4;

/// Bytes `[start, start + len)` of `file`, read in chunks of `chunk` bytes. A file that
/// ends early ends the stream with `UnexpectedEof`, so a face never sends a short body
/// as if it were whole.
pub(crate) fn read_window(
    mut file: Box<dyn FileReader>,
    start: u64,
    len: u64,
    chunk: usize,
) -> ByteStream {
    let (tx, rx) = mpsc::channel(AHEAD);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = file.seek(std::io::SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut left = len;
        while left > 0 {
            let want = left.min(chunk as u64) as usize;
            let piece = match read_some(&mut *file, want) {
                Ok(piece) if piece.is_empty() => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file got shorter while it was read",
                )),
                other => other,
            };
            let failed = piece.is_err();
            left -= piece.as_ref().map_or(0, |p| p.len() as u64);
            if tx.blocking_send(piece).is_err() || failed {
                return;
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

/// Up to `want` bytes: fewer only at the end of the file. Read into fresh, unzeroed
/// capacity: a zeroed buffer of this size comes from the allocator as untouched pages
/// (it counts on the kernel's zero pages), so every page of every chunk was faulted in
/// by the `read` itself, one fault per 4 KiB sent.
fn read_some(file: &mut dyn FileReader, want: usize) -> std::io::Result<Bytes> {
    let mut buf = Vec::with_capacity(want);
    file.take(want as u64).read_to_end(&mut buf)?;
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    async fn collect(mut stream: ByteStream) -> (Vec<u8>, Option<std::io::ErrorKind>) {
        let mut got = Vec::new();
        while let Some(piece) = stream.next().await {
            match piece {
                Ok(bytes) => got.extend_from_slice(&bytes),
                Err(e) => return (got, Some(e.kind())),
            }
        }
        (got, None)
    }

    fn file(content: Vec<u8>) -> Box<dyn FileReader> {
        Box::new(std::io::Cursor::new(content))
    }

    #[tokio::test]
    async fn a_window_is_exactly_its_bytes_across_chunk_boundaries() {
        let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let (got, error) = collect(read_window(file(content.clone()), 1_234, 5_000, 1_000)).await;
        assert_eq!(error, None);
        assert_eq!(got, content[1_234..6_234]);
        let (empty, error) = collect(read_window(file(content), 10_000, 0, 1_000)).await;
        assert!(empty.is_empty() && error.is_none());
    }

    #[tokio::test]
    async fn a_file_shorter_than_its_window_ends_the_stream_with_an_error() {
        // As if the file was cut while it was sent: a face must not send a short body
        // as if it were whole.
        let (got, error) = collect(read_window(file(vec![7; 2_500]), 0, 4_000, 1_000)).await;
        assert_eq!(got.len(), 2_500);
        assert_eq!(error, Some(std::io::ErrorKind::UnexpectedEof));
    }
}
