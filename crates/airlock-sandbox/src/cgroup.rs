//! Control groups: one node per sandbox carrying its limits, with leaf groups for its init
//! and for each exec, so a timed-out exec's whole tree can be found and killed.
//!
//! Works on cgroup v1 (memory, pids and cpu hierarchies, as on the machines here) and on
//! the unified v2 hierarchy. Every sandbox node lives under `airlock/<instance>` so that
//! daemons with different homes never touch each other's groups.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::Limits;

/// How long we keep killing a group's processes before giving up on it.
const KILL_PATIENCE: Duration = Duration::from_secs(10);
/// The CFS period the cpu limit is expressed in (the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;

/// Which cgroup layout the machine has.
#[derive(Debug, Clone)]
pub enum Cgroups {
    /// One hierarchy per controller.
    V1 {
        /// `.../memory/airlock/<instance>`
        memory: PathBuf,
        /// `.../pids/airlock/<instance>`
        pids: PathBuf,
        /// `.../cpu/airlock/<instance>`
        cpu: PathBuf,
    },
    /// The unified hierarchy, at `.../airlock/<instance>`.
    V2(PathBuf),
}

impl Cgroups {
    /// Finds the machine's cgroup mounts under `/sys/fs/cgroup`.
    pub fn detect(instance: &str) -> io::Result<Self> {
        let base = Path::new("/sys/fs/cgroup");
        let ours = |hier: &Path| hier.join("airlock").join(instance);
        if base.join("cgroup.controllers").exists() {
            let me = ours(base);
            enable_v2_controllers(base, &me)?;
            return Ok(Self::V2(me));
        }
        let hierarchy = |name: &str| {
            let dir = base.join(name);
            if dir.join("cgroup.procs").exists() {
                Ok(ours(&dir))
            } else {
                Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("cgroup v1 controller {name} is not mounted"),
                ))
            }
        };
        Ok(Self::V1 {
            memory: hierarchy("memory")?,
            pids: hierarchy("pids")?,
            cpu: hierarchy("cpu")?,
        })
    }

    fn roots(&self) -> Vec<&Path> {
        match self {
            Self::V1 { memory, pids, cpu } => vec![memory, pids, cpu],
            Self::V2(root) => vec![root],
        }
    }

    /// Creates the sandbox's node and writes its limits.
    pub fn create(&self, id: &str, limits: &Limits) -> io::Result<()> {
        for root in self.roots() {
            std::fs::create_dir_all(root.join(id))?;
        }
        let memory = limits.memory_mb.map(|mb| mb * 1024 * 1024);
        let cpu_quota = limits
            .cpus
            .map(|c| ((c * CPU_PERIOD_US as f64) as u64).max(1000));
        match self {
            Self::V1 {
                memory: mem,
                pids,
                cpu,
            } => {
                if let Some(bytes) = memory {
                    write(&mem.join(id).join("memory.limit_in_bytes"), bytes)?;
                    // Without swap accounting the file is absent and there is nothing to cap.
                    let memsw = mem.join(id).join("memory.memsw.limit_in_bytes");
                    if memsw.exists() {
                        write(&memsw, bytes)?;
                    }
                }
                write(&pids.join(id).join("pids.max"), limits.pids)?;
                if let Some(quota) = cpu_quota {
                    write(&cpu.join(id).join("cpu.cfs_period_us"), CPU_PERIOD_US)?;
                    write(&cpu.join(id).join("cpu.cfs_quota_us"), quota)?;
                }
            }
            Self::V2(root) => {
                let node = root.join(id);
                if let Some(bytes) = memory {
                    write(&node.join("memory.max"), bytes)?;
                    write(&node.join("memory.swap.max"), 0)?;
                }
                write(&node.join("pids.max"), limits.pids)?;
                if let Some(quota) = cpu_quota {
                    std::fs::write(node.join("cpu.max"), format!("{quota} {CPU_PERIOD_US}"))?;
                }
                std::fs::write(node.join("cgroup.subtree_control"), "+memory +pids +cpu")?;
            }
        }
        Ok(())
    }

    /// Makes leaf `name` under the sandbox's node and returns the `cgroup.procs` files a
    /// process writes itself into to join it (one per hierarchy).
    pub fn leaf(&self, id: &str, name: &str) -> io::Result<Vec<PathBuf>> {
        self.roots()
            .into_iter()
            .map(|root| {
                let dir = root.join(id).join(name);
                std::fs::create_dir_all(&dir)?;
                Ok(dir.join("cgroup.procs"))
            })
            .collect()
    }

    /// Kills every process in leaf `name` (a whole exec tree) and removes the leaf.
    pub fn kill_leaf(&self, id: &str, name: &str) -> io::Result<()> {
        let dirs: Vec<PathBuf> = self
            .roots()
            .into_iter()
            .map(|r| r.join(id).join(name))
            .collect();
        kill_until_empty(&dirs)?;
        dirs.iter().for_each(remove_quietly);
        Ok(())
    }

    /// Sends `signal` once to every process in leaf `name` (a whole exec tree).
    pub fn signal_leaf(&self, id: &str, name: &str, signal: libc::c_int) {
        let pids = self
            .roots()
            .into_iter()
            .flat_map(|r| procs_below(&r.join(id).join(name)));
        for pid in pids {
            // SAFETY: kill takes plain integers; a pid that already exited yields ESRCH.
            unsafe { libc::kill(pid, signal) };
        }
    }

    /// Removes leaf `name` if nothing is left in it (an exec whose tree has ended).
    pub fn remove_leaf_if_empty(&self, id: &str, name: &str) {
        for root in self.roots() {
            remove_quietly(root.join(id).join(name));
        }
    }

    /// Whether leaf `name` exists in every hierarchy with no process in it. Nothing can
    /// enter an empty leaf but a helper the daemon sends there (a process joins a group
    /// only by being forked in it or written into it, and the sandbox's processes can
    /// write to no `cgroup.procs`), so an empty leaf stays empty until it is used again.
    pub fn leaf_is_empty(&self, id: &str, name: &str) -> bool {
        self.roots().into_iter().all(|root| {
            std::fs::read(root.join(id).join(name).join("cgroup.procs"))
                .is_ok_and(|procs| procs.is_empty())
        })
    }

    /// Removes this daemon's own groups (`airlock/<instance>`) if no sandbox's is left in
    /// them; a daemon that starts makes them again.
    pub fn remove_instance_if_empty(&self) {
        for root in self.roots() {
            remove_quietly(root);
        }
    }

    /// Kills everything in the sandbox's groups, then removes them. An exec helper that
    /// joins a leaf while we tear down makes a removal fail; we then simply go again.
    pub fn destroy(&self, id: &str) -> io::Result<()> {
        let started = Instant::now();
        loop {
            let nodes: Vec<PathBuf> = self
                .roots()
                .into_iter()
                .map(|r| r.join(id))
                .filter(|p| p.exists())
                .collect();
            if nodes.is_empty() {
                return Ok(());
            }
            kill_until_empty(&nodes)?;
            for node in &nodes {
                subdirs(node).iter().for_each(remove_quietly);
                remove_quietly(node);
            }
            if started.elapsed() > KILL_PATIENCE {
                return Err(io::Error::other(format!(
                    "cgroups of sandbox {id} could not be removed"
                )));
            }
        }
    }

    /// Sandbox ids that have a node here (to find groups an earlier daemon left).
    pub fn known_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .roots()
            .iter()
            .flat_map(|root| subdirs(root))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

fn write(file: &Path, value: impl ToString) -> io::Result<()> {
    std::fs::write(file, value.to_string())
        .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", file.display())))
}

/// On v2, controllers must be enabled in every ancestor's `subtree_control`.
fn enable_v2_controllers(base: &Path, ours: &Path) -> io::Result<()> {
    std::fs::create_dir_all(ours)?;
    let mut dir = base.to_path_buf();
    for part in ours
        .strip_prefix(base)
        .map_err(io::Error::other)?
        .components()
    {
        std::fs::write(dir.join("cgroup.subtree_control"), "+memory +pids +cpu")?;
        dir.push(part);
    }
    Ok(())
}

/// The groups directly below `dir`. Told apart from the control files by the type the
/// directory listing carries: a cgroup holds some thirty files, and a stat of each, in
/// every controller, twice per delete, was half of a delete's system calls.
fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Pids in `dir` and in every group below it.
fn procs_below(dir: &Path) -> Vec<i32> {
    let mut pids: Vec<i32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for sub in subdirs(dir) {
        pids.extend(procs_below(&sub));
    }
    pids
}

/// SIGKILLs what is in the groups until they are empty. A process forked between our read
/// and our kill shows up on the next pass; its killed parent cannot fork again, so the
/// passes converge even against a fork storm (bounded by the pids limit anyway).
fn kill_until_empty(dirs: &[PathBuf]) -> io::Result<()> {
    let started = Instant::now();
    loop {
        let pids: Vec<i32> = dirs.iter().flat_map(|d| procs_below(d)).collect();
        if pids.is_empty() {
            return Ok(());
        }
        for pid in pids {
            // SAFETY: kill takes plain integers; a pid that already exited yields ESRCH.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if started.elapsed() > KILL_PATIENCE {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "processes survived SIGKILL in a sandbox cgroup",
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn remove_quietly(dir: impl AsRef<Path>) {
    let _ = std::fs::remove_dir(dir);
}
