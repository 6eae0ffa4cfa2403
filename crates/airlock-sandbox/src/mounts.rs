//! Mounting by descriptor with the new mount API (`open_tree`, `mount_setattr`,
//! `move_mount`): a clone of a tree is made read-only while still detached and then
//! attached onto a target we hold open, so no path string is trusted at attach time.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::sys::cvt;

const OPEN_TREE_CLONE: libc::c_uint = 1;
const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// `struct mount_attr` of linux/mount.h.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Flags for a bind.
#[derive(Debug, Clone, Copy)]
pub struct BindFlags {
    /// Take submounts along.
    pub recursive: bool,
    /// Read-only (and nosuid).
    pub readonly: bool,
    /// No device node on it opens.
    pub nodev: bool,
}

/// Binds the tree at `src` onto `target` (both open descriptors, `O_PATH` is enough).
pub fn bind(src: &OwnedFd, target: &OwnedFd, flags: BindFlags) -> io::Result<()> {
    let tree = clone_tree(src, flags.recursive)?;
    let mut set = 0;
    if flags.readonly {
        set |= MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID;
    }
    if flags.nodev {
        set |= MOUNT_ATTR_NODEV;
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: libc::MS_PRIVATE,
        userns_fd: 0,
    };
    let recursive = if flags.recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: `attr` is a valid mount_attr of the size passed; the empty path with
    // AT_EMPTY_PATH makes the call act on `tree` itself.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | recursive,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    cvt(ret)?;
    attach(&tree, target)
}

fn clone_tree(src: &OwnedFd, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: an open descriptor, an empty NUL-terminated path and flags; returns a new fd.
    let fd =
        cvt(unsafe { libc::syscall(libc::SYS_open_tree, src.as_raw_fd(), c"".as_ptr(), flags) })?;
    // SAFETY: the kernel handed us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Attaches a detached mount (from `open_tree` or `fsmount`) onto `target`.
pub fn attach(tree: &OwnedFd, target: &OwnedFd) -> io::Result<()> {
    let flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: two open descriptors and empty NUL-terminated paths.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            flags,
        )
    };
    cvt(ret).map(drop)
}

/// Opens a host path as an `O_PATH` descriptor, refusing a symlink in the last component.
pub fn open_host_path(path: &std::path::Path) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    Ok(rustix::fs::open(
        path,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}
