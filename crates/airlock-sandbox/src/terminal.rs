//! Terminals for commands that ask for one (E2B's `pty`): a pseudo-terminal pair opened by
//! the daemon. The command gets the replica side as its stdin, stdout, stderr and
//! controlling terminal (the exec helper claims it after `setsid`); the daemon keeps the
//! primary side, reading what the command writes and writing what its user types.
//! Resizing sets the window size, and the kernel tells the command with `SIGWINCH`.
//!
//! The replica is a descriptor, never a path inside the sandbox: the sandbox's `/dev`
//! has no `pts`, so nothing in it can open another terminal.

use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSize {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
}

/// The daemon's side of a command's terminal.
#[derive(Debug, Clone)]
pub struct Terminal {
    primary: Arc<AsyncFd<OwnedFd>>,
}

impl Terminal {
    /// Opens a terminal pair of `size`: the daemon's side, and the replica for the command.
    pub fn open(size: WindowSize) -> io::Result<(Self, OwnedFd)> {
        let primary = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY)?;
        rustix::io::fcntl_setfd(&primary, rustix::io::FdFlags::CLOEXEC)?;
        rustix::pty::grantpt(&primary)?;
        rustix::pty::unlockpt(&primary)?;
        let name = rustix::pty::ptsname(&primary, Vec::new())?;
        let replica = rustix::fs::open(
            name.as_c_str(),
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        rustix::termios::tcsetwinsize(&replica, winsize(size))?;
        let flags = rustix::fs::fcntl_getfl(&primary)?;
        rustix::fs::fcntl_setfl(&primary, flags | OFlags::NONBLOCK)?;
        // SAFETY: the OwnedFd moves into the AsyncFd, so it stays open and the same
        // description for the AsyncFd's whole life.
        let primary =
            unsafe { AsyncFd::register(primary) }.map_err(|e| io::Error::other(e.to_string()))?;
        let primary = Arc::new(primary);
        Ok((Self { primary }, replica))
    }

    /// Sets the window size; the command's foreground group gets `SIGWINCH`.
    pub fn resize(&self, size: WindowSize) -> io::Result<()> {
        Ok(rustix::termios::tcsetwinsize(
            self.primary.get_ref(),
            winsize(size),
        )?)
    }

    /// A reader of what the command writes and a writer of what it reads; both may be
    /// used at once from different tasks.
    pub fn io(&self) -> TerminalIo {
        TerminalIo(self.primary.clone())
    }
}

fn winsize(size: WindowSize) -> Winsize {
    Winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// One handle on a terminal's daemon side, as async I/O.
#[derive(Debug)]
pub struct TerminalIo(Arc<AsyncFd<OwnedFd>>);

impl AsyncRead for TerminalIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut *unfilled)?)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // Not readable after all: wait again.
                Err(_) => continue,
                // Every replica is closed: the command and all it left are gone. That
                // is the terminal's end of file.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for TerminalIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            match guard.try_io(|fd| Ok(rustix::io::write(fd.get_ref(), data)?)) {
                Ok(result) => return Poll::Ready(result),
                Err(_) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn what_is_typed_echoes_and_the_end_of_every_replica_is_end_of_file() {
        let (terminal, replica) = Terminal::open(WindowSize { cols: 80, rows: 24 }).unwrap();
        let size = rustix::termios::tcgetwinsize(&replica).unwrap();
        assert_eq!((size.ws_col, size.ws_row), (80, 24));
        terminal
            .resize(WindowSize {
                cols: 120,
                rows: 40,
            })
            .unwrap();
        let size = rustix::termios::tcgetwinsize(&replica).unwrap();
        assert_eq!((size.ws_col, size.ws_row), (120, 40));
        let mut io = terminal.io();
        io.write_all(b"hi\n").await.unwrap();
        let mut echoed = [0u8; 4];
        io.read_exact(&mut echoed).await.unwrap();
        // The line discipline echoes, turning the newline into CR LF.
        assert_eq!(&echoed, b"hi\r\n");
        drop(replica);
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.unwrap();
    }
}
