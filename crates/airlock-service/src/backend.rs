//! The seam between the service and whatever runs sandboxes: their lifecycle and the
//! commands started in them. The service keeps every rule (who may, in what state, with
//! what defaults) and holds a backend as a trait object; a backend only does what it is
//! told. The local Linux engine is one ([`crate::local_backend`]); a cluster of pods
//! would be another.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use airlock_fs::{SandboxFs, SandboxPath};
use airlock_sandbox::{ExecPlan, SandboxConfig, SandboxResult, TemplateRoot, WindowSize};
use futures_util::future::BoxFuture;
use rustix::process::Signal;
use tokio::io::{AsyncRead, AsyncWrite};

/// Sandboxes' lifecycle. Methods without a future block: the service calls them on its
/// blocking pool.
pub trait SandboxBackend: Send + Sync + Debug {
    /// What template `name` is made from, when this backend names templates itself (a
    /// cluster's images); `None` leaves it to the daemon's registered templates.
    fn template(&self, _name: &str) -> Option<TemplateRoot> {
        None
    }
    /// Whether sandboxes go on running when the daemon stops (a cluster's pods do; this
    /// machine's namespaces end with the daemon, which starts them again).
    fn outlives_daemon(&self) -> bool {
        false
    }
    /// Whether a new sandbox is answered as `pending` once `provision` returns, to be
    /// finished by [`SandboxBackend::settle`] (a pod that must be scheduled and pull its
    /// image); otherwise `provision` returns a sandbox ready for its files.
    fn starts_pending(&self) -> bool {
        false
    }
    /// Waits until a provisioned sandbox can take its files and commands.
    fn settle<'a>(&'a self, _cfg: &'a SandboxConfig) -> BoxFuture<'a, SandboxResult<()>> {
        Box::pin(async { Ok(()) })
    }
    /// Whether read-only injected files are given to `provision`, to be mounted read-only
    /// where the sandbox is made (a cluster's pod), instead of written and bound later.
    fn mounts_readonly_files(&self) -> bool {
        false
    }
    /// Makes a new sandbox's storage, empty but for its template (and, for a backend
    /// that mounts them, its `readonly` files).
    fn provision(&self, cfg: &SandboxConfig, readonly: &[ReadonlyFile]) -> SandboxResult<()>;
    /// Brings an existing sandbox's storage back after a daemon restart, ending anything
    /// an earlier daemon left running in it.
    fn restore(&self, cfg: &SandboxConfig) -> SandboxResult<()>;
    /// The sandbox's files.
    fn fs(&self, id: &str) -> SandboxResult<Arc<dyn SandboxFs>>;
    /// Makes an existing file read-only to everything inside the sandbox.
    fn make_readonly(&self, id: &str, path: &SandboxPath) -> SandboxResult<()>;
    /// Starts the sandbox; answers once commands can be started in it.
    fn start<'a>(
        &'a self,
        cfg: &'a SandboxConfig,
    ) -> BoxFuture<'a, SandboxResult<Arc<dyn Running>>>;
    /// Removes everything of a stopped sandbox.
    fn destroy(&self, id: &str) -> SandboxResult<()>;
    /// Ids that still hold resources but may have no record (a crashed daemon's).
    fn strays(&self) -> Vec<String>;
    /// Frees what a stray id holds.
    fn remove_stray(&self, id: &str) -> SandboxResult<()>;
    /// Free space for new sandboxes' disks, in MiB.
    fn disk_free_mb(&self) -> u64;
    /// Gives back what the backend holds for itself, once the daemon has stopped every
    /// sandbox on its way out. Blocking.
    fn release(&self) {}
}

/// A read-only injected file, for a backend that mounts them itself.
#[derive(Debug, Clone)]
pub struct ReadonlyFile {
    pub path: SandboxPath,
    pub content: Vec<u8>,
    pub mode: u32,
}

/// A started sandbox.
pub trait Running: Send + Sync + Debug {
    /// Resolves when the sandbox has stopped, however it stopped.
    fn exited(&self) -> BoxFuture<'_, ()>;
    /// Asks every process to end, kills what remains after `grace`, and frees what the
    /// running sandbox held.
    fn stop(&self, grace: Duration) -> BoxFuture<'_, SandboxResult<()>>;
    /// Kills every process at once, for a delete: what the sandbox held is then freed by
    /// the backend's `destroy`, which follows.
    fn kill(&self) -> BoxFuture<'_, SandboxResult<()>> {
        self.stop(Duration::ZERO)
    }
    /// Starts a command; `name` is unique among the sandbox's commands.
    fn spawn<'a>(&'a self, name: &'a str, plan: ExecPlan) -> BoxFuture<'a, SandboxResult<Spawned>>;
}

/// A command just started: its streams and its handle.
pub struct Spawned {
    /// Its standard input, when it has pipes.
    pub stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// Its standard output, when it has pipes.
    pub stdout: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// Its standard error, when it has pipes.
    pub stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// Its terminal, when it was given one instead of pipes.
    pub terminal: Option<Arc<dyn CommandTerminal>>,
    /// Waiting for it and killing it.
    pub command: Arc<dyn Command>,
}

/// A started command. Shared: one task waits for it while others may signal it.
pub trait Command: Send + Sync + Debug {
    /// Waits for it to end: its exit code, or 128 + the signal that ended it. Once it
    /// has ended, it can no longer be signalled.
    fn wait(&self) -> BoxFuture<'_, std::io::Result<i32>>;
    /// Sends it one signal; fails once it has ended.
    fn signal(&self, signal: Signal) -> std::io::Result<()>;
    /// Kills it and everything it started, however deep.
    fn kill_all(&self) -> BoxFuture<'_, SandboxResult<()>>;
    /// Frees what the backend kept for it, once it has been waited for.
    fn finish(&self);
}

/// The daemon's side of a command's terminal.
pub trait CommandTerminal: Send + Sync + Debug {
    /// Tells the command its window changed size.
    fn resize(&self, size: WindowSize) -> std::io::Result<()>;
    /// What the command writes to its terminal.
    fn output(&self) -> Box<dyn AsyncRead + Send + Unpin>;
    /// What it reads from its terminal (the user's typing).
    fn input(&self) -> Box<dyn AsyncWrite + Send + Unpin>;
}
