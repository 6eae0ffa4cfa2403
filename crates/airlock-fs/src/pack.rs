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

use crate::ops::children_of;
use crate::root::open_beneath;
use crate::whole_tar::WholeTar;
use crate::{Entry, FileKind, FsError, FsResult, Root, SandboxPath};

impl Root {
    /// Writes the tree under `dir` as a tar stream to `out`; entry names are relative to
    /// `dir`. Returns how many entries were written.
    pub fn pack(&self, dir: &SandboxPath, out: impl Write) -> FsResult<u64> {
        let fd = self.resolve(dir, OFlags::RDONLY | OFlags::DIRECTORY)?;
        let mut tar = WholeTar::new(out);
        let mut count = 0;
        pack_dir(tar.builder(), &fd, &mut PathBuf::new(), &mut count)
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
                other => other.map_err(|e| FsError::from_io(path.as_str(), e))?,
            }
        }
        tar.finish()
            .map_err(|e| FsError::from_io(dir.as_str(), e))?;
        Ok(count)
    }
}

fn pack_dir<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: &OwnedFd,
    rel: &mut PathBuf,
    count: &mut u64,
) -> std::io::Result<()> {
    let mut children = children_of(dir)?;
    children.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    for (name, _) in children {
        rel.push(std::ffi::OsStr::from_bytes(name.as_bytes()));
        let result = pack_one(builder, dir, &name, rel, count, true);
        rel.pop();
        let vanished = [
            rustix::io::Errno::NOENT,
            rustix::io::Errno::LOOP,
            rustix::io::Errno::NOTDIR,
        ]
        .map(|e| Some(e.raw_os_error()));
        match result {
            // Gone, or swapped for a symlink, since we listed it: the sandbox changed its
            // own tree under us; leave that entry out.
            Err(e) if vanished.contains(&e.raw_os_error()) => {}
            other => other?,
        }
    }
    Ok(())
}

fn pack_one<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: &OwnedFd,
    name: &CString,
    rel: &PathBuf,
    count: &mut u64,
    recurse: bool,
) -> std::io::Result<()> {
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
                return Ok(());
            }
            let child = open_beneath(dir, name.as_c_str(), OFlags::RDONLY | OFlags::DIRECTORY)?;
            pack_dir(builder, &child, &mut rel.clone(), count)
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
            Ok(())
        }
        FileKind::File => {
            // O_NONBLOCK: if a FIFO was swapped in since the stat, the open cannot hang.
            let fd = open_beneath(dir, name.as_c_str(), OFlags::RDONLY | OFlags::NONBLOCK)?;
            let opened = Entry::of_fd(&fd, String::new())?;
            if opened.kind != FileKind::File {
                return Ok(());
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
            Ok(())
        }
        FileKind::Fifo | FileKind::Socket | FileKind::Device => Ok(()),
    }
}
