//! Packing a directory tree into a tar stream, no `tar` needed in the sandbox.
//!
//! The walk holds each directory open and opens children relative to it with no symlink
//! following, so a swap during the walk yields an error or a skip, never a host file.
//! Symlinks are archived as symlinks; FIFOs, sockets and devices are left out. A file's
//! header carries the size its open descriptor had, and exactly that many bytes follow
//! (zero padding if it shrank meanwhile), so a changing file never desyncs the stream.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rustix::fs::OFlags;
use rustix::io::Errno;

use crate::path::PATH_MAX;
use crate::reserved::visible_children_sorted;
use crate::root::open_beneath;
use crate::walk_dir::{self, HELD, WalkDir, let_go_before_push};
use crate::whole_tar::WholeTar;
use crate::{Entry, FileKind, FsError, FsResult, Root, SandboxPath};

impl Root {
    /// Writes the tree under `dir` as a tar stream to `out`; entry names are relative to
    /// `dir`. Returns how many entries were written.
    pub fn pack(&self, dir: &SandboxPath, out: impl Write) -> FsResult<u64> {
        let fd = self.resolve(dir, OFlags::RDONLY | OFlags::DIRECTORY)?;
        let mut tar = WholeTar::new(out);
        let mut count = 0;
        pack_dir(tar.builder(), &fd, &mut count)
            .and_then(|()| tar.finish())
            .map_err(|e| FsError::from_io(dir.as_str(), e))?;
        Ok(count)
    }

    /// Writes the chosen entries under `dir` as a tar stream, each named by its path
    /// relative to `dir`: a file, a symlink (as a link), or a directory (the directory
    /// alone, not what is in it). Entries that are gone are left out, as a walk leaves
    /// out what vanished under it. Returns how many entries were written.
    pub fn pack_paths(&self, dir: &SandboxPath, rels: &[String], out: impl Write) -> FsResult<u64> {
        let mut tar = WholeTar::new(out);
        let mut count = 0;
        for rel in rels {
            let path = SandboxPath::parse(&format!("{dir}/{rel}"))?;
            if !path.starts_with(dir) || path == *dir {
                return Err(FsError::BadPath {
                    path: rel.clone(),
                    reason: "names no entry below the archive's directory",
                });
            }
            let (parent, name) = match self.parent_of(&path) {
                Ok(found) => found,
                Err(FsError::NotFound { .. }) => continue,
                Err(other) => return Err(other),
            };
            let name = CString::new(name).map_err(|_| FsError::BadPath {
                path: rel.clone(),
                reason: "contains a NUL byte",
            })?;
            let name_in_archive =
                PathBuf::from(&path.as_str()[dir.as_str().len()..].trim_start_matches('/'));
            match pack_one(
                tar.builder(),
                &parent,
                &name,
                &name_in_archive,
                &mut count,
                false,
            ) {
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOENT.raw_os_error()) => {}
                other => drop(other.map_err(|e| FsError::from_io(path.as_str(), e))?),
            }
        }
        tar.finish()
            .map_err(|e| FsError::from_io(dir.as_str(), e))?;
        Ok(count)
    }
}

/// A directory on the walk's stack: its handle and its children not yet packed, in
/// order.
struct Level {
    dir: WalkDir,
    left: std::vec::IntoIter<(CString, bool)>,
}

/// Packs everything below `top`, depth first, names sorted. The walk keeps its own stack
/// of directories on the heap: a sandbox decides how deep its trees go, and a walk that
/// recursed per level overflowed its thread's stack (which aborts the daemon) on a chain
/// of a few thousand directories. It holds at most [`HELD`] of them open.
fn pack_dir<W: Write>(
    builder: &mut tar::Builder<W>,
    top: &OwnedFd,
    count: &mut u64,
) -> std::io::Result<()> {
    let mut stack = vec![Level {
        dir: WalkDir::Top,
        left: visible_children_sorted(top)?.into_iter(),
    }];
    // The entry's name in the archive: the directories on the stack below the top, then
    // the entry.
    let mut rel = PathBuf::new();
    while let Some(level) = stack.last_mut() {
        let Some((name, _)) = level.left.next() else {
            stack.pop();
            rel.pop();
            continue;
        };
        let dir = match level.dir.open(top, || rel.clone().into_os_string()) {
            Ok(dir) => dir,
            // Removed since the walk went below it: nothing more of it to pack.
            Err(e) if walk_dir::vanished(e) => {
                stack.pop();
                rel.pop();
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        rel.push(std::ffi::OsStr::from_bytes(name.as_bytes()));
        // No extractor (this engine's, GNU tar's) takes a name past PATH_MAX, so a deeper
        // entry is an error here rather than an archive no one can unpack.
        if rel.as_os_str().len() >= PATH_MAX {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{}…: a path in the tree is longer than PATH_MAX ({PATH_MAX} bytes), \
                     which no tar extractor takes",
                    shown_start(&rel)
                ),
            ));
        }
        let descend = pack_one(builder, dir, &name, &rel, count, true).and_then(|opened| {
            opened
                .map(|dir| visible_children_sorted(&dir).map(|left| (dir, left)))
                .transpose()
                .map_err(std::io::Error::from)
        });
        match descend {
            // The directory's name stays on `rel` until its level is done.
            Ok(Some((dir, left))) => {
                if let Some(far) = let_go_before_push(stack.len(), HELD) {
                    stack[far].dir.let_go();
                }
                stack.push(Level {
                    dir: WalkDir::Held(dir),
                    left: left.into_iter(),
                });
            }
            Ok(None) => {
                rel.pop();
            }
            // Gone, or swapped for a symlink, since we listed it: the sandbox changed its
            // own tree under us; leave that entry out.
            Err(e) if vanished(&e) => {
                rel.pop();
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// [`walk_dir::vanished`] for an I/O error.
fn vanished(e: &std::io::Error) -> bool {
    e.raw_os_error()
        .is_some_and(|n| walk_dir::vanished(Errno::from_raw_os_error(n)))
}

/// The first 64 bytes of an over-long name, for the error.
fn shown_start(rel: &std::path::Path) -> String {
    let bytes = rel.as_os_str().as_bytes();
    String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned()
}

/// Packs the entry `name` of `dir` as `rel`. A directory comes back opened when its
/// contents are to follow (`recurse`), for the caller's walk to step into.
fn pack_one<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: &OwnedFd,
    name: &CString,
    rel: &PathBuf,
    count: &mut u64,
    recurse: bool,
) -> std::io::Result<Option<OwnedFd>> {
    let entry = Entry::at(dir, name.as_c_str(), String::new())?;
    let mut header = tar::Header::new_gnu();
    header.set_mode(entry.mode);
    header.set_mtime(entry.mtime.max(0) as u64);
    header.set_uid(u64::from(entry.uid));
    header.set_gid(u64::from(entry.gid));
    match entry.kind {
        FileKind::Dir => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            builder.append_data(&mut header, rel, std::io::empty())?;
            *count += 1;
            if !recurse {
                return Ok(None);
            }
            let child = open_beneath(dir, name.as_c_str(), OFlags::RDONLY | OFlags::DIRECTORY)?;
            Ok(Some(child))
        }
        FileKind::Symlink => {
            let target = rustix::fs::readlinkat(dir, name.as_c_str(), Vec::new())?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder.append_link(
                &mut header,
                rel,
                std::ffi::OsStr::from_bytes(target.as_bytes()),
            )?;
            *count += 1;
            Ok(None)
        }
        FileKind::File => {
            // O_NONBLOCK: if a FIFO was swapped in since the stat, the open cannot hang.
            let fd = open_beneath(dir, name.as_c_str(), OFlags::RDONLY | OFlags::NONBLOCK)?;
            let opened = Entry::of_fd(&fd, String::new())?;
            if opened.kind != FileKind::File {
                return Ok(None);
            }
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(opened.size);
            header.set_mode(opened.mode);
            let exact = File::from(fd)
                .take(opened.size)
                .chain(std::io::repeat(0))
                .take(opened.size);
            builder.append_data(&mut header, rel, exact)?;
            *count += 1;
            Ok(None)
        }
        FileKind::Fifo | FileKind::Socket | FileKind::Device => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_chain::{chain, on_a_small_stack, with_few_descriptors};
    use rusty_fork::rusty_fork_test;

    /// Packs a chain of `depth` directories (a file `f` at the top, `leaf` at the bottom)
    /// on a thread with a small stack: a walk that recursed per level would overflow it
    /// long before the bottom.
    fn pack_a_chain_on_a_small_stack(depth: usize) -> (FsResult<u64>, Vec<u8>) {
        let home = tempfile::tempdir().expect("tempdir");
        pack_a_chain_in(home.path(), depth)
    }

    /// The same in `home`, which the caller removes: with few descriptors allowed, the
    /// removal of a 2,000-deep chain fails (it holds one for each level), so a caller
    /// that lowers the limit removes `home` after putting it back.
    fn pack_a_chain_in(home: &std::path::Path, depth: usize) -> (FsResult<u64>, Vec<u8>) {
        std::fs::create_dir(home.join("t")).expect("mkdir");
        chain(&home.join("t"), depth, usize::MAX);
        let root = Root::open(home).expect("root");
        on_a_small_stack(move || {
            let mut out = Vec::new();
            let packed = root.pack(&SandboxPath::parse("/t").expect("path"), &mut out);
            (packed, out)
        })
    }

    #[test]
    fn a_deep_chain_within_path_max_is_packed_whole() {
        // "d/" 2,000 times and "leaf": 4,004 bytes, just within PATH_MAX.
        let (packed, out) = pack_a_chain_on_a_small_stack(2_000);
        assert_eq!(packed.expect("packed"), 2_002);
        let mut archive = tar::Archive::new(&out[..]);
        let bottom = archive
            .entries()
            .expect("entries")
            .map(|e| e.expect("entry"))
            .any(|e| e.path_bytes().ends_with(b"d/d/leaf"));
        assert!(bottom, "the bottom of the chain is missing");
    }

    rusty_fork_test! {
        #[test]
        fn a_deep_chain_is_packed_holding_few_descriptors() {
            let home = tempfile::tempdir().expect("tempdir");
            let (packed, _) = with_few_descriptors(|| pack_a_chain_in(home.path(), 2_000));
            assert_eq!(packed.expect("packed"), 2_002);
        }
    }

    #[test]
    fn a_chain_past_path_max_is_an_error_and_the_archive_is_left_unended() {
        let (packed, out) = pack_a_chain_on_a_small_stack(3_000);
        let err = packed
            .expect_err("packed a path no one can extract")
            .to_string();
        assert!(err.contains("PATH_MAX"), "{err}");
        assert!(!out.ends_with(&[0; 1024]), "the archive was ended");
    }
}
