//! The file operations on a sandbox's root. Paths are checked here and resolved by the
//! confined engine; read-only injected files are protected by their read-only mounts, so
//! the kernel itself refuses (EROFS/EBUSY, answered 403) any write, move or removal.

use std::io::Read;
use std::time::{Duration, UNIX_EPOCH};

use airlock_api::{FileEntry, FileList, FileMode, WriteResult};
use airlock_fs::{Entry, FileOwner, Placement, Root, SandboxPath, WriteOptions, Written, hex};

use super::{Service, blocking};
use crate::ApiError;

/// Listing page size when the client names none, and the most it may ask for.
const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;
const MAX_DEPTH: u32 = 64;
/// Most files one compose may concatenate.
const MAX_COMPOSE: usize = 10_000;

/// Files up to this size are read whole when opened for download.
const SMALL_FILE: u64 = 64 * 1024;

/// A download's content: read already (small files) or an open file to stream.
pub enum FileBody {
    Small(Vec<u8>),
    Stream(std::fs::File),
}

/// A whole-file write as the routes ask for it.
#[derive(Debug, Clone, Default)]
pub struct PutFile {
    pub mode: Option<u32>,
    pub mtime: Option<(i64, u32)>,
    pub parents: bool,
    pub overwrite: bool,
    pub expect_sha256: Option<[u8; 32]>,
}

impl Service {
    /// The root of a sandbox that exists (in any state).
    pub(super) fn root_of(&self, id: &str) -> Result<Root, ApiError> {
        self.entry(id)?;
        self.engine
            .root(id)
            .map_err(|e| ApiError::internal("opening sandbox root", e))
    }

    /// Runs a file operation on a blocking thread.
    pub(super) async fn on_root<T: Send + 'static>(
        &self,
        id: &str,
        op: impl FnOnce(&Root) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let root = self.root_of(id)?;
        blocking(move || op(&root)).await?
    }

    pub async fn stat_file(&self, id: &str, path: &str) -> Result<FileEntry, ApiError> {
        let path = parse(path)?;
        self.on_root(id, move |root| Ok(to_api(&root.stat(&path)?)))
            .await
    }

    pub async fn list_files(
        &self,
        id: &str,
        path: &str,
        depth: Option<u32>,
        limit: Option<usize>,
        cursor: Option<&str>,
        checksum: bool,
    ) -> Result<FileList, ApiError> {
        let path = parse(path)?;
        let cursor = cursor.map(parse).transpose()?;
        let depth = depth.unwrap_or(1);
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_DEPTH).contains(&depth) || !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "depth must be 1 to {MAX_DEPTH}, limit 1 to {MAX_LIMIT}"
            )));
        }
        self.on_root(id, move |root| {
            let page = root.list(&path, depth, limit, cursor.as_ref())?;
            let mut entries: Vec<FileEntry> = page.entries.iter().map(to_api).collect();
            if checksum {
                for entry in entries.iter_mut().filter(|e| e.kind == "file") {
                    // A file removed since it was listed simply has no digest.
                    entry.sha256 = SandboxPath::parse(&entry.path)
                        .ok()
                        .and_then(|p| root.sha256(&p).ok())
                        .map(|d| hex(&d));
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
    pub async fn open_file(&self, id: &str, path: &str) -> Result<(FileBody, Entry), ApiError> {
        let path = parse(path)?;
        self.on_root(id, move |root| {
            let (file, mut entry) = root.open_read(&path)?;
            if entry.size > SMALL_FILE {
                return Ok((FileBody::Stream(file), entry));
            }
            let mut bytes = Vec::with_capacity(entry.size as usize);
            std::io::Read::read_to_end(&mut std::io::Read::take(file, SMALL_FILE), &mut bytes)
                .map_err(|e| ApiError::internal("reading", e))?;
            // What was read is what is sent, even if the file changed meanwhile.
            entry.size = bytes.len() as u64;
            Ok((FileBody::Small(bytes), entry))
        })
        .await
    }

    /// Streams `body` into `path`, atomically. Returns the result and whether it was new.
    pub async fn put_file(
        &self,
        id: &str,
        path: &str,
        put: PutFile,
        mut body: impl Read + Send + 'static,
    ) -> Result<(WriteResult, bool), ApiError> {
        let path = parse(path)?;
        self.on_root(id, move |root| {
            let existed = root.stat(&path).is_ok();
            let opts = WriteOptions {
                mode: put.mode.unwrap_or(0o644),
                owner: FileOwner::SANDBOX_USER,
                parents: put.parents,
                overwrite: put.overwrite,
                mtime: put.mtime,
                expect_sha256: put.expect_sha256,
            };
            Ok((written(&root.write_file(&path, &mut body, opts)?), !existed))
        })
        .await
    }

    /// Appends to, or writes at an offset of, `path`.
    pub async fn patch_file(
        &self,
        id: &str,
        path: &str,
        at: Placement,
        mut body: impl Read + Send + 'static,
    ) -> Result<WriteResult, ApiError> {
        let path = parse(path)?;
        self.on_root(id, move |root| {
            Ok(written(&root.write_in_place(
                &path,
                &mut body,
                at,
                FileOwner::SANDBOX_USER,
            )?))
        })
        .await
    }

    /// Concatenates sources into a destination, atomically.
    pub async fn compose_files(
        &self,
        id: &str,
        req: airlock_api::ComposeFiles,
    ) -> Result<WriteResult, ApiError> {
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
        let mut opts = WriteOptions::new(req.mode.map_or(0o644, |m| m.0), FileOwner::SANDBOX_USER);
        opts.overwrite = req.overwrite.unwrap_or(true);
        self.on_root(id, move |root| {
            Ok(written(&root.compose(&sources, &dest, opts)?))
        })
        .await
    }

    pub async fn make_dir(
        &self,
        id: &str,
        path: &str,
        mode: Option<FileMode>,
        parents: bool,
    ) -> Result<FileEntry, ApiError> {
        let path = parse(path)?;
        let mode = mode.map_or(0o755, |m| m.0);
        self.on_root(id, move |root| {
            Ok(to_api(&root.mkdir(
                &path,
                mode,
                FileOwner::SANDBOX_USER,
                parents,
            )?))
        })
        .await
    }

    pub async fn move_file(
        &self,
        id: &str,
        from: &str,
        to: &str,
        overwrite: bool,
    ) -> Result<FileEntry, ApiError> {
        let (from, to) = (parse(from)?, parse(to)?);
        if to.starts_with(&from) && to != from {
            return Err(ApiError::bad_request(format!(
                "cannot move {from} into itself"
            )));
        }
        self.on_root(id, move |root| {
            Ok(to_api(&root.rename(&from, &to, overwrite)?))
        })
        .await
    }

    pub async fn remove_file(&self, id: &str, path: &str, recursive: bool) -> Result<(), ApiError> {
        let path = parse(path)?;
        self.on_root(id, move |root| Ok(root.remove(&path, recursive)?))
            .await
    }
}

pub(super) fn parse(raw: &str) -> Result<SandboxPath, ApiError> {
    Ok(SandboxPath::parse(raw)?)
}

/// A sha256 given as 64 hex digits.
pub fn parse_sha256(text: &str) -> Result<[u8; 32], ApiError> {
    let bad = || ApiError::bad_request(format!("sha256 {text:?} is not 64 hex digits"));
    // Bytes, not string slices: a multi-byte character must be refused, not split (the
    // fuzzer found a panic here).
    let digit = |b: u8| (b as char).to_digit(16).ok_or_else(bad);
    let hex = text.as_bytes();
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (digit(pair[0])? << 4 | digit(pair[1])?) as u8;
    }
    Ok(out)
}

pub(super) fn written(w: &Written) -> WriteResult {
    WriteResult {
        entry: to_api(&w.entry),
        sha256: hex(&w.sha256),
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
    }
}

/// RFC 3339 with nanoseconds.
pub fn mtime_text(entry: &Entry) -> String {
    let secs = Duration::new(entry.mtime.max(0) as u64, entry.mtime_nsec);
    humantime::format_rfc3339_nanos(UNIX_EPOCH + secs).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_text_with_multibyte_characters_is_refused() {
        let mut text = "a".repeat(61);
        text.push('é');
        text.push('b');
        assert_eq!(text.len(), 64);
        assert!(super::parse_sha256(&text).is_err());
        let good = "0123456789abcdefABCDEF".repeat(3)[..64].to_owned();
        assert_eq!(super::parse_sha256(&good).unwrap()[..3], [0x01, 0x23, 0x45]);
    }
}
