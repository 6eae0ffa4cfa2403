//! A download written into a local file with one copy per byte.
//!
//! tokio's `File` copies each chunk into a buffer of its own and writes it on the blocking
//! pool, one write in flight: two copies, and the socket waits for the disk. Here the
//! chunks the response arrived in are handed, as they are, to one thread that writes them
//! with `writev`, gathering what has queued up into one call.

use std::io::{self, IoSlice};

use bytes::Bytes;
use tokio::sync::mpsc;

/// Chunks queued for the writing thread.
const QUEUE: usize = 16;
/// At most this many bytes per `writev`.
const GATHER: usize = 1024 * 1024;
/// At most this many chunks per `writev` (well under `IOV_MAX`).
const SLICES: usize = 64;

/// Where a download's chunks go: a thread writing them into a file. Public for clients
/// that stream a body of their own (the benchmarks' gRPC client), as [`crate::FileChunks`]
/// is for uploads.
#[derive(Debug)]
pub struct FileSink {
    chunks: Option<mpsc::Sender<Bytes>>,
    writer: Option<tokio::task::JoinHandle<io::Result<()>>>,
}

impl FileSink {
    /// Starts writing into `file` at its current offset. Must be called within a tokio
    /// runtime.
    pub fn new(file: std::fs::File) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = tokio::task::spawn_blocking(move || write_all_of(&file, rx));
        Self {
            chunks: Some(tx),
            writer: Some(writer),
        }
    }

    /// Queues one chunk. Fails with the writer's error if it has stopped.
    pub async fn send(&mut self, chunk: Bytes) -> io::Result<()> {
        let Some(tx) = &self.chunks else {
            return Err(io::Error::other("the file is already finished"));
        };
        if tx.send(chunk).await.is_ok() {
            return Ok(());
        }
        // The writer hung up: it failed; say why.
        self.chunks = None;
        Err(self.stop().await.err().unwrap_or_else(stopped))
    }

    /// Waits until everything queued is written.
    pub async fn finish(mut self) -> io::Result<()> {
        self.chunks = None;
        self.stop().await
    }

    /// How the writing thread ended (once; after that, as if it failed).
    async fn stop(&mut self) -> io::Result<()> {
        let writer = self.writer.take().ok_or_else(stopped)?;
        writer.await.map_err(io::Error::other)?
    }
}

fn stopped() -> io::Error {
    io::Error::other("the file's writer stopped")
}

/// Writes every chunk received, gathering those already queued into one `writev`.
fn write_all_of(file: &std::fs::File, mut rx: mpsc::Receiver<Bytes>) -> io::Result<()> {
    let mut batch: Vec<Bytes> = Vec::with_capacity(SLICES);
    while let Some(first) = rx.blocking_recv() {
        let mut size = first.len();
        batch.push(first);
        while size < GATHER && batch.len() < SLICES {
            match rx.try_recv() {
                Ok(next) => {
                    size += next.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        write_batch(file, &batch)?;
        batch.clear();
    }
    Ok(())
}

/// Writes all of `batch`, however the kernel splits it.
fn write_batch(file: &std::fs::File, batch: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = batch.iter().map(|b| IoSlice::new(b)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match rustix::io::writev(file, rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek};

    #[tokio::test]
    async fn chunks_land_in_order_after_the_offset() {
        let mut file = tempfile::tempfile().expect("a temporary file");
        std::io::Write::write_all(&mut file, b"head:").expect("write");
        let mut sink = FileSink::new(file.try_clone().expect("clone"));
        let mut want = b"head:".to_vec();
        for n in 0..500u32 {
            let chunk: Vec<u8> = (0..(n * 37 % 9000) + 1).map(|k| (k + n) as u8).collect();
            want.extend_from_slice(&chunk);
            sink.send(Bytes::from(chunk)).await.expect("queued");
        }
        sink.finish().await.expect("written");
        let mut got = Vec::new();
        file.rewind().expect("rewind");
        file.read_to_end(&mut got).expect("read back");
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_file_that_cannot_be_written_fails_the_send_or_the_finish() {
        let dir = tempfile::tempdir().expect("a directory");
        let path = dir.path().join("ro");
        std::fs::write(&path, b"").expect("create");
        let read_only = std::fs::File::open(&path).expect("open");
        let mut sink = FileSink::new(read_only);
        let mut failed = false;
        for _ in 0..64 {
            if sink.send(Bytes::from_static(b"data")).await.is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed || sink.finish().await.is_err());
    }
}
