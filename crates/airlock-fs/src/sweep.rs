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
use crate::partial::PARTIAL_PREFIX;
use crate::remove_tree::remove_tree;
use crate::unpack::STAGING_PREFIX;
use crate::write::TEMP_PREFIX;

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
    fn stale(&self, dir: &OwnedFd, name: &CStr, kind: Leftover) -> bool {
        let Ok(stat) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
            return false;
        };
        let file_type = FileType::from_raw_mode(stat.st_mode);
        let right_type = match kind {
            Leftover::Staging => file_type == FileType::Directory,
            Leftover::Temp | Leftover::Partial => file_type == FileType::RegularFile,
        };
        let kept = kind == Leftover::Partial && name.to_str().is_ok_and(|n| self.keep.contains(n));
        let changed = stat.st_ctime as i128 * 1_000_000_000 + stat.st_ctime_nsec as i128;
        right_type && changed < self.cutoff && !kept
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Leftover {
    Temp,
    Partial,
    Staging,
}

/// Which of the engine's leftovers `name` names, if any.
fn leftover_kind(name: &CStr, is_dir: bool) -> Option<Leftover> {
    let name = name.to_str().ok()?;
    let (kind, rest) = [
        (Leftover::Temp, TEMP_PREFIX),
        (Leftover::Partial, PARTIAL_PREFIX),
        (Leftover::Staging, STAGING_PREFIX),
    ]
    .into_iter()
    .find_map(|(kind, prefix)| Some((kind, name.strip_prefix(prefix)?)))?;
    let ours = rest.len() == 16 && rest.bytes().all(|b| b.is_ascii_hexdigit());
    (ours && (kind == Leftover::Staging) == is_dir).then_some(kind)
}

fn remove(dir: &OwnedFd, name: &CStr, kind: Leftover) -> rustix::io::Result<()> {
    match kind {
        Leftover::Staging => remove_tree(dir, name),
        Leftover::Temp | Leftover::Partial => rustix::fs::unlinkat(dir, name, AtFlags::empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_engines_own_names_qualify() {
        let temp = c".airlock-tmp-0123456789abcdef";
        assert_eq!(leftover_kind(temp, false), Some(Leftover::Temp));
        assert_eq!(leftover_kind(temp, true), None);
        assert_eq!(
            leftover_kind(c".airlock-unpack-0123456789abcdef", true),
            Some(Leftover::Staging)
        );
        assert_eq!(
            leftover_kind(c".airlock-upload-fedcba9876543210", false),
            Some(Leftover::Partial)
        );
        for other in [
            c".airlock-tmp-0123",
            c".airlock-tmp-0123456789abcdefg",
            c".airlock-tmp-0123456789abcdeX",
            c"airlock-tmp-0123456789abcdef",
            c"notes.txt",
        ] {
            assert_eq!(leftover_kind(other, false), None, "{other:?}");
        }
    }
}
