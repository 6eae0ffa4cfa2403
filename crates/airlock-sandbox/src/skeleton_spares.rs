//! Skeletons made ahead of their sandboxes. A `host` sandbox's private root is some fifty
//! entries on ext4, about 1 ms of a create's 4 to 6 on this VM, and all of it but the two
//! files that name the sandbox is the same for every sandbox.
//! So a low-priority thread keeps [`KEEP`] such skeletons ready in the home's
//! `skeletons/`, and a create renames one into place (one call, the rename refusing to
//! replace anything) and writes the two files, making a new one only when none is ready
//! or the rename fails. A disk-limited sandbox's root is on a file system of its own,
//! which no rename from the home reaches, so its create never asks for a spare. The
//! thread starts on a taken skeleton's replacement at once, beside the rest of the create
//! and at the lowest priority, so the create never waits for it.
//!
//! Only skeletons the thread finished are handed out: one it was writing when the daemon
//! stopped may be partial, so the directory is emptied as the thread starts, never
//! read.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use crate::skeleton;

/// Skeletons kept ready: one for the next create, one more for a create that comes
/// before the first is made again.
pub const KEEP: usize = 2;

#[derive(Debug)]
pub struct SkeletonSpares {
    ready: Arc<Mutex<Vec<PathBuf>>>,
    /// Tells the thread a skeleton was taken; dropping it ends the thread.
    taken: Sender<()>,
}

impl SkeletonSpares {
    /// Spares made in `dir` (emptied first) by a thread of their own.
    pub fn new(dir: PathBuf) -> io::Result<Self> {
        let ready = Arc::new(Mutex::new(Vec::new()));
        let (taken, wake) = mpsc::channel();
        let shelf = ready.clone();
        std::thread::Builder::new()
            .name("airlock-skeletons".into())
            .spawn(move || {
                crate::sys::yield_to_everything_else();
                keep_ready(&dir, &shelf, &wake);
            })?;
        Ok(Self { ready, taken })
    }

    /// Moves a ready skeleton to `root` (which must not exist) and names it `hostname`;
    /// answers false, with nothing at `root`, when none could be taken.
    pub fn take_into(&self, root: &Path, hostname: &str) -> io::Result<bool> {
        let spare = self.ready.lock().unwrap_or_else(|e| e.into_inner()).pop();
        // A send fails only when the thread is gone; creates then build their own.
        let _ = self.taken.send(());
        let Some(spare) = spare else {
            return Ok(false);
        };
        if let Err(err) = rustix::fs::renameat_with(
            rustix::fs::CWD,
            &spare,
            rustix::fs::CWD,
            root,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            tracing::debug!(%err, "a spare skeleton could not be moved into place");
            let _ = std::fs::remove_dir_all(&spare);
            return Ok(false);
        }
        skeleton::name(root, hostname)?;
        Ok(true)
    }
}

/// Keeps [`KEEP`] skeletons in `dir` and on `shelf`, making more each time one is taken,
/// until the spares are dropped.
fn keep_ready(dir: &Path, shelf: &Mutex<Vec<PathBuf>>, taken: &Receiver<()>) {
    let _ = std::fs::remove_dir_all(dir);
    if let Err(err) = crate::spread::make_spreading_dir(dir) {
        tracing::warn!(%err, dir = %dir.display(), "no spare skeletons: creates make their own");
        return;
    }
    let mut made = 0u64;
    loop {
        while shelf.lock().unwrap_or_else(|e| e.into_inner()).len() < KEEP {
            made += 1;
            let spare = dir.join(made.to_string());
            match skeleton::build_unnamed(&spare) {
                Ok(()) => shelf.lock().unwrap_or_else(|e| e.into_inner()).push(spare),
                Err(err) => {
                    // Tried again at the next take; until then creates make their own.
                    tracing::warn!(%err, "making a spare skeleton");
                    let _ = std::fs::remove_dir_all(&spare);
                    break;
                }
            }
        }
        if taken.recv().is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, Instant};

    use super::*;

    /// Every entry under `root`: its kind, mode, owner, and content or target.
    fn tree(root: &Path) -> BTreeMap<PathBuf, (u32, u32, u32, String)> {
        let mut found = BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(at) = stack.pop() {
            let meta = std::fs::symlink_metadata(&at).unwrap();
            let what = if meta.is_dir() {
                stack.extend(std::fs::read_dir(&at).unwrap().map(|e| e.unwrap().path()));
                String::new()
            } else if meta.file_type().is_symlink() {
                std::fs::read_link(&at).unwrap().display().to_string()
            } else {
                std::fs::read_to_string(&at).unwrap()
            };
            let name = at.strip_prefix(root).unwrap().to_path_buf();
            found.insert(name, (meta.mode(), meta.uid(), meta.gid(), what));
        }
        found
    }

    fn wait_for_ready(spares: &SkeletonSpares, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while spares.ready.lock().unwrap().len() < count {
            assert!(Instant::now() < deadline, "no spare was made");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_taken_skeleton_is_the_one_a_create_would_build() {
        let tmp = tempfile::tempdir().unwrap();
        let spares = SkeletonSpares::new(tmp.path().join("skeletons")).unwrap();
        wait_for_ready(&spares, KEEP);
        let (built, taken) = (tmp.path().join("built"), tmp.path().join("taken"));
        skeleton::build(&built, "sandbox-a").unwrap();
        assert!(spares.take_into(&taken, "sandbox-a").unwrap());
        assert_eq!(tree(&taken), tree(&built));
        // Named for its own sandbox, not for another's.
        let other = tmp.path().join("other");
        assert!(spares.take_into(&other, "sandbox-b").unwrap());
        let hosts = std::fs::read_to_string(other.join("etc/hosts")).unwrap();
        assert_eq!(hosts, "127.0.0.1 localhost sandbox-b\n::1 localhost\n");
    }

    #[test]
    fn a_take_replaces_nothing_and_the_spares_are_made_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("skeletons");
        let spares = SkeletonSpares::new(dir.clone()).unwrap();
        wait_for_ready(&spares, KEEP);
        // Something already at the root (here a link to `/`) is neither replaced nor
        // written through; the spare is given up.
        let root = tmp.path().join("root");
        std::os::unix::fs::symlink("/", &root).unwrap();
        assert!(!spares.take_into(&root, "x").unwrap());
        assert_eq!(std::fs::read_link(&root).unwrap(), Path::new("/"));
        for n in 0..5 {
            wait_for_ready(&spares, KEEP);
            assert!(
                spares
                    .take_into(&tmp.path().join(format!("r{n}")), "x")
                    .unwrap()
            );
        }
        wait_for_ready(&spares, KEEP);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            KEEP,
            "only the ready ones stay"
        );
    }

    #[test]
    fn what_a_stopped_daemon_left_is_removed_not_handed_out() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("skeletons");
        // A skeleton the last daemon was writing when it stopped: no /etc/passwd yet.
        std::fs::create_dir_all(dir.join("1/etc")).unwrap();
        std::fs::write(dir.join("1/planted"), "left").unwrap();
        let spares = SkeletonSpares::new(dir.clone()).unwrap();
        wait_for_ready(&spares, KEEP);
        for n in 0..KEEP {
            let root = tmp.path().join(format!("r{n}"));
            assert!(spares.take_into(&root, "x").unwrap());
            assert!(!root.join("planted").exists());
            assert!(root.join("etc/passwd").exists());
        }
    }

    #[test]
    fn with_none_ready_a_take_answers_false_and_leaves_no_root() {
        let tmp = tempfile::tempdir().unwrap();
        // The thread cannot make its directory: a file is in the way.
        std::fs::write(tmp.path().join("skeletons"), "").unwrap();
        let spares = SkeletonSpares::new(tmp.path().join("skeletons")).unwrap();
        let root = tmp.path().join("root");
        assert!(!spares.take_into(&root, "x").unwrap());
        assert!(!root.exists());
    }
}
