//! Watching a directory tree with inotify, recursively, without following symlinks.
//!
//! Watches are added on directories opened by handle with no symlink followed, through
//! their `/proc/self/fd` entries, so a sandbox that swaps a directory for a symlink can
//! never make the daemon watch (and report the names in) a host directory. (The `notify`
//! crate adds watches by path string, which a swap could redirect.) A directory created
//! inside the tree is watched as soon as its creation is seen, and then scanned, so files
//! made in it before the watch took hold are still reported.

use std::collections::HashMap;
use std::ffi::{CStr, OsStr};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::OFlags;
use rustix::fs::inotify::{self, ReadFlags, WatchFlags};
use rustix::io::Errno;

use crate::reserved::{reserved, visible_children_of};
use crate::root::{fd_path, open_beneath};
use crate::{FsError, FsResult, Root, SandboxPath};

/// Most directories one watch follows; beyond it the client is told, not silently starved.
const MAX_DIRS: usize = 8192;
/// Levels below the watched directory the watch follows. Adding a tree recurses once per
/// level, and a sandbox decides how deep its trees go: unbounded, a chain of a few
/// thousand directories would overflow the thread's stack, which aborts the daemon.
const MAX_LEVELS: usize = 256;
/// Room for a burst of inotify events per read.
const READ_BUFFER: usize = 64 * 1024;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WatchKind {
    /// Created, or moved in from outside the tree.
    Create,
    /// Content changed (repeats for one file are coalesced).
    Write,
    /// Removed, or moved out of the tree.
    Remove,
    /// Renamed within the tree (`from` says the old path).
    Rename,
    /// Mode, owner or times changed.
    Chmod,
    /// Events were lost (the kernel queue or the client's queue was full).
    Overflow,
    /// The watch cannot follow everything (`message` says why); it goes on.
    Error,
}

impl WatchKind {
    /// The lowercase name used on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Write => "write",
            Self::Remove => "remove",
            Self::Rename => "rename",
            Self::Chmod => "chmod",
            Self::Overflow => "overflow",
            Self::Error => "error",
        }
    }
}

/// One change under the watched directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WatchEvent {
    /// What happened.
    pub kind: WatchKind,
    /// Absolute sandbox path (invalid UTF-8 replaced); empty for overflow.
    pub path: String,
    /// The old path of a rename.
    pub from: Option<String>,
    /// Whether the entry is a directory.
    pub is_dir: bool,
    /// Details of an error event.
    pub message: Option<String>,
}

impl WatchEvent {
    fn new(kind: WatchKind, path: String, is_dir: bool) -> Self {
        Self {
            kind,
            path,
            from: None,
            is_dir,
            message: None,
        }
    }

    /// The event that says events were lost.
    pub fn overflow() -> Self {
        Self::new(WatchKind::Overflow, String::new(), false)
    }
}

/// Hands events on to a bounded queue without ever waiting for it. Once one is dropped
/// (the queue was full), the reader must rescan anyway, so every later one is dropped
/// too until an overflow event has been handed on in their place.
#[derive(Debug, Default)]
pub struct LossyQueue {
    lost: bool,
}

impl LossyQueue {
    /// Offers `event`; `try_send` answers whether the queue took what it was given.
    pub fn offer(&mut self, event: WatchEvent, mut try_send: impl FnMut(WatchEvent) -> bool) {
        self.tell_lost(&mut try_send);
        if self.lost || !try_send(event) {
            self.lost = true;
        }
    }

    /// Hands on the overflow event owed since something was dropped, if the queue has
    /// room now (also worth trying when nothing new happened).
    pub fn tell_lost(&mut self, mut try_send: impl FnMut(WatchEvent) -> bool) {
        if self.lost && try_send(WatchEvent::overflow()) {
            self.lost = false;
        }
    }
}

/// A live watch. Read it when its descriptor is readable; it never blocks.
pub struct Watcher {
    inotify: OwnedFd,
    /// The watched directory, held open: new subdirectories are opened from it.
    top: OwnedFd,
    base: SandboxPath,
    recursive: bool,
    /// Watch descriptor → directory path relative to the base (empty for the base).
    dirs: HashMap<i32, Vec<u8>>,
    /// A `MOVED_FROM` waiting for its `MOVED_TO`: cookie, path, is a directory.
    pending_move: Option<(u32, Vec<u8>, bool)>,
    last_write: Option<Vec<u8>>,
    /// Events from setting the watch up (a tree too big to follow), for the first read.
    startup: Vec<WatchEvent>,
    buf: Vec<MaybeUninit<u8>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("base", &self.base)
            .field("dirs", &self.dirs.len())
            .finish()
    }
}

impl Root {
    /// Starts watching the directory `dir` (and, if `recursive`, everything below it).
    pub fn watch(&self, dir: &SandboxPath, recursive: bool) -> FsResult<Watcher> {
        let top = self.resolve(dir, OFlags::RDONLY | OFlags::DIRECTORY)?;
        let inotify = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
            .map_err(|e| FsError::from_errno(dir.as_str(), e))?;
        let mut watcher = Watcher {
            inotify,
            top,
            base: dir.clone(),
            recursive,
            dirs: HashMap::new(),
            pending_move: None,
            last_write: None,
            startup: Vec::new(),
            buf: vec![MaybeUninit::uninit(); READ_BUFFER],
        };
        let top = watcher
            .open_dir(b".")
            .map_err(|e| FsError::from_errno(dir.as_str(), e))?;
        let mut startup = Vec::new();
        watcher
            .add_tree(&top, Vec::new(), false, &mut startup)
            .map_err(|e| FsError::from_errno(dir.as_str(), e))?;
        watcher.startup = startup;
        Ok(watcher)
    }
}

impl Watcher {
    /// The descriptor to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    /// False once the watched directory itself is gone (removed, or its filesystem
    /// unmounted): no more events can come.
    pub fn is_alive(&self) -> bool {
        !self.dirs.is_empty()
    }

    /// Reads what the kernel has queued, appending events to `out`.
    pub fn read(&mut self, out: &mut Vec<WatchEvent>) -> FsResult<()> {
        out.append(&mut self.startup);
        let mut raw = Vec::new();
        let mut buf = std::mem::take(&mut self.buf);
        let mut reader = inotify::Reader::new(&self.inotify, &mut buf);
        loop {
            match reader.next() {
                Ok(event) => raw.push((
                    event.wd(),
                    event.events(),
                    event.cookie(),
                    event.file_name().map(|n| n.to_bytes().to_vec()),
                )),
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => continue,
                Err(e) => {
                    self.buf = buf;
                    return Err(FsError::from_errno(self.base.as_str(), e));
                }
            }
            if reader.is_buffer_empty() {
                break;
            }
        }
        self.buf = buf;
        for (wd, flags, cookie, name) in raw {
            self.one(wd, flags, cookie, name, out);
        }
        // A move whose other half did not come in the same read left the tree.
        if let Some((_, rel, is_dir)) = self.pending_move.take() {
            self.moved_out(&rel, is_dir, out);
        }
        Ok(())
    }

    fn one(
        &mut self,
        wd: i32,
        flags: ReadFlags,
        cookie: u32,
        name: Option<Vec<u8>>,
        out: &mut Vec<WatchEvent>,
    ) {
        if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
            out.push(WatchEvent::overflow());
            return;
        }
        if flags.contains(ReadFlags::IGNORED) {
            self.dirs.remove(&wd);
            return;
        }
        let (Some(parent), Some(name)) = (self.dirs.get(&wd), name) else {
            return; // about a watched directory itself; its parent reports it
        };
        let rel = join(parent, &name);
        let is_dir = flags.contains(ReadFlags::ISDIR);
        if !flags.contains(ReadFlags::MODIFY) {
            self.last_write = None;
        }
        // The engine's entries in progress are never seen: an entry renamed out of one is
        // new to the client (a write's final rename, or an extraction's move into place),
        // and one renamed into one is gone.
        let hidden = reserved(&name).is_some();
        if flags.contains(ReadFlags::MOVED_TO) {
            match self.pending_move.take() {
                Some((from_cookie, from, _)) if from_cookie == cookie => {
                    match (is_hidden(&from), hidden) {
                        (false, false) => {
                            self.renamed(&from, &rel, is_dir);
                            let mut event =
                                WatchEvent::new(WatchKind::Rename, self.shown(&rel), is_dir);
                            event.from = Some(self.shown(&from));
                            out.push(event);
                        }
                        (true, false) => self.appeared(rel, is_dir, out),
                        (false, true) => self.moved_out(&from, is_dir, out),
                        (true, true) => {}
                    }
                }
                other => {
                    if let Some((_, from, from_dir)) = other {
                        self.moved_out(&from, from_dir, out);
                    }
                    if !hidden {
                        self.created(rel, is_dir, out);
                    }
                }
            }
            return;
        }
        if let Some((_, from, from_dir)) = self.pending_move.take() {
            self.moved_out(&from, from_dir, out);
        }
        if flags.contains(ReadFlags::MOVED_FROM) {
            self.pending_move = Some((cookie, rel, is_dir));
        } else if hidden {
            // A step of the engine's own work in progress.
        } else if flags.contains(ReadFlags::CREATE) {
            self.created(rel, is_dir, out);
        } else if flags.contains(ReadFlags::DELETE) {
            out.push(WatchEvent::new(WatchKind::Remove, self.shown(&rel), is_dir));
        } else if flags.contains(ReadFlags::ATTRIB) {
            out.push(WatchEvent::new(WatchKind::Chmod, self.shown(&rel), is_dir));
        } else if flags.contains(ReadFlags::MODIFY) && self.last_write.as_ref() != Some(&rel) {
            out.push(WatchEvent::new(WatchKind::Write, self.shown(&rel), is_dir));
            self.last_write = Some(rel);
        }
    }

    /// An entry renamed out of one of the engine's: a file is new and written, a directory
    /// new with all it holds.
    fn appeared(&mut self, rel: Vec<u8>, is_dir: bool, out: &mut Vec<WatchEvent>) {
        let written = (!is_dir).then(|| WatchEvent::new(WatchKind::Write, self.shown(&rel), false));
        self.created(rel, is_dir, out);
        out.extend(written);
    }

    /// A new entry: reported, and if it is a directory, watched and scanned.
    fn created(&mut self, rel: Vec<u8>, is_dir: bool, out: &mut Vec<WatchEvent>) {
        out.push(WatchEvent::new(WatchKind::Create, self.shown(&rel), is_dir));
        if !(is_dir && self.recursive) {
            return;
        }
        if let Ok(dir) = self.open_dir(&rel)
            && let Err(e) = self.add_tree(&dir, rel.clone(), true, out)
        {
            self.error(&rel, e, out);
        }
    }

    /// Watches `dir` and (recursively) the directories below it; with `announce`, every
    /// entry found is reported as created (it appeared before the watch took hold).
    fn add_tree(
        &mut self,
        dir: &OwnedFd,
        rel: Vec<u8>,
        announce: bool,
        out: &mut Vec<WatchEvent>,
    ) -> Result<(), Errno> {
        if self.dirs.len() >= MAX_DIRS {
            return Err(Errno::NOSPC);
        }
        if levels(&rel) > MAX_LEVELS {
            return Err(Errno::MLINK);
        }
        let mask = WatchFlags::CREATE
            | WatchFlags::MODIFY
            | WatchFlags::DELETE
            | WatchFlags::ATTRIB
            | WatchFlags::MOVED_FROM
            | WatchFlags::MOVED_TO
            | WatchFlags::ONLYDIR
            | WatchFlags::EXCL_UNLINK;
        let wd = inotify::add_watch(&self.inotify, fd_path(dir).as_str(), mask)?;
        self.dirs.insert(wd, rel.clone());
        if !self.recursive && !announce {
            return Ok(());
        }
        for (name, is_dir) in visible_children_of(dir)? {
            let child = join(&rel, name.to_bytes());
            if announce {
                out.push(WatchEvent::new(
                    WatchKind::Create,
                    self.shown(&child),
                    is_dir,
                ));
            }
            if is_dir && self.recursive {
                // Swapped for a symlink or gone since listed: nothing to watch there.
                let Ok(sub) = open_child(dir, &name) else {
                    continue;
                };
                if let Err(e) = self.add_tree(&sub, child.clone(), announce, out) {
                    self.error(&child, e, out);
                }
            }
        }
        Ok(())
    }

    /// Paths under a renamed directory follow it.
    fn renamed(&mut self, from: &[u8], to: &[u8], is_dir: bool) {
        if !is_dir {
            return;
        }
        for rel in self.dirs.values_mut() {
            if let Some(rest) = under(rel, from) {
                let mut moved = to.to_vec();
                moved.extend_from_slice(rest);
                *rel = moved;
            }
        }
    }

    /// An entry moved out of the tree: a removal, and its directories are no longer ours.
    fn moved_out(&mut self, rel: &[u8], is_dir: bool, out: &mut Vec<WatchEvent>) {
        if !is_hidden(rel) {
            out.push(WatchEvent::new(WatchKind::Remove, self.shown(rel), is_dir));
        }
        if !is_dir {
            return;
        }
        let gone: Vec<i32> = self
            .dirs
            .iter()
            .filter(|(_, path)| under(path, rel).is_some())
            .map(|(wd, _)| *wd)
            .collect();
        for wd in gone {
            self.dirs.remove(&wd);
            let _ = inotify::remove_watch(&self.inotify, wd);
        }
    }

    /// Opens a directory of the tree from the watched directory, no symlink followed.
    fn open_dir(&self, rel: &[u8]) -> Result<OwnedFd, Errno> {
        open_beneath(
            &self.top,
            OsStr::from_bytes(rel),
            OFlags::RDONLY | OFlags::DIRECTORY,
        )
    }

    fn error(&self, rel: &[u8], err: Errno, out: &mut Vec<WatchEvent>) {
        let mut event = WatchEvent::new(WatchKind::Error, self.shown(rel), true);
        event.message = Some(if err == Errno::NOSPC {
            format!("not watching below here: the watch follows at most {MAX_DIRS} directories")
        } else if err == Errno::MLINK {
            format!("not watching below here: the watch follows at most {MAX_LEVELS} levels")
        } else {
            format!("not watching below here: {err}")
        });
        out.push(event);
    }

    /// The absolute sandbox path of `rel`.
    fn shown(&self, rel: &[u8]) -> String {
        self.base.display_join(rel)
    }
}

/// Whether the last component of `rel` is one of the engine's reserved names.
fn is_hidden(rel: &[u8]) -> bool {
    let name = rel.rsplit(|&b| b == b'/').next().unwrap_or(rel);
    reserved(name).is_some()
}

/// How many levels below the watched directory `rel` is (0 for the directory itself).
fn levels(rel: &[u8]) -> usize {
    if rel.is_empty() {
        0
    } else {
        rel.iter().filter(|&&b| b == b'/').count() + 1
    }
}

fn open_child(dir: &OwnedFd, name: &CStr) -> Result<OwnedFd, Errno> {
    open_beneath(dir, name, OFlags::RDONLY | OFlags::DIRECTORY)
}

fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut rel = parent.to_vec();
    if !rel.is_empty() {
        rel.push(b'/');
    }
    rel.extend_from_slice(name);
    rel
}

/// The rest of `path` below `dir` (`""` for `dir` itself, `"/x"` below it).
fn under<'p>(path: &'p [u8], dir: &[u8]) -> Option<&'p [u8]> {
    let rest = path.strip_prefix(dir)?;
    (rest.is_empty() || rest.starts_with(b"/")).then_some(rest)
}
