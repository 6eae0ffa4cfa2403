//! The names the engine reserves in every sandbox, for the entries it makes on its way to
//! a result: temp files of writes, partial files of resumable uploads and staging
//! directories of archive extractions.
//!
//! Each is one of the prefixes below followed by exactly 16 hex digits. Such an entry is
//! work in progress, never a result, so the engine keeps it out of what clients see:
//! listings, archives and watches leave it out, and an archive uploaded with such a name
//! (a stale staging directory an SDK left on the client's disk, say) has that entry
//! skipped. Otherwise a listing during an archive upload showed a root-owned staging
//! directory, and a tree downloaded meanwhile carried half an extraction.

use std::ffi::CString;
use std::os::fd::OwnedFd;

use rustix::io::Errno;

use crate::ops::children_of;

/// Temp files an atomic write goes through.
pub(crate) const TEMP_PREFIX: &str = ".airlock-tmp-";
/// Partial files of resumable uploads, beside their destination.
pub(crate) const PARTIAL_PREFIX: &str = ".airlock-upload-";
/// Staging directories of extractions in progress.
pub(crate) const STAGING_PREFIX: &str = ".airlock-unpack-";

/// Which of the engine's entries a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reserved {
    Temp,
    Partial,
    Staging,
}

/// Which reserved entry `name` (one path component) names, if any.
pub(crate) fn reserved(name: &[u8]) -> Option<Reserved> {
    let (kind, rest) = [
        (Reserved::Temp, TEMP_PREFIX),
        (Reserved::Partial, PARTIAL_PREFIX),
        (Reserved::Staging, STAGING_PREFIX),
    ]
    .into_iter()
    .find_map(|(kind, prefix)| Some((kind, name.strip_prefix(prefix.as_bytes())?)))?;
    (rest.len() == 16 && rest.iter().all(u8::is_ascii_hexdigit)).then_some(kind)
}

/// Whether some component of the relative or absolute `path` is a reserved name.
pub(crate) fn within_reserved(path: &[u8]) -> bool {
    path.split(|&b| b == b'/')
        .any(|part| reserved(part).is_some())
}

/// The entries of `dir` a client may see: all but the reserved ones.
pub(crate) fn visible_children_of(dir: &OwnedFd) -> Result<Vec<(CString, bool)>, Errno> {
    let mut children = children_of(dir)?;
    children.retain(|(name, _)| reserved(name.to_bytes()).is_none());
    Ok(children)
}

/// [`visible_children_of`], names sorted bytewise: the order listings and archives give.
pub(crate) fn visible_children_sorted(dir: &OwnedFd) -> Result<Vec<(CString, bool)>, Errno> {
    let mut children = visible_children_of(dir)?;
    children.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(children)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_prefix_and_sixteen_hex_digits_are_reserved() {
        assert_eq!(
            reserved(b".airlock-tmp-0123456789abcdef"),
            Some(Reserved::Temp)
        );
        assert_eq!(
            reserved(b".airlock-upload-fedcba9876543210"),
            Some(Reserved::Partial)
        );
        assert_eq!(
            reserved(b".airlock-unpack-0123456789ABCDEF"),
            Some(Reserved::Staging)
        );
        for other in [
            &b".airlock-tmp-0123"[..],
            b".airlock-tmp-0123456789abcdefg",
            b".airlock-tmp-0123456789abcdeX",
            b"airlock-tmp-0123456789abcdef",
            b".airlock-other-0123456789abcdef",
            // A removal's moved-up directories stay visible: if the removal fails, what
            // is left must not hide.
            b".airlock-deep-0123456789abcdef",
            b"notes.txt",
            b"",
        ] {
            assert_eq!(reserved(other), None, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn any_component_puts_a_path_within() {
        assert!(within_reserved(b"a/.airlock-unpack-0123456789abcdef/b/c"));
        assert!(within_reserved(b".airlock-tmp-0123456789abcdef"));
        assert!(within_reserved(b"/w/.airlock-upload-0123456789abcdef"));
        assert!(!within_reserved(b"a/.airlock-unpack-/b"));
        assert!(!within_reserved(b"/w/x.airlock-tmp-0123456789abcdef"));
    }
}
