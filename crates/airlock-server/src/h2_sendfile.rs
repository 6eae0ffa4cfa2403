//! An HTTP/2 connection's socket that sends the file windows of followed downloads
//! (`h2_script`) with `sendfile`, with no copy through the daemon's memory.
//!
//! Each write follows the frames h2 hands it (`h2_frames`). Bytes of a followed stream's
//! DATA payload are sent by that stream's script: its real runs as the buffer holds them,
//! its file runs from the file, in place of the buffer's placeholder bytes (a mark, or a
//! mark's zeros that h2 copied into its own buffer). Everything else is written as it is.
//! Anything out of step (a mark where the script has real bytes or nothing follows the
//! stream, a placeholder that is neither, payload past the script's end) fails the
//! connection rather than send bytes nobody can vouch for.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use airlock_service::ByteCounter;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::h2_frames::{DATA, FrameCursor, Next, PADDED};
use crate::h2_script::{H2Sends, Scripts, Segment};
use crate::sendfile::{is_mark, poll_sendfile};

/// What the front of a write is.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// This many bytes, written as they are; `more` when a file's run follows them, so
    /// the kernel holds them (`MSG_MORE`) to leave with its first bytes rather than as a
    /// segment of their own (a frame's 9-byte head, mostly).
    Plain { len: usize, more: bool },
    /// This many placeholder bytes, sent as bytes `offset…` of download `id`'s file.
    File { id: u64, offset: u64, len: usize },
    /// A token of download `id` on `stream`: bind it there, at `position`, and plan again.
    Bind { id: u64, stream: u32, position: u64 },
}

/// The connection's socket.
pub struct H2SendfileIo {
    tcp: TcpStream,
    sends: H2Sends,
    cursor: FrameCursor,
    /// Told of every byte sent from a file (the face's metric).
    from_file: ByteCounter,
}

impl H2SendfileIo {
    pub fn new(tcp: TcpStream, sends: H2Sends) -> Self {
        Self {
            tcp,
            sends,
            cursor: FrameCursor::default(),
            from_file: ByteCounter::default(),
        }
    }

    /// The same, counting each byte it sends from a file into `from_file`.
    pub fn counting_into(mut self, from_file: ByteCounter) -> Self {
        self.from_file = from_file;
        self
    }

    /// Writes `slices` with `MSG_MORE`: more is coming at once.
    fn poll_write_more(
        &mut self,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        use rustix::net::{SendAncillaryBuffer, SendFlags, sendmsg};
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let sent = self.tcp.try_io(Interest::WRITABLE, || {
                let mut control = SendAncillaryBuffer::default();
                sendmsg(
                    &self.tcp,
                    slices,
                    &mut control,
                    SendFlags::MORE | SendFlags::NOSIGNAL,
                )
                .map_err(io::Error::from)
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_send_file(
        &mut self,
        cx: &mut Context<'_>,
        id: u64,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let (file, receipt) = {
            let scripts = self.sends.lock();
            let script = scripts
                .scripts
                .get(&id)
                .ok_or_else(|| out_of_step("a script gone"))?;
            (script.file.clone(), script.receipt.clone())
        };
        let file = file.ok_or_else(|| out_of_step("a file run with no file"))?;
        let sent = ready!(poll_sendfile(&self.tcp, cx, &file, offset, len))?;
        if let Some(receipt) = receipt {
            receipt.sent(sent as u64);
        }
        self.from_file.inc_by(sent as u64);
        let mut scripts = self.sends.lock();
        if let Some(script) = scripts.scripts.get_mut(&id) {
            script.consume(sent as u64);
        }
        if let Some(ended) = self.cursor.take_payload(sent) {
            scripts.ended(ended);
        }
        Poll::Ready(Ok(sent))
    }
}

/// What the front of `bufs` is, read from `cursor` on without moving it.
fn plan(cursor: FrameCursor, scripts: &Scripts, bufs: &[IoSlice<'_>]) -> io::Result<Plan> {
    let mut cursor = cursor;
    let mut plain = 0;
    // Bytes of each followed stream's script this plan has passed.
    let mut ahead: Vec<(u64, u64)> = Vec::new();
    for (index, buf) in bufs.iter().enumerate() {
        let bytes: &[u8] = buf;
        let mut at = 0;
        while at < bytes.len() {
            let here = &bytes[at..];
            let (kind, flags, stream, left) = match cursor.next() {
                Next::Head(want) => {
                    let take = want.min(here.len());
                    // A frame that ends here ends nothing yet: the plan moves no state.
                    let _ = cursor.take_head(&here[..take]);
                    at += take;
                    plain += take;
                    continue;
                }
                Next::Payload {
                    kind,
                    flags,
                    stream,
                    left,
                } => (kind, flags, stream, left),
            };
            let avail = here.len().min(left);
            let followed = if kind == DATA {
                scripts.streams.get(&stream).copied()
            } else {
                None
            };
            let Some(id) = followed else {
                let token = (kind == DATA && at == 0)
                    .then(|| scripts.token_at(here.as_ptr() as usize))
                    .flatten();
                if let Some((id, position)) = token {
                    if plain > 0 {
                        return Ok(Plan::Plain {
                            len: plain,
                            more: false,
                        });
                    }
                    return Ok(Plan::Bind {
                        id,
                        stream,
                        position,
                    });
                }
                if kind == DATA && is_mark(here) {
                    return Err(out_of_step("a mark on a stream no download follows"));
                }
                let _ = cursor.take_payload(avail);
                at += avail;
                plain += avail;
                continue;
            };
            if flags & PADDED != 0 {
                return Err(out_of_step("a padded DATA frame on a followed stream"));
            }
            let script = scripts
                .scripts
                .get(&id)
                .ok_or_else(|| out_of_step("a followed stream with no script"))?;
            let passed = ahead.iter().find(|(i, _)| *i == id).map_or(0, |(_, n)| *n);
            match script.at(passed) {
                None => return Err(out_of_step("payload past what the body yielded")),
                Some(Segment::Real(run)) => {
                    if is_mark(here) {
                        return Err(out_of_step("a mark where the script has real bytes"));
                    }
                    let take = avail.min(usize::try_from(run).unwrap_or(usize::MAX));
                    let _ = cursor.take_payload(take);
                    at += take;
                    plain += take;
                    match ahead.iter_mut().find(|(i, _)| *i == id) {
                        Some((_, n)) => *n += take as u64,
                        None => ahead.push((id, take as u64)),
                    }
                }
                Some(Segment::File { offset, len }) => {
                    if plain > 0 {
                        return Ok(Plan::Plain {
                            len: plain,
                            more: true,
                        });
                    }
                    let want = usize::try_from(len).unwrap_or(usize::MAX).min(left);
                    let len = placeholders(&bufs[index..], at, want)?;
                    return Ok(Plan::File { id, offset, len });
                }
            }
        }
    }
    Ok(Plan::Plain {
        len: plain,
        more: false,
    })
}

/// How many of the next `want` bytes (from `at` in the first buffer on) are there to
/// stand for a file's bytes: a mark, or zeros h2 copied from one. Anything else there is
/// out of step.
fn placeholders(bufs: &[IoSlice<'_>], at: usize, want: usize) -> io::Result<usize> {
    let mut got = 0;
    for (i, buf) in bufs.iter().enumerate() {
        let bytes: &[u8] = buf;
        let bytes = if i == 0 { &bytes[at..] } else { bytes };
        let piece = &bytes[..bytes.len().min(want - got)];
        if !is_mark(piece) && piece.iter().any(|&b| b != 0) {
            return Err(out_of_step(
                "a file's run where the buffer holds other bytes",
            ));
        }
        got += piece.len();
        if got == want {
            break;
        }
    }
    Ok(got)
}

/// The first `n` bytes of `bufs` (planned plain) went out: the cursor and the scripts
/// move past them.
fn passed_plain(cursor: &mut FrameCursor, scripts: &mut Scripts, bufs: &[IoSlice<'_>], n: usize) {
    let mut n = n;
    for buf in bufs {
        let bytes: &[u8] = buf;
        let mut at = 0;
        while at < bytes.len() && n > 0 {
            let here = &bytes[at..];
            let (take, ended) = match cursor.next() {
                Next::Head(want) => {
                    let take = want.min(here.len()).min(n);
                    (take, cursor.take_head(&here[..take]))
                }
                Next::Payload {
                    kind, stream, left, ..
                } => {
                    let take = left.min(here.len()).min(n);
                    let followed = (kind == DATA)
                        .then(|| scripts.streams.get(&stream).copied())
                        .flatten();
                    if let Some(script) = followed.and_then(|id| scripts.scripts.get_mut(&id)) {
                        script.consume(take as u64);
                    }
                    (take, cursor.take_payload(take))
                }
            };
            if let Some(stream) = ended {
                scripts.ended(stream);
            }
            at += take;
            n -= take;
        }
    }
}

/// The first `n` bytes of `bufs`, for one `writev`.
fn front<'a>(bufs: &'a [IoSlice<'a>], n: usize) -> Vec<IoSlice<'a>> {
    let mut out = Vec::with_capacity(bufs.len());
    let mut left = n;
    for buf in bufs {
        if left == 0 {
            break;
        }
        let bytes: &'a [u8] = buf;
        let take = bytes.len().min(left);
        out.push(IoSlice::new(&bytes[..take]));
        left -= take;
    }
    out
}

fn out_of_step(what: &str) -> io::Error {
    tracing::error!(
        what,
        "an HTTP/2 download's script and its frames are out of step"
    );
    io::Error::other(format!("download bookkeeping out of step: {what}"))
}

impl AsyncRead for H2SendfileIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for H2SendfileIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            let planned = plan(this.cursor, &this.sends.lock(), bufs)?;
            match planned {
                Plan::Bind {
                    id,
                    stream,
                    position,
                } => this.sends.lock().bind(id, stream, position),
                Plan::File { id, offset, len } => return this.poll_send_file(cx, id, offset, len),
                Plan::Plain { len: 0, .. } => return Poll::Ready(Ok(0)),
                Plan::Plain { len, more } => {
                    // Most writes are plain to their end: no copy of the slice list then.
                    let cut;
                    let slices = if bufs.iter().map(|b| b.len()).sum::<usize>() == len {
                        bufs
                    } else {
                        cut = front(bufs, len);
                        &cut[..]
                    };
                    let written = if more {
                        ready!(this.poll_write_more(cx, slices))?
                    } else {
                        ready!(Pin::new(&mut this.tcp).poll_write_vectored(cx, slices))?
                    };
                    passed_plain(&mut this.cursor, &mut this.sends.lock(), bufs, written);
                    return Poll::Ready(Ok(written));
                }
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use airlock_service::{Receipt, SendsFiles};
    use bytes::Bytes;
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::h2_frames::{HEADERS, head};
    use crate::h2_script::H2Download;

    /// The daemon's side, wrapped, and a reader of everything the client gets.
    async fn pair(sends: H2Sends) -> (H2SendfileIo, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let mut client = client.unwrap();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        (H2SendfileIo::new(accepted.unwrap().0, sends), reader)
    }

    /// Writes a frame as h2 does: its head and `copied` payload bytes in its own buffer,
    /// then `chained` (the rest of the payload, as the chunk itself), through partial
    /// writes.
    async fn frame(io: &mut H2SendfileIo, buffered: &[u8], chained: &[u8]) -> io::Result<()> {
        let (mut a, mut b) = (buffered, chained);
        while !a.is_empty() || !b.is_empty() {
            let n = io
                .write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
                .await?;
            let from_a = n.min(a.len());
            a = &a[from_a..];
            b = &b[n - from_a..];
        }
        Ok(())
    }

    struct Download {
        script: H2Download,
        chunks: airlock_service::ByteStream,
        content: Vec<u8>,
        _dir: tempfile::TempDir,
    }

    fn download(sends: &H2Sends, len: usize) -> Download {
        let content: Vec<u8> = (0..len).map(|i| (i * 31 + i / 977) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&content)
            .unwrap();
        let script = sends.download().unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let chunks = script.body(file, 0, len as u64, Arc::new(Receipt::default()));
        Download {
            script,
            chunks,
            content,
            _dir: dir,
        }
    }

    /// The daemon's side of a connection and what its client should get.
    struct Wire {
        io: H2SendfileIo,
        want: Vec<u8>,
    }

    impl Wire {
        /// A frame of type `kind` with `flags` on `stream`, as h2 writes it: `copied`
        /// in its buffer after the head, `chained` after that; `truth` is what its
        /// payload must arrive as.
        async fn frame(
            &mut self,
            (kind, flags, stream): (u8, u8, u32),
            copied: &[u8],
            chained: &[u8],
            truth: &[u8],
        ) {
            let mut buffered = head(copied.len() + chained.len(), kind, flags, stream);
            self.want.extend(&buffered);
            self.want.extend(truth);
            buffered.extend(copied);
            frame(&mut self.io, &buffered, chained).await.unwrap();
        }
    }

    /// A download's stream as h2 would write it: small payloads copied whole, large
    /// ones with their first bytes copied and the rest chained, a mark cut into a tiny
    /// frame, another stream's data between, the trailers at the end. The client gets
    /// the file's bytes where the marks stood, and the script is gone with the stream.
    #[tokio::test]
    async fn a_followed_stream_gets_its_files_bytes_however_h2_cuts_it() {
        let sends = H2Sends::default();
        let mut d = download(&sends, (1 << 20) + 256 * 1024);
        let (io, reader) = pair(sends.clone()).await;
        let from_file = airlock_service::ByteCounter::default();
        let io = io.counting_into(from_file.clone());
        let mut w = Wire { io, want: vec![] };
        let s1 = (DATA, 0, 1);
        // The server's SETTINGS and the response's head.
        w.frame((0x4, 0, 0), &[0; 6], &[], &[0; 6]).await;
        w.frame((HEADERS, 0x4, 1), &[0x88], &[], &[0x88]).await;
        // The header message: real, copied whole.
        let header = Bytes::from_static(b"\0\0\0\0\x0eheader message");
        d.script.record(&header);
        w.frame(s1, &header, &[], &header).await;
        // The first chunk, read: its message head, then the chunk in two frames, the
        // first of which binds the download.
        let real = d.chunks.next().await.unwrap().unwrap();
        assert!(!is_mark(&real));
        let chunk_head = Bytes::from_static(b"\0\x00\x04\x00\x06\x12\x80\x80\x10");
        d.script.record(&chunk_head);
        d.script.record(&real);
        w.frame(s1, &chunk_head, &[], &chunk_head).await;
        let (a, b) = real.split_at(100_000);
        w.frame(s1, &a[..247], &a[247..], a).await;
        w.frame(s1, &b[..247], &b[247..], b).await;
        // Another stream's data, not followed.
        w.frame((DATA, 0, 3), b"other stream", &[], b"other stream")
            .await;
        // Bound by now: the next chunk is a mark for the file's next MiB.
        let mark = d.chunks.next().await.unwrap().unwrap();
        assert!(is_mark(&mark));
        assert_eq!(mark.len(), 1 << 20);
        d.script.record(&chunk_head);
        d.script.record(&mark);
        let truth = &d.content[real.len()..real.len() + mark.len()];
        w.frame(s1, &chunk_head, &[], &chunk_head).await;
        // A tiny frame, copied whole (zeros in h2's buffer)…
        w.frame(s1, &mark[..100], &[], &truth[..100]).await;
        // …a frame with its head copied and the rest chained…
        w.frame(
            s1,
            &mark[100..347],
            &mark[347..600_000],
            &truth[100..600_000],
        )
        .await;
        w.frame((DATA, 0, 3), b"more", &[], b"more").await;
        w.frame(
            s1,
            &mark[600_000..600_247],
            &mark[600_247..],
            &truth[600_000..],
        )
        .await;
        assert!(d.chunks.next().await.is_none());
        // The trailers end the stream, and its script with it.
        w.frame((HEADERS, 0x5, 1), &[0x88], &[], &[0x88]).await;
        drop(d.script);
        assert!(sends.lock().scripts.is_empty());
        w.io.shutdown().await.unwrap();
        drop(w.io);
        let got = reader.await.unwrap();
        assert_eq!(got.len(), w.want.len());
        assert!(got == w.want, "the client got other bytes than the file's");
        // The mark's MiB went from the file, the real chunk as it was read.
        assert_eq!(from_file.get(), 1 << 20);
    }

    /// A file cut short while it is sent ends the connection with an error, not with
    /// a frame filled out by other bytes.
    #[tokio::test]
    async fn a_file_cut_short_fails_the_connection() {
        let sends = H2Sends::default();
        let mut d = download(&sends, 2 << 20);
        let (io, _reader) = pair(sends.clone()).await;
        let mut w = Wire { io, want: vec![] };
        let real = d.chunks.next().await.unwrap().unwrap();
        d.script.record(&real);
        w.frame((DATA, 0, 1), &real[..247], &real[247..], &real)
            .await;
        let mark = d.chunks.next().await.unwrap().unwrap();
        assert!(is_mark(&mark));
        d.script.record(&mark);
        std::fs::File::options()
            .write(true)
            .open(d._dir.path().join("f"))
            .unwrap()
            .set_len(real.len() as u64 + 1_000)
            .unwrap();
        let mut buffered = head(mark.len(), DATA, 0, 1);
        buffered.extend(&mark[..247]);
        let cut = frame(&mut w.io, &buffered, &mark[247..]).await.unwrap_err();
        assert_eq!(cut.kind(), io::ErrorKind::UnexpectedEof, "{cut}");
    }

    /// A mark on a stream nothing follows, and bytes that are not a placeholder where
    /// the script has a file's run, fail the write instead of going out.
    #[tokio::test]
    async fn bytes_out_of_step_fail_the_connection() {
        let sends = H2Sends::default();
        let (mut io, _reader) = pair(sends.clone()).await;
        let mark = &crate::sendfile::MARKS[..1000];
        let stray = frame(&mut io, &head(1000, DATA, 0, 9), mark)
            .await
            .unwrap_err();
        assert!(stray.to_string().contains("out of step"), "{stray}");

        let sends = H2Sends::default();
        let mut d = download(&sends, 2 << 20);
        let (mut io, _reader) = pair(sends.clone()).await;
        let real = d.chunks.next().await.unwrap().unwrap();
        d.script.record(&real);
        let mut buffered = head(real.len(), DATA, 0, 1);
        buffered.extend(&real[..247]);
        frame(&mut io, &buffered, &real[247..]).await.unwrap();
        let mark = d.chunks.next().await.unwrap().unwrap();
        assert!(is_mark(&mark));
        d.script.record(&mark);
        let mut buffered = head(300, DATA, 0, 1);
        buffered.extend([0u8; 299]);
        buffered.push(1);
        let wrong = frame(&mut io, &buffered, &[]).await.unwrap_err();
        assert!(wrong.to_string().contains("out of step"), "{wrong}");
    }
}
