//! The file operations on a sandbox's root. Paths are checked here and resolved by the
//! confined engine; read-only injected files are protected by their read-only mounts, so
//! the kernel itself refuses (EROFS/EBUSY, answered 403) any write, move or removal.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use airlock_api::{FileEntry, FileList, FileMode, WriteResult};
use airlock_fs::{
    Checks, Entry, FileOwner, Placement, SandboxFs, SandboxPath, WriteOptions, Written,
};

use super::{Service, blocking};
use crate::ApiError;
use crate::audit::{Counted, Pending, Receipt};
use crate::body::{BodyPump, ByteStream};
use crate::caps::Work;
use crate::metrics::InFlight;
use crate::options::PatchFile;
use crate::{Need, Principal};

/// Listing page size when the client names none, and the most it may ask for.
const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;
/// The deepest listing: every entry a path can name, since each level takes at least two
/// of PATH_MAX's 4,095 bytes ("/d").
const MAX_DEPTH: u32 = 2048;
/// Most files one compose may concatenate.
const MAX_COMPOSE: usize = 10_000;

/// A listing as the client asks for it; `None` is the default.
#[derive(Debug, Clone, Default)]
pub struct ListFiles {
    /// The directory (or file) to list.
    pub path: String,
    /// Levels below `path` (1 to [`MAX_DEPTH`]; default 1).
    pub depth: Option<u32>,
    /// Entries per page (1 to 10,000; default 1,000).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Add each file's sha256 and CRC-64/NVME.
    pub checksum: Option<bool>,
}

/// A file's permission bits when the client names none.
pub(crate) const DEFAULT_FILE_MODE: u32 = 0o644;

/// Files up to this size are read whole when opened for download, and bodies up to it
/// gathered before they are written.
pub(crate) const SMALL_FILE: u64 = 64 * 1024;

/// A download's content, with its audit line, written once the bytes are sent.
pub struct FileBody {
    content: Content,
    audit: Pending,
    in_flight: InFlight,
}

/// Read already (small files) or an open file to stream.
enum Content {
    Small(Vec<u8>),
    Stream(Box<dyn airlock_fs::FileReader>),
}

/// Bytes per chunk when a download streams.
const DOWNLOAD_CHUNK: usize = 256 * 1024;

/// The bytes of a window of a file: whole already (a small file), or a stream.
pub enum FileWindow {
    /// Every byte of the window.
    Bytes(bytes::Bytes),
    /// Chunks of the window as they are read.
    Stream(ByteStream),
}

/// A face that sends a window of a file on this machine itself (HTTP/1 with `sendfile`).
pub trait SendsFiles {
    /// The body for bytes `[start, start + len)` of `file`: a stream whose chunks'
    /// lengths add up to the window's. The face tells `receipt` of each byte as it
    /// leaves and holds it until then; the download's audit line is written when the
    /// last holder lets go.
    fn body(&self, file: std::fs::File, start: u64, len: u64, receipt: Arc<Receipt>) -> ByteStream;
}

impl FileBody {
    /// Bytes `[start, start + len)` of the content, which a face sends as it is.
    pub fn window(self, start: u64, len: u64) -> FileWindow {
        self.window_sent_by(start, len, None)
    }

    /// The same, with a window of a streamed file on this machine handed to `send`
    /// rather than read through the daemon's buffers.
    pub fn window_sent_by(self, start: u64, len: u64, send: Option<&dyn SendsFiles>) -> FileWindow {
        let mut audit = self.audit;
        match self.content {
            Content::Small(bytes) => {
                audit.bytes(len);
                drop(audit.done(Ok(())));
                FileWindow::Bytes(
                    bytes::Bytes::from(bytes).slice(start as usize..(start + len) as usize),
                )
            }
            Content::Stream(mut file) => {
                if let Some(send) = send {
                    match file.into_local() {
                        Ok(own) => {
                            let receipt =
                                Arc::new(Receipt::new(audit, len).in_flight(self.in_flight));
                            return FileWindow::Stream(send.body(own, start, len, receipt));
                        }
                        Err(reader) => file = reader,
                    }
                }
                let chunks = crate::read_pump::read_window(file, start, len, DOWNLOAD_CHUNK);
                let counted = Counted::of_length(chunks, audit, len).in_flight(self.in_flight);
                FileWindow::Stream(Box::pin(counted))
            }
        }
    }
}

impl Service {
    /// The root of a sandbox that exists (in any state), for a caller allowed `need`.
    pub(super) fn root_of(
        &self,
        caller: &Principal,
        id: &str,
        need: Need,
    ) -> Result<Arc<dyn SandboxFs>, ApiError> {
        self.entry(caller, id, need)?;
        self.root_unchecked(id)
    }

    /// The root of a sandbox, for the daemon's own housekeeping (sweeps, expiry).
    pub(super) fn root_unchecked(&self, id: &str) -> Result<Arc<dyn SandboxFs>, ApiError> {
        Ok(self.backend.fs(id)?)
    }

    /// Runs a file operation on a blocking thread.
    pub(super) async fn on_root<T: Send + 'static>(
        &self,
        caller: &Principal,
        id: &str,
        need: Need,
        op: impl FnOnce(&dyn SandboxFs) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let root = self.root_of(caller, id, need)?;
        blocking(move || op(&*root)).await?
    }

    /// Runs a short file operation (a few calls on metadata and at most [`SMALL_FILE`]
    /// bytes) on this thread when the sandbox's files answer at once, as nginx serves
    /// its files from its event loop: for a 1 KiB request, handing the work to a
    /// blocking thread and back cost more than the work. Otherwise on a blocking thread.
    pub(super) async fn quick<T: Send + 'static>(
        &self,
        caller: &Principal,
        id: &str,
        need: Need,
        op: impl FnOnce(&dyn SandboxFs) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let root = self.root_of(caller, id, need)?;
        at_once_or_blocking(root, op).await
    }

    pub async fn stat_file(
        &self,
        caller: &Principal,
        id: &str,
        path: &str,
    ) -> Result<FileEntry, ApiError> {
        let path = parse(path)?;
        self.quick(caller, id, Need::Read, move |root| {
            Ok(to_api(&root.stat(&path)?))
        })
        .await
    }

    /// Every entry under a directory, all pages: for protocols that have no paging (the
    /// compatibility faces). `req.cursor` is where to begin.
    pub async fn list_all_files(
        &self,
        caller: &Principal,
        id: &str,
        mut req: ListFiles,
    ) -> Result<Vec<FileEntry>, ApiError> {
        // The largest pages: each page reads again every directory on its cursor's path,
        // so a flat directory of 50,000 files took 1.5 s in pages of 1,000, 0.35 s in
        // pages of 10,000.
        req.limit = Some(req.limit.unwrap_or(MAX_LIMIT));
        let mut all = Vec::new();
        loop {
            let page = self.list_files(caller, id, req.clone()).await?;
            all.extend(page.entries);
            match page.next_cursor {
                Some(next) => req.cursor = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// One page of the entries under a directory, depth first.
    pub async fn list_files(
        &self,
        caller: &Principal,
        id: &str,
        req: ListFiles,
    ) -> Result<FileList, ApiError> {
        let checksum = req.checksum.unwrap_or(false);
        let path = parse(&req.path)?;
        let cursor = req.cursor.as_deref().map(parse).transpose()?;
        let depth = req.depth.unwrap_or(1);
        let limit = req.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_DEPTH).contains(&depth) || !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "depth must be 1 to {MAX_DEPTH}, limit 1 to {MAX_LIMIT}"
            )));
        }
        self.on_root(caller, id, Need::Read, move |root| {
            let page = root.list(&path, depth, limit, cursor.as_ref())?;
            let mut entries: Vec<FileEntry> = page.entries.iter().map(to_api).collect();
            if checksum {
                for entry in entries.iter_mut().filter(|e| e.kind == "file") {
                    // A file removed since it was listed simply has no checksums.
                    let both = Checks {
                        sha256: true,
                        ..Checks::default()
                    };
                    let sums = SandboxPath::parse(&entry.path)
                        .ok()
                        .and_then(|p| root.checksums(&p, both).ok());
                    entry.sha256 = sums.and_then(|s| s.sha256_hex());
                    entry.crc64nvme = sums.map(|s| s.crc64nvme_hex());
                }
            }
            Ok(FileList {
                entries,
                next_cursor: page.next_cursor,
            })
        })
        .await
    }

    /// Opens a regular file for download. A small file is read at once, in the same
    /// trip to the blocking pool: one hop instead of one per chunk.
    pub async fn open_file(
        &self,
        caller: &Principal,
        id: &str,
        path: &str,
    ) -> Result<(FileBody, Entry), ApiError> {
        let audit = self.audit(caller, "file.read", Some(id)).path(path);
        let path = match parse(path) {
            Ok(path) => path,
            Err(err) => return audit.done(Err(err)),
        };
        let opened = self
            .quick(caller, id, Need::Read, move |root| {
                let (file, mut entry) = root.open_read(&path)?;
                if entry.size > SMALL_FILE {
                    return Ok((Content::Stream(file), entry));
                }
                // Read up to the size just seen, not to the end: a read that fills the
                // buffer exactly otherwise asks the file once more for an end it already
                // knows (a system call per small download).
                let mut bytes = Vec::with_capacity(entry.size as usize);
                std::io::Read::read_to_end(&mut std::io::Read::take(file, entry.size), &mut bytes)
                    .map_err(|e| ApiError::internal("reading", e))?;
                // What was read is what is sent, even if the file changed meanwhile.
                entry.size = bytes.len() as u64;
                Ok((Content::Small(bytes), entry))
            })
            .await;
        match opened {
            Ok((content, entry)) => {
                let in_flight = self.metrics.transfer();
                let body = FileBody {
                    content,
                    audit,
                    in_flight,
                };
                Ok((body, entry))
            }
            Err(err) => audit.done(Err(err)),
        }
    }

    /// Appends to, or writes at an offset of, `path`: exactly one of `append` and
    /// `offset`.
    pub async fn patch_file(
        &self,
        caller: &Principal,
        id: &str,
        path: &str,
        patch: PatchFile,
        body: ByteStream,
    ) -> Result<WriteResult, ApiError> {
        let mut audit = self.audit(caller, "file.patch", Some(id)).path(path);
        let result = async {
            let PatchFile {
                append,
                offset,
                checks,
            } = patch;
            let at = match (append.unwrap_or(false), offset) {
                (true, None) => Placement::Append,
                (false, Some(offset)) => Placement::Offset(offset),
                _ => {
                    return Err(ApiError::bad_request(
                        "give exactly one of append=true or offset=N",
                    ));
                }
            };
            let path = parse(path)?;
            let root = self.root_of(caller, id, Need::Write)?;
            let _slot = self.slot(id, Work::Upload)?;
            let (mut reader, pump) = BodyPump::new(body);
            let outcome = blocking(move || {
                Ok::<_, ApiError>(written(&root.write_in_place(
                    &path,
                    &mut reader,
                    at,
                    FileOwner::SANDBOX_USER,
                    checks,
                )?))
            })
            .await;
            pump.finish().await;
            outcome?
        }
        .await;
        if let Ok(value) = &result {
            audit.checksums(value);
        }
        audit.done(result)
    }

    /// Concatenates sources into a destination, atomically.
    pub async fn compose_files(
        &self,
        caller: &Principal,
        id: &str,
        req: airlock_api::ComposeFiles,
    ) -> Result<WriteResult, ApiError> {
        let mut audit = self
            .audit(caller, "file.compose", Some(id))
            .path(&req.destination);
        let result = async {
            if req.sources.is_empty() || req.sources.len() > MAX_COMPOSE {
                return Err(ApiError::bad_request(format!(
                    "compose takes 1 to {MAX_COMPOSE} sources"
                )));
            }
            let sources = req
                .sources
                .iter()
                .map(|s| parse(s))
                .collect::<Result<Vec<_>, _>>()?;
            let dest = parse(&req.destination)?;
            let mode = req.mode.map_or(DEFAULT_FILE_MODE, |m| m.0);
            let mut opts = WriteOptions::new(mode, FileOwner::SANDBOX_USER);
            opts.overwrite = req.overwrite.unwrap_or(true);
            self.on_root(caller, id, Need::Write, move |root| {
                Ok(written(&root.compose(&sources, &dest, opts)?))
            })
            .await
        }
        .await;
        if let Ok(value) = &result {
            audit.bytes(value.entry.size);
            audit.checksums(value);
        }
        audit.done(result)
    }

    pub async fn make_dir(
        &self,
        caller: &Principal,
        id: &str,
        path: &str,
        mode: Option<FileMode>,
        parents: Option<bool>,
    ) -> Result<FileEntry, ApiError> {
        let audit = self.audit(caller, "dir.make", Some(id)).path(path);
        let result = async {
            let path = parse(path)?;
            let mode = mode.map_or(0o755, |m| m.0);
            let parents = parents.unwrap_or(true);
            self.on_root(caller, id, Need::Write, move |root| {
                Ok(to_api(&root.mkdir(
                    &path,
                    mode,
                    FileOwner::SANDBOX_USER,
                    parents,
                )?))
            })
            .await
        }
        .await;
        audit.done(result)
    }

    pub async fn move_file(
        &self,
        caller: &Principal,
        id: &str,
        from: &str,
        to: &str,
        overwrite: Option<bool>,
    ) -> Result<FileEntry, ApiError> {
        let audit = self.audit(caller, "file.move", Some(id)).path(from).to(to);
        let result = async {
            let overwrite = overwrite.unwrap_or(false);
            let (from, to) = (parse(from)?, parse(to)?);
            if to.starts_with(&from) && to != from {
                return Err(ApiError::bad_request(format!(
                    "cannot move {from} into itself"
                )));
            }
            self.on_root(caller, id, Need::Write, move |root| {
                Ok(to_api(&root.rename(&from, &to, overwrite)?))
            })
            .await
        }
        .await;
        audit.done(result)
    }

    pub async fn remove_file(
        &self,
        caller: &Principal,
        id: &str,
        path: &str,
        recursive: Option<bool>,
    ) -> Result<(), ApiError> {
        let audit = self.audit(caller, "file.remove", Some(id)).path(path);
        let result = async {
            let path = parse(path)?;
            let recursive = recursive.unwrap_or(false);
            self.on_root(caller, id, Need::Write, move |root| {
                Ok(root.remove(&path, recursive)?)
            })
            .await
        }
        .await;
        audit.done(result)
    }
}

pub(super) fn parse(raw: &str) -> Result<SandboxPath, ApiError> {
    Ok(SandboxPath::parse(raw)?)
}

pub(super) fn written(w: &Written) -> WriteResult {
    WriteResult {
        entry: to_api(&w.entry),
        crc64nvme: w.checksums.crc64nvme_hex(),
        sha256: w.checksums.sha256_hex(),
    }
}

/// An engine entry as the API shows it.
pub fn to_api(entry: &Entry) -> FileEntry {
    FileEntry {
        name: entry.name.clone(),
        path: entry.path.clone(),
        kind: entry.kind.name().to_owned(),
        size: entry.size,
        mode: FileMode(entry.mode),
        mtime: mtime_text(entry),
        uid: entry.uid,
        gid: entry.gid,
        symlink_target: entry.symlink_target.clone(),
        sha256: None,
        crc64nvme: None,
    }
}

/// RFC 3339 with nanoseconds.
pub fn mtime_text(entry: &Entry) -> String {
    let secs = Duration::new(entry.mtime.max(0) as u64, entry.mtime_nsec);
    humantime::format_rfc3339_nanos(UNIX_EPOCH + secs).to_string()
}

/// The bytes `[offset, offset + length)` of a file of `size` bytes, clamped to its end;
/// `length` 0 or absent means "to the end". An offset past the end is refused (an empty
/// file may be read from 0).
pub fn byte_window(size: u64, offset: u64, length: Option<u64>) -> Result<(u64, u64), ApiError> {
    if offset > size || (offset == size && size > 0) {
        return Err(ApiError::new(
            airlock_api::ErrorCode::BadRange,
            format!("offset {offset} is past the end of a file of {size} bytes"),
        ));
    }
    let rest = size - offset;
    let len = match length {
        None | Some(0) => rest,
        Some(n) => n.min(rest),
    };
    Ok((offset, len))
}

/// Runs `op` on this thread when `root` answers at once, else on a blocking thread.
pub(crate) async fn at_once_or_blocking<T: Send + 'static>(
    root: Arc<dyn SandboxFs>,
    op: impl FnOnce(&dyn SandboxFs) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    if root.answers_at_once() {
        op(&*root)
    } else {
        blocking(move || op(&*root)).await?
    }
}

#[cfg(test)]
mod window_tests {
    use super::byte_window;

    #[test]
    fn windows_clamp_to_the_end_and_refuse_offsets_past_it() {
        assert_eq!(byte_window(10, 0, None).unwrap(), (0, 10));
        assert_eq!(byte_window(10, 4, Some(3)).unwrap(), (4, 3));
        assert_eq!(byte_window(10, 4, Some(100)).unwrap(), (4, 6));
        assert_eq!(byte_window(10, 9, Some(0)).unwrap(), (9, 1));
        assert_eq!(byte_window(0, 0, None).unwrap(), (0, 0));
        assert!(byte_window(10, 10, None).is_err());
        assert!(byte_window(10, 11, None).is_err());
    }
}
