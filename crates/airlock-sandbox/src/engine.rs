//! The engine's face to the daemon: provision, restore, start, stop, exec, destroy.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use airlock_fs::{Root, SandboxPath};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::cgroup::Cgroups;
use crate::error::{Doing, SandboxResult};
use crate::forker::Helper;
use crate::janitor::Janitor;
use crate::launch::{self, HelperIo, InitProcess, Started, Stream};
use crate::layout::Layout;
use crate::skeleton_spares::SkeletonSpares;
use crate::spec::{ExecSpec, InitSpec};
use crate::terminal::{Terminal, WindowSize};
use crate::{Limits, TemplateRoot, skeleton, sys, view};

/// The sandbox user every command runs as.
const SANDBOX_UID: u32 = 1000;
/// /dev/shm size when the sandbox has no memory limit to derive one from.
const DEFAULT_SHM_MB: u64 = 64;

/// What the engine needs to know about one sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The sandbox id (12 hex digits).
    pub id: String,
    /// What its root is made from.
    pub template: TemplateRoot,
    /// Its limits.
    pub limits: Limits,
    /// Its read-only injected files.
    pub readonly: Vec<SandboxPath>,
}

/// One command to run.
#[derive(Debug, Clone)]
pub struct ExecPlan {
    /// argv.
    pub argv: Vec<String>,
    /// Whole environment.
    pub env: Vec<(String, String)>,
    /// Working directory inside.
    pub cwd: String,
    /// A terminal of this size as its stdin, stdout, stderr and controlling terminal,
    /// instead of pipes.
    pub terminal: Option<WindowSize>,
}

/// The sandbox engine of one daemon home.
#[derive(Debug)]
pub struct Engine {
    layout: Layout,
    cgroups: Cgroups,
    /// An open handle on each mounted view, taken right after the mount and dropped
    /// before the unmount: a file request then costs no path walk to the sandbox's root.
    /// Only a mount fills it, so a handle on the bare directory under a view that is not
    /// mounted yet is never kept.
    roots: RwLock<HashMap<String, Arc<Root>>>,
    janitor: Janitor,
    spares: SkeletonSpares,
}

impl Engine {
    /// An engine for the daemon whose state lives in `home`.
    pub fn new(home: &Path) -> io::Result<Self> {
        let cgroups = Cgroups::detect(&instance_name(home))?;
        crate::helper_binary::choose();
        let layout = Layout::new(home);
        crate::spread::make_spreading_dir(&layout.sandboxes())?;
        Ok(Self {
            janitor: Janitor::new(layout.trash(), cgroups.clone())?,
            spares: SkeletonSpares::new(layout.skeletons())?,
            layout,
            cgroups,
            roots: RwLock::new(HashMap::new()),
        })
    }

    /// Gives the calling process a mount namespace of its own, so that every mount the
    /// engine makes disappears with the daemon, even on `kill -9`. Host mounts still
    /// propagate in. Must run before the process starts any thread.
    pub fn enter_private_mount_namespace() -> io::Result<()> {
        sys::unshare(libc::CLONE_NEWNS)?;
        sys::set_root_propagation(libc::MS_REC | libc::MS_SLAVE)
    }

    /// Paths under the home directory.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Creates a new sandbox's storage and view. Blocking.
    pub fn provision(&self, cfg: &SandboxConfig) -> SandboxResult<()> {
        view::provision(
            &self.layout,
            &self.spares,
            &cfg.id,
            &cfg.template,
            cfg.limits.disk_mb,
        )
        .doing("preparing sandbox storage")?;
        self.keep_root(&cfg.id)
    }

    /// Brings an existing sandbox back after a daemon restart: kills anything an earlier
    /// daemon left running in its groups, then remounts its storage and view. Blocking.
    pub fn restore(&self, cfg: &SandboxConfig) -> SandboxResult<()> {
        self.cgroups
            .destroy(&cfg.id)
            .doing("killing what an earlier daemon left")?;
        view::mount_storage(&self.layout, &cfg.id).doing("remounting sandbox storage")?;
        view::mount_view(&self.layout, &cfg.id, &cfg.template, &cfg.readonly)
            .doing("remounting the sandbox's view")?;
        self.keep_root(&cfg.id)
    }

    /// A handle on the sandbox's root, for the file engine.
    pub fn root(&self, id: &str) -> SandboxResult<Arc<Root>> {
        let kept = self.roots.read().ok().and_then(|r| r.get(id).cloned());
        match kept {
            Some(root) => Ok(root),
            None => Ok(Arc::new(self.open_root(id)?)),
        }
    }

    fn open_root(&self, id: &str) -> SandboxResult<Root> {
        Root::open(&self.layout.view(id)).doing("opening the sandbox root")
    }

    /// Keeps a handle on a view just mounted.
    fn keep_root(&self, id: &str) -> SandboxResult<()> {
        let root = Arc::new(self.open_root(id)?);
        if let Ok(mut roots) = self.roots.write() {
            roots.insert(id.to_owned(), root);
        }
        Ok(())
    }

    /// Makes an existing file of the sandbox read-only to everything inside it.
    pub fn make_readonly(&self, id: &str, path: &SandboxPath) -> SandboxResult<()> {
        view::make_readonly(&*self.root(id)?, path).doing("binding a read-only file")
    }

    /// Starts the sandbox's init; returns once its namespaces and mounts are ready.
    pub async fn start(&self, cfg: &SandboxConfig) -> SandboxResult<InitProcess> {
        self.start_init(cfg).await.doing("starting the sandbox")
    }

    async fn start_init(&self, cfg: &SandboxConfig) -> io::Result<InitProcess> {
        self.cgroups.create(&cfg.id, &cfg.limits)?;
        let spec = InitSpec {
            view: self.layout.view(&cfg.id),
            hostname: view::hostname(&cfg.id),
            cgroup_procs: self.cgroups.leaf(&cfg.id, "init")?,
            shm_mb: cfg
                .limits
                .memory_mb
                .map_or(DEFAULT_SHM_MB, |m| (m / 2).max(1)),
        };
        let io = HelperIo {
            stdin: Stream::Null,
            stdout: Stream::Piped,
            stderr: Stream::Inherit,
        };
        let helper = launch::spawn_helper(Helper::Init, &spec, io, None)?;
        // Its one line is the whole answer: the helper exits right after writing it, and
        // is reaped off the start's path (waiting for its exit was 0.3 ms of a start).
        let mut said = Vec::new();
        if let Some(stdout) = helper.stdout {
            BufReader::new(stdout).read_until(b'\n', &mut said).await?;
        }
        let process = helper.process;
        tokio::spawn(async move { process.wait().await });
        let report: serde_json::Value = serde_json::from_slice(&said).map_err(|_| {
            io::Error::other(format!(
                "init helper said {:?}",
                String::from_utf8_lossy(&said)
            ))
        })?;
        let pid = report["pid"].as_i64().unwrap_or(0) as i32;
        if let Some(error) = report["error"].as_str() {
            if pid > 0 {
                // The half-made init is our child: adopting and dropping it reaps it.
                drop(InitProcess::adopt(pid));
            }
            let _ = self.cgroups.destroy(&cfg.id);
            return Err(io::Error::other(error.to_owned()));
        }
        InitProcess::adopt(pid)
    }

    /// Stops a running sandbox: SIGTERM to every process, SIGKILL after `grace`.
    pub async fn stop(&self, id: &str, init: &InitProcess, grace: Duration) -> SandboxResult<()> {
        self.stop_init(id, init, grace)
            .await
            .doing("stopping the sandbox")
    }

    async fn stop_init(&self, id: &str, init: &InitProcess, grace: Duration) -> io::Result<()> {
        if !grace.is_zero() {
            init.signal(libc::SIGTERM)?;
            let _ = tokio::time::timeout(grace, init.wait()).await;
        }
        kill_and_reap(init).await?;
        // Exec helpers live outside the pid namespace; they end once their child is
        // killed, but the groups are only removable when they are gone.
        let cgroups = self.cgroups.clone();
        let id = id.to_owned();
        tokio::task::spawn_blocking(move || cgroups.destroy(&id))
            .await
            .map_err(io::Error::other)?
    }

    /// Kills a sandbox's init, and with it every process in its pid namespace, and waits
    /// for it; its groups stay for [`Engine::destroy`], which is to follow.
    pub async fn kill(&self, init: &InitProcess) -> SandboxResult<()> {
        kill_and_reap(init).await.doing("killing the sandbox")
    }

    /// Removes everything of a sandbox whose init is gone (or never was): mounts, storage
    /// and, after the answer, its groups with any exec helper still on its way out.
    /// Blocking.
    pub fn destroy(&self, id: &str) -> SandboxResult<()> {
        if let Ok(mut roots) = self.roots.write() {
            roots.remove(id);
        }
        view::unmount(&self.layout, id).doing("unmounting the sandbox")?;
        self.janitor
            .discard(&self.layout.sandbox(id))
            .doing("removing the sandbox's files")?;
        self.janitor.discard_groups(id);
        Ok(())
    }

    /// Spawns a command in a running sandbox, in cgroup leaf `leaf`, with piped stdio, or
    /// with a terminal (whose daemon side is returned) when the plan asks for one.
    pub fn spawn_exec(
        &self,
        id: &str,
        init: &InitProcess,
        leaf: &str,
        plan: ExecPlan,
    ) -> SandboxResult<(Started, Option<Terminal>)> {
        let spec = ExecSpec {
            cgroup_procs: self.cgroups.leaf(id, leaf).doing("starting a command")?,
            argv: plan.argv,
            env: plan.env,
            cwd: plan.cwd,
            writable: skeleton::WRITABLE_DIRS
                .iter()
                .chain(&["/dev", "/dev/shm"])
                .map(|s| s.to_string())
                .collect(),
            uid: SANDBOX_UID,
            gid: SANDBOX_UID,
            terminal: plan.terminal.is_some(),
        };
        let (io, terminal) = match plan.terminal {
            None => {
                let io = HelperIo {
                    stdin: Stream::Piped,
                    stdout: Stream::Piped,
                    stderr: Stream::Piped,
                };
                (io, None)
            }
            Some(size) => {
                let (terminal, replica) = Terminal::open(size).doing("opening a terminal")?;
                let copy = || replica.try_clone().doing("opening a terminal");
                let io = HelperIo {
                    stdin: Stream::Given(copy()?),
                    stdout: Stream::Given(copy()?),
                    stderr: Stream::Given(replica),
                };
                (io, Some(terminal))
            }
        };
        // The helper's copies of the replica are dropped with its command here, so the
        // terminal ends when the command and what it left behind have all closed it.
        let child = launch::spawn_helper(Helper::Exec, &spec, io, Some(init))
            .doing("starting a command")?;
        Ok((child, terminal))
    }

    /// Kills every process an exec started, however deep. Blocking.
    pub fn kill_exec(&self, id: &str, leaf: &str) -> SandboxResult<()> {
        self.cgroups.kill_leaf(id, leaf).doing("killing a command")
    }

    /// Sends `signal` to every process of a command's tree (SIGSTOP and SIGCONT: a stop
    /// cannot be passed on by the helper, which it would stop instead).
    pub fn signal_exec(&self, id: &str, leaf: &str, signal: libc::c_int) {
        self.cgroups.signal_leaf(id, leaf, signal);
    }

    /// Forgets an exec's group once its processes are all gone.
    pub fn finish_exec(&self, id: &str, leaf: &str) {
        self.cgroups.remove_leaf_if_empty(id, leaf);
    }

    /// Whether an exec's group is there with nothing left in it, so another command
    /// may run in it (see `Cgroups::leaf_is_empty`).
    pub fn exec_leaf_is_empty(&self, id: &str, leaf: &str) -> bool {
        self.cgroups.leaf_is_empty(id, leaf)
    }

    /// Gives back what the engine holds for itself once every sandbox is stopped (at
    /// shutdown): the forker, which would otherwise outlive the daemon for a moment, and
    /// the daemon's own cgroups (each daemon home has its own, and they would otherwise
    /// stay after the home is gone).
    pub fn release(&self) {
        launch::stop_forker();
        // Every sandbox has been stopped by now: what groups remain are deleted ones the
        // janitor has not come to yet.
        for id in self.cgroups.known_ids() {
            if let Err(err) = self.cgroups.destroy(&id) {
                tracing::warn!(id, %err, "removing a deleted sandbox's cgroups");
            }
        }
        self.cgroups.remove_instance_if_empty();
    }

    /// Ids that have cgroups but may have no record (left by a crashed daemon).
    pub fn ids_with_cgroups(&self) -> Vec<String> {
        self.cgroups.known_ids()
    }

    /// Kills and removes the groups of an id with no record. Blocking.
    pub fn remove_cgroups(&self, id: &str) -> SandboxResult<()> {
        self.cgroups.destroy(id).doing("removing stray cgroups")
    }
}

/// SIGKILL to a sandbox's init, which ends every process of its pid namespace with it,
/// then its reaping.
async fn kill_and_reap(init: &InitProcess) -> io::Result<()> {
    init.signal(libc::SIGKILL)?;
    init.wait().await
}

/// Daemons with different homes get disjoint cgroup subtrees (`airlock/<instance>`); the
/// name is a stable FNV-1a hash of the home path, so a restarted daemon finds its groups.
pub fn instance_name(home: &Path) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in home.as_os_str().as_encoded_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}
