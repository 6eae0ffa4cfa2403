//! A sandbox root beside an "outside" directory that holds a host sentinel.
#![allow(dead_code, clippy::unwrap_used)]

use std::fs;
use std::path::PathBuf;

use airlock_fs::FileOwner;

pub struct Scene {
    _dir: tempfile::TempDir,
    pub root_dir: PathBuf,
    pub outside: PathBuf,
}

/// A sandbox root (with the given subdirectory made) next to `outside/sentinel`.
pub fn scene(subdir: &str) -> Scene {
    let dir = tempfile::tempdir().unwrap();
    let root_dir = dir.path().join("root");
    let outside = dir.path().join("outside");
    fs::create_dir_all(root_dir.join(subdir)).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("sentinel"), b"host").unwrap();
    Scene {
        _dir: dir,
        root_dir,
        outside,
    }
}

impl Scene {
    /// The sentinel still says "host" and nothing new appeared outside the root.
    pub fn sentinel_untouched(&self) {
        assert_eq!(fs::read(self.outside.join("sentinel")).unwrap(), b"host");
        assert_eq!(
            fs::read_dir(&self.outside).unwrap().count(),
            1,
            "nothing new outside the root"
        );
    }
}

/// The test process's own user, so files it makes stay readable to it.
pub fn me() -> FileOwner {
    FileOwner {
        uid: rustix::process::getuid().as_raw(),
        gid: rustix::process::getgid().as_raw(),
    }
}
