//! A large local file sent as a raw body: the daemon's `airlock-body` upgrade, for a
//! whole-file `PUT` and for a resumable upload's `PATCH`.
//!
//! Through reqwest the file is read into buffers and written into the socket, two copies
//! a byte here, and hyper in the daemon copies each byte out of the socket and again into
//! the file. Here the request asks for the upgrade on a socket of the client's own
//! ([`crate::direct`]); once the daemon has checked everything that could refuse the
//! write and answered `101`, the file goes to the socket (by `sendfile`, or read and
//! written where the client must see each byte), the daemon `splice`s it into its file,
//! and its answer comes as for a plain request. Anything else (https, a proxy, a small
//! file) goes through reqwest as before.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;

use airlock_api::WriteResult;
use reqwest::{StatusCode, Url};
use rustix::io::Errno;
use tokio::net::TcpStream;

use crate::direct::{self, Answer, Target, broken};
use crate::file_chunks::remaining;
use crate::{Client, Error, IDLE_TIMEOUT};

/// Files at least this large go raw: below it, the upgrade's extra round trip and the
/// connection it uses up cost more than the copies it saves.
const RAW_FROM: u64 = 8 * 1024 * 1024;
/// Bytes per `sendfile` call, and per read where the bytes are read.
const STEP: usize = 4 * 1024 * 1024;

/// What is shown each piece of a file as it is sent.
pub(crate) type Watcher = Box<dyn FnMut(&[u8]) + Send>;

/// How the file's bytes reach the socket.
pub(crate) enum Feed {
    /// By `sendfile`: the file's pages go to the socket without a copy through here.
    Sendfile,
    /// Read and written, each piece shown to the watcher first (a progress bar, a
    /// checksum).
    Watched(Watcher),
}

/// Sends `file` from its offset to its end into `url` (a `PUT /content` with its query);
/// `file` back, nothing sent, when reqwest must do it.
pub(crate) async fn write_file(
    client: &Client,
    url: &Url,
    file: std::fs::File,
) -> Result<Result<WriteResult, std::fs::File>, Error> {
    let length = remaining(&file).map_err(Error::Local)?;
    let Some(upgraded) = upgrade(client, "PUT", url, length, "").await? else {
        return Ok(Err(file));
    };
    let answer = upgraded.send(client, file, length, Feed::Sendfile).await?;
    let body = answer.small_body(&client.sockets).await?;
    let written = serde_json::from_slice(&body)
        .map_err(|e| Error::Protocol(format!("unexpected answer: {e}")))?;
    Ok(Ok(written))
}

/// A connection the daemon has answered `101` on: it waits for the body.
pub(crate) struct Upgraded {
    stream: TcpStream,
}

/// Asks for a `method` request to `url` (with `extra` header lines, each ending in
/// CRLF) to send its body of `length` bytes raw. `None`, nothing asked, when the body
/// should go through reqwest instead: too small to gain, or a daemon this way cannot
/// reach (https, a proxy). A refusal is the daemon's error.
pub(crate) async fn upgrade(
    client: &Client,
    method: &str,
    url: &Url,
    length: u64,
    extra: &str,
) -> Result<Option<Upgraded>, Error> {
    if length < RAW_FROM {
        return Ok(None);
    }
    let Some(target) = Target::raw(method, url, &client.token, length, extra) else {
        return Ok(None);
    };
    let Some(answer) = direct::ask(&target, &client.sockets).await? else {
        return Ok(None);
    };
    if answer.status != StatusCode::SWITCHING_PROTOCOLS {
        return Err(refusal(answer, client).await);
    }
    let Answer { early, stream, .. } = answer;
    if !early.is_empty() {
        // The daemon answered again before the body: its answer says why.
        let answer = direct::read_answer(stream, early).await?;
        return Err(refusal(answer, client).await);
    }
    Ok(Some(Upgraded { stream }))
}

impl Upgraded {
    /// Sends `length` bytes of `file` from its offset as the body, and answers the
    /// daemon's successful answer after it; a refusal after the body is its error.
    pub(crate) async fn send(
        self,
        client: &Client,
        file: std::fs::File,
        length: u64,
        feed: Feed,
    ) -> Result<Answer, Error> {
        let stream = self.stream.into_std().map_err(broken)?;
        stream.set_nonblocking(false).map_err(broken)?;
        stream
            .set_write_timeout(Some(IDLE_TIMEOUT))
            .map_err(broken)?;
        let (stream, sent) = tokio::task::spawn_blocking(move || {
            let sent = match feed {
                Feed::Sendfile => send_file(&file, &stream, length),
                Feed::Watched(seen) => copy(&file, &stream, length, seen),
            };
            (stream, sent)
        })
        .await
        .map_err(|e| Error::Local(io::Error::other(e)))?;
        stream.set_nonblocking(true).map_err(broken)?;
        let stream = TcpStream::from_std(stream).map_err(broken)?;
        // A daemon that gave up mid-way (a full disk) answered before closing; its
        // answer says more than the broken pipe the sending met.
        let answer = match direct::read_answer(stream, Vec::new()).await {
            Ok(answer) => answer,
            Err(unanswered) => return Err(sent.err().unwrap_or(unanswered)),
        };
        if !answer.status.is_success() {
            return Err(refusal(answer, client).await);
        }
        sent?;
        Ok(answer)
    }
}

/// The error an answer that is not the go-ahead (or not success) carries.
async fn refusal(answer: Answer, client: &Client) -> Error {
    let status = answer.status;
    if status.is_success() || status == StatusCode::SWITCHING_PROTOCOLS {
        // A daemon that did not take the upgrade treated the request as one without a
        // body.
        return Error::Protocol(format!(
            "the daemon answered HTTP {status} to a raw body's upgrade"
        ));
    }
    match answer.small_body(&client.sockets).await {
        Ok(body) => crate::answer_error(status, &body),
        Err(err) => err,
    }
}

/// The file's bytes from its offset: `length` of them, by `sendfile`, or read and
/// written where the file takes no `sendfile`.
fn send_file(file: &std::fs::File, socket: &std::net::TcpStream, length: u64) -> Result<(), Error> {
    let mut left = length;
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(STEP).min(STEP);
        match rustix::fs::sendfile(socket.as_fd(), file.as_fd(), None, want) {
            Ok(0) => return Err(shrank()),
            Ok(n) => left -= n as u64,
            Err(Errno::INTR) => {}
            Err(Errno::INVAL | Errno::NOSYS) => return copy(file, socket, left, Box::new(|_| {})),
            Err(Errno::AGAIN) => return Err(crate::stalled()),
            Err(e) => return Err(broken(e.into())),
        }
    }
    Ok(())
}

/// Reads and writes `left` bytes, showing each piece to `seen` first.
fn copy(
    mut file: &std::fs::File,
    mut socket: &std::net::TcpStream,
    left: u64,
    mut seen: Watcher,
) -> Result<(), Error> {
    let mut buffer = vec![0u8; STEP.min(usize::try_from(left).unwrap_or(STEP))];
    let mut left = left;
    while left > 0 {
        let want = buffer
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match file.read(&mut buffer[..want]) {
            Ok(0) => return Err(shrank()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Local(e)),
        };
        seen(&buffer[..n]);
        socket.write_all(&buffer[..n]).map_err(broken)?;
        left -= n as u64;
    }
    Ok(())
}

/// The length is promised in the request's head: a file cut short while it is sent
/// breaks the upload instead of committing a prefix (the daemon waits for the rest).
fn shrank() -> Error {
    Error::Local(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the file shrank while it was being sent",
    ))
}
