//! The daemon's side of the helpers: starting them (through the forker, or spawned when
//! there is none) with their spec in a memfd, and holding a sandbox's init in a pidfd
//! that async code can await.

use std::io::{self, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::process::{Command, Stdio};

use rustix::pipe::{PipeFlags, pipe_with};
use serde::Serialize;
use tokio::net::unix::pipe;

use crate::forker::{Forker, Helper};
use crate::helper_process::HelperProcess;

/// Hidden subcommand that runs the init helper.
pub const INIT_HELPER: &str = "__airlock-init";
/// Hidden subcommand that runs the exec helper.
pub const EXEC_HELPER: &str = "__airlock-exec";

/// The daemon's one forker.
static FORKER: Forker = Forker::new();

/// Ends the forker, if one runs, and reaps it.
pub fn stop_forker() {
    FORKER.stop();
}

/// What one of a helper's standard streams is.
#[derive(Debug)]
pub enum Stream {
    /// `/dev/null`.
    Null,
    /// A pipe whose other end the daemon keeps.
    Piped,
    /// The daemon's own stream of that number.
    Inherit,
    /// This descriptor (a terminal's replica).
    Given(OwnedFd),
}

/// The standard streams of a helper.
#[derive(Debug)]
pub struct HelperIo {
    pub stdin: Stream,
    pub stdout: Stream,
    pub stderr: Stream,
}

/// A helper just started, with the daemon's ends of its piped streams.
#[derive(Debug)]
pub struct Started {
    pub process: HelperProcess,
    pub stdin: Option<pipe::Sender>,
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
}

/// Starts helper `kind` with `spec` in a memfd and, when given, the sandbox init's pidfd.
/// The forker makes it when it can (see `forker`); otherwise it is spawned from the
/// binary `helper_binary` chose, with both descriptors named in its arguments.
///
/// Spawning runs nothing between fork and exec, so std spawns through `posix_spawn`,
/// which shares the daemon's memory until the exec instead of copying its page tables as
/// `fork` does. The price is that both descriptors are inheritable until the spawn
/// returns, so a child spawned at the same moment gets them too: helpers close every
/// descriptor they were not given before anything else (`spec::read_spec`), and the only
/// other child the daemon starts is the host's `mkfs.ext4`.
pub fn spawn_helper(
    kind: Helper,
    spec: &impl Serialize,
    io: HelperIo,
    init: Option<&InitProcess>,
) -> io::Result<Started> {
    let memfd = rustix::fs::memfd_create("airlock-spec", rustix::fs::MemfdFlags::empty())?;
    let mut file = std::fs::File::from(memfd);
    // Encoded whole, then written at once: `to_writer` on the bare file made one write
    // call per JSON token, some 150 for a command's spec.
    file.write_all(&serde_json::to_vec(spec).map_err(io::Error::other)?)?;
    file.rewind()?;
    let (stdin, our_stdin) = stream(io.stdin, 0, false)?;
    let (stdout, our_stdout) = stream(io.stdout, 1, true)?;
    let (stderr, our_stderr) = stream(io.stderr, 2, true)?;
    let mut fds = vec![file.as_fd(), stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
    fds.extend(init.map(|i| i.0.pidfd()));
    let pid = match FORKER.fork(kind, &fds)? {
        Some(pid) => pid,
        None => spawn(kind, &file, [stdin, stdout, stderr], init)?,
    };
    Ok(Started {
        process: HelperProcess::adopt(pid)?,
        stdin: our_stdin.map(pipe::Sender::from_owned_fd).transpose()?,
        stdout: our_stdout.map(pipe::Receiver::from_owned_fd).transpose()?,
        stderr: our_stderr.map(pipe::Receiver::from_owned_fd).transpose()?,
    })
}

/// The helper's end of a stream and, for a pipe, ours. `to_helper`: the helper writes it.
fn stream(stream: Stream, number: i32, to_helper: bool) -> io::Result<(OwnedFd, Option<OwnedFd>)> {
    Ok(match stream {
        Stream::Null => (
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")?
                .into(),
            None,
        ),
        Stream::Inherit => {
            // SAFETY: stdio stays open for the daemon's whole life.
            let own = unsafe { BorrowedFd::borrow_raw(number) };
            (rustix::io::fcntl_dupfd_cloexec(own, 3)?, None)
        }
        Stream::Given(fd) => (fd, None),
        Stream::Piped => {
            let (read, write) = pipe_with(PipeFlags::CLOEXEC)?;
            if to_helper {
                (write, Some(read))
            } else {
                (read, Some(write))
            }
        }
    })
}

/// Spawns the helper from its binary: the way without a forker.
fn spawn(
    kind: Helper,
    spec: &std::fs::File,
    [stdin, stdout, stderr]: [OwnedFd; 3],
    init: Option<&InitProcess>,
) -> io::Result<i32> {
    // `dup` leaves the copy without close-on-exec; the init keeps its own pidfd private.
    let pidfd = init.map(|i| rustix::io::dup(i.0.pidfd())).transpose()?;
    let subcommand = match kind {
        Helper::Init => INIT_HELPER,
        Helper::Exec => EXEC_HELPER,
    };
    let child = Command::new(crate::helper_binary::program())
        .arg(subcommand)
        .arg(spec.as_raw_fd().to_string())
        .args(pidfd.as_ref().map(|fd| fd.as_raw_fd().to_string()))
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .env_clear()
        .spawn()?;
    drop(pidfd);
    // Dropping std's handle neither waits nor kills: the pidfd holds it from here.
    Ok(child.id() as i32)
}

/// A sandbox's pid 1, held by a pidfd: signals can never hit a recycled pid, and it is our
/// child (the helper forked it with CLONE_PARENT) so it stays unreaped until we reap it.
#[derive(Debug)]
pub struct InitProcess(HelperProcess);

impl InitProcess {
    /// Wraps init `pid`, which must be an unreaped child of this process.
    pub fn adopt(pid: i32) -> io::Result<Self> {
        HelperProcess::adopt(pid).map(Self)
    }

    /// Sends a signal to the init; one that has ended is not an error.
    pub fn signal(&self, signal: libc::c_int) -> io::Result<()> {
        match self.0.signal(signal) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Waits until the init has exited, and reaps it. Safe to call again after.
    pub async fn wait(&self) -> io::Result<()> {
        self.0.wait().await.map(drop)
    }
}
