//! Writing files. A whole-file write is atomic: a private file in the target directory is
//! filled and hashed, given its mode, owner and mtime on the open descriptor, then given
//! its name. The file is unnamed (`O_TMPFILE`) while it fills where the filesystem allows,
//! and linked in (or, to replace, linked under a temporary name and renamed over the
//! target); elsewhere it has a random temporary name and is renamed in (or next to
//! nothing, with no-replace). Appends and writes at an offset change the file in place.

use std::io::{BufRead, IoSlice, Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{Mode, OFlags, RenameFlags, ResolveFlags, Timespec, Timestamps};
use rustix::io::Errno;

use crate::read::reopen_regular;
use crate::root::openat2_in;
use crate::socket_body::SocketBody;
use crate::staged::Staged;
use crate::{Checks, Checksums, Entry, FsError, FsResult, Hasher, Root, SandboxPath};

/// The most bytes gathered for one write.
pub(crate) const BUFFER: usize = 1024 * 1024;
/// A piece of input at least this large is written from where it lies, not gathered.
const DIRECT: usize = 32 * 1024;

/// Who owns a file the engine creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
        let uid = rustix::fs::Uid::from_raw(self.uid);
        let gid = rustix::fs::Gid::from_raw(self.gid);
        // AT_EMPTY_PATH makes this work on O_PATH descriptors too.
        rustix::fs::chownat(
            fd,
            "",
            Some(uid),
            Some(gid),
            rustix::fs::AtFlags::EMPTY_PATH,
        )
    }
}

/// How a whole file is written.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct WriteOptions {
    /// Permission bits; setuid, setgid and sticky are always stripped.
    pub mode: u32,
    /// Owner of the new file and of any directory made for it.
    pub owner: FileOwner,
    /// Create missing parent directories.
    pub parents: bool,
    /// Replace an existing file (else an existing target is a conflict).
    pub overwrite: bool,
    /// Modification time to set (seconds, nanoseconds); now when absent.
    pub mtime: Option<(i64, u32)>,
    /// Checksums to compute beyond the CRC, and to verify before the commit.
    pub checks: Checks,
}

impl WriteOptions {
    /// Mode and owner; parents made, overwrite allowed, no mtime, no expected digest.
    pub fn new(mode: u32, owner: FileOwner) -> Self {
        Self {
            mode,
            owner,
            parents: true,
            overwrite: true,
            mtime: None,
            checks: Checks::default(),
        }
    }
}

/// What a completed write produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Written {
    /// The file as it now is.
    pub entry: Entry,
    /// Checksums of the file's whole content.
    pub checksums: Checksums,
    /// Whether the write made the file: nothing had its name before.
    #[serde(default)]
    pub created: bool,
}

/// Where an in-place write goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Placement {
    /// At the end.
    Append,
    /// At this byte offset (the file grows if needed).
    Offset(u64),
}

impl Root {
    /// Writes all of `content` to `path`, replacing any file there in one rename.
    ///
    /// Readers see the old file or the new one, never a prefix. On any failure (a broken
    /// stream, a full disk, a wrong checksum) the temporary file is removed and the old
    /// file is untouched.
    pub fn write_file(
        &self,
        path: &SandboxPath,
        content: &mut impl BufRead,
        opts: WriteOptions,
    ) -> FsResult<Written> {
        self.write_whole(path, opts, |file| copy_hashing(content, file, opts.checks))
    }

    /// [`Root::write_file`] with a body taken straight from its socket: moved into the
    /// file by the kernel ([`SocketBody`]).
    pub fn write_file_from_socket(
        &self,
        path: &SandboxPath,
        mut body: SocketBody,
        opts: WriteOptions,
    ) -> FsResult<Written> {
        self.write_whole(path, opts, |file| body.move_into(file, &opts.checks))
    }

    /// A whole-file write whose content `fill_file` puts into the private file, from its
    /// start, answering the content's checksums.
    fn write_whole(
        &self,
        path: &SandboxPath,
        opts: WriteOptions,
        fill_file: impl FnOnce(&mut std::fs::File) -> std::io::Result<Checksums>,
    ) -> FsResult<Written> {
        let (parent, name) = path.split_parent().ok_or_else(|| FsError::BadPath {
            path: path.to_string(),
            reason: "is the root directory",
        })?;
        let dir = if opts.parents {
            self.mkdir_all(&parent, 0o755, opts.owner)?
        } else {
            self.resolve(&parent, OFlags::PATH | OFlags::DIRECTORY)?
        };
        let fail = |e| FsError::from_errno(path.as_str(), e);
        let (staged, file) = Staged::create(&dir, opts.mode).map_err(fail)?;
        let mut file = std::fs::File::from(file);
        let has_mode = staged.has_mode(opts.mode);
        let committed = fill(&mut file, fill_file, &opts, has_mode, path).and_then(|checksums| {
            let created = staged
                .name(&dir, &file, name, opts.overwrite)
                .map_err(fail)?;
            // The descriptor, not the name: what this write made, even if another
            // writer has since replaced it.
            let entry = Entry::of_fd(&file, path.to_string()).map_err(fail)?;
            Ok(Written {
                entry,
                checksums,
                created,
            })
        });
        if committed.is_err()
            && let Staged::Named(temp_name) = &staged
        {
            let _ = rustix::fs::unlinkat(&dir, temp_name, rustix::fs::AtFlags::empty());
        }
        committed
    }

    /// Appends `content` to `path`, or writes it at an offset, creating the file (owned by
    /// `owner`) if it does not exist. Reports the whole file's new checksums (reading it
    /// whole again: the CRC of a changed middle cannot be derived).
    pub fn write_in_place(
        &self,
        path: &SandboxPath,
        content: &mut impl BufRead,
        at: Placement,
        owner: FileOwner,
        checks: Checks,
    ) -> FsResult<Written> {
        let (file, created) = self.open_for_update(path, at, owner)?;
        let mut file = std::fs::File::from(file);
        if let Placement::Offset(offset) = at {
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset))
                .map_err(|e| FsError::from_io(path.as_str(), e))?;
        }
        // The chunk's own checksum would be thrown away: the whole file is read below.
        copy_chunks(content, &mut file, |_| {}).map_err(|e| FsError::from_io(path.as_str(), e))?;
        let entry = Entry::of_fd(&file, path.to_string())
            .map_err(|e| FsError::from_errno(path.as_str(), e))?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0))
            .map_err(|e| FsError::from_io(path.as_str(), e))?;
        let checksums =
            hash_all(&mut file, checks).map_err(|e| FsError::from_io(path.as_str(), e))?;
        Ok(Written {
            entry,
            checksums,
            created,
        })
    }

    /// Opens an existing regular file for writing (checked through an `O_PATH` handle so a
    /// FIFO is never opened), or creates it; says which.
    fn open_for_update(
        &self,
        path: &SandboxPath,
        at: Placement,
        owner: FileOwner,
    ) -> FsResult<(OwnedFd, bool)> {
        let mode = if at == Placement::Append {
            OFlags::RDWR | OFlags::APPEND
        } else {
            OFlags::RDWR
        };
        match self.resolve(path, OFlags::PATH) {
            Ok(handle) => {
                let (file, _) = reopen_regular(&handle, path, mode)?;
                Ok((OwnedFd::from(file), false))
            }
            Err(FsError::NotFound { .. }) => {
                let (dir, name) = self.parent_of(path)?;
                let flags = mode | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
                let fd = openat2_in(
                    &dir,
                    name,
                    flags,
                    Mode::from_raw_mode(0o644),
                    ResolveFlags::BENEATH,
                )
                .map_err(|e| FsError::from_errno(path.as_str(), e))?;
                owner
                    .apply(&fd)
                    .map_err(|e| FsError::from_errno(path.as_str(), e))?;
                Ok((fd, true))
            }
            Err(e) => Err(e),
        }
    }
}

fn fill(
    file: &mut std::fs::File,
    fill_file: impl FnOnce(&mut std::fs::File) -> std::io::Result<Checksums>,
    opts: &WriteOptions,
    has_mode: bool,
    path: &SandboxPath,
) -> FsResult<Checksums> {
    let io = |e| FsError::from_io(path.as_str(), e);
    let checksums = fill_file(file).map_err(io)?;
    opts.checks.verify(&checksums, path)?;
    seal(file, opts, has_mode, path)?;
    Ok(checksums)
}

/// Renames a finished temporary file onto its name (never replacing anything unless
/// `overwrite`), and describes the result and whether the name was new. The rename that
/// may not replace goes first even when replacing is allowed: it tells whether anything
/// had the name in the same call that commits, where a `stat` before it cost a lookup of
/// its own and could be overtaken by another writer.
pub(crate) fn commit(
    dir: &OwnedFd,
    temp_name: &str,
    name: &str,
    overwrite: bool,
    path: &SandboxPath,
) -> FsResult<(Entry, bool)> {
    let fail = |e| FsError::from_errno(path.as_str(), e);
    let created = rename_in(dir, temp_name, name, overwrite).map_err(fail)?;
    let entry = Entry::at(dir, name, path.to_string()).map_err(fail)?;
    Ok((entry, created))
}

/// Renames `temp_name` onto `name` in `dir` (never replacing anything unless
/// `overwrite`); says whether the name was new.
pub(crate) fn rename_in(
    dir: &OwnedFd,
    temp_name: &str,
    name: &str,
    overwrite: bool,
) -> Result<bool, Errno> {
    let rename = |flags| rustix::fs::renameat_with(dir, temp_name, dir, name, flags);
    match rename(RenameFlags::NOREPLACE) {
        Ok(()) => Ok(true),
        Err(Errno::EXIST) if overwrite => rename(RenameFlags::empty()).map(|()| false),
        // A filesystem without RENAME_NOREPLACE: look, then replace.
        Err(Errno::INVAL) if overwrite => {
            let free =
                rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_err();
            rename(RenameFlags::empty()).map(|()| free)
        }
        Err(e) => Err(e),
    }
}

/// Gives a finished file its owner, mode (unless it `has_mode` already) and mtime, on
/// the open descriptor.
pub(crate) fn seal(
    file: &std::fs::File,
    opts: &WriteOptions,
    has_mode: bool,
    path: &SandboxPath,
) -> FsResult<()> {
    // Owner first: chown clears setuid bits, and the mode below never sets them anyway.
    opts.owner
        .apply(file)
        .map_err(|e| FsError::from_errno(path.as_str(), e))?;
    if !has_mode {
        rustix::fs::fchmod(file, Mode::from_raw_mode(opts.mode & 0o777))
            .map_err(|e| FsError::from_errno(path.as_str(), e))?;
    }
    if let Some((secs, nanos)) = opts.mtime {
        let time = Timespec {
            tv_sec: secs,
            tv_nsec: nanos.into(),
        };
        let omit = Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        };
        rustix::fs::futimens(
            file,
            &Timestamps {
                last_access: omit,
                last_modification: time,
            },
        )
        .map_err(|e| FsError::from_errno(path.as_str(), e))?;
    }
    Ok(())
}

/// Copies everything, hashing as it goes.
fn copy_hashing(
    from: &mut impl BufRead,
    to: &mut impl Write,
    checks: Checks,
) -> std::io::Result<Checksums> {
    let mut hasher = Hasher::new(&checks);
    copy_chunks(from, to, |chunk| hasher.update(chunk))?;
    Ok(hasher.finish())
}

/// Copies everything, showing each written run to `seen` on the way. Large pieces (a
/// network body's chunks as the socket delivered them) are written from the reader's own
/// buffer: copying them into ours first cost a pass over every byte (5 % of the daemon's
/// time in an upload). Small pieces are gathered, so a body that trickles in still makes
/// large writes, not hundreds of small ones. A large piece after small ones goes out
/// behind them in one vectored write, never copied to top them up: a gRPC upload's pieces
/// alternate most of a MiB with the few bytes of each message that its client's frames
/// split off, and topping up copied every byte after the first small piece.
fn copy_chunks(
    from: &mut impl BufRead,
    to: &mut impl Write,
    mut seen: impl FnMut(&[u8]),
) -> std::io::Result<()> {
    // Grown as pieces come, never zeroed: most files are small, and a whole buffer
    // zeroed for 1 KiB showed in the profile of small writes.
    let mut gathered: Vec<u8> = Vec::new();
    // Every write goes through here, so the checksum sees exactly what is written.
    let mut emit = |parts: &mut [IoSlice<'_>]| {
        parts.iter().for_each(|part| seen(part));
        write_all_of(&mut *to, parts)
    };
    loop {
        let piece = match from.fill_buf() {
            Ok(piece) => piece,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let n = piece.len();
        if n == 0 {
            break;
        }
        if n >= DIRECT {
            emit(&mut [IoSlice::new(&gathered), IoSlice::new(piece)])?;
            gathered.clear();
            from.consume(n);
            continue;
        }
        let take = n.min(BUFFER - gathered.len());
        gathered.extend_from_slice(&piece[..take]);
        from.consume(take);
        if gathered.len() == BUFFER {
            emit(&mut [IoSlice::new(&gathered)])?;
            gathered.clear();
        }
    }
    if !gathered.is_empty() {
        emit(&mut [IoSlice::new(&gathered)])?;
    }
    to.flush()
}

/// Writes all of `slices`, in as few vectored writes as the writer takes them in.
fn write_all_of(to: &mut impl Write, mut slices: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    // Empty slices first (nothing gathered) are dropped: a writer's default
    // `write_vectored` writes only the first slice, which would then be a write of nothing.
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match to.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub(crate) fn hash_all(from: &mut impl Read, checks: Checks) -> std::io::Result<Checksums> {
    let mut from = std::io::BufReader::with_capacity(BUFFER, from);
    copy_hashing(&mut from, &mut std::io::sink(), checks)
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates a new file named `prefix` and random hex in `dir`; never follows or reuses an
/// existing entry.
pub(crate) fn create_temp(dir: &OwnedFd, prefix: &str) -> Result<(String, OwnedFd), Errno> {
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
    under_temp_name(prefix, |name| {
        openat2_in(
            dir,
            name,
            flags,
            Mode::from_raw_mode(0o600),
            ResolveFlags::BENEATH,
        )
    })
}

/// Runs `make` with fresh names of `prefix` and random hex until one is not taken
/// (`make` fails with EEXIST for a taken one); answers the name and what `make` made.
pub(crate) fn under_temp_name<T>(
    prefix: &str,
    mut make: impl FnMut(&str) -> Result<T, Errno>,
) -> Result<(String, T), Errno> {
    loop {
        let name = format!("{prefix}{:016x}", random_u64());
        match make(&name) {
            Ok(made) => return Ok((name, made)),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e),
        }
    }
}

pub(crate) fn random_u64() -> u64 {
    thread_local! {
        /// Temporary names need only be hard to guess and rarely clash (a clash takes
        /// the next name, and creation never follows what is there): a generator seeded
        /// once a thread from the kernel spares each name a `getrandom` call.
        static NAMES: std::cell::RefCell<fastrand::Rng> =
            std::cell::RefCell::new(fastrand::Rng::with_seed(kernel_random_u64()));
    }
    NAMES.with(|names| names.borrow_mut().u64(..))
}

fn kernel_random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // A failure of the kernel's random source leaves zeros; O_EXCL keeps that correct.
    let _ = getrandom::fill(&mut bytes);
    u64::from_ne_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out the given pieces one `fill_buf` at a time, as a network
    /// body does.
    struct Pieces {
        pieces: std::collections::VecDeque<Vec<u8>>,
        at: usize,
    }

    impl Pieces {
        fn of(sizes: &[usize]) -> (Self, Vec<u8>) {
            let mut all = Vec::new();
            let pieces = sizes
                .iter()
                .enumerate()
                .map(|(k, &size)| {
                    let piece: Vec<u8> = (0..size).map(|n| (n * 7 + k) as u8).collect();
                    all.extend_from_slice(&piece);
                    piece
                })
                .collect();
            (Self { pieces, at: 0 }, all)
        }
    }

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.fill_buf()?.len().min(buf.len());
            buf[..n].copy_from_slice(&self.fill_buf()?[..n]);
            self.consume(n);
            Ok(n)
        }
    }

    impl BufRead for Pieces {
        fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
            while self.pieces.front().is_some_and(|p| self.at == p.len()) {
                self.pieces.pop_front();
                self.at = 0;
            }
            Ok(self.pieces.front().map_or(&[][..], |p| &p[self.at..]))
        }

        fn consume(&mut self, n: usize) {
            self.at += n;
        }
    }

    /// Records each write's size.
    #[derive(Default)]
    struct Writes {
        bytes: Vec<u8>,
        sizes: Vec<usize>,
    }

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.bytes.extend_from_slice(buf);
            self.sizes.push(buf.len());
            Ok(buf.len())
        }

        /// Takes every slice: one write, as `writev` takes them.
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
            let mut size = 0;
            for buf in bufs {
                self.bytes.extend_from_slice(buf);
                size += buf.len();
            }
            self.sizes.push(size);
            Ok(size)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn copy(sizes: &[usize]) -> (Writes, Vec<u8>, Vec<u8>) {
        let (mut from, all) = Pieces::of(sizes);
        let (mut to, mut seen) = (Writes::default(), Vec::new());
        copy_chunks(&mut from, &mut to, |chunk| seen.extend_from_slice(chunk)).expect("copies");
        (to, all, seen)
    }

    #[test]
    fn large_pieces_are_written_as_they_came() {
        let (to, all, seen) = copy(&[DIRECT, 3 * DIRECT, DIRECT + 1]);
        assert_eq!(to.bytes, all);
        assert_eq!(seen, all, "the checksum sees what is written");
        assert_eq!(to.sizes, vec![DIRECT, 3 * DIRECT, DIRECT + 1]);
    }

    #[test]
    fn a_trickle_is_gathered_into_large_writes() {
        let sizes = vec![1000; 3000];
        let (to, all, seen) = copy(&sizes);
        assert_eq!((to.bytes == all, seen == all), (true, true));
        assert!(
            to.sizes.len() <= 5,
            "3,000 pieces of 1,000 bytes made {} writes",
            to.sizes.len()
        );
        assert!(to.sizes[1..to.sizes.len() - 1].iter().all(|&s| s == BUFFER));
    }

    #[test]
    fn a_large_piece_after_small_ones_goes_out_behind_them_in_one_write() {
        let (to, all, seen) = copy(&[10, 20, 4 * BUFFER, 5]);
        assert_eq!((to.bytes == all, seen == all), (true, true));
        assert_eq!(to.sizes, vec![4 * BUFFER + 30, 5]);
    }

    /// Takes at most 1,000 bytes a call, and of a vectored write only the first slice.
    struct Stingy(Vec<u8>);

    impl Write for Stingy {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = buf.len().min(1000);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_writer_that_takes_a_little_at_a_time_still_gets_every_byte_in_order() {
        let (mut from, all) = Pieces::of(&[10, 3 * DIRECT, 7, 0, DIRECT, 5]);
        let mut to = Stingy(Vec::new());
        copy_chunks(&mut from, &mut to, |_| {}).expect("copies");
        assert!(to.0 == all);
    }

    #[test]
    fn large_pieces_with_small_ones_between_are_never_gathered() {
        // A gRPC upload's pieces: most of a chunk, then the bytes of it that its client's
        // frames split off. Each write is one large piece behind the small one before it:
        // none is copied into a buffer to top it up.
        let large = 8 * DIRECT - 9;
        let sizes: Vec<usize> = (0..4).flat_map(|_| [large, 9]).collect();
        let (to, all, seen) = copy(&sizes);
        assert_eq!((to.bytes == all, seen == all), (true, true));
        assert_eq!(to.sizes, vec![large, large + 9, large + 9, large + 9, 9]);
    }

    #[test]
    fn nothing_in_is_nothing_written() {
        let (to, all, _) = copy(&[]);
        assert!(all.is_empty() && to.sizes.is_empty());
    }
}
