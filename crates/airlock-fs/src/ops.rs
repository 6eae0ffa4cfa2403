//! Stat, mkdir, move and remove, each resolved inside the root.

use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, ResolveFlags};
use rustix::io::Errno;

use crate::remove_tree::remove_tree;
use crate::root::{make_dir_in, openat2_in};
use crate::{Entry, FileKind, FileOwner, FsError, FsResult, Root, SandboxPath};

impl Root {
    /// Describes `path` without following a final symlink.
    pub fn stat(&self, path: &SandboxPath) -> FsResult<Entry> {
        let Some((parent, name)) = path.split_parent() else {
            return Entry::of_fd(self.fd(), "/".into())
                .map_err(|e| FsError::from_errno(path.as_str(), e));
        };
        let dir = self.resolve(&parent, OFlags::PATH | OFlags::DIRECTORY)?;
        Entry::at(&dir, name, path.to_string()).map_err(|e| FsError::from_errno(path.as_str(), e))
    }

    /// Makes one directory (`parents: false`) or a whole chain (`parents: true`).
    pub fn mkdir(
        &self,
        path: &SandboxPath,
        mode: u32,
        owner: FileOwner,
        parents: bool,
    ) -> FsResult<Entry> {
        if parents {
            self.mkdir_all(path, mode, owner)?;
            return self.stat(path);
        }
        let (dir, name) = self.parent_of(path)?;
        make_dir_in(&dir, name, mode, owner).map_err(|e| FsError::from_errno(path.as_str(), e))?;
        self.stat(path)
    }

    /// Renames `from` to `to`; with `overwrite` false an existing `to` is a conflict.
    /// Neither final component is followed: a symlink is moved as a symlink.
    pub fn rename(&self, from: &SandboxPath, to: &SandboxPath, overwrite: bool) -> FsResult<Entry> {
        let (from_dir, from_name) = self.parent_of(from)?;
        let (to_dir, to_name) = self.parent_of(to)?;
        let flags = if overwrite {
            RenameFlags::empty()
        } else {
            RenameFlags::NOREPLACE
        };
        rustix::fs::renameat_with(&from_dir, from_name, &to_dir, to_name, flags).map_err(|e| {
            match e {
                Errno::NOENT => FsError::from_errno(from.as_str(), e),
                _ => FsError::from_errno(to.as_str(), e),
            }
        })?;
        self.stat(to)
    }

    /// Removes `path`. A directory needs `recursive`; symlinks are removed, never
    /// followed, and removal never crosses into another mount.
    pub fn remove(&self, path: &SandboxPath, recursive: bool) -> FsResult<()> {
        let (dir, name) = self.parent_of(path)?;
        let entry = Entry::at(&dir, name, path.to_string())
            .map_err(|e| FsError::from_errno(path.as_str(), e))?;
        if entry.kind != FileKind::Dir {
            return rustix::fs::unlinkat(&dir, name, AtFlags::empty())
                .map_err(|e| FsError::from_errno(path.as_str(), e));
        }
        if recursive {
            remove_tree(&dir, name).map_err(|e| FsError::from_errno(path.as_str(), e))
        } else {
            rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR)
                .map_err(|e| FsError::from_errno(path.as_str(), e))
        }
    }

    /// The parent directory of `path` (symlinks resolved inside the root) and its name.
    pub(crate) fn parent_of<'p>(&self, path: &'p SandboxPath) -> FsResult<(OwnedFd, &'p str)> {
        let (parent, name) = path.split_parent().ok_or_else(|| FsError::BadPath {
            path: path.to_string(),
            reason: "is the root directory",
        })?;
        Ok((
            self.resolve(&parent, OFlags::PATH | OFlags::DIRECTORY)?,
            name,
        ))
    }
}

/// Opens the child directory `name` of `parent` for reading, refusing symlinks anywhere
/// and mount crossings (EXDEV): how every walk that changes things steps down.
pub(crate) fn open_child_dir<P: rustix::path::Arg + Copy>(
    parent: &OwnedFd,
    name: P,
) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV;
    openat2_in(parent, name, flags, Mode::empty(), resolve)
}

/// The names in an open directory (raw bytes, so any name works) and whether each is a
/// directory, not following symlinks.
pub(crate) fn children_of(dir: &OwnedFd) -> Result<Vec<(std::ffi::CString, bool)>, Errno> {
    let mut children = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let is_dir = match entry.file_type() {
            rustix::fs::FileType::Unknown => {
                let stat = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
                rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::Directory
            }
            kind => kind == rustix::fs::FileType::Directory,
        };
        children.push((name.to_owned(), is_dir));
    }
    Ok(children)
}
