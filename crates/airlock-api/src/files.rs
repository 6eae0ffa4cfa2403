//! Files inside a sandbox as the file routes show them.

use serde::{Deserialize, Serialize};

use crate::FileMode;

/// One file or directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Final component.
    pub name: String,
    /// Absolute path inside the sandbox.
    pub path: String,
    /// `file`, `dir`, `symlink`, `fifo`, `socket` or `device`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Permission bits.
    pub mode: FileMode,
    /// Modification time, RFC 3339 with nanoseconds.
    pub mtime: String,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Where a symlink points (not followed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symlink_target: Option<String>,
    /// sha256 of a file's content, hex, in listings asked for with `checksum=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// CRC-64/NVME of a file's content, 16 hex digits, in the same listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64nvme: Option<String>,
}

/// A page of `GET /files`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileList {
    /// Entries in depth-first order, names sorted.
    pub entries: Vec<FileEntry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The answer to a completed write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteResult {
    /// The file as written.
    #[serde(flatten)]
    pub entry: FileEntry,
    /// CRC-64/NVME of the file's whole content: 16 hex digits. Every write reports it.
    pub crc64nvme: String,
    /// SHA-256 of the file's whole content, hex: only when the write asked for it
    /// (`checksum=sha256`) or sent one to verify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Body of `POST /files/mkdir`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MakeDir {
    /// Directory to make.
    pub path: String,
    /// Permission bits, `0755` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FileMode>,
    /// Make missing parents too (default true), and succeed if it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parents: Option<bool>,
}

/// Body of `POST /files/move`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveFile {
    /// Existing path.
    pub from: String,
    /// New path.
    pub to: String,
    /// Replace an existing `to` (default false: 409 if it exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overwrite: Option<bool>,
}

/// Body of `POST /files/archive`: the chosen entries under `path` as one tar stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackPaths {
    /// The directory the names are relative to.
    pub path: String,
    /// Entries to pack, relative to `path`; a directory comes without its contents.
    pub paths: Vec<String>,
    /// `tar` (default) or `tar.zst`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// Body of `POST /files/compose`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeFiles {
    /// Files to concatenate, in order.
    pub sources: Vec<String>,
    /// Where the result goes.
    pub destination: String,
    /// Permission bits, `0644` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FileMode>,
    /// Replace an existing destination (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overwrite: Option<bool>,
}

/// The answer to `PUT /files/archive`: what the extraction made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchiveResult {
    /// The directory extracted into.
    pub path: String,
    /// Entries read from the archive.
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Directories made or updated.
    pub dirs: u64,
    /// Symlinks made.
    pub symlinks: u64,
    /// Hard links made.
    pub hardlinks: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Entries refused without failing the archive: devices, FIFOs, unknown types.
    #[serde(default)]
    pub skipped: Vec<SkippedEntry>,
}

/// An archive entry that was not created, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedEntry {
    /// Its path inside the sandbox.
    pub path: String,
    /// Why it was refused.
    pub reason: String,
}

/// The answer to `POST /files/batch`: one result per part, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResult {
    /// Parts written.
    pub written: u64,
    /// Parts that failed (each with its error; the others were still written).
    pub failed: u64,
    /// Per part, in the order sent.
    pub results: Vec<BatchItem>,
}

/// What happened to one part of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchItem {
    /// The destination the part named.
    pub path: String,
    /// The file written, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<WriteResult>,
    /// Why it was not, when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::ErrorDetail>,
}

/// One line of `GET /files/watch`'s NDJSON stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// `ready` (first line: the watch is in place), `create`, `write`, `remove`,
    /// `rename`, `chmod`, `overflow` (events were lost: rescan) or `error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Absolute path inside the sandbox.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// The old path, for `rename`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// True when the entry is a directory.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dir: bool,
    /// What went wrong, for `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
