//! The backend on this machine: the Linux engine (namespaces, mounts, cgroups, Landlock,
//! seccomp) behind the [`SandboxBackend`] seam, unchanged in behaviour.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_fs::{SandboxFs, SandboxPath};
use airlock_sandbox::{
    Engine, ExecPlan, HelperProcess, InitProcess, SandboxConfig, SandboxResult, Terminal,
    WindowSize,
};
use futures_util::future::BoxFuture;
use rustix::process::Signal;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::backend::{Command, CommandTerminal, ReadonlyFile, Running, SandboxBackend, Spawned};

/// The local Linux engine as a backend.
#[derive(Debug)]
pub struct LocalBackend {
    engine: Arc<Engine>,
}

impl LocalBackend {
    /// The backend over an engine.
    pub fn new(engine: Engine) -> Self {
        Self {
            engine: Arc::new(engine),
        }
    }
}

impl SandboxBackend for LocalBackend {
    /// Read-only files are written and bound after this, by the service.
    fn provision(&self, cfg: &SandboxConfig, _readonly: &[ReadonlyFile]) -> SandboxResult<()> {
        self.engine.provision(cfg)
    }

    fn restore(&self, cfg: &SandboxConfig) -> SandboxResult<()> {
        self.engine.restore(cfg)
    }

    fn fs(&self, id: &str) -> SandboxResult<Arc<dyn SandboxFs>> {
        Ok(self.engine.root(id)?)
    }

    fn make_readonly(&self, id: &str, path: &SandboxPath) -> SandboxResult<()> {
        self.engine.make_readonly(id, path)
    }

    fn start<'a>(
        &'a self,
        cfg: &'a SandboxConfig,
    ) -> BoxFuture<'a, SandboxResult<Arc<dyn Running>>> {
        Box::pin(async move {
            let init = self.engine.start(cfg).await?;
            Ok(Arc::new(LocalRunning {
                engine: self.engine.clone(),
                id: cfg.id.clone(),
                init,
                spare_leaves: Arc::default(),
            }) as Arc<dyn Running>)
        })
    }

    fn destroy(&self, id: &str) -> SandboxResult<()> {
        self.engine.destroy(id)
    }

    fn strays(&self) -> Vec<String> {
        self.engine.ids_with_cgroups()
    }

    fn remove_stray(&self, id: &str) -> SandboxResult<()> {
        self.engine.remove_cgroups(id)
    }

    fn disk_free_mb(&self) -> u64 {
        rustix::fs::statvfs(self.engine.layout().home())
            .map(|s| s.f_bavail * s.f_frsize / (1024 * 1024))
            .unwrap_or(0)
    }

    fn release(&self) {
        self.engine.release();
    }
}

/// A started sandbox: its init, the process whose namespaces every command joins.
#[derive(Debug)]
struct LocalRunning {
    engine: Arc<Engine>,
    id: String,
    init: InitProcess,
    spare_leaves: Arc<SpareLeaves>,
}

/// Cgroup leaves of ended commands, empty, for the next commands to run in. A command
/// made its own leaf in each hierarchy and removed it after: six directory operations on
/// every command's path (a memory group is the dearest to make), and each removed memory
/// group lingers in the kernel while pages are charged to it. A leaf that still holds a
/// process a command left behind is never kept, so a command killed with its leaf kills
/// only its own tree.
#[derive(Debug, Default)]
struct SpareLeaves(Mutex<Vec<String>>);

impl SpareLeaves {
    /// More than this many commands at once in one sandbox leave their extra leaves to be
    /// removed as before.
    const KEPT: usize = 16;

    fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    /// Keeps `leaf`; false if there are enough already.
    fn keep(&self, leaf: &str) -> bool {
        let mut spare = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if spare.len() >= Self::KEPT {
            return false;
        }
        spare.push(leaf.to_owned());
        true
    }
}

impl Running for LocalRunning {
    fn exited(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = self.init.wait().await;
        })
    }

    fn stop(&self, grace: Duration) -> BoxFuture<'_, SandboxResult<()>> {
        Box::pin(self.engine.stop(&self.id, &self.init, grace))
    }

    fn kill(&self) -> BoxFuture<'_, SandboxResult<()>> {
        Box::pin(self.engine.kill(&self.init))
    }

    fn spawn<'a>(&'a self, name: &'a str, plan: ExecPlan) -> BoxFuture<'a, SandboxResult<Spawned>> {
        let leaf = self.spare_leaves.take().unwrap_or_else(|| name.to_owned());
        // Spawning here is quick (the helper forks and joins); it needs no await.
        let made = self.engine.spawn_exec(&self.id, &self.init, &leaf, plan);
        Box::pin(async move {
            let (started, terminal) = made?;
            Ok(Spawned {
                stdin: started.stdin.map(|i| Box::new(i) as _),
                stdout: started.stdout.map(|o| Box::new(o) as _),
                stderr: started.stderr.map(|e| Box::new(e) as _),
                terminal: terminal.map(|t| Arc::new(LocalTerminal(t)) as _),
                command: Arc::new(LocalCommand {
                    engine: self.engine.clone(),
                    id: self.id.clone(),
                    leaf,
                    spare_leaves: self.spare_leaves.clone(),
                    process: started.process,
                }),
            })
        })
    }
}

/// A command: the exec helper's child, in cgroup leaf `leaf`.
#[derive(Debug)]
struct LocalCommand {
    engine: Arc<Engine>,
    id: String,
    leaf: String,
    spare_leaves: Arc<SpareLeaves>,
    process: HelperProcess,
}

impl Command for LocalCommand {
    fn wait(&self) -> BoxFuture<'_, std::io::Result<i32>> {
        Box::pin(self.process.wait())
    }

    /// The helper passes signals on to the command. SIGSTOP cannot be caught, so it and
    /// its SIGCONT go to the whole tree through its cgroup, as a shell stops a job.
    fn signal(&self, signal: Signal) -> std::io::Result<()> {
        if signal == Signal::STOP || signal == Signal::CONT {
            self.process.signal(signal.as_raw())?;
            self.engine
                .signal_exec(&self.id, &self.leaf, signal.as_raw());
            return Ok(());
        }
        self.process.signal(signal.as_raw())
    }

    /// The command goes first, then its cgroup: one just spawned may not have joined
    /// its cgroup yet, and emptying the group under it would make it fail to join (125)
    /// instead of dying by the kill (137).
    fn kill_all(&self) -> BoxFuture<'_, SandboxResult<()>> {
        Box::pin(async move {
            let _ = self.process.signal(Signal::KILL.as_raw());
            let (engine, id, leaf) = (self.engine.clone(), self.id.clone(), self.leaf.clone());
            match tokio::task::spawn_blocking(move || engine.kill_exec(&id, &leaf)).await {
                Ok(killed) => killed,
                Err(e) => Err(airlock_sandbox::SandboxError::new(
                    "killing a command",
                    std::io::Error::other(e),
                )),
            }
        })
    }

    /// An emptied leaf goes to the next command; one a process still holds (or one too
    /// many) is removed once empty, as before.
    fn finish(&self) {
        if self.engine.exec_leaf_is_empty(&self.id, &self.leaf)
            && self.spare_leaves.keep(&self.leaf)
        {
            return;
        }
        self.engine.finish_exec(&self.id, &self.leaf);
    }
}

#[derive(Debug)]
struct LocalTerminal(Terminal);

impl CommandTerminal for LocalTerminal {
    fn resize(&self, size: WindowSize) -> std::io::Result<()> {
        self.0.resize(size)
    }

    fn output(&self) -> Box<dyn AsyncRead + Send + Unpin> {
        Box::new(self.0.io())
    }

    fn input(&self) -> Box<dyn AsyncWrite + Send + Unpin> {
        Box::new(self.0.io())
    }
}
