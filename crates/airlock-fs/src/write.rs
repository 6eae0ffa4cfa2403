//! Writing a whole file atomically: a private temporary file in the target directory,
//! filled, given its mode and owner on the open descriptor, then renamed over the target.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::root::openat2_in;
use crate::{FsError, FsResult, Root, SandboxPath};

/// Who owns a file the engine creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileOwner {
    /// Numeric user id.
    pub uid: u32,
    /// Numeric group id.
    pub gid: u32,
}

impl FileOwner {
    /// The sandbox's own user, `user` (1000:1000).
    pub const SANDBOX_USER: Self = Self {
        uid: 1000,
        gid: 1000,
    };
    /// root (0:0).
    pub const ROOT: Self = Self { uid: 0, gid: 0 };

    pub(crate) fn apply(self, fd: &impl AsFd) -> Result<(), Errno> {
        // SAFETY-free: ids are plain numbers chosen by the daemon, not by the sandbox.
        let uid = rustix::fs::Uid::from_raw(self.uid);
        let gid = rustix::fs::Gid::from_raw(self.gid);
        fchown_any(fd, uid, gid)
    }
}

/// `fchown` that also works on `O_PATH` descriptors (through `AT_EMPTY_PATH`).
fn fchown_any(fd: &impl AsFd, uid: rustix::fs::Uid, gid: rustix::fs::Gid) -> Result<(), Errno> {
    rustix::fs::chownat(
        fd,
        "",
        Some(uid),
        Some(gid),
        rustix::fs::AtFlags::EMPTY_PATH,
    )
}

/// How a file is written.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// Permission bits; setuid, setgid and sticky are always stripped.
    pub mode: u32,
    /// Owner of the new file and of any directory made for it.
    pub owner: FileOwner,
    /// Create missing parent directories.
    pub parents: bool,
}

impl Root {
    /// Writes all of `content` to `path`, replacing any file there in one rename.
    ///
    /// Readers see the old file or the new one, never a prefix; on any failure the
    /// temporary file is removed and the old file is untouched.
    pub fn write_file(
        &self,
        path: &SandboxPath,
        content: &mut impl Read,
        opts: WriteOptions,
    ) -> FsResult<()> {
        let (parent, name) = path.split_parent().ok_or_else(|| FsError::BadPath {
            path: path.to_string(),
            reason: "is the root directory",
        })?;
        let dir = if opts.parents {
            self.mkdir_all(&parent, 0o755, opts.owner)?
        } else {
            self.resolve(&parent, OFlags::PATH | OFlags::DIRECTORY)?
        };
        let (temp_name, file) =
            create_temp(&dir).map_err(|e| FsError::from_errno(path.as_str(), e))?;
        let filled = fill(file, content, opts).map_err(|e| FsError::from_io(path.as_str(), e));
        let committed = filled.and_then(|()| {
            rustix::fs::renameat(&dir, &temp_name, &dir, name)
                .map_err(|e| FsError::from_errno(path.as_str(), e))
        });
        if committed.is_err() {
            let _ = rustix::fs::unlinkat(&dir, &temp_name, rustix::fs::AtFlags::empty());
        }
        committed
    }
}

fn fill(file: OwnedFd, content: &mut impl Read, opts: WriteOptions) -> std::io::Result<()> {
    // Owner first: chown clears setuid bits, and the mode below never sets them anyway.
    opts.owner.apply(&file)?;
    rustix::fs::fchmod(&file, Mode::from_raw_mode(opts.mode & 0o777))?;
    let mut file = std::fs::File::from(file);
    std::io::copy(content, &mut file)?;
    file.flush()
}

/// Creates a new file with a random name in `dir`; never follows or reuses an existing entry.
fn create_temp(dir: &OwnedFd) -> Result<(String, OwnedFd), Errno> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
    loop {
        let name = format!(".airlock-tmp-{:016x}", random_u64());
        match openat2_in(
            dir,
            &name,
            flags,
            Mode::from_raw_mode(0o600),
            ResolveFlags::BENEATH,
        ) {
            Ok(fd) => return Ok((name, fd)),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // A failure of the kernel's random source leaves zeros; O_EXCL keeps that correct.
    let _ = getrandom::fill(&mut bytes);
    u64::from_ne_bytes(bytes)
}
