//! Partial files of resumable uploads. Each lives beside its destination as a hidden file
//! owned by root with mode 0600 (so the sandbox can neither read nor change the bytes
//! while they arrive, and the disk quota counts them), and becomes the destination in one
//! rename when the last byte is in.

use std::fs::File;
use std::io::Seek;

use rustix::fs::OFlags;

use crate::read::reopen;
use crate::reserved::PARTIAL_PREFIX;
use crate::root::open_beneath;
use crate::write::{commit, create_temp, hash_all, seal};
use crate::{
    Checksums, Entry, FileKind, FileOwner, FsError, FsResult, Root, SandboxPath, WriteOptions,
    Written,
};

impl Root {
    /// Makes an empty partial file for `dest` (and, with `parents`, the directories it
    /// needs, owned by `owner`). Returns the partial file's name in `dest`'s directory.
    pub fn create_partial(
        &self,
        dest: &SandboxPath,
        parents: bool,
        owner: FileOwner,
    ) -> FsResult<String> {
        let (parent, _) = split(dest)?;
        let dir = if parents {
            self.mkdir_all(&parent, 0o755, owner)?
        } else {
            self.resolve(&parent, OFlags::PATH | OFlags::DIRECTORY)?
        };
        let (name, file) =
            create_temp(&dir, PARTIAL_PREFIX).map_err(|e| FsError::from_errno(dest.as_str(), e))?;
        FileOwner::ROOT
            .apply(&file)
            .map_err(|e| FsError::from_errno(dest.as_str(), e))?;
        Ok(name)
    }

    /// Opens the partial file `name` of `dest` for reading and writing. A partial that was
    /// removed or replaced (by anything but a regular file) is reported as not found.
    pub fn open_partial(&self, dest: &SandboxPath, name: &str) -> FsResult<File> {
        let (parent, _) = split(dest)?;
        let dir = self.resolve(&parent, OFlags::PATH | OFlags::DIRECTORY)?;
        let gone = || FsError::NotFound {
            path: format!("{dest} (its partial upload was removed)"),
        };
        let handle = open_beneath(&dir, name, OFlags::PATH).map_err(|_| gone())?;
        let entry = Entry::of_fd(&handle, String::new()).map_err(|_| gone())?;
        if entry.kind != FileKind::File {
            return Err(gone());
        }
        reopen(&handle, OFlags::RDWR).map_err(|e| FsError::from_errno(dest.as_str(), e))
    }

    /// Turns a complete partial file into `dest`: hashed, checked against the digest the
    /// client expected, given its owner, mode and mtime, and renamed into place.
    pub fn commit_partial(
        &self,
        dest: &SandboxPath,
        name: &str,
        opts: WriteOptions,
    ) -> FsResult<Written> {
        let (parent, final_name) = split(dest)?;
        let mut file = self.open_partial(dest, name)?;
        file.rewind()
            .map_err(|e| FsError::from_io(dest.as_str(), e))?;
        let checksums =
            hash_all(&mut file, opts.checks).map_err(|e| FsError::from_io(dest.as_str(), e))?;
        opts.checks.verify(&checksums, dest)?;
        seal(&file, &opts, false, dest)?;
        let dir = self.resolve(&parent, OFlags::PATH | OFlags::DIRECTORY)?;
        let (entry, created) = commit(&dir, name, final_name, opts.overwrite, dest)?;
        Ok(Written {
            entry,
            checksums,
            created,
        })
    }

    /// Like [`Root::commit_partial`], for a partial file the caller wrote through `file`
    /// from its first byte and hashed on the way (`checksums`, with what `opts` asks for):
    /// no second read. The name must
    /// still be that same file; if anything replaced it, the file is hashed as usual.
    pub fn commit_partial_hashed(
        &self,
        dest: &SandboxPath,
        name: &str,
        opts: WriteOptions,
        file: &File,
        checksums: Checksums,
    ) -> FsResult<Written> {
        let (parent, final_name) = split(dest)?;
        let dir = self.resolve(&parent, OFlags::PATH | OFlags::DIRECTORY)?;
        let ours = rustix::fs::fstat(file).map_err(|e| FsError::from_errno(dest.as_str(), e))?;
        let named = rustix::fs::statat(&dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW);
        if !named.is_ok_and(|n| (n.st_dev, n.st_ino) == (ours.st_dev, ours.st_ino)) {
            return self.commit_partial(dest, name, opts);
        }
        opts.checks.verify(&checksums, dest)?;
        seal(file, &opts, false, dest)?;
        let (entry, created) = commit(&dir, name, final_name, opts.overwrite, dest)?;
        Ok(Written {
            entry,
            checksums,
            created,
        })
    }

    /// Removes the partial file `name` of `dest`, if it is still there.
    pub fn discard_partial(&self, dest: &SandboxPath, name: &str) -> FsResult<()> {
        let (parent, _) = split(dest)?;
        let dir = match self.resolve(&parent, OFlags::PATH | OFlags::DIRECTORY) {
            Err(FsError::NotFound { .. }) => return Ok(()),
            other => other?,
        };
        match rustix::fs::unlinkat(&dir, name, rustix::fs::AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(FsError::from_errno(dest.as_str(), e)),
        }
    }
}

fn split(dest: &SandboxPath) -> FsResult<(SandboxPath, &str)> {
    dest.split_parent().ok_or_else(|| FsError::BadPath {
        path: dest.to_string(),
        reason: "is the root directory",
    })
}
