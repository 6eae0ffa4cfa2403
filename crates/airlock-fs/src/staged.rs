//! Where a whole-file write fills its file before the file takes its name.
//!
//! An unnamed file (`O_TMPFILE`) is the first choice: it is in no directory while it
//! fills, so a failed write or a daemon killed mid-write leaves nothing behind, and a
//! small write costs one directory change (the link) instead of three (a temporary name
//! made, renamed, and removed). A filesystem without unnamed files, or a process that
//! may not link a descriptor in, gets a random temporary name in the same directory,
//! renamed over the target at the end.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::OnceLock;

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::reserved::TEMP_PREFIX;
use crate::root::openat2_in;
use crate::umask::lost_to_umask;
use crate::write::{create_temp, rename_in, under_temp_name};

/// How a file being filled is held before it is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Staged {
    /// In no directory; linked in when done.
    Unnamed,
    /// Under this temporary name in the target's directory; renamed when done.
    Named(String),
}

/// Whether this process may link an open descriptor into a directory. Before Linux 6.10
/// that needs CAP_DAC_READ_SEARCH (without it the kernel answers ENOENT); since, a
/// process may link what it opened itself. Learned from the first unnamed file made.
static LINKABLE: OnceLock<bool> = OnceLock::new();

impl Staged {
    /// A new file in `dir`, unnamed where the filesystem and the process's rights allow.
    /// An unnamed one is born with the permission bits of `mode` where the umask keeps
    /// them all (no one can open it before it is named, and its owner is set after):
    /// see [`Staged::has_mode`]. Any other is private (0600) until sealed.
    pub(crate) fn create(dir: &OwnedFd, mode: u32) -> Result<(Self, OwnedFd), Errno> {
        // Read once: another thread may learn the answer meanwhile, and the mode a file
        // is born with must agree with whether it comes back `Unnamed` (`has_mode`).
        let linkable = LINKABLE.get().copied();
        if linkable != Some(false) {
            let born = match linkable {
                Some(true) => final_bits(mode).unwrap_or(0o600),
                _ => 0o600,
            };
            match create_unnamed(dir, born) {
                Ok(fd) if linkable == Some(true) => return Ok((Self::Unnamed, fd)),
                // The first: linking it under a temporary name tells whether links work,
                // and if they do, it is filled under that name like any named file.
                Ok(fd) => match link_temporarily(&fd, dir) {
                    Ok(temp_name) => {
                        let _ = LINKABLE.set(true);
                        return Ok((Self::Named(temp_name), fd));
                    }
                    Err(Errno::NOENT | Errno::PERM) => {
                        let _ = LINKABLE.set(false);
                    }
                    Err(e) => return Err(e),
                },
                // EOPNOTSUPP: this filesystem has no unnamed files. EISDIR: the kernel
                // does not know O_TMPFILE and read it as O_DIRECTORY.
                Err(Errno::OPNOTSUPP | Errno::ISDIR) => {}
                Err(e) => return Err(e),
            }
        }
        let (temp_name, fd) = create_temp(dir, TEMP_PREFIX)?;
        Ok((Self::Named(temp_name), fd))
    }

    /// Whether the file was born with the permission bits of `mode` (as `create` was
    /// given it), so sealing it needs no `fchmod`.
    pub(crate) fn has_mode(&self, mode: u32) -> bool {
        *self == Self::Unnamed && final_bits(mode).is_some()
    }

    /// Gives the finished `file` the name `name` in `dir`, replacing what is there only
    /// if `overwrite`; says whether the name was new. Nothing at `name` is followed: a
    /// link or a rename replaces a symlink there, never what it points at.
    pub(crate) fn name(
        &self,
        dir: &OwnedFd,
        file: &impl AsFd,
        name: &str,
        overwrite: bool,
    ) -> Result<bool, Errno> {
        match self {
            Self::Named(temp_name) => rename_in(dir, temp_name, name, overwrite),
            Self::Unnamed => match link(file, dir, name) {
                Ok(()) => Ok(true),
                // A link never replaces: link under a temporary name, rename that over.
                // The failed link just said the name is taken, so the rename goes
                // straight to replacing (a rename that may not replace first would
                // fail again, a system call for nothing).
                Err(Errno::EXIST) if overwrite => {
                    let temp_name = link_temporarily(file, dir)?;
                    let renamed = rustix::fs::renameat(dir, temp_name.as_str(), dir, name);
                    if renamed.is_err() {
                        let _ = rustix::fs::unlinkat(dir, temp_name.as_str(), AtFlags::empty());
                    }
                    renamed.map(|()| false)
                }
                Err(e) => Err(e),
            },
        }
    }
}

/// The permission bits of `mode`, if a new file can be born with all of them (the umask
/// takes none).
fn final_bits(mode: u32) -> Option<u32> {
    let bits = mode & 0o777;
    (lost_to_umask(bits) == 0).then_some(bits)
}

fn create_unnamed(dir: &OwnedFd, mode: u32) -> Result<OwnedFd, Errno> {
    openat2_in(
        dir,
        ".",
        OFlags::RDWR | OFlags::TMPFILE,
        Mode::from_raw_mode(mode),
        ResolveFlags::BENEATH,
    )
}

/// Links an open file in as `name`; fails with EEXIST if anything has that name.
fn link(file: &impl AsFd, dir: &OwnedFd, name: &str) -> Result<(), Errno> {
    rustix::fs::linkat(file, "", dir, name, AtFlags::EMPTY_PATH)
}

/// Links an open file in under a new random temporary name, and answers the name.
fn link_temporarily(file: &impl AsFd, dir: &OwnedFd) -> Result<String, Errno> {
    under_temp_name(TEMP_PREFIX, |temp_name| link(file, dir, temp_name)).map(|(name, ())| name)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::io::Write;

    fn open_dir(path: &std::path::Path) -> OwnedFd {
        rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap()
    }

    fn names(path: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// An unnamed file. The process's first is named (it learns whether links work), so
    /// that one is dropped, its name removed.
    fn unnamed(dir: &OwnedFd, path: &std::path::Path) -> std::fs::File {
        for _ in 0..2 {
            match Staged::create(dir, 0o600).unwrap() {
                (Staged::Unnamed, fd) => return fd.into(),
                (Staged::Named(first), _) => std::fs::remove_file(path.join(first)).unwrap(),
            }
        }
        panic!("no unnamed file here (this filesystem and kernel allow one)")
    }

    /// Stages a file one way or the other; the named way is forced, as on a filesystem
    /// without O_TMPFILE.
    fn stage(dir: &OwnedFd, path: &std::path::Path, unnamed_: bool) -> (Staged, std::fs::File) {
        if unnamed_ {
            (Staged::Unnamed, unnamed(dir, path))
        } else {
            let (temp_name, fd) = create_temp(dir, TEMP_PREFIX).unwrap();
            (Staged::Named(temp_name), fd.into())
        }
    }

    #[test]
    fn an_unnamed_file_is_in_no_directory_until_it_is_named() {
        let t = tempfile::tempdir().unwrap();
        let dir = open_dir(t.path());
        let mut file = unnamed(&dir, t.path());
        let staged = Staged::Unnamed;
        file.write_all(b"body").unwrap();
        assert!(names(t.path()).is_empty(), "nothing visible while it fills");
        assert!(staged.name(&dir, &file, "f", false).unwrap());
        assert_eq!(names(t.path()), ["f"]);
        assert_eq!(std::fs::read(t.path().join("f")).unwrap(), b"body");
    }

    #[test]
    fn an_unnamed_file_dropped_unnamed_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let dir = open_dir(t.path());
        unnamed(&dir, t.path()).write_all(b"lost").unwrap();
        assert!(names(t.path()).is_empty());
    }

    #[test]
    fn either_way_a_taken_name_is_refused_without_overwrite_and_replaced_with_it() {
        let t = tempfile::tempdir().unwrap();
        let dir = open_dir(t.path());
        for unnamed in [true, false] {
            std::fs::write(t.path().join("f"), b"old").unwrap();
            let (staged, mut file) = stage(&dir, t.path(), unnamed);
            file.write_all(b"new").unwrap();
            assert_eq!(
                staged.name(&dir, &file, "f", false),
                Err(Errno::EXIST),
                "{staged:?}"
            );
            assert_eq!(std::fs::read(t.path().join("f")).unwrap(), b"old");
            assert_eq!(staged.name(&dir, &file, "f", true), Ok(false), "{staged:?}");
            assert_eq!(std::fs::read(t.path().join("f")).unwrap(), b"new");
            assert_eq!(
                names(t.path()),
                ["f"],
                "no temporary name is left: {staged:?}"
            );
            std::fs::remove_file(t.path().join("f")).unwrap();
        }
    }

    #[test]
    fn either_way_a_symlink_at_the_name_is_replaced_and_its_target_untouched() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("sentinel"), b"host").unwrap();
        let dir = open_dir(t.path());
        for unnamed in [true, false] {
            let (staged, mut file) = stage(&dir, t.path(), unnamed);
            let link = t.path().join("link");
            std::os::unix::fs::symlink(outside.path().join("sentinel"), &link).unwrap();
            file.write_all(b"sandbox").unwrap();
            assert_eq!(staged.name(&dir, &file, "link", false), Err(Errno::EXIST));
            assert_eq!(staged.name(&dir, &file, "link", true), Ok(false));
            assert!(!std::fs::symlink_metadata(&link).unwrap().is_symlink());
            assert_eq!(std::fs::read(&link).unwrap(), b"sandbox");
            assert_eq!(
                std::fs::read(outside.path().join("sentinel")).unwrap(),
                b"host"
            );
            std::fs::remove_file(&link).unwrap();
        }
    }

    #[test]
    fn the_first_unnamed_file_is_named_at_once_and_later_ones_are_not() {
        let t = tempfile::tempdir().unwrap();
        let dir = open_dir(t.path());
        let (first, fd) = Staged::create(&dir, 0o600).unwrap();
        if let Staged::Named(temp_name) = &first {
            assert_eq!(names(t.path()), std::slice::from_ref(temp_name));
            let mut file = std::fs::File::from(fd);
            file.write_all(b"first").unwrap();
            assert!(first.name(&dir, &file, "f", false).unwrap());
            assert_eq!(names(t.path()), ["f"]);
        }
        let (second, _) = Staged::create(&dir, 0o600).unwrap();
        assert_eq!(second, Staged::Unnamed);
    }
}
