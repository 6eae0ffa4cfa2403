//! The directories along the path an extraction last went down, the deepest [`HELD`] of
//! them kept open, so each entry's directory is found from its nearest open ancestor.
//!
//! An archive lists a directory's entries right after it, but a tree packed depth first
//! lists the files of a deep chain on the way back up, each one level above the last.
//! Walking from the staging top for each made a 2,000-deep chain cost two million
//! `openat2` calls; from the nearest held ancestor it is one, with a walk from the top
//! only every [`HELD`] levels. Holding every level instead would hold 2,000 descriptors.
//! A held handle never goes stale: nothing in staging removes a directory.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::rc::Rc;

/// Most directories held open.
const HELD: usize = 64;

#[derive(Default)]
pub(crate) struct HeldPath {
    /// The path last walked, relative to staging.
    path: Vec<u8>,
    /// Directories on it, shallowest first: how many bytes of `path` name each, and its
    /// handle.
    held: VecDeque<(usize, Rc<OwnedFd>)>,
}

impl HeldPath {
    /// The deepest held directory at or above `rel`, and how many bytes of `rel` name it.
    pub(crate) fn nearest(&self, rel: &[u8]) -> Option<(Rc<OwnedFd>, usize)> {
        self.held
            .iter()
            .rev()
            .find(|(len, _)| at_or_above(&self.path[..*len], rel))
            .map(|(len, dir)| (dir.clone(), *len))
    }

    /// Starts a walk down to `rel` from its ancestor `from_len` bytes long (0: the top),
    /// letting go of what was held below that ancestor.
    pub(crate) fn branch(&mut self, from_len: usize, rel: &[u8]) {
        self.held.retain(|(len, _)| *len <= from_len);
        self.path.clear();
        self.path.extend_from_slice(rel);
    }

    /// Holds `dir`, named by the first `len` bytes of the path being walked.
    pub(crate) fn push(&mut self, len: usize, dir: Rc<OwnedFd>) {
        if self.held.len() == HELD {
            self.held.pop_front();
        }
        self.held.push_back((len, dir));
    }
}

/// Whether directory `dir` is `rel` or one of its ancestors.
fn at_or_above(dir: &[u8], rel: &[u8]) -> bool {
    rel.starts_with(dir) && (rel.len() == dir.len() || rel[dir.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle() -> Rc<OwnedFd> {
        Rc::new(
            rustix::fs::open(".", rustix::fs::OFlags::PATH, rustix::fs::Mode::empty())
                .expect("open"),
        )
    }

    #[test]
    fn the_nearest_held_ancestor_is_found_by_whole_components() {
        let mut held = HeldPath::default();
        held.branch(0, b"a/bc/d");
        held.push(1, handle());
        held.push(4, handle());
        held.push(6, handle());
        assert_eq!(held.nearest(b"a/bc/d").map(|(_, len)| len), Some(6));
        assert_eq!(held.nearest(b"a/bc/e").map(|(_, len)| len), Some(4));
        assert_eq!(held.nearest(b"a/b").map(|(_, len)| len), Some(1));
        assert_eq!(held.nearest(b"a/bcd").map(|(_, len)| len), Some(1));
        assert_eq!(held.nearest(b"ab").map(|(_, len)| len), None);
        held.branch(1, b"a/x");
        assert_eq!(held.nearest(b"a/bc").map(|(_, len)| len), Some(1));
    }

    #[test]
    fn only_the_deepest_are_held() {
        let mut held = HeldPath::default();
        let path: Vec<u8> = b"d/".repeat(100)[..199].to_vec();
        held.branch(0, &path);
        for level in 1..=100 {
            held.push(level * 2 - 1, handle());
        }
        assert_eq!(held.held.len(), HELD);
        assert_eq!(held.nearest(&path[..3]).map(|(_, len)| len), None);
        assert_eq!(
            held.nearest(&path[..2 * 37 - 1]).map(|(_, len)| len),
            Some(2 * 37 - 1)
        );
    }
}
