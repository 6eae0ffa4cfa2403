//! Moving an extracted staging tree into its target, and setting directory metadata last.
//!
//! Every step is a rename or an unlink relative to directories opened with no symlink
//! followed; the sandbox may change the target meanwhile, but it can only make a step
//! fail, never redirect it.

use std::ffi::{CStr, OsStr};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

use crate::extract::{DirMeta, times};
use crate::ops::children_of;
use crate::root::open_beneath;
use crate::{FsError, FsResult, SandboxPath};

/// Moves everything in `staging` into `target`. A new name is renamed across whole (a
/// directory with all it holds, in one step); a directory that exists on both sides is
/// merged; anything else that exists is replaced, as tar replaces files. A directory in the
/// target is never replaced by a non-directory.
pub(crate) fn merge(staging: &OwnedFd, target: &OwnedFd, at: &SandboxPath) -> FsResult<()> {
    merge_dir(staging, target, &mut Vec::new()).map_err(|(rel, err)| {
        let shown = at.display_join(&rel);
        match err {
            Errno::ISDIR => FsError::Conflict {
                path: shown,
                reason: "a directory is in the way of a file from the archive",
            },
            other => FsError::from_errno(&shown, other),
        }
    })
}

type MergeError = (Vec<u8>, Errno);

fn merge_dir(from: &OwnedFd, into: &OwnedFd, rel: &mut Vec<u8>) -> Result<(), MergeError> {
    let children = children_of(from).map_err(|e| (rel.clone(), e))?;
    for (name, from_is_dir) in children {
        let depth = rel.len();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(name.as_bytes());
        merge_one(from, into, &name, from_is_dir, rel)?;
        rel.truncate(depth);
    }
    Ok(())
}

fn merge_one(
    from: &OwnedFd,
    into: &OwnedFd,
    name: &CStr,
    from_is_dir: bool,
    rel: &mut Vec<u8>,
) -> Result<(), MergeError> {
    let shown = rel.clone();
    let here = |e: Errno| (shown.clone(), e);
    let existing = match rustix::fs::statat(into, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Some(FileType::from_raw_mode(st.st_mode)),
        Err(Errno::NOENT) => None,
        Err(e) => return Err(here(e)),
    };
    match existing {
        None => {
            rustix::fs::renameat_with(from, name, into, name, RenameFlags::NOREPLACE).map_err(here)
        }
        Some(FileType::Directory) if from_is_dir => {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY;
            let sub_from = open_beneath(from, name, flags).map_err(here)?;
            let sub_into =
                open_beneath(into, name, OFlags::PATH | OFlags::DIRECTORY).map_err(here)?;
            merge_dir(&sub_from, &sub_into, rel)?;
            rustix::fs::unlinkat(from, name, AtFlags::REMOVEDIR).map_err(here)
        }
        Some(FileType::Directory) => Err(here(Errno::ISDIR)),
        // A directory over a file or symlink: the old entry goes first (a symlink to a
        // directory is replaced, not followed).
        Some(_) if from_is_dir => {
            rustix::fs::unlinkat(into, name, AtFlags::empty()).map_err(here)?;
            rustix::fs::renameat_with(from, name, into, name, RenameFlags::NOREPLACE).map_err(here)
        }
        Some(_) => rustix::fs::renameat(from, name, into, name).map_err(here),
    }
}

/// Gives each directory of the archive its mode and mtime, now that nothing more will be
/// created inside it.
pub(crate) fn apply_dir_meta(target: &OwnedFd, at: &SandboxPath, dirs: &[DirMeta]) -> FsResult<()> {
    for dir in dirs {
        let fail = |e| FsError::from_errno(&at.display_join(&dir.rel), e);
        let fd = open_beneath(
            target,
            OsStr::from_bytes(&dir.rel),
            OFlags::RDONLY | OFlags::DIRECTORY,
        )
        .map_err(fail)?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(dir.mode)).map_err(fail)?;
        rustix::fs::futimens(&fd, &times(dir.mtime)).map_err(fail)?;
    }
    Ok(())
}
