//! The audit log: one JSON line per mutating call and per file transfer, whichever face
//! it came through, at `HOME/audit.log` unless the operator names another file. A line
//! says when, who (the credential in words safe to log, never a secret), which tenant
//! and sandbox, what (the operation, named the same for REST and gRPC), which path,
//! how many bytes, their sha256 where known, and the outcome. Never file contents, never
//! a token, a JWT or a signature. The file is rotated by size: `audit.log.1` is the
//! newest old one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::Stream;
use serde::Serialize;

use crate::{ApiError, Principal};

/// Where the audit log goes and how big it may grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// The file; `HOME/audit.log` when none.
    pub path: Option<PathBuf>,
    /// Rotate when the file passes this many bytes.
    pub max_bytes: u64,
    /// Rotated files kept (`audit.log.1` … `audit.log.N`).
    pub keep: usize,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            path: None,
            max_bytes: 64 * 1024 * 1024,
            keep: 5,
        }
    }
}

/// The open audit log.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    /// The open file and its size; lines are written whole under this lock.
    file: Mutex<(File, u64)>,
}

impl AuditLog {
    /// Opens (appending) or creates the log, readable by root alone.
    pub fn open(home: &Path, settings: &AuditSettings) -> std::io::Result<Self> {
        let path = settings
            .path
            .clone()
            .unwrap_or_else(|| home.join("audit.log"));
        let file = open_private(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            max_bytes: settings.max_bytes.max(4096),
            keep: settings.keep.max(1),
            file: Mutex::new((file, size)),
        })
    }

    fn write(&self, line: &Line) {
        // Each thread keeps its line's buffer: a call's audit line is written on every
        // file request, and allocating it (and its time as a string) each time showed.
        thread_local! {
            static TEXT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        TEXT.with_borrow_mut(|text| {
            text.clear();
            if serde_json::to_writer(&mut *text, line).is_ok() {
                text.push(b'\n');
                self.append(text);
            }
        });
    }

    fn append(&self, text: &[u8]) {
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.1 + text.len() as u64 > self.max_bytes && guard.1 > 0 {
            match self.rotate() {
                Ok(file) => *guard = (file, 0),
                Err(err) => tracing::error!(%err, "rotating the audit log"),
            }
        }
        match guard.0.write_all(text) {
            Ok(()) => guard.1 += text.len() as u64,
            Err(err) => tracing::error!(%err, "writing the audit log"),
        }
    }

    /// Shifts `log.N-1` to `log.N` … `log` to `log.1`, and opens a new `log`.
    fn rotate(&self) -> std::io::Result<File> {
        let numbered = |n: usize| {
            let mut name = self.path.as_os_str().to_owned();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        for n in (1..self.keep).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        std::fs::rename(&self.path, numbered(1))?;
        open_private(&self.path)
    }
}

fn open_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// One line of the log.
#[derive(Debug, Clone, Serialize)]
struct Line {
    #[serde(serialize_with = "rfc3339_millis")]
    time: std::time::SystemTime,
    principal: String,
    tenant: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sandbox: Option<String>,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    /// What else the call touched: a token's id, a template's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crc64nvme: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    outcome: std::borrow::Cow<'static, str>,
}

/// The time as `2026-12-06T14:43:15.123Z`, written straight into the line.
fn rfc3339_millis<S: serde::Serializer>(
    time: &std::time::SystemTime,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_rfc3339_millis(*time))
}

/// A line being filled in as its call runs; written once, when the call ends (or when
/// it is dropped unfinished: outcome `aborted`, as when a client goes away mid-stream).
#[derive(Debug)]
pub struct Pending {
    log: Arc<AuditLog>,
    line: Line,
    written: bool,
}

impl Pending {
    pub(crate) fn new(
        log: Arc<AuditLog>,
        caller: &Principal,
        tenant: String,
        sandbox: Option<&str>,
        action: &'static str,
    ) -> Self {
        Self {
            log,
            line: Line {
                time: std::time::SystemTime::UNIX_EPOCH,
                principal: caller.by().to_owned(),
                tenant,
                sandbox: sandbox.map(str::to_owned),
                action,
                path: None,
                to: None,
                target: None,
                bytes: None,
                crc64nvme: None,
                sha256: None,
                outcome: "aborted".into(),
            },
            written: false,
        }
    }

    /// The path the call touches.
    pub fn path(mut self, path: &str) -> Self {
        self.line.path = Some(path.to_owned());
        self
    }

    /// Where a move or copy goes.
    pub fn to(mut self, to: &str) -> Self {
        self.line.to = Some(to.to_owned());
        self
    }

    /// A token's id or a template's name.
    pub fn target(mut self, target: &str) -> Self {
        self.set_target(target);
        self
    }

    /// The same, once the call has answered it.
    pub fn set_target(&mut self, target: &str) {
        self.line.target = Some(target.to_owned());
    }

    /// The tenant, when the call names another than its caller's (minting its token).
    pub fn set_tenant(&mut self, tenant: &str) {
        self.line.tenant = tenant.to_owned();
    }

    /// The sandbox, once the call has made it.
    pub fn set_sandbox(&mut self, id: &str) {
        self.line.sandbox = Some(id.to_owned());
    }

    /// The path, once the call has found it.
    pub fn set_path(&mut self, path: &str) {
        self.line.path = Some(path.to_owned());
    }

    /// Bytes moved.
    pub fn bytes(&mut self, bytes: u64) {
        self.line.bytes = Some(bytes);
    }

    /// The written content's checksums, hex.
    pub fn checksums(&mut self, written: &airlock_api::WriteResult) {
        self.line.crc64nvme = Some(written.crc64nvme.clone());
        self.line.sha256.clone_from(&written.sha256);
    }

    /// Writes the line with the call's outcome (`ok`, or the error's code) and hands
    /// the result back.
    pub fn done<T>(mut self, result: Result<T, ApiError>) -> Result<T, ApiError> {
        self.line.outcome = match &result {
            Ok(_) => "ok".into(),
            Err(err) => err.code.name().into(),
        };
        self.flush();
        result
    }

    fn flush(&mut self) {
        if !self.written {
            self.written = true;
            self.line.time = std::time::SystemTime::now();
            self.log.write(&self.line);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A download's stream that counts what it sends and writes its audit line when it
/// ends: `ok` when every byte went, `aborted` when the client left first.
pub struct Counted<S> {
    inner: S,
    audit: Option<Pending>,
    sent: u64,
    /// The length, when known: a face that sent `Content-Length` bytes may drop the
    /// stream without polling its end, and that is a whole transfer too.
    length: Option<u64>,
    /// Counts the download in flight until it ends.
    in_flight: Option<crate::metrics::InFlight>,
}

impl<S> Counted<S> {
    pub fn new(inner: S, audit: Pending) -> Self {
        Self {
            inner,
            audit: Some(audit),
            sent: 0,
            length: None,
            in_flight: None,
        }
    }

    /// Counts the stream as a transfer in flight while it lasts.
    pub(crate) fn in_flight(mut self, guard: crate::metrics::InFlight) -> Self {
        self.in_flight = Some(guard);
        self
    }

    /// The same, for a stream of exactly `length` bytes.
    pub fn of_length(inner: S, audit: Pending, length: u64) -> Self {
        let mut counted = Self::new(inner, audit);
        counted.length = Some(length);
        counted
    }

    fn finish(&mut self, result: Result<(), ApiError>) {
        self.in_flight = None;
        if let Some(mut audit) = self.audit.take() {
            audit.bytes(self.sent);
            drop(audit.done(result));
        }
    }
}

impl<S> Stream for Counted<S>
where
    S: Stream<Item = std::io::Result<bytes::Bytes>> + Unpin,
{
    type Item = std::io::Result<bytes::Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                self.sent += chunk.len() as u64;
                if self.length == Some(self.sent) {
                    self.finish(Ok(()));
                }
            }
            Poll::Ready(Some(Err(err))) => {
                let failed = ApiError::internal("streaming a download", err);
                self.finish(Err(failed));
            }
            Poll::Ready(None) => self.finish(Ok(())),
            Poll::Pending => {}
        }
        polled
    }
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        // Unfinished: the line says how far it got, and `aborted`.
        if let Some(audit) = self.audit.as_mut() {
            audit.bytes(self.sent);
        }
    }
}

/// A download a face sends itself (HTTP/1's `sendfile`): the face reports each byte as
/// it leaves, and the audit line is written when the last holder (the body, the face's
/// queued windows) lets go: `ok` when every byte went, `aborted` with the count that did
/// otherwise. [`Counted`] counts a chunk as sent when it is yielded, which for such a
/// face is before it is sent: a connection that died with a window still queued would
/// be logged whole.
#[derive(Default)]
pub struct Receipt {
    audit: Option<Pending>,
    sent: std::sync::atomic::AtomicU64,
    length: u64,
    _in_flight: Option<crate::metrics::InFlight>,
}

impl Receipt {
    pub(crate) fn new(audit: Pending, length: u64) -> Self {
        Self {
            audit: Some(audit),
            sent: Default::default(),
            length,
            _in_flight: None,
        }
    }

    /// Counts the download as a transfer in flight while the receipt lives.
    pub(crate) fn in_flight(mut self, guard: crate::metrics::InFlight) -> Self {
        self._in_flight = Some(guard);
        self
    }

    /// `n` more bytes reached the connection.
    pub fn sent(&self, n: u64) {
        self.sent.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// The bytes reported sent so far.
    pub fn sent_so_far(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        let sent = *self.sent.get_mut();
        if let Some(mut audit) = self.audit.take() {
            audit.bytes(sent);
            if sent == self.length {
                drop(audit.done(Ok(())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> Principal {
        Principal::Tenant {
            tenant: "t".into(),
            by: "token abc".into(),
        }
    }

    #[test]
    fn lines_are_json_rotated_by_size_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        let settings = AuditSettings {
            path: None,
            max_bytes: 4096,
            keep: 2,
        };
        let log = Arc::new(AuditLog::open(home.path(), &settings).unwrap());
        for n in 0..100 {
            let mut line =
                Pending::new(log.clone(), &tenant(), "t".into(), Some("s1"), "file.write")
                    .path(&format!("/workspace/{n}"));
            line.bytes(n);
            drop(line.done(Ok(())));
        }
        drop(Pending::new(
            log.clone(),
            &tenant(),
            "t".into(),
            None,
            "sandbox.create",
        ));
        let current = std::fs::read_to_string(home.path().join("audit.log")).unwrap();
        let last: serde_json::Value =
            serde_json::from_str(current.lines().last().unwrap()).unwrap();
        assert_eq!(last["action"], "sandbox.create");
        assert_eq!(last["outcome"], "aborted");
        assert_eq!(last["principal"], "token abc");
        assert!(home.path().join("audit.log.1").exists());
        assert!(home.path().join("audit.log.2").exists());
        assert!(
            !home.path().join("audit.log.3").exists(),
            "kept more than asked"
        );
        for name in ["audit.log", "audit.log.1"] {
            let meta = std::fs::metadata(home.path().join(name)).unwrap();
            assert!(meta.len() <= 4096);
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        }
    }

    /// A line says when it was written (RFC 3339, milliseconds, UTC) and how the call
    /// ended: a failed call by its error's code.
    #[test]
    fn a_line_says_when_and_how_the_call_ended() {
        let home = tempfile::tempdir().unwrap();
        let log = Arc::new(AuditLog::open(home.path(), &AuditSettings::default()).unwrap());
        drop(
            Pending::new(log.clone(), &tenant(), "t".into(), None, "file.read")
                .done::<()>(Err(ApiError::not_found("gone"))),
        );
        let current = std::fs::read_to_string(home.path().join("audit.log")).unwrap();
        let line: serde_json::Value =
            serde_json::from_str(current.lines().last().unwrap()).unwrap();
        assert_eq!(line["outcome"], "not_found");
        let time = line["time"].as_str().unwrap();
        let written = humantime::parse_rfc3339(time).unwrap();
        let age = std::time::SystemTime::now()
            .duration_since(written)
            .unwrap();
        assert!(age.as_secs() < 60, "{time} is not now");
        assert!(time.ends_with('Z') && time.len() == "2026-12-06T14:43:15.123Z".len());
    }

    /// A receipt's line says what the face reported sent, `ok` only when that was all.
    #[test]
    fn a_receipt_logs_what_was_reported_sent() {
        let home = tempfile::tempdir().unwrap();
        let settings = AuditSettings {
            path: None,
            max_bytes: 1 << 20,
            keep: 1,
        };
        let log = Arc::new(AuditLog::open(home.path(), &settings).unwrap());
        let line = |path: &str| {
            Pending::new(log.clone(), &tenant(), "t".into(), Some("s1"), "file.read").path(path)
        };
        let whole = Arc::new(Receipt::new(line("/whole"), 300));
        let held = whole.clone();
        whole.sent(100);
        whole.sent(200);
        drop(whole);
        assert!(
            std::fs::read_to_string(home.path().join("audit.log"))
                .unwrap_or_default()
                .is_empty(),
            "written while a holder remained"
        );
        drop(held);
        let cut = Receipt::new(line("/cut"), 300);
        cut.sent(299);
        drop(cut);
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(home.path().join("audit.log"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            (&lines[0]["path"], &lines[0]["bytes"]),
            (&"/whole".into(), &300.into())
        );
        assert_eq!(lines[0]["outcome"], "ok");
        assert_eq!(
            (&lines[1]["path"], &lines[1]["bytes"]),
            (&"/cut".into(), &299.into())
        );
        assert_eq!(lines[1]["outcome"], "aborted");
    }
}
