//! Fast cgroup moves. Each task that enters a cgroup (a sandbox's init, each command's
//! helper) takes the kernel's threadgroup lock for writing, and by default that write waits
//! out an RCU grace period: 8 to 16 ms per move on the machines here, most of a command's
//! start. The kernel's `favordynmods` mount option keeps that lock ready for writers, at a
//! small cost to every fork and exit on the machine while it is on. The lock is one for the
//! whole kernel, so one hierarchy mounted with the option is enough: an empty named v1
//! hierarchy, mounted in the daemon's private mount namespace. It ends with the daemon:
//! when the namespace goes, the unused hierarchy is freed and the option with it.

use std::io;
use std::path::Path;

use crate::sys;

/// Where the hierarchy is mounted, in the daemon's own mount namespace only.
const MOUNT_POINT: &str = "/run/airlock/cgroup-moves";
/// Its name: the same for every daemon, so a second one shares the first's.
const OPTIONS: &str = "none,name=airlock-moves,favordynmods";

/// Turns `favordynmods` on for as long as this process's mount namespace lives. Call only
/// in the daemon's private namespace ([`crate::Engine::enter_private_mount_namespace`]).
/// Fails on kernels without the option (before 6.0) or without cgroup v1 named
/// hierarchies; nothing is changed then.
pub fn favor_cgroup_moves() -> io::Result<()> {
    std::fs::create_dir_all(MOUNT_POINT)?;
    if is_mounted(Path::new(MOUNT_POINT))? {
        return Ok(());
    }
    sys::mount("cgroup", MOUNT_POINT, "cgroup", 0, OPTIONS)
}

fn is_mounted(point: &Path) -> io::Result<bool> {
    let table = std::fs::read_to_string("/proc/self/mountinfo")?;
    // The fifth field of each line is the mount point (no spaces in ours to escape).
    Ok(table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|at| Path::new(at) == point))
}
