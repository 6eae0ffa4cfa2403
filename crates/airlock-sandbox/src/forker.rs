//! The forker: one small, single-threaded helper process, started once, that forks the
//! init and exec helpers on the daemon's behalf instead of the daemon executing the
//! helper binary for each of them.
//!
//! On this kind of VM a process that is executed costs about 0.65 ms from spawn to its
//! end (a static C program that does nothing: 0.6 ms), a fork of a small process 0.18
//! ms; the daemon made one for every sandbox start and every command. A forked helper
//! runs the same code as an executed one, from the same binary, with the same
//! descriptors: its spec in a memfd, the init's pidfd for a command, its stdio.
//!
//! The daemon sends a request (one byte naming the helper, and its descriptors) over a
//! `SOCK_SEQPACKET` pair; the forker forks with `CLONE_PARENT`, so the helper is the
//! daemon's child, held and reaped through a pidfd as a spawned one is, and answers its
//! pid. The forker takes nothing else from anyone: its socket is the daemon's alone. It
//! ends when the daemon's end closes, and if it dies the daemon starts helpers as before
//! and a new forker at the next request.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use rustix::net::sockopt::Timeout;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

use crate::helper_process::HelperProcess;
use crate::spec::close_inherited_except;
use crate::{exec, init, sys};

/// Hidden subcommand that runs the forker.
pub const FORKER: &str = "__airlock-forker";

/// The helpers the forker makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Helper {
    Init = 1,
    Exec = 2,
}

/// How long the daemon waits for the forker's answer (a fork) before giving it up.
const ANSWER_PATIENCE: Duration = Duration::from_secs(5);

/// Descriptors of one request: spec, stdin, stdout, stderr and, for a command, the
/// init's pidfd.
const MOST_FDS: usize = 5;

/// The daemon's side: the forker, started at the first request and again after it died.
#[derive(Debug)]
pub struct Forker {
    link: Mutex<Option<Link>>,
}

#[derive(Debug)]
struct Link {
    socket: OwnedFd,
    /// Held so that a forker that died is reaped, and one replaced is killed.
    _process: HelperProcess,
}

impl Forker {
    /// No forker yet: it starts at the first request.
    pub const fn new() -> Self {
        Self {
            link: Mutex::new(None),
        }
    }

    /// Ends the forker, if one runs, and reaps it; a later request starts another.
    pub fn stop(&self) {
        self.link.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Has the forker make helper `which` with `fds` (spec, stdin, stdout, stderr, and
    /// the init's pidfd for a command): its pid, a child of ours. `Ok(None)` when there
    /// is no forker to ask (it could not start, or died): the caller spawns the helper
    /// itself. Blocks for the fork, a fraction of a millisecond.
    pub fn fork(&self, which: Helper, fds: &[BorrowedFd<'_>]) -> io::Result<Option<i32>> {
        let mut link = self.link.lock().unwrap_or_else(|p| p.into_inner());
        let current = match &mut *link {
            Some(current) => current,
            none => match Link::start() {
                Ok(started) => none.insert(started),
                Err(err) => {
                    tracing::warn!(%err, "starting the forker; spawning helpers instead");
                    return Ok(None);
                }
            },
        };
        match current.ask(which, fds) {
            Ok(Ok(pid)) => Ok(Some(pid)),
            // The fork itself failed (a limit): no other way would do better.
            Ok(Err(err)) => Err(err),
            Err(err) => {
                tracing::warn!(%err, "the forker is gone; spawning this helper, then a new forker");
                *link = None;
                Ok(None)
            }
        }
    }
}

impl Link {
    fn start() -> io::Result<Self> {
        let (ours, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        // A forker that stopped answering (stopped, wedged) is given up, not waited on
        // forever with every start and command behind it.
        rustix::net::sockopt::set_socket_timeout(&ours, Timeout::Recv, Some(ANSWER_PATIENCE))?;
        // `dup` leaves the copy inheritable, for the forker only; it closes every other
        // descriptor it was born with (a helper spawned at the same moment gets this one
        // too, and closes it likewise).
        let inherited = rustix::io::dup(&theirs)?;
        drop(theirs);
        let child = Command::new(crate::helper_binary::program())
            .arg(FORKER)
            .arg(inherited.as_raw_fd().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .env_clear()
            .spawn();
        drop(inherited);
        let process = HelperProcess::adopt(child?.id() as i32)?;
        Ok(Self {
            socket: ours,
            _process: process,
        })
    }

    /// One request and its answer. The outer error: the link broke.
    fn ask(&self, which: Helper, fds: &[BorrowedFd<'_>]) -> io::Result<io::Result<i32>> {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MOST_FDS))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Ok(Err(io::Error::other("too many descriptors for the forker")));
        }
        let sent = rustix::net::sendmsg(
            &self.socket,
            &[IoSlice::new(&[which as u8])],
            &mut control,
            SendFlags::NOSIGNAL,
        )?;
        if sent != 1 {
            return Err(io::Error::other("the forker took part of a request"));
        }
        let mut answer = [0u8; 4];
        let got = rustix::io::read(&self.socket, &mut answer)?;
        if got != answer.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the forker closed its end",
            ));
        }
        Ok(match i32::from_ne_bytes(answer) {
            pid if pid > 0 => Ok(pid),
            errno => Err(io::Error::from_raw_os_error(-errno)),
        })
    }
}

/// Entry point of `airlock-helper __airlock-forker FD`: serves requests on socket `FD`
/// until the daemon's end closes.
pub fn main() -> ! {
    let socket = std::env::args()
        .nth(2)
        .and_then(|n| n.parse::<i32>().ok())
        .filter(|fd| *fd > 2);
    let Some(socket) = socket else {
        eprintln!("airlock: the forker takes its socket's descriptor");
        std::process::exit(2)
    };
    close_inherited_except(Some(socket));
    sys::set_process_name(c"airlock-forker");
    // SAFETY: the daemon left this descriptor open for us under this number; the call
    // above closed every other one, so nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(socket) };
    loop {
        match serve_one(&socket) {
            Ok(true) => {}
            Ok(false) => std::process::exit(0),
            Err(err) => {
                eprintln!("airlock: forker: {err}");
                std::process::exit(1)
            }
        }
    }
}

/// Receives one request, forks its helper and answers; `false` once the daemon is gone.
fn serve_one(socket: &OwnedFd) -> io::Result<bool> {
    let mut which = [0u8; 1];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MOST_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(
        socket,
        &mut [IoSliceMut::new(&mut which)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    if got.bytes == 0 {
        return Ok(false);
    }
    let fds: Vec<OwnedFd> = control
        .drain()
        .flat_map(|message| match message {
            RecvAncillaryMessage::ScmRights(fds) => fds.collect(),
            _ => Vec::new(),
        })
        .collect();
    let answer = match request(which[0], fds.len()) {
        None => -libc::EINVAL,
        Some(helper) => match sys::fork_as_sibling() {
            Ok(0) => become_helper(helper, fds),
            Ok(pid) => pid,
            Err(err) => -err.raw_os_error().unwrap_or(libc::EAGAIN),
        },
    };
    drop(fds);
    rustix::io::write(socket, &answer.to_ne_bytes())?;
    Ok(true)
}

/// The helper a request names, if it came with the descriptors that helper takes.
fn request(which: u8, fds: usize) -> Option<Helper> {
    match (which, fds) {
        (1, 4) => Some(Helper::Init),
        (2, 5) => Some(Helper::Exec),
        _ => None,
    }
}

/// In the forked child: stdio from the request, then the helper's own code, which closes
/// every descriptor it was not given (the forker's socket among them) before anything
/// else.
fn become_helper(helper: Helper, fds: Vec<OwnedFd>) -> ! {
    for (target, fd) in fds[1..4].iter().enumerate() {
        // SAFETY: integer-only call; the received descriptors are all above stdio (ours
        // occupy 0-2), so no source is overwritten before it is copied.
        if unsafe { libc::dup2(fd.as_raw_fd(), target as i32) } < 0 {
            std::process::exit(crate::exec::SETUP_FAILED);
        }
    }
    let spec = fds[0].as_raw_fd();
    let init_fd = fds.get(4).map(AsRawFd::as_raw_fd);
    // The helper's code takes these over by number.
    std::mem::forget(fds);
    match helper {
        Helper::Init => init::main_at(spec),
        Helper::Exec => exec::main_at(spec, init_fd),
    }
}
