//! A deleted sandbox's files and cgroups, removed after its delete has answered.
//! Removing a fresh sandbox's tree (some forty entries, more for a used one, an image
//! file for a disk-limited one) was a third of a delete's time. The delete now renames
//! the tree into the home's `trash/` (one call, so the sandbox's directory is gone at
//! once) and a background thread removes it. Whatever a daemon left in the trash when it
//! stopped is removed by the next one as it starts.
//!
//! Its cgroups (a node and its leaves in each hierarchy, nine `rmdir`s on cgroup v1,
//! memory groups the dearest) were 0.6 ms of a 2 ms delete. Their ids are never used
//! again, so nothing waits for them either; the groups of a daemon that stopped before
//! its janitor came to them are removed when it releases its cgroups, or as strays by the
//! next daemon.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cgroup::Cgroups;

#[derive(Debug)]
pub struct Janitor {
    trash: PathBuf,
    removals: Sender<Leftover>,
    cgroups: Cgroups,
}

/// What a deleted sandbox leaves for the janitor.
#[derive(Debug)]
enum Leftover {
    /// A tree in the trash.
    Tree(PathBuf),
    /// The cgroups of a sandbox id.
    Groups(String),
}

impl Janitor {
    /// A janitor for `trash` (made if missing) and the groups in `cgroups`, which starts
    /// by removing what is in the trash.
    pub fn new(trash: PathBuf, cgroups: Cgroups) -> io::Result<Self> {
        std::fs::create_dir_all(&trash)?;
        let (removals, queue) = mpsc::channel::<Leftover>();
        for leftover in std::fs::read_dir(&trash)?.flatten() {
            let _ = removals.send(Leftover::Tree(leftover.path()));
        }
        let groups = cgroups.clone();
        std::thread::Builder::new()
            .name("airlock-janitor".into())
            .spawn(move || {
                // A removal is never waited for, and at the default priority it took
                // its share of the two cores from the creates and claims that follow a
                // delete (a warm-pool claim right after a delete measured 2x slower).
                crate::sys::yield_to_everything_else();
                for leftover in queue {
                    clear(&groups, leftover);
                }
            })?;
        Ok(Self {
            trash,
            removals,
            cgroups,
        })
    }

    /// Kills what is left in the groups of sandbox `id` and removes them, later. The
    /// sandbox's init must be gone: what may remain are exec helpers on their way out.
    pub fn discard_groups(&self, id: &str) {
        self.send(Leftover::Groups(id.to_owned()));
    }

    fn send(&self, leftover: Leftover) {
        if let Err(unsent) = self.removals.send(leftover) {
            // The janitor's thread is gone (it cannot panic, but if it did): clear here.
            clear(&self.cgroups, unsent.0);
        }
    }

    /// Moves the tree `dir` into the trash at once and removes it later. A `dir` that
    /// does not exist is already gone.
    pub fn discard(&self, dir: &Path) -> io::Result<()> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        let binned = self
            .trash
            .join(format!("{}-{nanos:x}", name.unwrap_or_default()));
        match std::fs::rename(dir, &binned) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            other => other?,
        }
        self.send(Leftover::Tree(binned));
        Ok(())
    }
}

fn clear(cgroups: &Cgroups, leftover: Leftover) {
    match leftover {
        Leftover::Tree(tree) => remove(&tree),
        Leftover::Groups(id) => {
            if let Err(err) = cgroups.destroy(&id) {
                tracing::warn!(id, %err, "removing a deleted sandbox's cgroups");
            }
        }
    }
}

/// Removes a tree without following its symlinks, so a link a sandbox planted cannot aim
/// the removal at the host, and at any depth: std's `remove_dir_all` recurses once per
/// level, and a sandbox's chain of 25,000 directories overflowed this thread's stack,
/// which aborted the daemon, and the next one as it started on the same trash.
fn remove(tree: &Path) {
    let removed = match (tree.parent(), tree.file_name()) {
        (Some(parent), Some(name)) => airlock_fs::remove_tree_in(parent, name),
        _ => Err(io::Error::other("not a path in the trash")),
    };
    if let Err(err) = removed
        && err.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(tree = %tree.display(), %err, "removing a deleted sandbox's files");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, Instant};

    use super::*;

    /// Groups under a name no daemon uses, which these tests never fill.
    fn test_cgroups() -> Cgroups {
        Cgroups::detect("janitor-test-unused").unwrap()
    }

    fn gone_soon(path: &Path) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while path.exists() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    fn empty(dir: &Path) -> bool {
        std::fs::read_dir(dir).unwrap().next().is_none()
    }

    #[test]
    fn a_discarded_tree_leaves_at_once_and_is_removed_without_following_links() {
        let home = tempfile::tempdir().unwrap();
        let outside = home.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "host file").unwrap();
        let tree = home.path().join("sandbox");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::write(tree.join("a/b/file"), "x").unwrap();
        // What a sandbox could plant: links out to the host, to a directory and a file.
        std::os::unix::fs::symlink(&outside, tree.join("a/to-dir")).unwrap();
        std::os::unix::fs::symlink(outside.join("keep"), tree.join("to-file")).unwrap();
        let janitor = Janitor::new(home.path().join("trash"), test_cgroups()).unwrap();
        janitor.discard(&tree).unwrap();
        assert!(!tree.exists(), "the tree is still where it was");
        let trash = home.path().join("trash");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !empty(&trash) {
            assert!(Instant::now() < deadline, "the trash was never emptied");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            std::fs::read_to_string(outside.join("keep")).unwrap(),
            "host file"
        );
        janitor.discard(&tree).unwrap();
    }

    #[test]
    fn a_chain_of_directories_deeper_than_the_janitors_stack_is_removed() {
        use rustix::fs::{Mode, OFlags};
        let home = tempfile::tempdir().unwrap();
        let tree = home.path().join("sandbox");
        std::fs::create_dir(&tree).unwrap();
        // What a process in a sandbox makes in seconds: `mkdir d; cd d`, 25,000 times.
        let mut dir =
            rustix::fs::open(&tree, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        for _ in 0..25_000 {
            rustix::fs::mkdirat(&dir, "d", Mode::from_raw_mode(0o755)).unwrap();
            dir = rustix::fs::openat(&dir, "d", OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
                .unwrap();
        }
        drop(dir);
        let janitor = Janitor::new(home.path().join("trash"), test_cgroups()).unwrap();
        janitor.discard(&tree).unwrap();
        let trash = home.path().join("trash");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !empty(&trash) {
            assert!(Instant::now() < deadline, "the trash was never emptied");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn discarded_groups_are_emptied_and_removed_and_no_others() {
        let cgroups = Cgroups::detect(&format!("janitor-test-{}", std::process::id())).unwrap();
        let limits = crate::Limits {
            memory_mb: Some(64),
            pids: 16,
            cpus: None,
            disk_mb: None,
        };
        for id in ["deleted", "kept"] {
            cgroups.create(id, &limits).unwrap();
            cgroups.leaf(id, "exec-0").unwrap();
        }
        // A process left in a leaf, as an exec helper on its way out would be.
        let mut straggler = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        for procs in cgroups.leaf("deleted", "exec-0").unwrap() {
            std::fs::write(procs, straggler.id().to_string()).unwrap();
        }
        let home = tempfile::tempdir().unwrap();
        let janitor = Janitor::new(home.path().join("trash"), cgroups.clone()).unwrap();
        janitor.discard_groups("deleted");
        let deadline = Instant::now() + Duration::from_secs(10);
        while cgroups.known_ids().contains(&"deleted".to_owned()) {
            assert!(Instant::now() < deadline, "the groups were never removed");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(straggler.wait().unwrap().code().is_none(), "killed");
        assert_eq!(cgroups.known_ids(), ["kept"]);
        cgroups.destroy("kept").unwrap();
        cgroups.remove_instance_if_empty();
    }

    #[test]
    fn what_an_earlier_daemon_left_in_the_trash_is_removed() {
        let home = tempfile::tempdir().unwrap();
        let left = home.path().join("trash/abc-123");
        std::fs::create_dir_all(left.join("deep/er")).unwrap();
        std::fs::write(left.join("deep/er/f"), "x").unwrap();
        let stray = home.path().join("trash/stray-file");
        std::fs::write(&stray, "x").unwrap();
        let _janitor = Janitor::new(home.path().join("trash"), test_cgroups()).unwrap();
        assert!(gone_soon(&left) && gone_soon(&stray));
    }
}
