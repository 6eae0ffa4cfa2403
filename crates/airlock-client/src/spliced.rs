//! A file's download moved from the socket into a local file by the kernel. reqwest
//! copies each byte of a body into buffers of its own, and writing those into the file
//! copies it again. Here the request goes out on a socket of the client's own
//! ([`crate::direct`]) and, once the answer says 200 with a length, `splice` moves the
//! socket's pages into a pipe without a copy, and from the pipe into the file with one,
//! into the page cache. Anything else (https, a proxy, an answer framed another way) is
//! left to reqwest; a file that takes no `splice` (opened to append, a terminal) is
//! written from the pipe by `read` and `write` instead.

use std::io::{self, Write};
use std::sync::Arc;

use reqwest::{StatusCode, Url};
use rustix::io::Errno;
use rustix::pipe::{PipeFlags, SpliceFlags};
use tokio::sync::mpsc;

use crate::direct::{self, Answer, Target, broken};
use crate::files::{Download, described};
use crate::{Client, Error, IDLE_TIMEOUT};

/// The pipe's size, so each `splice` moves up to this much.
const PIPE: usize = 1024 * 1024;

/// Downloads `url` into `file` at its offset, telling `seen` of each piece; `file`
/// back, nothing written, when reqwest must do it.
pub(crate) async fn read_to_file(
    client: &Client,
    url: &Url,
    file: std::fs::File,
    seen: &mut (impl FnMut(usize) + Send),
) -> Result<Result<Download, std::fs::File>, Error> {
    let Some(target) = Target::get(url, &client.token) else {
        return Ok(Err(file));
    };
    let Some(answer) = direct::ask(&target, &client.sockets).await? else {
        return Ok(Err(file));
    };
    let status = answer.status;
    let length = match answer.length {
        Some(length) if status == StatusCode::OK => length,
        Some(_) if status.is_client_error() || status.is_server_error() => {
            let body = answer.small_body(&client.sockets).await?;
            return Err(crate::answer_error(status, &body));
        }
        _ => return Ok(Err(file)),
    };
    let (mode, mtime) = described(|name| answer.header(name));
    let Answer {
        early,
        stream,
        reusable,
        ..
    } = answer;
    let stream = stream.into_std().map_err(broken)?;
    stream.set_nonblocking(false).map_err(broken)?;
    // A `splice` from a socket waits at most this long, as the other paths' reads do.
    stream
        .set_read_timeout(Some(IDLE_TIMEOUT))
        .map_err(broken)?;
    let stream = Arc::new(stream);
    let mut shut = ShutOnDrop(Some(stream.clone()));
    let (told, mut moved) = mpsc::unbounded_channel();
    let mover =
        tokio::task::spawn_blocking(move || move_body(&stream, &file, &early, length, &told));
    while let Some(n) = moved.recv().await {
        seen(n);
    }
    mover
        .await
        .map_err(|e| Error::Local(io::Error::other(e)))??;
    let stream = shut.0.take().and_then(Arc::into_inner);
    if reusable
        && let Some(stream) = stream
        && stream.set_read_timeout(None).is_ok()
        && stream.set_nonblocking(true).is_ok()
    {
        client.sockets.put(stream);
    }
    Ok(Ok(Download {
        size: length,
        mode,
        mtime,
    }))
}

/// Shuts the connection down if the download is dropped half-way, which ends the
/// thread's `splice` at once rather than when the daemon is done sending.
struct ShutOnDrop(Option<Arc<std::net::TcpStream>>);

impl Drop for ShutOnDrop {
    fn drop(&mut self) {
        if let Some(stream) = &self.0 {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Writes the body's `length` bytes into `file`: `early` (read with the head), then the
/// rest from `socket` through a pipe. Tells `seen` each piece's size.
fn move_body(
    socket: &std::net::TcpStream,
    file: &std::fs::File,
    early: &[u8],
    length: u64,
    seen: &mpsc::UnboundedSender<usize>,
) -> Result<(), Error> {
    if early.len() as u64 > length {
        return Err(Error::Protocol(
            "the daemon sent more than the file's length".into(),
        ));
    }
    let mut out = Out {
        file,
        spliced: true,
        spare: Vec::new(),
    };
    out.file.write_all(early).map_err(Error::Local)?;
    let _ = seen.send(early.len());
    let mut left = length - early.len() as u64;
    if left == 0 {
        return Ok(());
    }
    let (from, into) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(local)?;
    // A pipe is 64 KiB unless made larger; an unprivileged process may be held to less
    // than asked, which only means more calls.
    let room = rustix::pipe::fcntl_setpipe_size(&into, PIPE).unwrap_or(64 * 1024);
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(room);
        let flags = SpliceFlags::MOVE | SpliceFlags::MORE;
        let n = match rustix::pipe::splice(socket, None, &into, None, want, flags) {
            Ok(0) => {
                return Err(Error::Protocol(format!(
                    "the daemon closed the connection {left} bytes before the file's end"
                )));
            }
            Ok(n) => n,
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => return Err(crate::stalled()),
            Err(e) => return Err(broken(e.into())),
        };
        out.drain(&from, n)?;
        left -= n as u64;
        let _ = seen.send(n);
    }
    Ok(())
}

/// The local file the pipe is emptied into.
struct Out<'a> {
    file: &'a std::fs::File,
    /// Whether the file still takes `splice`.
    spliced: bool,
    /// The buffer for files that do not.
    spare: Vec<u8>,
}

impl Out<'_> {
    /// Moves `n` bytes from `pipe` into the file.
    fn drain(&mut self, pipe: &impl std::os::fd::AsFd, mut n: usize) -> Result<(), Error> {
        while n > 0 {
            if self.spliced {
                match rustix::pipe::splice(pipe, None, self.file, None, n, SpliceFlags::MOVE) {
                    Ok(0) => return Err(Error::Local(io::ErrorKind::WriteZero.into())),
                    Ok(m) => n -= m,
                    // A file opened to append, a terminal, a socket: no `splice` into it.
                    Err(Errno::INVAL) => self.spliced = false,
                    Err(Errno::INTR) => {}
                    Err(e) => return Err(local(e)),
                }
                continue;
            }
            self.spare.resize(n.min(PIPE), 0);
            let got = match rustix::io::read(pipe, &mut self.spare[..]) {
                Ok(got) => got,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(local(e)),
            };
            self.file
                .write_all(&self.spare[..got])
                .map_err(Error::Local)?;
            n -= got;
        }
        Ok(())
    }
}

fn local(errno: Errno) -> Error {
    Error::Local(errno.into())
}

#[cfg(test)]
#[path = "spliced_tests.rs"]
mod tests;
