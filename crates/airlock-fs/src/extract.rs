//! Creating each archive entry inside the staging directory, with no symlink followed.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use rustix::io::Errno;
use tar::EntryType;

use crate::error::is_transport;
use crate::held_path::HeldPath;
use crate::reserved::within_reserved;
use crate::root::{make_dir_in, make_dir_plain, open_beneath, openat2_in};
use crate::skip_forward::SkipForward;
use crate::umask::lost_to_umask;
use crate::unpack::{Mtimes, Skipped, UnpackLimits, Unpacked, Unpacking};
use crate::{FileOwner, FsError, FsResult, SandboxPath};

/// Bytes moved per read/write.
const BUFFER: usize = 1024 * 1024;
/// Linux's PATH_MAX, counting the terminating NUL.
const PATH_MAX: usize = 4096;

/// A directory entry of the archive whose mode and mtime are set once everything is in
/// place (creating children would change its mtime again).
pub(crate) struct DirMeta {
    pub rel: Vec<u8>,
    pub mode: u32,
    /// `None` when entries keep the time they were written.
    pub mtime: Option<i64>,
}

/// Extraction state: the staging root, counters, and the directories along the path
/// last walked.
pub(crate) struct Extractor<'a> {
    staging: &'a OwnedFd,
    target: &'a SandboxPath,
    /// Who each entry is given to once made; `None` when the thread makes them as their
    /// owner already.
    chown: Option<FileOwner>,
    limits: UnpackLimits,
    mtimes: Mtimes,
    report: Unpacked,
    dirs: Vec<DirMeta>,
    held: HeldPath,
    /// The staging directory as a shareable handle, for entries at the top.
    top: Option<Rc<OwnedFd>>,
    buf: Vec<u8>,
}

impl<'a> Extractor<'a> {
    pub fn new(
        staging: &'a OwnedFd,
        target: &'a SandboxPath,
        chown: Option<FileOwner>,
        how: Unpacking,
    ) -> Self {
        Self {
            staging,
            target,
            chown,
            limits: how.limits,
            mtimes: how.mtimes,
            report: Unpacked::default(),
            dirs: Vec::new(),
            held: HeldPath::default(),
            top: None,
            buf: vec![0; BUFFER],
        }
    }

    /// Extracts every entry; returns the report and the directories' metadata.
    pub fn run(mut self, input: impl Read) -> FsResult<(Unpacked, Vec<DirMeta>)> {
        let mut archive = tar::Archive::new(SkipForward::new(input));
        let entries = archive
            .entries_with_seek()
            .map_err(|e| self.stream_error(e, b""))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.stream_error(e, b""))?;
            self.report.entries += 1;
            if self.report.entries > self.limits.max_entries {
                return Err(FsError::TooLarge {
                    path: self.target.to_string(),
                    reason: format!("archive has over {} entries", self.limits.max_entries),
                });
            }
            let rel = self.clean_name(&entry.path_bytes())?;
            if within_reserved(&rel) {
                // It would be hidden where it lands, and swept as a leftover.
                self.skip(
                    &rel,
                    "the name is reserved for the engine's work in progress",
                )?;
                continue;
            }
            self.one(&rel, &mut entry)?;
        }
        Ok((self.report, self.dirs))
    }

    fn one<R: Read>(&mut self, rel: &[u8], entry: &mut tar::Entry<'_, R>) -> FsResult<()> {
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap_or(0o644);
        let mtime = match self.mtimes {
            Mtimes::FromArchive => {
                Some(entry.header().mtime().unwrap_or(0).min(i64::MAX as u64) as i64)
            }
            Mtimes::Now => None,
        };
        if rel.is_empty() && !kind.is_dir() {
            return Err(self.bad(rel, "an entry other than a directory names the target"));
        }
        match kind {
            EntryType::Regular | EntryType::Continuous => self.file(rel, entry, mode, mtime),
            EntryType::Directory if rel.is_empty() => Ok(()),
            EntryType::Directory => {
                self.dir(rel)?;
                self.dirs.push(DirMeta {
                    rel: rel.to_vec(),
                    mode: mode & 0o1777,
                    mtime,
                });
                self.report.dirs += 1;
                Ok(())
            }
            EntryType::Symlink => self.symlink(rel, entry, mtime),
            EntryType::Link => self.hardlink(rel, entry),
            EntryType::GNUSparse => Err(self.bad(rel, "sparse files are not supported")),
            EntryType::XGlobalHeader => Ok(()),
            EntryType::Char | EntryType::Block => self.skip(rel, "device nodes are refused"),
            EntryType::Fifo => self.skip(rel, "FIFOs are refused"),
            _ => self.skip(rel, "unsupported entry type"),
        }
    }

    fn file<R: Read>(
        &mut self,
        rel: &[u8],
        entry: &mut tar::Entry<'_, R>,
        mode: u32,
        mtime: Option<i64>,
    ) -> FsResult<()> {
        let size = entry.size();
        self.report.bytes = self.report.bytes.saturating_add(size);
        if self.report.bytes > self.limits.max_bytes {
            return Err(FsError::TooLarge {
                path: self.shown(rel),
                reason: format!("archive content is over {} bytes", self.limits.max_bytes),
            });
        }
        let (parent, name) = self.parent_of(rel)?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
        // setuid, setgid and sticky never survive extraction. No sandbox process can
        // reach the staging directory (root's, 0700), so the file may be born with its
        // final bits: one system call a file less, where the umask takes none of them.
        let perms = mode & 0o777;
        let born_right = lost_to_umask(perms) == 0;
        let create_mode = if born_right { perms } else { 0o600 };
        let fd = self.make(&parent, name, rel, || {
            openat2_in(
                &*parent,
                name,
                flags,
                Mode::from_raw_mode(create_mode),
                ResolveFlags::BENEATH,
            )
        })?;
        let mut file = std::fs::File::from(fd);
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match entry.read(&mut self.buf[..want]) {
                Ok(0) => return Err(self.bad(rel, "the archive ends inside this file")),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.stream_error(e, rel)),
            };
            file.write_all(&self.buf[..n])
                .map_err(|e| FsError::from_io(&self.shown(rel), e))?;
            left -= n as u64;
        }
        if let Some(owner) = self.chown {
            owner.apply(&file).map_err(|e| self.errno(rel, e))?;
        }
        if !born_right {
            rustix::fs::fchmod(&file, Mode::from_raw_mode(perms))
                .map_err(|e| self.errno(rel, e))?;
        }
        if let Some(mtime) = mtime {
            rustix::fs::futimens(&file, &times(mtime)).map_err(|e| self.errno(rel, e))?;
        }
        self.report.files += 1;
        Ok(())
    }

    fn symlink<R: Read>(
        &mut self,
        rel: &[u8],
        entry: &tar::Entry<'_, R>,
        mtime: Option<i64>,
    ) -> FsResult<()> {
        let target = match entry.link_name_bytes() {
            Some(t) if !t.is_empty() => t.into_owned(),
            _ => return Err(self.bad(rel, "a symlink without a target")),
        };
        let (parent, name) = self.parent_of(rel)?;
        // Stored as it is: nothing here ever follows it, and inside the sandbox an
        // absolute target means the sandbox's own path.
        self.make(&parent, name, rel, || {
            rustix::fs::symlinkat(OsStr::from_bytes(&target), &*parent, name)
        })?;
        if let Some(owner) = self.chown {
            rustix::fs::chownat(
                &*parent,
                name,
                Some(rustix::fs::Uid::from_raw(owner.uid)),
                Some(rustix::fs::Gid::from_raw(owner.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| self.errno(rel, e))?;
        }
        if let Some(mtime) = mtime {
            rustix::fs::utimensat(&*parent, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| self.errno(rel, e))?;
        }
        self.report.symlinks += 1;
        Ok(())
    }

    /// A hard link may only name a file extracted earlier from this same archive: it is
    /// looked up in the staging directory, which holds nothing else.
    fn hardlink<R: Read>(&mut self, rel: &[u8], entry: &tar::Entry<'_, R>) -> FsResult<()> {
        let Some(source) = entry.link_name_bytes() else {
            return Err(self.bad(rel, "a hard link without a target"));
        };
        let source = self.clean_name(&source)?;
        if source == rel {
            return Ok(());
        }
        let (src_parent, src_name) = match split_last(&source) {
            (parent, name) if !name.is_empty() => (self.existing_dir(parent), name),
            _ => return Err(self.bad(rel, "a hard link to the target directory")),
        };
        let not_earlier = || {
            let shown = String::from_utf8_lossy(&source).into_owned();
            format!("a hard link to {shown:?}, which is not a file earlier in the archive")
        };
        let src_parent = src_parent.map_err(|_| self.bad_owned(rel, not_earlier()))?;
        let src_name = OsStr::from_bytes(src_name);
        match rustix::fs::statat(&src_parent, src_name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {}
            _ => return Err(self.bad_owned(rel, not_earlier())),
        }
        let (parent, name) = self.parent_of(rel)?;
        self.make(&parent, name, rel, || {
            rustix::fs::linkat(&src_parent, src_name, &*parent, name, AtFlags::empty())
        })?;
        self.report.hardlinks += 1;
        Ok(())
    }

    fn skip(&mut self, rel: &[u8], reason: &'static str) -> FsResult<()> {
        self.report.skipped.push(Skipped {
            path: self.shown(rel),
            reason: reason.into(),
        });
        Ok(())
    }

    /// Makes (or finds) the directory `rel` in staging, and every directory above it,
    /// walking down from the nearest directory held open (see `held_path`).
    fn dir(&mut self, rel: &[u8]) -> FsResult<Rc<OwnedFd>> {
        let (mut dir, from_len) = match self.held.nearest(rel) {
            Some((dir, len)) if len == rel.len() => return Ok(dir),
            Some(found) => found,
            None => (self.top()?, 0),
        };
        self.held.branch(from_len, rel);
        let rest = if from_len == 0 {
            rel
        } else {
            &rel[from_len + 1..]
        };
        let mut walked = rel.len() - rest.len();
        for part in rest.split(|&b| b == b'/') {
            walked += part.len() + 1;
            let at = &rel[..walked - 1];
            let name = OsStr::from_bytes(part);
            let next = match open_beneath(&*dir, name, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(next) => next,
                Err(Errno::NOENT) => match self.chown {
                    Some(owner) => make_dir_in(&dir, name, 0o755, owner),
                    None => make_dir_plain(&dir, name, 0o755),
                }
                .map_err(|e| self.errno(at, e))?,
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    let reason = "its path goes through a symlink or a file of the archive";
                    return Err(self.bad(at, reason));
                }
                Err(e) => return Err(self.errno(at, e)),
            };
            dir = Rc::new(next);
            self.held.push(walked - 1, dir.clone());
        }
        Ok(dir)
    }

    /// Finds an existing directory in staging without making anything.
    fn existing_dir(&self, rel: &[u8]) -> Result<OwnedFd, Errno> {
        let path = if rel.is_empty() { b"." as &[u8] } else { rel };
        open_beneath(
            self.staging,
            OsStr::from_bytes(path),
            OFlags::PATH | OFlags::DIRECTORY,
        )
    }

    /// The directory an entry goes in, and its final name.
    fn parent_of<'r>(&mut self, rel: &'r [u8]) -> FsResult<(Rc<OwnedFd>, &'r OsStr)> {
        let (parent, name) = split_last(rel);
        let dir = if parent.is_empty() {
            self.top()?
        } else {
            self.dir(parent)?
        };
        Ok((dir, OsStr::from_bytes(name)))
    }

    /// The staging directory, duplicated once into a handle the walks can share.
    fn top(&mut self) -> FsResult<Rc<OwnedFd>> {
        if let Some(top) = &self.top {
            return Ok(top.clone());
        }
        let top = Rc::new(
            self.staging
                .try_clone()
                .map_err(|e| FsError::from_io(self.target.as_str(), e))?,
        );
        self.top = Some(top.clone());
        Ok(top)
    }

    /// Creates a non-directory entry with `create`, which fails with `EEXIST` rather
    /// than touch what is there. Only then is the name looked at and cleared: most
    /// names are new, and asking first would cost every entry a `stat`.
    fn make<T>(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        rel: &[u8],
        create: impl Fn() -> Result<T, Errno>,
    ) -> FsResult<T> {
        match create() {
            Err(Errno::EXIST) => {
                self.clear(parent, name, rel)?;
                create().map_err(|e| self.errno(rel, e))
            }
            other => other.map_err(|e| self.errno(rel, e)),
        }
    }

    /// Makes room for a non-directory entry: a later entry of the same name replaces an
    /// earlier one, as tar does, but never a directory.
    fn clear(&self, parent: &OwnedFd, name: &OsStr, rel: &[u8]) -> FsResult<()> {
        match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(self.errno(rel, e)),
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                Err(self.bad(rel, "the archive has both a directory and a file here"))
            }
            Ok(_) => {
                rustix::fs::unlinkat(parent, name, AtFlags::empty()).map_err(|e| self.errno(rel, e))
            }
        }
    }

    /// An entry name made relative to the target: leading `/` and `./` dropped, empty
    /// and `.` components removed, `..` refused.
    fn clean_name(&self, raw: &[u8]) -> FsResult<Vec<u8>> {
        let mut clean = Vec::with_capacity(raw.len());
        for part in raw.split(|&b| b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => return Err(self.bad(raw, "an entry name contains '..'")),
                part => {
                    if !clean.is_empty() {
                        clean.push(b'/');
                    }
                    clean.extend_from_slice(part);
                }
            }
        }
        if self.target.as_str().len() + clean.len() + 1 >= PATH_MAX {
            return Err(self.bad(raw, "an entry name is longer than PATH_MAX"));
        }
        Ok(clean)
    }

    /// The sandbox path an entry will have.
    fn shown(&self, rel: &[u8]) -> String {
        self.target.display_join(rel)
    }

    fn bad(&self, rel: &[u8], reason: &str) -> FsError {
        self.bad_owned(rel, reason.to_owned())
    }

    fn bad_owned(&self, rel: &[u8], reason: String) -> FsError {
        FsError::BadArchive {
            path: self.shown(rel),
            reason,
        }
    }

    /// A system error on an entry: quota stays 507, the rest says which entry failed.
    fn errno(&self, rel: &[u8], err: Errno) -> FsError {
        match err {
            Errno::NOSPC | Errno::DQUOT | Errno::ROFS | Errno::ACCESS | Errno::PERM => {
                FsError::from_errno(&self.shown(rel), err)
            }
            Errno::NAMETOOLONG => self.bad(rel, "a name is too long"),
            other => self.bad_owned(rel, format!("cannot be created: {other}")),
        }
    }

    /// A read error: the client's stream broke, or the archive is malformed.
    fn stream_error(&self, err: std::io::Error, rel: &[u8]) -> FsError {
        if is_transport(&err) {
            FsError::from_io(&self.shown(rel), err)
        } else {
            self.bad_owned(rel, format!("malformed tar: {err}"))
        }
    }
}

/// `a/b/c` → (`a/b`, `c`); `c` → (``, `c`).
fn split_last(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(cut) => (&rel[..cut], &rel[cut + 1..]),
        None => (b"", rel),
    }
}

/// Access time left alone, modification time set.
pub(crate) fn times(mtime: i64) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        },
    }
}
