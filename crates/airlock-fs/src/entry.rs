//! What the engine reports about a file: kind, size, mode, owner, times, link target.

use std::os::fd::AsFd;

use rustix::fs::{AtFlags, FileType, Stat};

/// The kind of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed when reported).
    Symlink,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character or block device.
    Device,
}

impl FileKind {
    fn of(stat: &Stat) -> Self {
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => Self::File,
            FileType::Directory => Self::Dir,
            FileType::Symlink => Self::Symlink,
            FileType::Fifo => Self::Fifo,
            FileType::Socket => Self::Socket,
            _ => Self::Device,
        }
    }

    /// The lowercase name used on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Dir => "dir",
            Self::Symlink => "symlink",
            Self::Fifo => "fifo",
            Self::Socket => "socket",
            Self::Device => "device",
        }
    }
}

/// One file, as stat shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// Final component (invalid UTF-8 replaced).
    pub name: String,
    /// Absolute path inside the sandbox.
    pub path: String,
    /// Kind.
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_nsec: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Where a symlink points, as stored (not resolved).
    pub symlink_target: Option<String>,
    /// Device and inode, which identify the file for ETags.
    pub dev: u64,
    /// See `dev`.
    pub ino: u64,
}

impl Entry {
    /// Describes the file `name` in directory `dir`, without following a symlink.
    pub(crate) fn at<P: rustix::path::Arg + Copy>(
        dir: impl AsFd,
        name: P,
        path: String,
    ) -> rustix::io::Result<Self> {
        let stat = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
        let kind = FileKind::of(&stat);
        let symlink_target = if kind == FileKind::Symlink {
            rustix::fs::readlinkat(&dir, name, Vec::new())
                .ok()
                .map(|t| t.to_string_lossy().into_owned())
        } else {
            None
        };
        Ok(Self::from_stat(&stat, path, symlink_target))
    }

    /// Describes an open file.
    pub(crate) fn of_fd(fd: impl AsFd, path: String) -> rustix::io::Result<Self> {
        let stat = rustix::fs::fstat(fd)?;
        Ok(Self::from_stat(&stat, path, None))
    }

    fn from_stat(stat: &Stat, path: String, symlink_target: Option<String>) -> Self {
        let name = match path.rsplit('/').next() {
            Some("") | None => "/".to_owned(),
            Some(last) => last.to_owned(),
        };
        Self {
            name,
            path,
            kind: FileKind::of(stat),
            size: stat.st_size as u64,
            mode: stat.st_mode & 0o7777,
            mtime: stat.st_mtime,
            mtime_nsec: stat.st_mtime_nsec as u32,
            uid: stat.st_uid,
            gid: stat.st_gid,
            symlink_target,
            dev: stat.st_dev,
            ino: stat.st_ino,
        }
    }

    /// A validator that changes whenever the file's content may have: inode, size, mtime.
    pub fn etag(&self) -> String {
        format!(
            "\"{:x}-{:x}-{:x}.{:x}\"",
            self.ino, self.size, self.mtime, self.mtime_nsec
        )
    }
}
