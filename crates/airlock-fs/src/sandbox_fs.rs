//! The seam between the service and whatever holds a sandbox's files: every file
//! operation the service needs, as one object-safe trait. [`Root`] implements it on this
//! machine; a backend whose sandboxes live elsewhere (a pod, with the engine inside it)
//! implements it by forwarding each call. Every method blocks: the service calls them on
//! its blocking pool, so a remote implementation may stream with plain blocking I/O.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, Read, Seek, Write};
use std::time::{Duration, SystemTime};

use rustix::fs::OFlags;

use crate::{
    Checks, Checksums, Entry, FileOwner, FsResult, Listing, Placement, Root, SandboxPath,
    SocketBody, Unpacked, Unpacking, WatchEvent, Watcher, WriteOptions, Written,
};

/// A file opened for reading: read from where it was sought to.
pub trait FileReader: Read + Seek + Send {
    /// The file itself when it is on this machine, so a face may hand it to the kernel
    /// to send (`sendfile`) instead of reading it through a buffer; the reader as it was
    /// otherwise.
    fn into_local(self: Box<Self>) -> Result<File, Box<dyn FileReader>>;
}

impl FileReader for File {
    fn into_local(self: Box<Self>) -> Result<File, Box<dyn FileReader>> {
        Ok(*self)
    }
}

impl<T: AsRef<[u8]> + Send + 'static> FileReader for std::io::Cursor<T> {
    fn into_local(self: Box<Self>) -> Result<File, Box<dyn FileReader>> {
        Err(self)
    }
}

/// A partial upload's file, opened to add a chunk.
pub trait PartialFile: Write + Send {
    /// Cuts the file to `len` bytes and puts the write position there.
    fn cut_to(&mut self, len: u64) -> std::io::Result<()>;
    /// The file itself when it is on this machine, so a commit can prove it is the same
    /// file it wrote and skip reading it again.
    fn local(&self) -> Option<&File> {
        None
    }
}

/// A live watch of a directory.
pub trait WatchFeed: Send {
    /// Waits at most `wait` for something to happen, then adds what did to `out`.
    fn next_events(&mut self, out: &mut Vec<WatchEvent>, wait: Duration) -> FsResult<()>;
    /// False once the watched directory is gone.
    fn is_alive(&self) -> bool;
}

/// Every file operation on one sandbox's filesystem. Paths are the sandbox's own; an
/// implementation keeps every one of them inside the sandbox.
pub trait SandboxFs: Send + Sync + std::fmt::Debug {
    /// What is at `path`, without following a final symlink.
    fn stat(&self, path: &SandboxPath) -> FsResult<Entry>;
    /// Fails unless `path` is a directory (so a stream over it can start cleanly).
    fn require_dir(&self, path: &SandboxPath) -> FsResult<()>;
    /// A page of the entries under `dir`, `depth` levels down, after `cursor`.
    fn list(
        &self,
        dir: &SandboxPath,
        depth: u32,
        limit: usize,
        cursor: Option<&SandboxPath>,
    ) -> FsResult<Listing>;
    /// A regular file opened for reading, and what it is.
    fn open_read(&self, path: &SandboxPath) -> FsResult<(Box<dyn FileReader>, Entry)>;
    /// The checksums `checks` asks for, of a file's whole content.
    fn checksums(&self, path: &SandboxPath, checks: Checks) -> FsResult<Checksums>;
    /// Writes all of `content` to `path`, replacing what was there in one step.
    fn write_file(
        &self,
        path: &SandboxPath,
        content: &mut dyn BufRead,
        opts: WriteOptions,
    ) -> FsResult<Written>;
    /// [`SandboxFs::write_file`] with the body still on its connection's socket. Files
    /// on this machine take it by `splice`; elsewhere it is read like any body.
    fn write_file_from_socket(
        &self,
        path: &SandboxPath,
        body: SocketBody,
        opts: WriteOptions,
    ) -> FsResult<Written> {
        self.write_file(path, &mut body.into_reader(), opts)
    }

    /// Writes `content` into an existing (or new) file at `at`, in place.
    fn write_in_place(
        &self,
        path: &SandboxPath,
        content: &mut dyn BufRead,
        at: Placement,
        owner: FileOwner,
        checks: Checks,
    ) -> FsResult<Written>;
    /// Makes a directory (and its parents when asked).
    fn mkdir(
        &self,
        path: &SandboxPath,
        mode: u32,
        owner: FileOwner,
        parents: bool,
    ) -> FsResult<Entry>;
    /// Moves an entry, replacing what is at `to` only when `overwrite`.
    fn rename(&self, from: &SandboxPath, to: &SandboxPath, overwrite: bool) -> FsResult<Entry>;
    /// Removes an entry; a non-empty directory only when `recursive`.
    fn remove(&self, path: &SandboxPath, recursive: bool) -> FsResult<()>;
    /// Writes the concatenation of `sources` to `dest` in one step.
    fn compose(
        &self,
        sources: &[SandboxPath],
        dest: &SandboxPath,
        opts: WriteOptions,
    ) -> FsResult<Written>;
    /// Writes the tree under `dir` as a tar stream.
    fn pack(&self, dir: &SandboxPath, out: &mut dyn Write) -> FsResult<()>;
    /// Like [`SandboxFs::pack`], for the named entries below `dir` only.
    fn pack_paths(&self, dir: &SandboxPath, rels: &[String], out: &mut dyn Write) -> FsResult<()>;
    /// Unpacks a tar stream under `dir` as `how` says, all or nothing.
    fn unpack(&self, dir: &SandboxPath, input: &mut dyn Read, how: Unpacking)
    -> FsResult<Unpacked>;
    /// Makes the empty partial file of an upload to `dest`; returns its name.
    fn create_partial(
        &self,
        dest: &SandboxPath,
        parents: bool,
        owner: FileOwner,
    ) -> FsResult<String>;
    /// Opens the partial file `name` of `dest` to add to it.
    fn open_partial(&self, dest: &SandboxPath, name: &str) -> FsResult<Box<dyn PartialFile>>;
    /// Puts a complete partial file in place at `dest`, reading it to check it.
    fn commit_partial(
        &self,
        dest: &SandboxPath,
        name: &str,
        opts: WriteOptions,
    ) -> FsResult<Written>;
    /// Like [`SandboxFs::commit_partial`], for a partial file written whole through
    /// `file` and hashed on the way: `checksums` is what it holds.
    fn commit_partial_written(
        &self,
        dest: &SandboxPath,
        name: &str,
        opts: WriteOptions,
        file: &dyn PartialFile,
        checksums: Checksums,
    ) -> FsResult<Written>;
    /// Removes the partial file `name` of `dest`, if it is still there.
    fn discard_partial(&self, dest: &SandboxPath, name: &str) -> FsResult<()>;
    /// Removes what interrupted writes left before `before`, except names in `keep`.
    fn sweep_leftovers(&self, before: SystemTime, keep: &HashSet<String>) -> usize;
    /// Starts watching `dir` (and below it when `recursive`).
    fn watch(&self, dir: &SandboxPath, recursive: bool) -> FsResult<Box<dyn WatchFeed>>;
    /// Whether a small call answers from this machine's kernel alone, never waiting on a
    /// network: then a caller may run it on its own thread instead of handing it off.
    fn answers_at_once(&self) -> bool;
}

impl PartialFile for File {
    fn cut_to(&mut self, len: u64) -> std::io::Result<()> {
        // Only a length that is wrong is set. ext4 treats any truncate that leaves a file
        // empty as an editor rewriting it (`auto_da_alloc`) and starts writeback of all its
        // dirty pages when it is closed, in the closing thread: a fresh upload's empty
        // partial file, "cut" to 0, had the request that filled it submit 1 GiB of
        // writeback at the end.
        if self.metadata()?.len() != len {
            self.set_len(len)?;
        }
        self.seek(std::io::SeekFrom::Start(len)).map(drop)
    }

    fn local(&self) -> Option<&File> {
        Some(self)
    }
}

impl WatchFeed for Watcher {
    fn next_events(&mut self, out: &mut Vec<WatchEvent>, wait: Duration) -> FsResult<()> {
        let fd = self.fd();
        let mut fds = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        let wait = rustix::event::Timespec {
            tv_sec: wait.as_secs() as i64,
            tv_nsec: i64::from(wait.subsec_nanos()),
        };
        // A failed or interrupted poll only means the read below finds nothing new.
        let _ = rustix::event::poll(&mut fds, Some(&wait));
        self.read(out)
    }

    fn is_alive(&self) -> bool {
        Watcher::is_alive(self)
    }
}

impl SandboxFs for Root {
    fn stat(&self, path: &SandboxPath) -> FsResult<Entry> {
        Root::stat(self, path)
    }

    fn require_dir(&self, path: &SandboxPath) -> FsResult<()> {
        self.resolve(path, OFlags::PATH | OFlags::DIRECTORY)
            .map(drop)
    }

    fn list(
        &self,
        dir: &SandboxPath,
        depth: u32,
        limit: usize,
        cursor: Option<&SandboxPath>,
    ) -> FsResult<Listing> {
        Root::list(self, dir, depth, limit, cursor)
    }

    fn open_read(&self, path: &SandboxPath) -> FsResult<(Box<dyn FileReader>, Entry)> {
        Root::open_read(self, path).map(|(file, entry)| (Box::new(file) as _, entry))
    }

    fn checksums(&self, path: &SandboxPath, checks: Checks) -> FsResult<Checksums> {
        Root::checksums(self, path, checks)
    }

    fn write_file(
        &self,
        path: &SandboxPath,
        mut content: &mut dyn BufRead,
        opts: WriteOptions,
    ) -> FsResult<Written> {
        Root::write_file(self, path, &mut content, opts)
    }

    fn write_file_from_socket(
        &self,
        path: &SandboxPath,
        body: SocketBody,
        opts: WriteOptions,
    ) -> FsResult<Written> {
        Root::write_file_from_socket(self, path, body, opts)
    }

    fn write_in_place(
        &self,
        path: &SandboxPath,
        mut content: &mut dyn BufRead,
        at: Placement,
        owner: FileOwner,
        checks: Checks,
    ) -> FsResult<Written> {
        Root::write_in_place(self, path, &mut content, at, owner, checks)
    }

    fn mkdir(
        &self,
        path: &SandboxPath,
        mode: u32,
        owner: FileOwner,
        parents: bool,
    ) -> FsResult<Entry> {
        Root::mkdir(self, path, mode, owner, parents)
    }

    fn rename(&self, from: &SandboxPath, to: &SandboxPath, overwrite: bool) -> FsResult<Entry> {
        Root::rename(self, from, to, overwrite)
    }

    fn remove(&self, path: &SandboxPath, recursive: bool) -> FsResult<()> {
        Root::remove(self, path, recursive)
    }

    fn compose(
        &self,
        sources: &[SandboxPath],
        dest: &SandboxPath,
        opts: WriteOptions,
    ) -> FsResult<Written> {
        Root::compose(self, sources, dest, opts)
    }

    fn pack(&self, dir: &SandboxPath, out: &mut dyn Write) -> FsResult<()> {
        Root::pack(self, dir, out).map(drop)
    }

    fn pack_paths(&self, dir: &SandboxPath, rels: &[String], out: &mut dyn Write) -> FsResult<()> {
        Root::pack_paths(self, dir, rels, out).map(drop)
    }

    fn unpack(
        &self,
        dir: &SandboxPath,
        input: &mut dyn Read,
        how: Unpacking,
    ) -> FsResult<Unpacked> {
        Root::unpack(self, dir, input, how)
    }

    fn create_partial(
        &self,
        dest: &SandboxPath,
        parents: bool,
        owner: FileOwner,
    ) -> FsResult<String> {
        Root::create_partial(self, dest, parents, owner)
    }

    fn open_partial(&self, dest: &SandboxPath, name: &str) -> FsResult<Box<dyn PartialFile>> {
        Root::open_partial(self, dest, name).map(|file| Box::new(file) as _)
    }

    fn commit_partial(
        &self,
        dest: &SandboxPath,
        name: &str,
        opts: WriteOptions,
    ) -> FsResult<Written> {
        Root::commit_partial(self, dest, name, opts)
    }

    fn commit_partial_written(
        &self,
        dest: &SandboxPath,
        name: &str,
        opts: WriteOptions,
        file: &dyn PartialFile,
        checksums: Checksums,
    ) -> FsResult<Written> {
        match file.local() {
            Some(file) => Root::commit_partial_hashed(self, dest, name, opts, file, checksums),
            None => Root::commit_partial(self, dest, name, opts),
        }
    }

    fn discard_partial(&self, dest: &SandboxPath, name: &str) -> FsResult<()> {
        Root::discard_partial(self, dest, name)
    }

    fn sweep_leftovers(&self, before: SystemTime, keep: &HashSet<String>) -> usize {
        Root::sweep_leftovers(self, before, keep)
    }

    fn watch(&self, dir: &SandboxPath, recursive: bool) -> FsResult<Box<dyn WatchFeed>> {
        Root::watch(self, dir, recursive).map(|watcher| Box::new(watcher) as _)
    }

    fn answers_at_once(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, Write};
    use std::os::unix::fs::MetadataExt;

    use super::PartialFile;

    fn file_with(bytes: &[u8]) -> std::fs::File {
        let mut file = tempfile::tempfile().expect("temp file");
        file.write_all(bytes).expect("write");
        // An old mtime: a truncate, even one to the same length, would set it to now.
        let old = std::fs::FileTimes::new()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000));
        file.set_times(old).expect("set mtime");
        file
    }

    fn all_of(file: &mut std::fs::File) -> Vec<u8> {
        file.rewind().expect("rewind");
        let mut all = Vec::new();
        file.read_to_end(&mut all).expect("read");
        all
    }

    #[test]
    fn a_right_length_is_left_alone() {
        for bytes in [&b""[..], b"kept"] {
            let mut file = file_with(bytes);
            file.cut_to(bytes.len() as u64).expect("cut");
            // No truncate at all: ext4 flushes an emptied file's pages when it is closed.
            assert_eq!(file.metadata().expect("stat").mtime(), 1_000_000);
            assert_eq!(
                file.stream_position().expect("position"),
                bytes.len() as u64
            );
            assert_eq!(all_of(&mut file), bytes);
        }
    }

    #[test]
    fn what_is_past_the_length_goes() {
        let mut file = file_with(b"agreed|left by a broken request");
        file.cut_to(6).expect("cut");
        assert_eq!(file.stream_position().expect("position"), 6);
        assert_eq!(all_of(&mut file), b"agreed");
    }
}
