//! Sweeping what a killed daemon left half-made: temp files of writes, staging directories
//! of archive extractions, and partial files of uploads that no record can resume.
//!
//! Only the engine's own leftovers go. An entry qualifies when its name is one of the
//! engine's prefixes followed by exactly 16 hex digits (names the engine reserves in every
//! sandbox), it is of the kind the engine makes there (a regular file, or a directory for
//! staging), and it last changed before the given instant, so a write the running daemon
//! has just begun is never touched. Ownership cannot tell: a temp file is given its final
//! owner just before its rename, so a crash between the two leaves it owned by the user.

use std::collections::HashSet;
use std::ffi::CStr;
use std::os::fd::OwnedFd;
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, FileType};

use crate::Root;
use crate::ops::{children_of, open_child_dir};
use crate::remove_tree::remove_tree;
use crate::reserved::{Reserved, reserved};

/// Directories deeper than this are not searched (names there would pass PATH_MAX).
const MAX_DEPTH: usize = 512;

impl Root {
    /// Removes the engine's leftovers below the root (see the module comment) that changed
    /// before `before`, keeping the partial upload files named in `keep`. Never follows a
    /// symlink or crosses a mount. Returns how many entries were removed.
    pub fn sweep_leftovers(&self, before: SystemTime, keep: &HashSet<String>) -> usize {
        let cutoff = before
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        let sweep = Sweep { cutoff, keep };
        match open_child_dir(self.fd(), c".") {
            Ok(top) => sweep.dir(&top, 0),
            Err(_) => 0,
        }
    }
}

struct Sweep<'k> {
    /// Nanoseconds since the epoch; entries changed at or after this instant stay.
    cutoff: i128,
    keep: &'k HashSet<String>,
}

impl Sweep<'_> {
    fn dir(&self, dir: &OwnedFd, depth: usize) -> usize {
        let Ok(children) = children_of(dir) else {
            return 0;
        };
        let mut removed = 0;
        for (name, is_dir) in children {
            if let Some(kind) = leftover_kind(&name, is_dir) {
                if self.stale(dir, &name, kind) && remove(dir, &name, kind).is_ok() {
                    removed += 1;
                }
            } else if is_dir
                && depth < MAX_DEPTH
                && let Ok(child) = open_child_dir(dir, name.as_c_str())
            {
                removed += self.dir(&child, depth + 1);
            }
        }
        removed
    }

    /// Of the right type, older than the cutoff, and not a kept partial.
    fn stale(&self, dir: &OwnedFd, name: &CStr, kind: Reserved) -> bool {
        let Ok(stat) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
            return false;
        };
        let file_type = FileType::from_raw_mode(stat.st_mode);
        let right_type = match kind {
            Reserved::Staging => file_type == FileType::Directory,
            Reserved::Temp | Reserved::Partial => file_type == FileType::RegularFile,
        };
        let kept = kind == Reserved::Partial && name.to_str().is_ok_and(|n| self.keep.contains(n));
        let changed = stat.st_ctime as i128 * 1_000_000_000 + stat.st_ctime_nsec as i128;
        right_type && changed < self.cutoff && !kept
    }
}

/// The kind of leftover `name` is, if it is one: a reserved name (see `reserved`) of
/// the type the engine makes under it.
fn leftover_kind(name: &CStr, is_dir: bool) -> Option<Reserved> {
    let kind = reserved(name.to_bytes())?;
    ((kind == Reserved::Staging) == is_dir).then_some(kind)
}

fn remove(dir: &OwnedFd, name: &CStr, kind: Reserved) -> rustix::io::Result<()> {
    match kind {
        Reserved::Staging => remove_tree(dir, name),
        Reserved::Temp | Reserved::Partial => rustix::fs::unlinkat(dir, name, AtFlags::empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reserved_names_of_their_own_type_are_leftovers() {
        let temp = c".airlock-tmp-0123456789abcdef";
        assert_eq!(leftover_kind(temp, false), Some(Reserved::Temp));
        assert_eq!(leftover_kind(temp, true), None);
        let staging = c".airlock-unpack-0123456789abcdef";
        assert_eq!(leftover_kind(staging, true), Some(Reserved::Staging));
        assert_eq!(leftover_kind(staging, false), None);
        assert_eq!(
            leftover_kind(c".airlock-upload-fedcba9876543210", false),
            Some(Reserved::Partial)
        );
        assert_eq!(leftover_kind(c"notes.txt", false), None);
    }
}
