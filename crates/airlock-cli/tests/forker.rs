//! The forker, which forks the sandbox helpers for the daemon: what it does with requests
//! no daemon would send, and that commands keep running when it dies or stops answering.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{IoSlice, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, children_of, comm, is_forker, sandbox, sandbox_processes_of, sh};
use rustix::net::{
    AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

fn forkers_of(daemon: &Daemon) -> Vec<i32> {
    children_of(daemon.pid())
        .into_iter()
        .filter(|pid| is_forker(*pid))
        .collect()
}

#[tokio::test]
async fn a_killed_forker_is_replaced_and_commands_keep_running() {
    commands_outlive_the_forker(rustix::process::Signal::KILL).await;
}

#[tokio::test]
async fn a_stopped_forker_is_given_up_and_commands_still_run() {
    // A forker that takes a request and never answers (stopped here; wedged would do the
    // same) must not hold every start and command behind it: the daemon stops waiting
    // after its patience, kills it, spawns the helper itself and starts a new forker.
    commands_outlive_the_forker(rustix::process::Signal::STOP).await;
}

/// Sends the daemon's forker `signal` between two commands: the commands after it run,
/// the old forker is gone (reaped, or killed and reaped) and a new one serves a new
/// sandbox.
async fn commands_outlive_the_forker(signal: rustix::process::Signal) {
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = sandbox(&client).await.id;
    assert_eq!(sh(&client, &id, "echo one").await.stdout, "one\n");
    let first = forkers_of(&daemon);
    assert_eq!(first.len(), 1, "one forker: {first:?}");
    rustix::process::kill_process(rustix::process::Pid::from_raw(first[0]).unwrap(), signal)
        .unwrap();
    for word in ["two", "three", "four"] {
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            sh(&client, &id, &format!("echo {word}")),
        )
        .await
        .expect("a command waited on the forker for good");
        assert_eq!(out.stdout, format!("{word}\n"), "{out:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{}", first[0])).exists() {
        assert!(
            Instant::now() < deadline,
            "the old forker was never reaped ({signal:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = forkers_of(&daemon);
    assert_eq!(second.len(), 1, "a new forker: {second:?}");
    assert_ne!(second, first);
    // A new sandbox starts through the new one.
    let other = sandbox(&client).await.id;
    assert_eq!(sh(&client, &other, "echo five").await.stdout, "five\n");
}

#[tokio::test]
async fn what_the_forker_forks_goes_by_its_helpers_names() {
    // Their command lines are all the forker's: `ps` and `pkill` users find them by name.
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = sandbox(&client).await.id;
    let running = tokio::spawn({
        let client = client.clone();
        let id = id.clone();
        async move { sh(&client, &id, "sleep 3").await }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let names = loop {
        let mut names: Vec<String> = sandbox_processes_of(daemon.pid())
            .into_iter()
            .filter_map(comm)
            .collect();
        names.sort();
        // A helper just forked still bears its parent's name until it names itself.
        if names == ["airlock-exec", "airlock-init"] || Instant::now() > deadline {
            break names;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(names, ["airlock-exec", "airlock-init"]);
    assert_eq!(running.await.unwrap().exit_code, 0);
}

/// A forker of our own, on a socket pair, as the daemon starts it.
struct Forker {
    socket: OwnedFd,
    child: std::process::Child,
}

impl Forker {
    fn start() -> Self {
        let (ours, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let inherited = rustix::io::dup(&theirs).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_airlock-helper"))
            .arg("__airlock-forker")
            .arg(inherited.as_raw_fd().to_string())
            .stdin(Stdio::null())
            .env_clear()
            .spawn()
            .unwrap();
        Self {
            socket: ours,
            child,
        }
    }

    /// Sends one request; the forker's answer (a pid, or minus an errno).
    fn ask(&self, which: &[u8], fds: &[BorrowedFd<'_>]) -> i32 {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(8))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        assert!(control.push(SendAncillaryMessage::ScmRights(fds)));
        rustix::net::sendmsg(
            &self.socket,
            &[IoSlice::new(which)],
            &mut control,
            SendFlags::empty(),
        )
        .unwrap();
        let mut answer = [0u8; 4];
        assert_eq!(rustix::io::read(&self.socket, &mut answer).unwrap(), 4);
        i32::from_ne_bytes(answer)
    }
}

#[test]
fn the_forker_refuses_malformed_requests_and_serves_the_next() {
    let forker = Forker::start();
    let null = std::fs::File::open("/dev/null").unwrap();
    let n = null.as_fd();
    let einval = -libc::EINVAL;
    // No such helper; the wrong descriptors for each; none at all.
    assert_eq!(forker.ask(&[9], &[n, n, n, n]), einval);
    assert_eq!(forker.ask(&[0], &[n, n, n, n]), einval);
    assert_eq!(forker.ask(&[1], &[n, n, n, n, n]), einval);
    assert_eq!(forker.ask(&[2], &[n, n, n, n]), einval);
    assert_eq!(forker.ask(&[1], &[n]), einval);
    assert_eq!(forker.ask(&[2], &[n; 8]), einval);
    // More than one byte: the first names the helper, the rest is cut off unread.
    assert_eq!(forker.ask(&[9, 1, 1, 1], &[n, n, n, n]), einval);

    // An init request whose spec is not one: the forked helper says so on its stdout
    // and ends; the forker answered its pid and still serves.
    let mut spec = tempfile::tempfile().unwrap();
    spec.write_all(b"not a spec").unwrap();
    std::io::Seek::rewind(&mut spec).unwrap();
    let (out_r, out_w) = rustix::pipe::pipe().unwrap();
    let pid = forker.ask(&[1], &[spec.as_fd(), n, out_w.as_fd(), n]);
    assert!(pid > 0, "answered {pid}");
    drop(out_w);
    let mut said = String::new();
    std::fs::File::from(out_r)
        .read_to_string(&mut said)
        .unwrap();
    assert!(said.contains("\"error\""), "{said}");
    // The helper is our child (the forker forks with CLONE_PARENT), and failed.
    let status = rustix::process::waitpid(
        rustix::process::Pid::from_raw(pid),
        rustix::process::WaitOptions::empty(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(status.1.exit_status(), Some(1));
    assert_eq!(forker.ask(&[7], &[n]), einval);

    // Our end closed: the forker ends, cleanly.
    let Forker { socket, mut child } = forker;
    drop(socket);
    assert!(child.wait().unwrap().success());
}
