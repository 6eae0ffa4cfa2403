//! Writes whose body comes straight from a socket (whole files, and appends to an
//! upload's partial file): what lands is exactly the
//! announced bytes, and a client that goes away, goes quiet, sends the wrong bytes or
//! aims outside the root leaves nothing behind.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::fs::symlink;
use std::time::{Duration, Instant};

use common::{me, scene};

use airlock_fs::{Checks, FsError, Hasher, Root, SandboxPath, SocketBody, WriteOptions};

const IDLE: Duration = Duration::from_secs(5);

/// A connected pair: what the client writes, and the daemon's end as a non-blocking
/// descriptor (tokio's sockets are).
fn connection() -> (TcpStream, OwnedFd) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    (client, OwnedFd::from(server))
}

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|n| (n * 31 + n / 4096) as u8).collect()
}

fn path(text: &str) -> SandboxPath {
    SandboxPath::parse(text).unwrap()
}

/// Sends `bytes` from another thread, then leaves the connection open (`hold`) or
/// closes it.
fn send(mut client: TcpStream, bytes: Vec<u8>, hold: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let _ = client.write_all(&bytes);
        std::thread::sleep(hold);
        drop(client);
    })
}

#[test]
fn the_body_lands_whole_with_the_checksums_of_its_bytes() {
    let s = scene("data");
    let root = Root::open(&s.root_dir).unwrap();
    let all = content(3 * 1024 * 1024 + 17);
    let (client, socket) = connection();
    // Some of the body came with the request's head; the rest, and then bytes of no
    // part of it, on the socket.
    let mut rest = all[1000..].to_vec();
    rest.extend_from_slice(b"not the body");
    let sender = send(client, rest, Duration::from_millis(200));
    let body = SocketBody::new(socket, all[..1000].to_vec(), all.len() as u64, IDLE).unwrap();
    let checks = Checks {
        sha256: true,
        ..Checks::default()
    };
    let opts = WriteOptions {
        checks,
        ..WriteOptions::new(0o640, me())
    };
    let written = root
        .write_file_from_socket(&path("/data/big"), body, opts)
        .unwrap();
    sender.join().unwrap();
    assert_eq!(std::fs::read(s.root_dir.join("data/big")).unwrap(), all);
    let mut hasher = Hasher::new(&checks);
    hasher.update(&all);
    assert_eq!(written.checksums, hasher.finish());
    assert_eq!(written.entry.size, all.len() as u64);
    assert!(written.created);
}

#[test]
fn an_empty_body_and_one_that_came_whole_with_the_head_need_no_socket_read() {
    let s = scene("data");
    let root = Root::open(&s.root_dir).unwrap();
    for early in [Vec::new(), b"all of it".to_vec()] {
        let (_client, socket) = connection();
        let len = early.len() as u64;
        let body = SocketBody::new(socket, early.clone(), len, IDLE).unwrap();
        let opts = WriteOptions::new(0o644, me());
        root.write_file_from_socket(&path("/data/small"), body, opts)
            .unwrap();
        assert_eq!(std::fs::read(s.root_dir.join("data/small")).unwrap(), early);
    }
}

#[test]
fn more_early_bytes_than_the_length_is_refused() {
    let (_client, socket) = connection();
    let err = SocketBody::new(socket, vec![1; 10], 9, IDLE).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
}

/// What is in the target's directory besides `keep`.
fn leftovers(dir: &std::path::Path, keep: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != keep)
        .collect()
}

#[test]
fn a_client_that_goes_away_early_leaves_the_old_file_and_nothing_else() {
    let s = scene("data");
    std::fs::write(s.root_dir.join("data/f"), b"old").unwrap();
    let root = Root::open(&s.root_dir).unwrap();
    let (client, socket) = connection();
    let sender = send(client, content(100_000), Duration::ZERO);
    let body = SocketBody::new(socket, Vec::new(), 1_000_000, IDLE).unwrap();
    let err = root
        .write_file_from_socket(&path("/data/f"), body, WriteOptions::new(0o644, me()))
        .unwrap_err();
    sender.join().unwrap();
    assert!(
        matches!(&err, FsError::Interrupted { stalled: false, reason, .. }
            if reason.contains("before the body's end")),
        "{err}"
    );
    assert_eq!(std::fs::read(s.root_dir.join("data/f")).unwrap(), b"old");
    assert_eq!(
        leftovers(&s.root_dir.join("data"), "f"),
        Vec::<String>::new()
    );
}

#[test]
fn a_client_that_goes_quiet_fails_after_the_idle_timeout() {
    let s = scene("data");
    let root = Root::open(&s.root_dir).unwrap();
    let (client, socket) = connection();
    let sender = send(client, content(5000), Duration::from_secs(3));
    let idle = Duration::from_millis(300);
    let body = SocketBody::new(socket, Vec::new(), 10_000, idle).unwrap();
    let started = Instant::now();
    let err = root
        .write_file_from_socket(&path("/data/f"), body, WriteOptions::new(0o644, me()))
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "waited for the client"
    );
    assert!(
        matches!(&err, FsError::Interrupted { stalled: true, reason, .. }
            if reason.contains("sent nothing")),
        "{err}"
    );
    assert!(leftovers(&s.root_dir.join("data"), "").is_empty());
    sender.join().unwrap();
}

#[test]
fn a_wrong_expected_checksum_commits_nothing() {
    let s = scene("data");
    let root = Root::open(&s.root_dir).unwrap();
    let (client, socket) = connection();
    let all = content(200_000);
    let sender = send(client, all.clone(), Duration::ZERO);
    let body = SocketBody::new(socket, Vec::new(), all.len() as u64, IDLE).unwrap();
    let opts = WriteOptions {
        checks: Checks {
            expect_crc64nvme: Some(1),
            ..Checks::default()
        },
        ..WriteOptions::new(0o644, me())
    };
    let err = root
        .write_file_from_socket(&path("/data/f"), body, opts)
        .unwrap_err();
    sender.join().unwrap();
    assert!(matches!(err, FsError::ChecksumMismatch { .. }), "{err}");
    assert!(leftovers(&s.root_dir.join("data"), "").is_empty());
}

#[test]
fn a_symlink_to_the_host_is_the_sandbox_path_as_for_any_write() {
    let s = scene("etc");
    symlink(&s.outside, s.root_dir.join("escape")).unwrap();
    let inside = s.root_dir.join(s.outside.strip_prefix("/").unwrap());
    std::fs::create_dir_all(&inside).unwrap();
    let root = Root::open(&s.root_dir).unwrap();
    let (client, socket) = connection();
    let sender = send(client, b"sandbox".to_vec(), Duration::ZERO);
    let body = SocketBody::new(socket, Vec::new(), 7, IDLE).unwrap();
    root.write_file_from_socket(
        &path("/escape/sentinel"),
        body,
        WriteOptions::new(0o644, me()),
    )
    .unwrap();
    sender.join().unwrap();
    s.sentinel_untouched();
    assert_eq!(std::fs::read(inside.join("sentinel")).unwrap(), b"sandbox");
}

#[test]
fn the_reader_for_other_backends_reads_exactly_the_body() {
    let (client, socket) = connection();
    let all = content(300_000);
    let mut sent = all[10..].to_vec();
    sent.extend_from_slice(b"trailing");
    let sender = send(client, sent, Duration::from_millis(100));
    let body = SocketBody::new(socket, all[..10].to_vec(), all.len() as u64, IDLE).unwrap();
    let mut read = Vec::new();
    body.into_reader().read_to_end(&mut read).unwrap();
    sender.join().unwrap();
    assert_eq!(read, all);
}

/// A file that already holds `prefix`, its position at the end (as an upload's partial
/// file is after `cut_to`).
fn file_holding(dir: &std::path::Path, prefix: &[u8]) -> std::fs::File {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.join("partial"))
        .unwrap();
    file.write_all(prefix).unwrap();
    file
}

#[test]
fn an_append_goes_after_what_the_file_holds_with_the_checksums_of_the_body_alone() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = content(4097);
    let file = file_holding(dir.path(), &prefix);
    let all = content(2 * 1024 * 1024 + 5);
    let (client, socket) = connection();
    let sender = send(client, all[10..].to_vec(), Duration::from_millis(100));
    let mut body = SocketBody::new(socket, all[..10].to_vec(), all.len() as u64, IDLE).unwrap();
    assert_eq!(body.length(), all.len() as u64);
    let moved = body.append_to(&file, Some(Hasher::new(&Checks::default())));
    sender.join().unwrap();
    let mut hasher = Hasher::new(&Checks::default());
    hasher.update(&all);
    assert_eq!(moved.bytes, all.len() as u64);
    assert_eq!(moved.ended.unwrap(), Some(hasher.finish()));
    let mut landed = prefix.clone();
    landed.extend_from_slice(&all);
    assert_eq!(std::fs::read(dir.path().join("partial")).unwrap(), landed);
}

#[test]
fn an_append_cut_short_counts_the_bytes_that_went_in() {
    let dir = tempfile::tempdir().unwrap();
    let file = file_holding(dir.path(), b"before");
    let all = content(1024 * 1024);
    let (client, socket) = connection();
    // Only 300,000 bytes of the million come, then the client goes away.
    let sender = send(client, all[..300_000].to_vec(), Duration::ZERO);
    let mut body = SocketBody::new(socket, Vec::new(), all.len() as u64, IDLE).unwrap();
    let moved = body.append_to(&file, None);
    sender.join().unwrap();
    let err = moved.ended.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted, "{err}");
    assert_eq!(moved.bytes, 300_000);
    let landed = std::fs::read(dir.path().join("partial")).unwrap();
    assert_eq!(&landed[..6], b"before");
    assert_eq!(&landed[6..], &all[..300_000]);
}

#[test]
fn a_stopper_ends_a_waiting_append_at_once_and_keeps_what_came() {
    let dir = tempfile::tempdir().unwrap();
    let file = file_holding(dir.path(), b"");
    let all = content(1024 * 1024);
    let (mut client, socket) = connection();
    client.write_all(&all[..5000]).unwrap();
    let mut body = SocketBody::new(socket, Vec::new(), all.len() as u64, IDLE).unwrap();
    let stopper = body.stopper().unwrap();
    let started = Instant::now();
    let stopping = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        stopper.stop();
    });
    // The client sends nothing more and stays: only the stopper ends the wait, well
    // before the idle timeout.
    let moved = body.append_to(&file, None);
    stopping.join().unwrap();
    assert!(started.elapsed() < IDLE / 2, "{:?}", started.elapsed());
    assert_eq!(
        moved.ended.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionAborted
    );
    assert_eq!(moved.bytes, 5000);
    assert_eq!(
        std::fs::read(dir.path().join("partial")).unwrap(),
        &all[..5000]
    );
    // The connection still carries an answer.
    drop(client);
}
