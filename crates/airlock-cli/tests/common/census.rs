//! A count of everything a daemon holds on the host, to compare before and after.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{Daemon, children_of, count_entries};

#[derive(Debug, PartialEq)]
pub struct Census {
    pub mounts: usize,
    pub children: usize,
    pub cgroups: usize,
    pub loops: usize,
    pub files: usize,
}

/// The daemon's mounts, its child processes, our cgroups, loop devices backed by files in
/// its home, and entries under its home, once the trash of deleted sandboxes' files (which
/// the daemon empties after their deletes answer) is empty or ten seconds have passed.
pub fn census(daemon: &Daemon) -> Census {
    let home = daemon.home();
    let trash = home.join("trash");
    let deadline = Instant::now() + Duration::from_secs(10);
    while count_entries(&trash) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mountinfo = std::fs::read_to_string(format!("/proc/{}/mountinfo", daemon.pid())).unwrap();
    let instance = airlock_sandbox::instance_name(&home);
    let cgroups = ["memory", "pids", "cpu"]
        .iter()
        .map(|c| {
            count_entries(
                &Path::new("/sys/fs/cgroup")
                    .join(c)
                    .join("airlock")
                    .join(&instance),
            )
        })
        .sum();
    let loops = std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("loop/backing_file"))
                .is_ok_and(|b| b.starts_with(home.to_str().unwrap()))
        })
        .count();
    Census {
        mounts: mountinfo.lines().count(),
        children: children_of(daemon.pid()).len(),
        cgroups,
        loops,
        files: count_entries(&home),
    }
}
