//! Moving an extracted staging tree into its target, and setting directory metadata last.
//!
//! Every step is a rename or an unlink relative to directories opened with no symlink
//! followed; the sandbox may change the target meanwhile, but it can only make a step
//! fail, never redirect it.

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

use crate::extract::{DirMeta, times};
use crate::ops::children_of;
use crate::root::open_beneath;
use crate::walk_dir::{HELD, WalkDir, let_go_before_push};
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

/// A directory present on both sides, being merged.
struct Level {
    /// Its name in its parent (empty for the top).
    name: CString,
    /// How much of the walk's path names it.
    rel_len: usize,
    /// Its staging side and its target side. A merge holds two directories a level, so it
    /// lets go of a level's pair once [`HELD`]` / 2` levels lie below it: an archive's
    /// tree is as deep as its names allow (about 2,000 levels under `PATH_MAX`), and a
    /// merge that held every level would run out of descriptors.
    from: WalkDir,
    into: WalkDir,
    /// Its staging entries still to merge.
    left: std::vec::IntoIter<(CString, bool)>,
}

/// The merge keeps its own stack: one that recursed once a level overflowed the daemon's
/// stack on a deep tree uploaded over its own copy.
fn merge_dir(staging: &OwnedFd, target: &OwnedFd, rel: &mut Vec<u8>) -> Result<(), MergeError> {
    let top = children_of(staging).map_err(|e| (rel.clone(), e))?;
    let mut stack = vec![Level {
        name: CString::default(),
        rel_len: 0,
        from: WalkDir::Top,
        into: WalkDir::Top,
        left: top.into_iter(),
    }];
    while let Some(level) = stack.last_mut() {
        let Some((name, from_is_dir)) = level.left.next() else {
            // Every entry moved: the emptied staging directory goes (the top is the
            // caller's to remove).
            if stack.len() == 1 {
                break;
            }
            let Some(done) = stack.pop() else { break };
            rel.truncate(done.rel_len);
            let Some(parent) = stack.last_mut() else {
                break;
            };
            let parent_len = parent.rel_len;
            let (from, _) = sides(parent, staging, target, &rel[..parent_len])?;
            rustix::fs::unlinkat(from, done.name.as_c_str(), AtFlags::REMOVEDIR)
                .map_err(|e| (rel.clone(), e))?;
            continue;
        };
        rel.truncate(level.rel_len);
        let (from, into) = sides(level, staging, target, rel)?;
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(name.as_bytes());
        if let Some((sub_from, sub_into)) = merge_one(from, into, &name, from_is_dir, rel)? {
            let children = children_of(&sub_from).map_err(|e| (rel.clone(), e))?;
            if let Some(far) = let_go_before_push(stack.len(), HELD / 2) {
                stack[far].from.let_go();
                stack[far].into.let_go();
            }
            stack.push(Level {
                name,
                rel_len: rel.len(),
                from: WalkDir::Held(sub_from),
                into: WalkDir::Held(sub_into),
                left: children.into_iter(),
            });
        }
    }
    Ok(())
}

/// A level's staging and target sides, reopened beneath the tops by `rel`, the level's
/// path, if they were let go (no symlink followed: a sandbox that swapped a directory
/// meanwhile makes the merge fail, not stray).
fn sides<'a>(
    level: &'a mut Level,
    staging: &'a OwnedFd,
    target: &'a OwnedFd,
    rel: &[u8],
) -> Result<(&'a OwnedFd, &'a OwnedFd), MergeError> {
    let path = || OsStr::from_bytes(rel).to_owned();
    let failed = |e| (rel.to_vec(), e);
    let from = level.from.open(staging, path).map_err(failed)?;
    let into = level.into.open(target, path).map_err(failed)?;
    Ok((from, into))
}

/// Merges one staging entry into `into`; answers both sides of a directory present on
/// both, for the walk to step into.
fn merge_one(
    from: &OwnedFd,
    into: &OwnedFd,
    name: &CStr,
    from_is_dir: bool,
    rel: &[u8],
) -> Result<Option<(OwnedFd, OwnedFd)>, MergeError> {
    let here = |e: Errno| (rel.to_vec(), e);
    let existing = match rustix::fs::statat(into, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Some(FileType::from_raw_mode(st.st_mode)),
        Err(Errno::NOENT) => None,
        Err(e) => return Err(here(e)),
    };
    match existing {
        None => rustix::fs::renameat_with(from, name, into, name, RenameFlags::NOREPLACE)
            .map_err(here)
            .map(|()| None),
        Some(FileType::Directory) if from_is_dir => {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY;
            let sub_from = open_beneath(from, name, flags).map_err(here)?;
            let sub_into =
                open_beneath(into, name, OFlags::PATH | OFlags::DIRECTORY).map_err(here)?;
            Ok(Some((sub_from, sub_into)))
        }
        Some(FileType::Directory) => Err(here(Errno::ISDIR)),
        // A directory over a file or symlink: the old entry goes first (a symlink to a
        // directory is replaced, not followed).
        Some(_) if from_is_dir => {
            rustix::fs::unlinkat(into, name, AtFlags::empty()).map_err(here)?;
            rustix::fs::renameat_with(from, name, into, name, RenameFlags::NOREPLACE)
                .map_err(here)
                .map(|()| None)
        }
        Some(_) => rustix::fs::renameat(from, name, into, name)
            .map_err(here)
            .map(|()| None),
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
        if let Some(mtime) = dir.mtime {
            rustix::fs::futimens(&fd, &times(mtime)).map_err(fail)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::test_chain::{chain, on_a_small_stack};
    use crate::{FileOwner, Root, SandboxPath, Unpacking};

    /// An archive of a 2,000-deep chain (a file at every level, so the walk comes back
    /// to levels it let go) extracted twice into one place, on a thread with a small
    /// stack: the second time every level merges into the copy already there.
    #[test]
    fn a_deep_tree_merges_into_its_own_copy_on_a_small_stack() {
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(home.path().join("src")).expect("mkdir");
        chain(&home.path().join("src"), 2_000, 1);
        let root = Root::open(home.path()).expect("root");
        let mut archive = Vec::new();
        root.pack(&SandboxPath::parse("/src").expect("path"), &mut archive)
            .expect("packed");
        let me = FileOwner {
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
        };
        let target = SandboxPath::parse("/t").expect("path");
        on_a_small_stack(move || {
            for _ in 0..2 {
                let unpacked = root
                    .unpack(&target, &archive[..], Unpacking::by(me))
                    .expect("unpacked");
                assert_eq!(unpacked.dirs, 2_000);
            }
        });
        let mut bottom = home.path().join("t");
        for _ in 0..2_000 {
            bottom.push("d");
        }
        assert!(
            bottom.join("leaf").exists(),
            "the bottom of the chain is missing"
        );
        let names: Vec<_> = std::fs::read_dir(home.path().join("t"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 2, "nothing but d and f: {names:?}");
    }
}
