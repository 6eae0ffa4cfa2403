//! A sandbox root held open, and path resolution that cannot leave it.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::{FsError, FsResult, SandboxPath, write::FileOwner};

/// Resolution flags for every lookup from the root: stay inside it, and refuse the
/// `/proc/self/fd`-style magic links that could jump anywhere.
const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// An open handle on a sandbox's root directory.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    /// Whether the root's own mount is `nodev`: no device node on it can be opened, so a
    /// lookup that stays on that mount may open what it finds without acting on a device.
    nodev: bool,
}

impl Root {
    /// Opens the directory at a host path as a sandbox root.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let fd = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )?;
        Ok(Self::of(fd))
    }

    /// Opens a directory an operator names as a root, following a final link: a sidecar
    /// serves another container's root as `/proc/PID/root`, a link the kernel resolves
    /// into that container's mounts. Paths beneath it are confined as with [`Root::open`].
    pub fn open_following(dir: &Path) -> std::io::Result<Self> {
        let fd = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self::of(fd))
    }

    /// A root on the open directory `fd`, with its mount's flags read once: they belong
    /// to whoever mounted the root (the daemon), not to the sandbox.
    fn of(fd: OwnedFd) -> Self {
        let nodev = rustix::fs::fstatvfs(&fd)
            .is_ok_and(|vfs| vfs.f_flag.contains(rustix::fs::StatVfsMountFlags::NODEV));
        Self { fd, nodev }
    }

    /// Whether the root's own mount refuses to open device nodes.
    pub(crate) fn nodev(&self) -> bool {
        self.nodev
    }

    /// The root's own descriptor.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Opens `path` inside the root, following symlinks as the sandbox would see them.
    pub fn resolve(&self, path: &SandboxPath, flags: OFlags) -> FsResult<OwnedFd> {
        openat2_in(&self.fd, path.relative(), flags, Mode::empty(), IN_ROOT)
            .map_err(|e| FsError::from_errno(path.as_str(), e))
    }

    /// The same, once, refusing (`EXDEV`) any path that crosses a mount: what it opens
    /// is on the root's own mount. Not tried again on `EAGAIN`, which here may also be a
    /// lease that a non-blocking open must not wait for: the caller goes the general way.
    pub(crate) fn resolve_on_own_mount(
        &self,
        path: &SandboxPath,
        flags: OFlags,
    ) -> Result<OwnedFd, Errno> {
        let resolve = IN_ROOT.union(ResolveFlags::NO_XDEV);
        let flags = flags | OFlags::CLOEXEC;
        rustix::fs::openat2(&self.fd, path.relative(), flags, Mode::empty(), resolve)
    }

    /// Opens `path` without following a symlink in its final component (`O_PATH`).
    pub fn lookup_nofollow(&self, path: &SandboxPath) -> FsResult<OwnedFd> {
        let Some((parent, name)) = path.split_parent() else {
            return self.resolve(path, OFlags::PATH);
        };
        let dir = self.resolve(&parent, OFlags::PATH | OFlags::DIRECTORY)?;
        open_beneath(&dir, name, OFlags::PATH).map_err(|e| FsError::from_errno(path.as_str(), e))
    }

    /// Opens `rel` below the root with no symlink anywhere on the way, for the mount
    /// points the sandbox engine attaches to (a rootfs could plant a link there).
    pub fn open_beneath(&self, rel: &str, flags: OFlags) -> std::io::Result<OwnedFd> {
        open_beneath(&self.fd, rel, flags).map_err(|e| {
            std::io::Error::new(
                std::io::Error::from(e).kind(),
                format!("/{rel} in the sandbox root: {e}"),
            )
        })
    }

    /// Makes `path` and any missing parents, returning a handle on it (like `mkdir -p`).
    pub fn mkdir_all(&self, path: &SandboxPath, mode: u32, owner: FileOwner) -> FsResult<OwnedFd> {
        let dir_flags = OFlags::PATH | OFlags::DIRECTORY;
        match self.resolve(path, dir_flags) {
            Err(FsError::NotFound { .. }) => {}
            other => return other,
        }
        let Some((parent, name)) = path.split_parent() else {
            return self.resolve(path, dir_flags);
        };
        let parent_fd = self.mkdir_all(&parent, mode, owner)?;
        match make_dir_in(&parent_fd, name, mode, owner) {
            Ok(made) => Ok(made),
            // Someone else made it meanwhile: resolve what is there now, still confined.
            Err(Errno::EXIST) => self.resolve(path, dir_flags),
            Err(e) => Err(FsError::from_errno(path.as_str(), e)),
        }
    }
}

/// Makes directory `name` in `parent` and gives it to `owner`; returns an `O_PATH` handle.
pub(crate) fn make_dir_in<P: rustix::path::Arg + Copy>(
    parent: &OwnedFd,
    name: P,
    mode: u32,
    owner: FileOwner,
) -> Result<OwnedFd, Errno> {
    let made = make_dir_plain(parent, name, mode)?;
    owner.apply(&made)?;
    Ok(made)
}

/// The same, owned by whoever makes it.
pub(crate) fn make_dir_plain<P: rustix::path::Arg + Copy>(
    parent: &OwnedFd,
    name: P,
    mode: u32,
) -> Result<OwnedFd, Errno> {
    rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(mode & 0o777))?;
    open_beneath(parent, name, OFlags::PATH | OFlags::DIRECTORY)
}

/// Opens `name` below the open directory `dir`, refusing any symlink on the way: what
/// every walk (list, pack, remove) uses to step into a child it has just listed.
pub(crate) fn open_beneath<P: rustix::path::Arg + Copy>(
    dir: impl AsFd,
    name: P,
    flags: OFlags,
) -> Result<OwnedFd, Errno> {
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
    openat2_in(dir, name, flags | OFlags::NOFOLLOW, Mode::empty(), resolve)
}

/// `openat2` with close-on-exec always set.
pub(crate) fn openat2_in<P: rustix::path::Arg + Copy>(
    dir: impl AsFd,
    rel: P,
    flags: OFlags,
    mode: Mode,
    resolve: ResolveFlags,
) -> Result<OwnedFd, Errno> {
    retry_on_again(|| rustix::fs::openat2(&dir, rel, flags | OFlags::CLOEXEC, mode, resolve))
}

/// How often a lookup that a concurrent rename raced is tried again. openat2 asks callers
/// to retry on EAGAIN; a sandbox renaming in a tight loop could make that forever, so the
/// bound is libpathrs's: after 128 tries the caller gets EAGAIN (answered "busy").
pub(crate) const OPENAT2_RETRIES: usize = 128;

/// Runs `attempt` until it answers something other than EAGAIN, at most
/// [`OPENAT2_RETRIES`] times.
pub(crate) fn retry_on_again<T>(mut attempt: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    let mut last = Err(Errno::AGAIN);
    for _ in 0..OPENAT2_RETRIES {
        last = attempt();
        if !matches!(last, Err(Errno::AGAIN)) {
            return last;
        }
    }
    last
}

/// `/proc/self/fd/N` for an open descriptor.
pub(crate) fn fd_path(fd: &impl std::os::fd::AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_eagain_gives_up_after_the_bound() {
        let mut tries = 0;
        let outcome: Result<(), Errno> = retry_on_again(|| {
            tries += 1;
            Err(Errno::AGAIN)
        });
        assert_eq!(outcome, Err(Errno::AGAIN));
        assert_eq!(tries, OPENAT2_RETRIES);
    }

    #[test]
    fn a_passing_race_is_retried_through() {
        let mut tries = 0;
        let outcome = retry_on_again(|| {
            tries += 1;
            if tries < 5 {
                Err(Errno::AGAIN)
            } else {
                Ok(tries)
            }
        });
        assert_eq!(outcome, Ok(5));
    }
}
