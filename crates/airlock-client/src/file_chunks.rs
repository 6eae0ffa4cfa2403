//! A local file as a request body, read with one copy per byte.
//!
//! tokio's `File` reads each chunk on the blocking pool into a buffer of its own and then
//! copies it into the caller's: two copies, and a hop to another thread per chunk. Here one
//! thread reads the whole file straight into buffers that become the body's chunks, and
//! hyper hands those to the socket as they are. In 64 concurrent uploads the client's
//! CPU time was about as large as the daemon's; this takes one of its copies away.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;

use crate::CHUNK;

/// Chunks read ahead of the socket.
const AHEAD: usize = 4;

/// The bytes of a file from its offset to the end it had when this was made, as a request
/// body of that exact length (sent with `Content-Length`, not chunked framing).
pub struct FileChunks {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    remaining: u64,
}

impl FileChunks {
    /// Starts reading `file` from its current offset on a blocking thread. Must be called
    /// within a tokio runtime.
    pub fn new(file: std::fs::File) -> io::Result<Self> {
        Self::watched(file, |_| {})
    }

    /// The same, showing each chunk to `seen` on the reading thread first (a progress bar,
    /// a checksum), so the watching costs the sending side nothing.
    pub fn watched(
        file: std::fs::File,
        mut seen: impl FnMut(&[u8]) + Send + 'static,
    ) -> io::Result<Self> {
        let length = remaining(&file)?;
        let (tx, chunks) = mpsc::channel(AHEAD);
        tokio::task::spawn_blocking(move || {
            let mut left = length;
            while left > 0 {
                let want = CHUNK.min(usize::try_from(left).unwrap_or(CHUNK));
                let mut chunk = Vec::with_capacity(want);
                let item = match fill(&file, &mut chunk) {
                    // The length is promised in the request's head: a file cut short while
                    // it is sent must break the request, not commit a prefix.
                    Ok(()) if chunk.len() < want => Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file shrank while it was being sent",
                    )),
                    Ok(()) => {
                        seen(&chunk);
                        Ok(Bytes::from(chunk))
                    }
                    Err(e) => Err(e),
                };
                let failed = item.is_err();
                left -= want as u64;
                // A receiver that is gone means the request was dropped: stop reading.
                if tx.blocking_send(item).is_err() || failed {
                    return;
                }
            }
        });
        Ok(Self {
            chunks,
            remaining: length,
        })
    }
}

/// The bytes of `file` from its offset to its end.
pub(crate) fn remaining(file: &std::fs::File) -> io::Result<u64> {
    let mut handle = file;
    let at = io::Seek::stream_position(&mut handle)?;
    Ok(file.metadata()?.len().saturating_sub(at))
}

/// Reads into `chunk`'s spare capacity until it is full or the file ends, without zeroing
/// the buffer first.
fn fill(file: &std::fs::File, chunk: &mut Vec<u8>) -> io::Result<()> {
    while chunk.len() < chunk.capacity() {
        match rustix::io::read(file, rustix::buffer::spare_capacity(chunk)) {
            Ok(0) => break,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

impl http_body::Body for FileChunks {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        self.chunks
            .poll_recv(cx)
            .map(|item| {
                let chunk = item
                    .unwrap_or_else(|| Err(io::Error::other("the file's reader stopped early")))?;
                self.remaining = self.remaining.saturating_sub(chunk.len() as u64);
                Ok(Frame::data(chunk))
            })
            .map(Some)
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

impl From<FileChunks> for reqwest::Body {
    fn from(chunks: FileChunks) -> Self {
        reqwest::Body::wrap(chunks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;
    use std::io::{Seek, Write};

    async fn next(chunks: &mut FileChunks) -> Option<io::Result<Bytes>> {
        std::future::poll_fn(|cx| Pin::new(&mut *chunks).poll_frame(cx))
            .await
            .map(|frame| frame.map(|f| f.into_data().unwrap_or_default()))
    }

    async fn collect(file: std::fs::File) -> (Vec<u8>, Vec<usize>) {
        let mut chunks = FileChunks::new(file).expect("a local file");
        let (mut all, mut sizes) = (Vec::new(), Vec::new());
        while let Some(chunk) = next(&mut chunks).await {
            let chunk = chunk.expect("a local file reads");
            sizes.push(chunk.len());
            all.extend_from_slice(&chunk);
        }
        assert!(chunks.is_end_stream());
        (all, sizes)
    }

    fn temp_with(bytes: &[u8]) -> std::fs::File {
        let mut file = tempfile::tempfile().expect("a temporary file");
        file.write_all(bytes).expect("write");
        file.rewind().expect("rewind");
        file
    }

    #[tokio::test]
    async fn a_file_comes_whole_in_full_chunks_and_a_short_last_one() {
        let bytes: Vec<u8> = (0..CHUNK * 2 + 123).map(|n| (n % 251) as u8).collect();
        let (all, sizes) = collect(temp_with(&bytes)).await;
        assert_eq!(all, bytes);
        assert_eq!(sizes, vec![CHUNK, CHUNK, 123]);
    }

    #[tokio::test]
    async fn an_empty_file_is_an_empty_stream_and_an_exact_multiple_has_no_empty_tail() {
        assert_eq!(collect(temp_with(&[])).await.1, Vec::<usize>::new());
        let exact = vec![7u8; CHUNK];
        assert_eq!(collect(temp_with(&exact)).await.1, vec![CHUNK]);
    }

    #[tokio::test]
    async fn reading_starts_at_the_file_offset() {
        let mut file = temp_with(b"skip me|keep me");
        file.seek(io::SeekFrom::Start(8)).expect("seek");
        assert_eq!(collect(file).await.0, b"keep me");
    }

    #[tokio::test]
    async fn the_length_is_exact_and_a_file_cut_short_breaks_the_body() {
        // More than the reader can get ahead by (the queue and the chunk in its hand).
        let whole = (AHEAD + 4) * CHUNK;
        let file = temp_with(&vec![1u8; whole]);
        let mut chunks = FileChunks::new(file.try_clone().expect("clone")).expect("a file");
        assert_eq!(chunks.size_hint().exact(), Some(whole as u64));
        file.set_len(CHUNK as u64 + 10).expect("truncate");
        let mut seen = 0;
        let broke = loop {
            match next(&mut chunks).await {
                Some(Ok(chunk)) => seen += chunk.len(),
                Some(Err(e)) => break e,
                None => panic!("a short file must not end the body quietly"),
            }
        };
        assert_eq!(broke.kind(), io::ErrorKind::UnexpectedEof);
        assert!(
            seen < whole,
            "sent {seen} bytes of a file cut to {}",
            CHUNK + 10
        );
    }

    #[tokio::test]
    async fn a_file_that_grows_is_sent_up_to_its_length_at_the_start() {
        use std::os::unix::fs::FileExt;
        let file = temp_with(b"0123456789");
        let mut chunks = FileChunks::new(file.try_clone().expect("clone")).expect("a file");
        // At an explicit offset: the clone shares the reader's file position.
        file.write_all_at(b"more", 10).expect("grow");
        let mut all = Vec::new();
        while let Some(chunk) = next(&mut chunks).await {
            all.extend_from_slice(&chunk.expect("reads"));
        }
        assert_eq!(all, b"0123456789");
    }
}
