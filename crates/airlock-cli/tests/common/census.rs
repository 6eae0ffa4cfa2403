//! A count of everything a daemon holds on the host, to compare before and after.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Daemon, children_of, count_entries};

#[derive(Debug, PartialEq)]
pub struct Census {
    pub mounts: usize,
    pub children: usize,
    pub cgroups: usize,
    pub loops: usize,
    /// Entries under the home but for the spare skeletons, which a thread makes anew
    /// after each create.
    pub files: usize,
    /// Spare skeletons, once as many as the daemon keeps are there (or ten seconds have
    /// passed).
    pub spares: usize,
}

/// The cgroup v1 controllers the daemon makes groups in.
pub const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// The daemon's own group (`airlock/<instance>`, one per home) in `controller`'s hierarchy.
pub fn instance_cgroup(daemon: &Daemon, controller: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join("airlock")
        .join(airlock_sandbox::instance_name(&daemon.home()))
}

/// The daemon's mounts, its child processes, our cgroups, loop devices backed by files in
/// its home, and entries under its home, once the trash of deleted sandboxes' files (which
/// the daemon empties after their deletes answer) is empty and its spare skeletons are
/// all there, or ten seconds have passed.
pub fn census(daemon: &Daemon) -> Census {
    let home = daemon.home();
    let trash = home.join("trash");
    let skeletons = home.join("skeletons");
    let spares = || std::fs::read_dir(&skeletons).map_or(0, |d| d.count());
    let deadline = Instant::now() + Duration::from_secs(10);
    while (count_entries(&trash) > 0 || spares() != airlock_sandbox::SPARE_SKELETONS)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mountinfo = std::fs::read_to_string(format!("/proc/{}/mountinfo", daemon.pid())).unwrap();
    let cgroups = CONTROLLERS
        .iter()
        .map(|c| count_entries(&instance_cgroup(daemon, c)))
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
        files: std::fs::read_dir(&home)
            .unwrap()
            .flatten()
            .filter(|e| e.path() != skeletons)
            .map(|e| 1 + count_entries(&e.path()))
            .sum(),
        spares: spares(),
    }
}
