//! Listing a directory tree in a stable order, in pages.
//!
//! Entries come in depth-first pre-order with names sorted bytewise, which is exactly the
//! lexicographic order of their component lists. A cursor is the last path of a page; the
//! next page starts right after it, skipping whole subtrees that lie before it.

use std::ffi::CString;
use std::os::fd::OwnedFd;

use rustix::fs::OFlags;

use crate::reserved::visible_children_sorted;
use crate::root::open_beneath;
use crate::{Entry, FileKind, FsError, FsResult, Root, SandboxPath};

/// One page of a listing.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Listing {
    /// Entries in order.
    pub entries: Vec<Entry>,
    /// Pass this as `cursor` to get the next page; `None` when done.
    pub next_cursor: Option<String>,
}

impl Root {
    /// Lists `dir` down to `depth` levels (1 = its own entries), at most `limit` entries,
    /// starting after `cursor`. Symlinks are reported, not followed.
    pub fn list(
        &self,
        dir: &SandboxPath,
        depth: u32,
        limit: usize,
        cursor: Option<&SandboxPath>,
    ) -> FsResult<Listing> {
        let fd = self.resolve(dir, OFlags::RDONLY | OFlags::DIRECTORY)?;
        let after: Vec<Vec<u8>> = match cursor {
            Some(c) if c.starts_with(dir) && c != dir => {
                components(&c.as_str()[dir.as_str().len()..])
            }
            Some(c) => {
                return Err(FsError::BadPath {
                    path: c.to_string(),
                    reason: "cursor is not inside the listed directory",
                });
            }
            None => Vec::new(),
        };
        let mut walk = Walk {
            limit,
            after,
            entries: Vec::new(),
            more: false,
        };
        walk.visit(&fd, dir.as_str(), &mut Vec::new(), depth)
            .map_err(|e| FsError::from_errno(dir.as_str(), e))?;
        let next_cursor = if walk.more {
            walk.entries.last().map(|e| e.path.clone())
        } else {
            None
        };
        Ok(Listing {
            entries: walk.entries,
            next_cursor,
        })
    }
}

struct Walk {
    limit: usize,
    after: Vec<Vec<u8>>,
    entries: Vec<Entry>,
    more: bool,
}

impl Walk {
    fn visit(
        &mut self,
        dir: &OwnedFd,
        base: &str,
        key: &mut Vec<Vec<u8>>,
        depth: u32,
    ) -> rustix::io::Result<()> {
        for (name, is_dir) in visible_children_sorted(dir)? {
            if self.more {
                return Ok(());
            }
            key.push(name.as_bytes().to_vec());
            let before_cursor = !self.after.is_empty() && *key <= self.after;
            // The cursor is this directory or lies below it: what follows the cursor may
            // be inside, so the walk goes in (a page can end on a directory).
            let cursor_inside = self.after.starts_with(key);
            if !before_cursor {
                if self.entries.len() == self.limit {
                    self.more = true;
                    key.pop();
                    return Ok(());
                }
                self.entries.push(entry(dir, base, &name)?);
            }
            if is_dir && depth > 1 && (!before_cursor || cursor_inside) {
                self.descend(dir, base, &name, key, depth)?;
            }
            key.pop();
        }
        Ok(())
    }

    fn descend(
        &mut self,
        dir: &OwnedFd,
        base: &str,
        name: &CString,
        key: &mut Vec<Vec<u8>>,
        depth: u32,
    ) -> rustix::io::Result<()> {
        let child = open_beneath(dir, name.as_c_str(), OFlags::RDONLY | OFlags::DIRECTORY)?;
        let path = join(base, &name.to_string_lossy());
        self.visit(&child, &path, key, depth - 1)
    }
}

fn entry(dir: &OwnedFd, base: &str, name: &CString) -> rustix::io::Result<Entry> {
    let mut entry = Entry::at(dir, name.as_c_str(), join(base, &name.to_string_lossy()))?;
    if entry.kind == FileKind::Dir {
        entry.size = 0;
    }
    Ok(entry)
}

fn join(base: &str, name: &str) -> String {
    if base == "/" {
        format!("/{name}")
    } else {
        format!("{base}/{name}")
    }
}

fn components(rest: &str) -> Vec<Vec<u8>> {
    rest.split('/')
        .filter(|p| !p.is_empty())
        .map(|p| p.as_bytes().to_vec())
        .collect()
}
