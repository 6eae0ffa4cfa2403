//! A window of a file as a stream of chunks. The file is a [`FileReader`] (blocking, and
//! perhaps not on this machine), so one blocking thread reads ahead into a short queue:
//! the reader stays at most `AHEAD` chunks in front of the socket, and stops as soon as
//! the receiver goes away.

use bytes::{Bytes, BytesMut};
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

/// Up to `want` bytes: fewer only at the end of the file.
fn read_some(file: &mut dyn FileReader, want: usize) -> std::io::Result<Bytes> {
    let mut buf = BytesMut::zeroed(want);
    let mut filled = 0;
    while filled < want {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf.freeze())
}
