//! Extracting a tar stream into a directory of the sandbox, safely.
//!
//! The archive is read as a stream (tar is used as a parser only, never its `unpack`) into
//! a fresh staging directory inside the target, owned by root with mode 0700 so no sandbox
//! process can enter it while it fills. The entries go into a directory of the files'
//! owner inside it, written by a thread acting as that owner where it can (`acting_as`).
//! Every entry is created relative to an open directory with no symlink followed, so an
//! archive that plants `a -> /etc` and then writes `a/passwd` is refused, and a hard link
//! may only point at a file extracted earlier from the same archive. Only when the whole
//! stream has been extracted is the staging tree moved into place, entry by entry, with
//! renames; a malformed, hostile or truncated archive, a broken upload or a full disk
//! leaves nothing behind.

use std::io::Read;
use std::os::fd::OwnedFd;

use rustix::fs::OFlags;

use crate::acting_as::ActingAs;
use crate::extract::Extractor;
use crate::merge::{apply_dir_meta, merge};
use crate::remove_tree::remove_tree;
use crate::reserved::STAGING_PREFIX;
use crate::root::{make_dir_in, make_dir_plain, open_beneath};
use crate::write::under_temp_name;
use crate::{FileOwner, FsError, FsResult, Root, SandboxPath};

/// How an archive is extracted: who owns what it makes, how much it may make, and whose
/// modification times the entries get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unpacking {
    pub owner: FileOwner,
    pub limits: UnpackLimits,
    pub mtimes: Mtimes,
}

impl Unpacking {
    /// Entries owned by `owner`, the default limits, the archive's mtimes.
    pub fn by(owner: FileOwner) -> Self {
        Self {
            owner,
            limits: UnpackLimits::default(),
            mtimes: Mtimes::FromArchive,
        }
    }
}

/// Whose modification times extracted entries get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mtimes {
    /// Each entry's, from its header (as `tar x` does).
    FromArchive,
    /// The time each is written (as `cp` does, and `tar x --touch`): no system call an
    /// entry to set it.
    Now,
}

/// Bounds on what one archive may create; they stop tar bombs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnpackLimits {
    /// Most entries (of any kind) the archive may hold.
    pub max_entries: u64,
    /// Most bytes of file content the archive may claim, in all.
    pub max_bytes: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        Self {
            max_entries: 1_000_000,
            max_bytes: 64 << 30,
        }
    }
}

/// An entry that was deliberately not created.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Skipped {
    /// Its sandbox path.
    pub path: String,
    /// Why (a device node, a FIFO, an unknown entry type).
    pub reason: std::borrow::Cow<'static, str>,
}

/// What an extraction created.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unpacked {
    /// Entries read from the archive.
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Directories made or updated.
    pub dirs: u64,
    /// Symlinks made (stored as they are, never followed here).
    pub symlinks: u64,
    /// Hard links made, each to a file of the same archive.
    pub hardlinks: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Entries refused but not fatal: devices, FIFOs, unknown types.
    pub skipped: Vec<Skipped>,
}

impl Root {
    /// Extracts the tar stream `input` into `dir` (made if missing) as `how` says. All or
    /// nothing: on any error the directory is as it was.
    pub fn unpack(
        &self,
        dir: &SandboxPath,
        input: impl Read,
        how: Unpacking,
    ) -> FsResult<Unpacked> {
        let target = self.mkdir_all(dir, 0o755, how.owner)?;
        let (staging_name, staging) = make_staging(&target, dir, how.owner)?;
        let extracted = {
            let acting = ActingAs::owner(how.owner);
            // Acting, the thread makes every entry its owner's already.
            let chown = acting.is_none().then_some(how.owner);
            Extractor::new(&staging, dir, chown, how).run(input)
        };
        let result = extracted.and_then(|(report, dirs)| {
            merge(&staging, &target, dir)?;
            apply_dir_meta(&target, dir, &dirs)?;
            Ok(report)
        });
        drop(staging);
        if let Err(err) = remove_tree(&target, staging_name.as_str()) {
            tracing::warn!(%dir, %err, "could not remove an archive staging directory");
        }
        result
    }
}

/// A private directory in `target` to extract into: mode 0700, owned by whoever runs the
/// engine (root, for the daemon), so the sandbox's user cannot enter it (its group, which
/// a setgid target may choose, gets no access); and in it, the directory the entries go
/// in, the files' owner's, which a thread acting as that owner can fill. Returns the
/// first's name (to remove it all by) and the second.
fn make_staging(
    target: &OwnedFd,
    dir: &SandboxPath,
    owner: FileOwner,
) -> FsResult<(String, OwnedFd)> {
    let fail = |e| FsError::from_errno(dir.as_str(), e);
    let (name, ()) = under_temp_name(STAGING_PREFIX, |name| {
        make_dir_plain(target, name, 0o700).map(drop)
    })
    .map_err(fail)?;
    let outer =
        open_beneath(target, name.as_str(), OFlags::PATH | OFlags::DIRECTORY).map_err(fail)?;
    make_dir_in(&outer, INNER, 0o700, owner).map_err(fail)?;
    let inner = open_beneath(&outer, INNER, OFlags::RDONLY | OFlags::DIRECTORY).map_err(fail)?;
    Ok((name, inner))
}

/// The name of the owner's directory inside the staging directory.
const INNER: &str = "entries";
