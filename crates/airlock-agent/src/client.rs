//! The gateway's side: a [`SandboxFs`] whose every call goes to an agent. The service
//! calls `SandboxFs` on its blocking pool, so each call blocks here on the runtime that
//! owns the connection; a request body is fed from the calling thread through a short
//! queue while the request runs, so nothing is buffered whole.

use std::collections::HashSet;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use airlock_fs::{
    Checks, Checksums, Entry, FileOwner, FileReader, FsError, FsResult, Listing, LossyQueue,
    PartialFile, Placement, SandboxFs, SandboxPath, Unpacked, Unpacking, WatchEvent, WatchFeed,
    WireError, WriteOptions, Written,
};
use bytes::Bytes;
use futures_util::TryStreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::AsyncBufReadExt;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::io::StreamReader;

use crate::calls::{self, ARGS, RESULT};

/// Bytes read from a request body per chunk, and chunks queued ahead of the socket.
const CHUNK: usize = 256 * 1024;
const AHEAD: usize = 4;
/// Watch events held for a reader that has not come for them; past this, events are
/// dropped and an overflow is reported in their place.
const WATCH_QUEUE: usize = 1024;

/// Calls that change nothing on the agent, so sending one twice is harmless.
const READ_ONLY: [&str; 7] = [
    "stat",
    "require_dir",
    "list",
    "read",
    "checksums",
    "pack",
    "watch",
];

/// Calls whose work on the agent does not grow with the data: a lookup, a page of a
/// listing, one directory made, one rename. An agent that has not answered one within
/// [`QUICK_ANSWER`] is stuck (a stopped process, a hung mount in its pod), and the call
/// fails rather than hold a thread of the daemon's blocking pool for good. Calls that
/// stream, hash, pack or delete a tree may take as long as their data does.
const QUICK: [&str; 5] = ["stat", "require_dir", "list", "mkdir", "rename"];

/// How long an agent may take to answer one of the [`QUICK`] calls in full.
pub const QUICK_ANSWER: Duration = Duration::from_secs(30);

/// One agent, reached at `base` (`http://host:port`) with its sandbox's secret.
#[derive(Clone)]
pub struct RemoteFs {
    inner: Arc<Inner>,
}

struct Inner {
    base: String,
    secret: String,
    http: reqwest::Client,
    runtime: Handle,
    quick_answer: Duration,
}

impl std::fmt::Debug for RemoteFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteFs")
            .field("base", &self.inner.base)
            .finish()
    }
}

impl RemoteFs {
    /// A client of the agent at `base`; its calls run on `runtime`.
    pub fn new(base: &str, secret: &str, runtime: Handle) -> Self {
        Self::answering_within(base, secret, runtime, QUICK_ANSWER)
    }

    /// The same, with its own bound on the answer to a quick call.
    pub fn answering_within(
        base: &str,
        secret: &str,
        runtime: Handle,
        quick_answer: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                base: base.trim_end_matches('/').to_owned(),
                secret: secret.to_owned(),
                http: crate::reach::agent_client(),
                runtime,
                quick_answer,
            }),
        }
    }
}

impl Inner {
    fn request(&self, name: &str, args: &impl Serialize) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/v1/fs/{name}", self.base))
            .bearer_auth(&self.secret)
            .header(ARGS, calls::encode(args))
    }

    /// Starts a call whose body is whatever is queued on the returned sender, until it
    /// is dropped; the task gives the answer.
    fn stream_request(&self, name: &str, args: &impl Serialize) -> Streaming {
        let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(AHEAD);
        let body = reqwest::Body::wrap_stream(ReceiverStream::new(rx));
        let answer = self
            .runtime
            .spawn(self.request(name, args).body(body).send());
        Streaming { tx, answer }
    }

    /// Sends a call; `body`, when given, is streamed from this thread as it is read.
    fn send(
        &self,
        name: &str,
        args: &impl Serialize,
        path: &str,
        body: Option<&mut dyn Read>,
    ) -> FsResult<reqwest::Response> {
        let Some(body) = body else {
            let mut request = self.request(name, args);
            if QUICK.contains(&name) {
                // The whole call, its answer's body included.
                request = request.timeout(self.quick_answer);
            }
            // Under load a request now and then fails to be sent (most likely on a pooled
            // connection the agent had just closed after cutting a stream); a call that
            // changes nothing is sent again once. One that changes something is not: it
            // may have reached the agent. A connect that failed is not retried: no
            // stale connection was involved, and a dead pod's would only double the wait.
            // Nor is one that ran out of time: the agent is stuck, not the connection.
            let again = READ_ONLY
                .contains(&name)
                .then(|| request.try_clone())
                .flatten();
            // Sent from inside the runtime: a bounded request starts its timer as it is
            // sent, and this thread may be one the runtime does not know.
            let send = |request: reqwest::RequestBuilder| {
                self.runtime.block_on(async move { request.send().await })
            };
            let response = match (send(request), again) {
                (Err(e), Some(again)) if e.is_request() && !e.is_connect() && !e.is_timeout() => {
                    send(again)
                }
                (first, _) => first,
            };
            return self.accepted(response, path);
        };
        let Streaming { tx, answer } = self.stream_request(name, args);
        let fed = feed(body, &tx);
        if let Err(e) = &fed {
            // The agent sees the body break and commits nothing.
            let _ = tx.blocking_send(Err(std::io::Error::new(e.kind(), e.to_string())));
        }
        drop(tx);
        let response = self.runtime.block_on(answer).map_err(|e| io(path, e))?;
        fed.map_err(|e| FsError::from_io(path, e))?;
        self.accepted(response, path)
    }

    /// A call's answer when it succeeded; else the agent's refusal as the engine's error,
    /// or, when it could not be had, a failure of the engine.
    fn accepted(
        &self,
        response: reqwest::Result<reqwest::Response>,
        path: &str,
    ) -> FsResult<reqwest::Response> {
        let response = response.map_err(|e| self.unanswered(path, &e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = self.runtime.block_on(response.bytes()).unwrap_or_default();
        match serde_json::from_slice::<WireError>(&text) {
            Ok(wire) if status.as_u16() == 422 => Err(FsError::from_wire(wire)),
            _ => Err(io(
                path,
                format!(
                    "the agent answered {status}: {}",
                    String::from_utf8_lossy(&text)
                ),
            )),
        }
    }

    fn call<T: DeserializeOwned>(
        &self,
        name: &str,
        args: &impl Serialize,
        path: &str,
        body: Option<&mut dyn Read>,
    ) -> FsResult<T> {
        let response = self.send(name, args, path, body)?;
        let text = self
            .runtime
            .block_on(response.bytes())
            .map_err(|e| self.unanswered(path, &e))?;
        serde_json::from_slice(&text).map_err(|e| io(path, e))
    }

    /// A call that got no usable answer; one whose bound ran out says so plainly, where
    /// reqwest's own text names only the URL.
    fn unanswered(&self, path: &str, err: &reqwest::Error) -> FsError {
        if err.is_timeout() && !err.is_connect() {
            let secs = self.quick_answer.as_secs_f64();
            return io(path, format!("the agent gave no answer within {secs} s"));
        }
        io(path, err)
    }

    /// Copies a streamed answer into `out`.
    fn drain(
        &self,
        mut response: reqwest::Response,
        out: &mut dyn Write,
        path: &str,
    ) -> FsResult<()> {
        while let Some(chunk) = self
            .runtime
            .block_on(response.chunk())
            .map_err(|e| io(path, e))?
        {
            out.write_all(&chunk)
                .map_err(|e| FsError::from_io(path, e))?;
        }
        Ok(())
    }
}

/// Reads `body` in chunks into the request's queue, until it ends or the request does.
fn feed(body: &mut dyn Read, tx: &mpsc::Sender<std::io::Result<Bytes>>) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if tx
            .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
            .is_err()
        {
            // The request ended first (the agent refused the call): its answer says why.
            return Ok(());
        }
    }
}

/// A failure to reach the agent or to read its answer: the engine's own failure as far as
/// the caller is concerned.
fn io(path: &str, err: impl std::fmt::Display) -> FsError {
    FsError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(format!("agent: {err}")),
    }
}

impl SandboxFs for RemoteFs {
    fn stat(&self, path: &SandboxPath) -> FsResult<Entry> {
        let args = calls::OnPath { path: path.clone() };
        self.inner.call("stat", &args, path.as_str(), None)
    }

    fn require_dir(&self, path: &SandboxPath) -> FsResult<()> {
        let args = calls::OnPath { path: path.clone() };
        self.inner.call("require_dir", &args, path.as_str(), None)
    }

    fn list(
        &self,
        dir: &SandboxPath,
        depth: u32,
        limit: usize,
        cursor: Option<&SandboxPath>,
    ) -> FsResult<Listing> {
        let args = calls::List {
            dir: dir.clone(),
            depth,
            limit,
            cursor: cursor.cloned(),
        };
        self.inner.call("list", &args, dir.as_str(), None)
    }

    fn open_read(&self, path: &SandboxPath) -> FsResult<(Box<dyn FileReader>, Entry)> {
        let mut reader = RemoteReader {
            fs: self.inner.clone(),
            path: path.clone(),
            pos: 0,
            response: None,
            pending: Bytes::new(),
        };
        let entry = reader.open()?;
        Ok((Box::new(reader), entry))
    }

    fn checksums(&self, path: &SandboxPath, checks: Checks) -> FsResult<Checksums> {
        let args = calls::Sums {
            path: path.clone(),
            checks,
        };
        self.inner.call("checksums", &args, path.as_str(), None)
    }

    fn write_file(
        &self,
        path: &SandboxPath,
        content: &mut dyn BufRead,
        opts: WriteOptions,
    ) -> FsResult<Written> {
        let args = calls::Write {
            path: path.clone(),
            opts,
        };
        self.inner
            .call("write_file", &args, path.as_str(), Some(content))
    }

    fn write_in_place(
        &self,
        path: &SandboxPath,
        content: &mut dyn BufRead,
        at: Placement,
        owner: FileOwner,
        checks: Checks,
    ) -> FsResult<Written> {
        let args = calls::WriteInPlace {
            path: path.clone(),
            at,
            owner,
            checks,
        };
        self.inner
            .call("write_in_place", &args, path.as_str(), Some(content))
    }

    fn mkdir(
        &self,
        path: &SandboxPath,
        mode: u32,
        owner: FileOwner,
        parents: bool,
    ) -> FsResult<Entry> {
        let args = calls::Mkdir {
            path: path.clone(),
            mode,
            owner,
            parents,
        };
        self.inner.call("mkdir", &args, path.as_str(), None)
    }

    fn rename(&self, from: &SandboxPath, to: &SandboxPath, overwrite: bool) -> FsResult<Entry> {
        let args = calls::Rename {
            from: from.clone(),
            to: to.clone(),
            overwrite,
        };
        self.inner.call("rename", &args, from.as_str(), None)
    }

    fn remove(&self, path: &SandboxPath, recursive: bool) -> FsResult<()> {
        let args = calls::Remove {
            path: path.clone(),
            recursive,
        };
        self.inner.call("remove", &args, path.as_str(), None)
    }

    fn compose(
        &self,
        sources: &[SandboxPath],
        dest: &SandboxPath,
        opts: WriteOptions,
    ) -> FsResult<Written> {
        let args = calls::Compose {
            sources: sources.to_vec(),
            dest: dest.clone(),
            opts,
        };
        self.inner.call("compose", &args, dest.as_str(), None)
    }

    fn pack(&self, dir: &SandboxPath, out: &mut dyn Write) -> FsResult<()> {
        let args = calls::Pack {
            dir: dir.clone(),
            rels: None,
        };
        let response = self.inner.send("pack", &args, dir.as_str(), None)?;
        self.inner.drain(response, out, dir.as_str())
    }

    fn pack_paths(&self, dir: &SandboxPath, rels: &[String], out: &mut dyn Write) -> FsResult<()> {
        let args = calls::Pack {
            dir: dir.clone(),
            rels: Some(rels.to_vec()),
        };
        let response = self.inner.send("pack", &args, dir.as_str(), None)?;
        self.inner.drain(response, out, dir.as_str())
    }

    fn unpack(
        &self,
        dir: &SandboxPath,
        input: &mut dyn Read,
        how: Unpacking,
    ) -> FsResult<Unpacked> {
        let args = calls::Unpack {
            dir: dir.clone(),
            how,
        };
        self.inner.call("unpack", &args, dir.as_str(), Some(input))
    }

    fn create_partial(
        &self,
        dest: &SandboxPath,
        parents: bool,
        owner: FileOwner,
    ) -> FsResult<String> {
        let args = calls::CreatePartial {
            dest: dest.clone(),
            parents,
            owner,
        };
        self.inner
            .call("create_partial", &args, dest.as_str(), None)
    }

    fn open_partial(&self, dest: &SandboxPath, name: &str) -> FsResult<Box<dyn PartialFile>> {
        // Opening checks the file is there, as a local open would.
        let args = calls::Partial {
            dest: dest.clone(),
            name: name.to_owned(),
            at: None,
        };
        self.inner
            .call::<()>("open_partial", &args, dest.as_str(), None)?;
        Ok(Box::new(RemotePartial {
            fs: self.inner.clone(),
            dest: dest.clone(),
            name: name.to_owned(),
            pos: 0,
            pending: None,
        }))
    }

    fn commit_partial(
        &self,
        dest: &SandboxPath,
        name: &str,
        opts: WriteOptions,
    ) -> FsResult<Written> {
        let args = calls::CommitPartial {
            dest: dest.clone(),
            name: name.to_owned(),
            opts,
        };
        self.inner
            .call("commit_partial", &args, dest.as_str(), None)
    }

    fn commit_partial_written(
        &self,
        dest: &SandboxPath,
        name: &str,
        opts: WriteOptions,
        _file: &dyn PartialFile,
        _checksums: Checksums,
    ) -> FsResult<Written> {
        // The agent cannot trust checksums it did not compute: it hashes the file again.
        self.commit_partial(dest, name, opts)
    }

    fn discard_partial(&self, dest: &SandboxPath, name: &str) -> FsResult<()> {
        let args = calls::Partial {
            dest: dest.clone(),
            name: name.to_owned(),
            at: None,
        };
        self.inner
            .call("discard_partial", &args, dest.as_str(), None)
    }

    fn sweep_leftovers(&self, before: SystemTime, keep: &HashSet<String>) -> usize {
        let args = calls::Sweep {
            before_ns: before
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
            keep: keep.iter().cloned().collect(),
        };
        self.inner.call("sweep", &args, "/", None).unwrap_or(0)
    }

    fn watch(&self, dir: &SandboxPath, recursive: bool) -> FsResult<Box<dyn WatchFeed>> {
        let args = calls::Watch {
            dir: dir.clone(),
            recursive,
        };
        let response = self.inner.send("watch", &args, dir.as_str(), None)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(WATCH_QUEUE);
        let alive = Arc::new(AtomicBool::new(true));
        let still = alive.clone();
        let task = self.inner.runtime.spawn(async move {
            let events = response.bytes_stream().map_err(std::io::Error::other);
            let mut lines = StreamReader::new(events).lines();
            let mut queue = LossyQueue::default();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(event) = serde_json::from_str::<WatchEvent>(&line) else {
                    break;
                };
                queue.offer(event, |e| tx.try_send(e).is_ok());
            }
            still.store(false, Ordering::Relaxed);
        });
        Ok(Box::new(RemoteWatch { rx, alive, task }))
    }

    fn answers_at_once(&self) -> bool {
        // Every call is a request to the agent.
        false
    }
}

/// A file being read from the agent. Seeking drops the answer in flight; the next read
/// asks again from the new position.
struct RemoteReader {
    fs: Arc<Inner>,
    path: SandboxPath,
    pos: u64,
    response: Option<reqwest::Response>,
    pending: Bytes,
}

impl RemoteReader {
    fn open(&mut self) -> FsResult<Entry> {
        let args = calls::Read {
            path: self.path.clone(),
            offset: self.pos,
        };
        let response = self.fs.send("read", &args, self.path.as_str(), None)?;
        let entry = response
            .headers()
            .get(RESULT)
            .and_then(|v| v.to_str().ok())
            .map(calls::decode::<Entry>)
            .ok_or_else(|| io(self.path.as_str(), "the agent sent no entry"))?
            .map_err(|e| io(self.path.as_str(), e))?;
        self.response = Some(response);
        self.pending = Bytes::new();
        Ok(entry)
    }
}

impl Read for RemoteReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.response.is_none() {
            self.open().map_err(std::io::Error::other)?;
        }
        while self.pending.is_empty() {
            let Some(response) = self.response.as_mut() else {
                return Ok(0);
            };
            match self.fs.runtime.block_on(response.chunk()) {
                Ok(Some(chunk)) => self.pending = chunk,
                Ok(None) => return Ok(0),
                Err(e) => return Err(std::io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending.split_to(n));
        self.pos += n as u64;
        Ok(n)
    }
}

/// Read through the agent: never a file on this machine.
impl FileReader for RemoteReader {
    fn into_local(self: Box<Self>) -> Result<std::fs::File, Box<dyn FileReader>> {
        Err(self)
    }
}

impl Seek for RemoteReader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(at) => at,
            SeekFrom::Current(by) => self.pos.checked_add_signed(by).ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "before the start")
            })?,
            SeekFrom::End(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "seeking from the end of a remote file",
                ));
            }
        };
        if target != self.pos {
            self.pos = target;
            self.response = None;
            self.pending = Bytes::new();
        }
        Ok(self.pos)
    }
}

/// A partial upload's file on the agent. A run of writes is one streamed request, which
/// a flush or a cut ends (and reports). Each run starts where the last write or cut left
/// off, and the agent cuts the file there first, so what a broken run left past that
/// point goes, as it does for a local file after `cut_to`.
struct RemotePartial {
    fs: Arc<Inner>,
    dest: SandboxPath,
    name: String,
    /// Where the next write goes.
    pos: u64,
    pending: Option<Streaming>,
}

/// A call whose body is still being sent.
struct Streaming {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    answer: tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
}

impl RemotePartial {
    fn args(&self, at: Option<u64>) -> calls::Partial {
        calls::Partial {
            dest: self.dest.clone(),
            name: self.name.clone(),
            at,
        }
    }

    /// Ends the run of writes in flight and reports how it went.
    fn finish(&mut self) -> std::io::Result<()> {
        let Some(Streaming { tx, answer }) = self.pending.take() else {
            return Ok(());
        };
        drop(tx);
        let response = self
            .fs
            .runtime
            .block_on(answer)
            .map_err(std::io::Error::other)?;
        self.fs
            .accepted(response, self.dest.as_str())
            .map(drop)
            .map_err(std::io::Error::other)
    }
}

impl Write for RemotePartial {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let run = match self.pending.take() {
            Some(run) => run,
            None => self
                .fs
                .stream_request("append_partial", &self.args(Some(self.pos))),
        };
        let sent = run.tx.blocking_send(Ok(Bytes::copy_from_slice(data)));
        self.pending = Some(run);
        match sent {
            Ok(()) => {
                self.pos += data.len() as u64;
                Ok(data.len())
            }
            // The request ended early: its answer says why.
            _ => self.finish().and(Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the agent stopped taking the chunk",
            ))),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.finish()
    }
}

impl PartialFile for RemotePartial {
    fn cut_to(&mut self, len: u64) -> std::io::Result<()> {
        self.finish()?;
        self.fs
            .call::<()>(
                "cut_partial",
                &self.args(Some(len)),
                self.dest.as_str(),
                None,
            )
            .map_err(std::io::Error::other)?;
        self.pos = len;
        Ok(())
    }
}

impl Drop for RemotePartial {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// A watch on the agent: its events arrive on a task and wait in a bounded queue.
struct RemoteWatch {
    rx: std::sync::mpsc::Receiver<WatchEvent>,
    alive: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl WatchFeed for RemoteWatch {
    fn next_events(&mut self, out: &mut Vec<WatchEvent>, wait: Duration) -> FsResult<()> {
        if let Ok(event) = self.rx.recv_timeout(wait) {
            out.push(event);
            out.extend(self.rx.try_iter());
        }
        Ok(())
    }

    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }
}

impl Drop for RemoteWatch {
    fn drop(&mut self) {
        // Dropping the answer closes the connection, and the agent stops watching.
        self.task.abort();
    }
}
