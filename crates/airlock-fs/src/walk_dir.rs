//! The directories on a depth-first walk's stack: the deepest [`HELD`] held open, the
//! others let go and reopened by their path beneath the walk's top when the walk comes
//! back to them.
//!
//! A walk goes as deep as a path can name, about 2,000 levels. Holding a descriptor for
//! each level would let a few walks of one deep chain at once (listings, downloads,
//! archive merges) use up the daemon's descriptors, which every sandbox shares.

use std::ffi::OsString;
use std::os::fd::OwnedFd;

use rustix::fs::OFlags;
use rustix::io::Errno;

use crate::root::open_beneath;

/// Most directories one walk holds open below its top.
pub(crate) const HELD: usize = 64;

/// One level's directory.
pub(crate) enum WalkDir {
    /// The top's level: the walk holds the top itself.
    Top,
    /// Open.
    Held(OwnedFd),
    /// Closed, to be reopened by its path when the walk comes back.
    LetGo,
}

impl WalkDir {
    /// The directory, reopened beneath `top` by its path below the top (`rel`, asked for
    /// only then) if it was let go. No symlink is followed: a sandbox that swapped the
    /// directory for a link meanwhile gets the walk an error ([`vanished`]), never a walk
    /// somewhere else.
    pub(crate) fn open<'a>(
        &'a mut self,
        top: &'a OwnedFd,
        rel: impl FnOnce() -> OsString,
    ) -> Result<&'a OwnedFd, Errno> {
        if let Self::LetGo = self {
            // A handle to walk from, not to read: the walk reads a directory's entries
            // once, when it first opens it.
            let flags = OFlags::PATH | OFlags::DIRECTORY;
            *self = Self::Held(open_beneath(top, rel().as_os_str(), flags)?);
        }
        match self {
            Self::Held(dir) => Ok(dir),
            Self::Top => Ok(top),
            Self::LetGo => unreachable!("a level let go was reopened just above"),
        }
    }

    /// Closes the directory, to be reopened by [`WalkDir::open`] when needed again.
    pub(crate) fn let_go(&mut self) {
        if let Self::Held(_) = self {
            *self = Self::LetGo;
        }
    }
}

/// Before a level is pushed onto a stack of `levels`, the level whose directories to let
/// go, if the push would hold more than `held` levels below the top.
pub(crate) fn let_go_before_push(levels: usize, held: usize) -> Option<usize> {
    (levels > held).then(|| levels - held)
}

/// Gone, or swapped for a symlink or a file, since its directory was read: the sandbox
/// changed its own tree under the walk. Listings and downloads leave such an entry out.
pub(crate) fn vanished(e: Errno) -> bool {
    [Errno::NOENT, Errno::LOOP, Errno::NOTDIR].contains(&e)
}
