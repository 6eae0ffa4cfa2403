//! A body that comes straight from a connection's socket: its bytes moved into the file
//! by the kernel (`splice` through a pipe), never read into the daemon. Reading a body
//! into buffers and writing it out again is two copies per byte; a socket's pages move
//! into a pipe without one, and from the pipe into the page cache with one.
//!
//! The checksums read the file back, on a thread of their own a piece behind the
//! writing.

use std::io::{self, BufRead, Read, Seek, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::pipe::{PipeFlags, SpliceFlags};

use crate::{Checks, Checksums, Hasher};

/// The pipe's size, so each `splice` moves up to this much.
const PIPE: usize = 1024 * 1024;

/// A body of exactly `len` bytes: `early` (read with the request's head), then the rest
/// from `socket`.
#[derive(Debug)]
pub struct SocketBody {
    /// The connection, its body next to read.
    socket: OwnedFd,
    /// Body bytes already read from the socket.
    early: Vec<u8>,
    /// The body's whole length, `early` included.
    len: u64,
    /// How long the client may send nothing before the body fails as stalled.
    idle: Duration,
    /// The body's bytes taken off the connection so far, `early` included.
    taken: Arc<AtomicU64>,
}

impl SocketBody {
    /// A body of `len` bytes, `early` of them already read, the rest to come on `socket`
    /// (which may be non-blocking: the engine waits for it). More early bytes than `len`
    /// is a client out of step with its own request.
    pub fn new(socket: OwnedFd, early: Vec<u8>, len: u64, idle: Duration) -> io::Result<Self> {
        if early.len() as u64 > len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "more body bytes came than the length announced",
            ));
        }
        let taken = Arc::new(AtomicU64::new(early.len() as u64));
        Ok(Self {
            socket,
            early,
            len,
            idle,
            taken,
        })
    }

    /// A count of the body's bytes taken off the connection so far (those that came
    /// with the request's head included), still readable once the body is used up: what
    /// a face counts as received.
    pub fn taken(&self) -> Arc<AtomicU64> {
        self.taken.clone()
    }

    /// The body's whole length, as the client announced it.
    pub fn length(&self) -> u64 {
        self.len
    }

    /// Moves the whole body into `file` at its position and answers its checksums. A
    /// client that goes away early is `ConnectionAborted`, one that goes quiet
    /// `TimedOut`: the file then holds a prefix, which the caller throws away.
    pub(crate) fn move_into(
        &mut self,
        file: &std::fs::File,
        checks: &Checks,
    ) -> io::Result<Checksums> {
        let sums = self.append_to(file, Some(Hasher::new(checks))).ended?;
        sums.ok_or_else(|| io::Error::other("a hashed body came without its checksums"))
    }

    /// Moves the body into `file` at its position (an upload's partial file, say),
    /// answering how many bytes went in, also when it then failed (a client gone
    /// mid-way), and, when given `hasher`, the checksums of the body's bytes.
    pub fn append_to(&mut self, file: &std::fs::File, hasher: Option<Hasher>) -> Moved {
        let mut moved = 0;
        let ended = self.append_counted(file, hasher, &mut moved);
        Moved {
            bytes: moved,
            ended,
        }
    }

    fn append_counted(
        &mut self,
        file: &std::fs::File,
        mut hasher: Option<Hasher>,
        moved: &mut u64,
    ) -> io::Result<Option<Checksums>> {
        let early = std::mem::take(&mut self.early);
        let left = self.len - early.len() as u64;
        (&*file).write_all(&early)?;
        *moved += early.len() as u64;
        if let Some(hasher) = hasher.as_mut() {
            hasher.update(&early);
        }
        if left == 0 {
            return Ok(hasher.map(Hasher::finish));
        }
        let pipe = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
        let Some(hasher) = hasher else {
            return self.pump(&pipe, file, left, moved, None).map(|()| None);
        };
        // The checksum reads back what is written, on another thread, a piece behind
        // this one: the copy into the file and the checksum's pass run side by side,
        // where one after the other they set an upload's pace.
        let start = (&*file).stream_position()?;
        std::thread::scope(|scope| {
            let (written, pieces) = std::sync::mpsc::channel();
            let summing = scope.spawn(move || sum_file(file, start, &pieces, hasher));
            let moved = self.pump(&pipe, file, left, moved, Some(&written));
            // The end of the pieces tells the checksum's thread the body is whole.
            drop(written);
            let sums = summing
                .join()
                .map_err(|_| io::Error::other("the checksum's thread panicked"))?;
            moved.and(sums.map(Some))
        })
    }

    /// Moves `left` bytes from the socket through `pipe` into `file`, counting them into
    /// `moved` and telling `written` of each piece once it is in the file.
    fn pump(
        &self,
        (from, into): &(OwnedFd, OwnedFd),
        file: &std::fs::File,
        mut left: u64,
        moved: &mut u64,
        written: Option<&std::sync::mpsc::Sender<usize>>,
    ) -> io::Result<()> {
        // An unprivileged daemon may be held to a smaller pipe: only more calls.
        let room = rustix::pipe::fcntl_setpipe_size(into, PIPE).unwrap_or(64 * 1024);
        let mut out = Drain {
            file,
            spliced: true,
            spare: Vec::new(),
        };
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(room);
            let n = self.splice_some(into, want)?;
            out.drain(from, n)?;
            left -= n as u64;
            *moved += n as u64;
            // A checksum thread that failed is heard from at the join.
            if let Some(written) = written {
                let _ = written.send(n);
            }
        }
        Ok(())
    }

    /// A handle that ends the body from another thread, as if the client had stopped
    /// sending: what is already in the file stays, and the move ends as cut short.
    pub fn stopper(&self) -> io::Result<BodyStopper> {
        Ok(BodyStopper(self.socket.try_clone()?))
    }

    /// Moves up to `want` bytes from the socket into `pipe`, waiting up to the idle
    /// timeout for some to arrive.
    fn splice_some(&self, pipe: &OwnedFd, want: usize) -> io::Result<usize> {
        loop {
            let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
            match rustix::pipe::splice(&self.socket, None, pipe, None, want, flags) {
                Ok(0) => return Err(gone()),
                Ok(n) => {
                    self.taken.fetch_add(n as u64, Ordering::Relaxed);
                    return Ok(n);
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => self.wait_readable()?,
                Err(e) => return Err(io::Error::new(io::ErrorKind::ConnectionAborted, e)),
            }
        }
    }

    /// Waits for the socket to have something to read (or to close) within the idle
    /// timeout.
    fn wait_readable(&self) -> io::Result<()> {
        let timeout = Timespec::try_from(self.idle).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        });
        loop {
            let mut fds = [PollFd::new(&self.socket, PollFlags::IN)];
            match rustix::event::poll(&mut fds, Some(&timeout)) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("client sent nothing for {} s", self.idle.as_secs()),
                    ));
                }
                Ok(_) => return Ok(()),
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The body as a reader, for a backend that cannot take a socket (its files are on
    /// another machine): exactly `len` bytes, the same errors.
    pub fn into_reader(mut self) -> impl BufRead + Send {
        let early = io::Cursor::new(std::mem::take(&mut self.early));
        let rest = self.len - early.get_ref().len() as u64;
        let socket = SocketReader {
            body: self,
            left: rest,
        };
        io::BufReader::with_capacity(crate::write::BUFFER, early.chain(socket))
    }
}

/// How far a body got into a file.
#[derive(Debug)]
pub struct Moved {
    /// Bytes now in the file, counted also when the move then failed.
    pub bytes: u64,
    /// How it ended: the body's checksums when a hasher was given.
    pub ended: io::Result<Option<Checksums>>,
}

/// Ends a [`SocketBody`]'s move from another thread.
#[derive(Debug)]
pub struct BodyStopper(OwnedFd);

impl BodyStopper {
    /// Shuts the connection's reading: the move sees the body's end come early. The
    /// connection can still carry the answer.
    pub fn stop(&self) {
        let _ = rustix::net::shutdown(&self.0, rustix::net::Shutdown::Read);
    }
}

/// The socket's part of a body, read with the same waits and errors as `splice`'s.
struct SocketReader {
    body: SocketBody,
    left: u64,
}

impl Read for SocketReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        loop {
            match rustix::io::read(&self.body.socket, &mut buf[..want]) {
                Ok(0) => return Err(gone()),
                Ok(n) => {
                    self.left -= n as u64;
                    self.body.taken.fetch_add(n as u64, Ordering::Relaxed);
                    return Ok(n);
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => self.body.wait_readable()?,
                Err(e) => return Err(io::Error::new(io::ErrorKind::ConnectionAborted, e)),
            }
        }
    }
}

/// Reads `file` from `at` into `hasher`, each piece once `written` says it is there,
/// until `written` ends.
fn sum_file(
    file: &std::fs::File,
    mut at: u64,
    written: &std::sync::mpsc::Receiver<usize>,
    mut hasher: Hasher,
) -> io::Result<Checksums> {
    let mut seen = vec![0u8; PIPE];
    while let Ok(n) = written.recv() {
        let piece = &mut seen[..n];
        std::os::unix::fs::FileExt::read_exact_at(file, piece, at)?;
        hasher.update(piece);
        at += n as u64;
    }
    Ok(hasher.finish())
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "the client closed the connection before the body's end",
    )
}

/// The file the pipe is emptied into.
struct Drain<'a> {
    file: &'a std::fs::File,
    /// Whether the file still takes `splice`.
    spliced: bool,
    /// The buffer for a file that does not.
    spare: Vec<u8>,
}

impl Drain<'_> {
    /// Moves `n` bytes from `pipe` into the file.
    fn drain(&mut self, pipe: &impl AsFd, mut n: usize) -> io::Result<()> {
        while n > 0 {
            if self.spliced {
                match rustix::pipe::splice(pipe, None, self.file, None, n, SpliceFlags::MOVE) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(m) => n -= m,
                    // A filesystem without `splice` into its files.
                    Err(Errno::INVAL) => self.spliced = false,
                    Err(Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            self.spare.resize(n.min(PIPE), 0);
            let got = match rustix::io::read(pipe, &mut self.spare[..]) {
                Ok(got) => got,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            (&*self.file).write_all(&self.spare[..got])?;
            n -= got;
        }
        Ok(())
    }
}
