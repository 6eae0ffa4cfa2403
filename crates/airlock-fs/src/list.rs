//! Listing a directory tree in a stable order, in pages.
//!
//! Entries come in depth-first pre-order with names sorted bytewise, which is exactly the
//! lexicographic order of their component lists. A cursor is the last path of a page; the
//! next page starts right after it, skipping whole subtrees that lie before it.

use std::ffi::{CString, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;

use rustix::fs::OFlags;

use crate::path::PATH_MAX;
use crate::reserved::visible_children_sorted;
use crate::root::open_beneath;
use crate::walk_dir::{HELD, WalkDir, let_go_before_push, vanished};
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
        walk.run(fd, dir.as_str(), depth)?;
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

/// A directory on the walk's stack: its handle, its sandbox path, and its children not
/// yet visited, in order.
struct Level {
    dir: WalkDir,
    path: String,
    left: std::vec::IntoIter<(CString, bool)>,
}

impl Walk {
    /// Walks below `top` (named `top_path`). The walk keeps its own stack on the heap, as
    /// packing does: a sandbox decides how deep its trees go, and a walk that recursed
    /// per level would overflow its thread's stack on a deep enough chain.
    fn run(&mut self, top: OwnedFd, top_path: &str, depth: u32) -> FsResult<()> {
        let failed = |path: &str, e| FsError::from_errno(path, e);
        let left = visible_children_sorted(&top).map_err(|e| failed(top_path, e))?;
        let mut stack = vec![Level {
            dir: WalkDir::Top,
            path: top_path.to_owned(),
            left: left.into_iter(),
        }];
        // The path's components below the top, the entry being visited last: the order
        // of entries is the order of these keys.
        let mut key: Vec<Vec<u8>> = Vec::new();
        while let Some(level) = stack.last_mut() {
            let Some((name, is_dir)) = level.left.next() else {
                stack.pop();
                key.pop();
                continue;
            };
            let rel = || OsString::from_vec(key.join(&b'/'));
            let dir = match level.dir.open(&top, rel) {
                Ok(dir) => dir,
                // Removed since the walk went below it: nothing more of it to list.
                Err(e) if vanished(e) => {
                    stack.pop();
                    key.pop();
                    continue;
                }
                Err(e) => return Err(failed(&level.path, e)),
            };
            key.push(name.as_bytes().to_vec());
            let path = join(&level.path, &name.to_string_lossy());
            if path.len() >= PATH_MAX {
                return Err(FsError::TooLarge {
                    path: format!("{}…", String::from_utf8_lossy(&path.as_bytes()[..64])),
                    reason: format!(
                        "a path in the tree is longer than PATH_MAX ({PATH_MAX} bytes), \
                         which no route takes; list fewer levels"
                    ),
                });
            }
            let before_cursor = !self.after.is_empty() && key <= self.after;
            // The cursor is this directory or lies below it: what follows the cursor may
            // be inside, so the walk goes in (a page can end on a directory).
            let cursor_inside = self.after.starts_with(&key);
            if !before_cursor {
                if self.entries.len() == self.limit {
                    self.more = true;
                    return Ok(());
                }
                match entry(dir, &name, path.clone()) {
                    Ok(found) => self.entries.push(found),
                    Err(e) if vanished(e) => {
                        key.pop();
                        continue;
                    }
                    Err(e) => return Err(failed(&path, e)),
                }
            }
            // `key` names as many levels as the stack holds.
            let within = key.len() < depth as usize;
            if is_dir && within && (!before_cursor || cursor_inside) {
                let opened = open_beneath(dir, &name, OFlags::RDONLY | OFlags::DIRECTORY)
                    .and_then(|child| Ok((visible_children_sorted(&child)?, child)));
                match opened {
                    // The directory's name stays on `key` until its level is done.
                    Ok((left, child)) => {
                        if let Some(far) = let_go_before_push(stack.len(), HELD) {
                            stack[far].dir.let_go();
                        }
                        stack.push(Level {
                            dir: WalkDir::Held(child),
                            path,
                            left: left.into_iter(),
                        });
                        continue;
                    }
                    Err(e) if vanished(e) => {}
                    Err(e) => return Err(failed(&path, e)),
                }
            }
            key.pop();
        }
        Ok(())
    }
}

fn entry(dir: &OwnedFd, name: &CString, path: String) -> rustix::io::Result<Entry> {
    let mut entry = Entry::at(dir, name.as_c_str(), path)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_chain::{chain, on_a_small_stack, with_few_descriptors};
    use rusty_fork::rusty_fork_test;

    /// Lists `/t`, a chain of `depth` directories with a file every 100 levels, page by
    /// page, on a thread with a small stack: a walk that recursed per level would
    /// overflow it long before the bottom.
    fn list_a_chain_on_a_small_stack(
        depth: usize,
        levels: u32,
        limit: usize,
    ) -> FsResult<Vec<Entry>> {
        let home = tempfile::tempdir().expect("tempdir");
        list_a_chain_in(home.path(), depth, levels, limit)
    }

    /// The same in `home`, which the caller removes: with few descriptors allowed, the
    /// removal of a 2,000-deep chain fails (it holds one for each level), so a caller
    /// that lowers the limit removes `home` after putting it back.
    fn list_a_chain_in(
        home: &std::path::Path,
        depth: usize,
        levels: u32,
        limit: usize,
    ) -> FsResult<Vec<Entry>> {
        std::fs::create_dir(home.join("t")).expect("mkdir");
        chain(&home.join("t"), depth, 100);
        let root = Root::open(home).expect("root");
        on_a_small_stack(move || {
            let top = SandboxPath::parse("/t").expect("path");
            let mut all = Vec::new();
            let mut cursor = None;
            loop {
                let page = root.list(&top, levels, limit, cursor.as_ref())?;
                all.extend(page.entries);
                match page.next_cursor {
                    Some(next) => cursor = Some(SandboxPath::parse(&next).expect("cursor")),
                    None => return Ok(all),
                }
            }
        })
    }

    #[test]
    fn a_deep_chain_within_path_max_is_listed_whole_across_pages() {
        // "/t", "/d" 2,000 times and "/leaf": 4,007 bytes, just within PATH_MAX.
        let paged = list_a_chain_on_a_small_stack(2_000, 2_048, 333).expect("listed");
        let whole = list_a_chain_on_a_small_stack(2_000, 2_048, 10_000).expect("listed");
        // 2,000 directories, a file at levels 0, 100, … 1,900, and the leaf.
        assert_eq!(whole.len(), 2_000 + 20 + 1);
        let paths = |entries: &[Entry]| entries.iter().map(|e| e.path.clone()).collect::<Vec<_>>();
        assert_eq!(paths(&paged), paths(&whole));
        assert!(whole.iter().any(|e| e.path.ends_with("/d/d/leaf")));
    }

    rusty_fork_test! {
        #[test]
        fn a_deep_listing_holds_few_descriptors() {
            let home = tempfile::tempdir().expect("tempdir");
            let listed = with_few_descriptors(|| list_a_chain_in(home.path(), 2_000, 2_048, 500));
            assert_eq!(listed.expect("listed").len(), 2_000 + 20 + 1);
        }
    }

    #[test]
    fn a_listing_stops_at_its_depth() {
        let entries = list_a_chain_on_a_small_stack(2_000, 1_500, 10_000).expect("listed");
        let deepest = entries
            .iter()
            .map(|e| e.path.matches('/').count() - 1)
            .max();
        assert_eq!(deepest, Some(1_500));
    }

    #[test]
    fn a_chain_past_path_max_is_a_clear_error() {
        let err = list_a_chain_on_a_small_stack(3_000, 4_000, 10_000)
            .expect_err("listed a path no route takes")
            .to_string();
        assert!(err.contains("PATH_MAX"), "{err}");
    }
}
