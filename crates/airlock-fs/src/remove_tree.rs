//! Removing a directory tree of any depth.
//!
//! A sandbox decides how deep its trees go: a process inside makes a chain of 25,000
//! directories in seconds (`mkdir d; cd d` in a loop never meets `PATH_MAX`). A removal
//! that recursed once per level overflowed its thread's stack on such a chain, and a stack
//! overflow aborts the whole daemon; the deleted sandbox's files stayed in the trash, so the
//! next daemon aborted the same way as it started. Here the walk keeps its own stack of
//! open directories on the heap, and never holds more than [`HELD`] of them: a directory
//! found deeper is first moved up to the top of the tree being removed (all of it is going
//! anyway) and emptied from there.
//!
//! Every directory is opened relative to its already-open parent with no symlink followed
//! and no mount crossed, so a sandbox swapping a directory for a symlink meanwhile gets an
//! error, not an escape; a move up is a rename between two directories held open.

use std::ffi::{CStr, CString};
use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, RenameFlags};
use rustix::io::Errno;

use crate::ops::{children_of, open_child_dir};
use crate::write::under_temp_name;

/// Most directories one removal holds open at once.
const HELD: usize = 64;

/// Names a directory moved up to the top starts with; random hex follows.
const MOVED_UP: &str = ".airlock-deep-";

/// Removes directory `name` in `parent` and everything below it.
pub(crate) fn remove_tree<P: rustix::path::Arg + Copy>(
    parent: &OwnedFd,
    name: P,
) -> Result<(), Errno> {
    let top =
        open_child_dir(parent, name).map_err(|e| if e == Errno::XDEV { Errno::BUSY } else { e })?;
    empty(&top)?;
    drop(top);
    rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)
}

/// Removes the directory `name` in the directory at `parent` (a path the caller trusts,
/// such as the daemon's trash) and everything below it, however deep.
pub fn remove_tree_in(parent: &std::path::Path, name: &std::ffi::OsStr) -> std::io::Result<()> {
    let parent = rustix::fs::open(
        parent,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    match rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() => {
            Ok(remove_tree(&parent, name)?)
        }
        Ok(_) => Ok(rustix::fs::unlinkat(&parent, name, AtFlags::empty())?),
        Err(e) => Err(e.into()),
    }
}

/// A directory on the walk's stack, and what is left to remove in it.
struct Open {
    dir: OwnedFd,
    /// Its name in the directory below it on the stack (`None` for the top).
    name: Option<CString>,
    left: Vec<(CString, bool)>,
}

/// Removes everything in the open directory `top`.
fn empty(top: &OwnedFd) -> Result<(), Errno> {
    let mut stack = vec![Open {
        dir: rustix::io::fcntl_dupfd_cloexec(top, 0)?,
        name: None,
        left: children_of(top)?,
    }];
    loop {
        let depth = stack.len();
        let Some(level) = stack.last_mut() else {
            return Ok(());
        };
        match level.left.pop() {
            Some((child, false)) => {
                rustix::fs::unlinkat(&level.dir, child.as_c_str(), AtFlags::empty())?;
            }
            Some((child, true)) if depth < HELD => {
                let dir = open_child_dir(&level.dir, child.as_c_str())?;
                let left = children_of(&dir)?;
                stack.push(Open {
                    dir,
                    name: Some(child),
                    left,
                });
            }
            Some((child, true)) => {
                let moved = move_up(&level.dir, &child, top)?;
                stack[0].left.push((moved, true));
            }
            None => {
                let done = stack.pop().ok_or(Errno::INVAL)?;
                drop(done.dir);
                if let (Some(name), Some(below)) = (done.name, stack.last()) {
                    rustix::fs::unlinkat(&below.dir, name.as_c_str(), AtFlags::REMOVEDIR)?;
                }
            }
        }
    }
}

/// Moves the directory `name` in `dir` to `top`, under a new name not taken there.
fn move_up(dir: &OwnedFd, name: &CStr, top: &OwnedFd) -> Result<CString, Errno> {
    let (moved, ()) = under_temp_name(MOVED_UP, |new| {
        rustix::fs::renameat_with(dir, name, top, new, RenameFlags::NOREPLACE)
    })?;
    CString::new(moved).map_err(|_| Errno::INVAL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_chain::{chain, on_a_small_stack};

    #[test]
    fn a_chain_deeper_than_any_stack_is_removed() {
        let home = tempfile::tempdir().expect("tempdir");
        chain(&home.path().join("t").tap_mkdir(), 30_000, 10);
        let parent = home.path().to_path_buf();
        on_a_small_stack(move || remove_tree_in(&parent, "t".as_ref()).expect("removed"));
        assert!(!home.path().join("t").exists());
        assert_eq!(std::fs::read_dir(home.path()).expect("list").count(), 0);
    }

    #[test]
    fn a_wide_and_deep_tree_is_removed_with_what_is_named_like_a_moved_directory() {
        let home = tempfile::tempdir().expect("tempdir");
        let top = home.path().join("t").tap_mkdir();
        // A directory of the tree already has the prefix of a moved one's name.
        std::fs::create_dir(top.join(format!("{MOVED_UP}1"))).expect("mkdir");
        for branch in ["a", "b", "c"] {
            chain(&top.join(branch).tap_mkdir(), 500, 10);
        }
        let parent = home.path().to_path_buf();
        on_a_small_stack(move || remove_tree_in(&parent, "t".as_ref()).expect("removed"));
        assert!(!top.exists());
    }

    #[test]
    fn a_symlink_in_the_tree_is_removed_not_followed() {
        let home = tempfile::tempdir().expect("tempdir");
        let outside = home.path().join("outside").tap_mkdir();
        std::fs::write(outside.join("keep"), b"host").expect("write");
        let top = home.path().join("t").tap_mkdir();
        chain(&top, 100, 10);
        std::os::unix::fs::symlink(&outside, top.join("d/d/link")).expect("symlink");
        remove_tree_in(home.path(), "t".as_ref()).expect("removed");
        assert!(!top.exists());
        assert_eq!(std::fs::read(outside.join("keep")).expect("kept"), b"host");
    }

    trait TapMkdir {
        fn tap_mkdir(self) -> Self;
    }

    impl TapMkdir for std::path::PathBuf {
        fn tap_mkdir(self) -> Self {
            std::fs::create_dir(&self).expect("mkdir");
            self
        }
    }
}
