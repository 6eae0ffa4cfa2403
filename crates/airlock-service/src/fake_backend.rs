//! A backend for the service's own tests: a sandbox is a plain directory (its files go
//! through the real confined file engine), starting it only marks it started, and a
//! command runs as a plain host process in that directory. No namespaces, mounts or
//! cgroups, so the service's rules (lifecycle, uploads, tenancy, recovery) are tested
//! without the engine's privileges. It records every call, so a test can also check
//! what the service asked of its backend.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_fs::{Root, SandboxFs, SandboxPath};
use airlock_sandbox::{
    ExecPlan, HelperProcess, Layout, SandboxConfig, SandboxError, SandboxResult,
};
use futures_util::future::BoxFuture;
use rustix::process::Signal;
use tokio::process::{ChildStderr, ChildStdin, ChildStdout};
use tokio::sync::watch;

use crate::backend::{Command, ReadonlyFile, Running, SandboxBackend, Spawned};

/// Every call, in order: what was asked, and of which sandbox.
type Calls = Arc<Mutex<Vec<(String, String)>>>;

#[derive(Debug)]
pub(crate) struct FakeBackend {
    layout: Layout,
    calls: Calls,
    /// Each running sandbox's "stopped" switch, so a test can make one end by itself.
    running: Mutex<HashMap<String, watch::Sender<bool>>>,
    /// When set, new sandboxes start pending, and settle when the test says how:
    /// `Some(true)` made, `Some(false)` failed.
    settle_gate: Mutex<Option<watch::Receiver<Option<bool>>>>,
}

impl FakeBackend {
    pub(crate) fn new(home: &std::path::Path) -> Arc<Self> {
        Arc::new(Self {
            layout: Layout::new(home),
            calls: Arc::default(),
            running: Mutex::default(),
            settle_gate: Mutex::default(),
        })
    }

    /// From now on, sandboxes start pending until the returned switch says how they end.
    pub(crate) fn make_pending(&self) -> watch::Sender<Option<bool>> {
        let (tx, rx) = watch::channel(None);
        *self.settle_gate.lock().unwrap() = Some(rx);
        tx
    }

    fn note(&self, call: &str, id: &str) {
        note(&self.calls, call, id);
    }

    /// The calls so far that concern sandbox `id`: `["provision", "start"]`.
    pub(crate) fn calls_for(&self, id: &str) -> Vec<String> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(_, of)| of == id)
            .map(|(call, _)| call.clone())
            .collect()
    }

    /// The ids of every sandbox provisioned so far, oldest first.
    pub(crate) fn provisioned(&self) -> Vec<String> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(call, _)| call == "provision")
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// Ends a running sandbox as if its init had died on its own.
    pub(crate) fn crash(&self, id: &str) {
        if let Some(stopped) = self.running.lock().unwrap().get(id) {
            stopped.send_replace(true);
        }
    }

    fn root_dir(&self, id: &str) -> std::path::PathBuf {
        self.layout.view(id)
    }
}

fn note(calls: &Calls, call: &str, id: &str) {
    calls.lock().unwrap().push((call.to_owned(), id.to_owned()));
}

fn failed(action: &'static str, e: std::io::Error) -> SandboxError {
    SandboxError::new(action, e)
}

/// A command's std pipe as tokio's.
fn async_pipe<S, A>(
    pipe: Option<S>,
    convert: fn(S) -> std::io::Result<A>,
) -> SandboxResult<Option<A>> {
    pipe.map(convert)
        .transpose()
        .map_err(|e| failed("taking a command's pipes", e))
}

impl SandboxBackend for FakeBackend {
    fn starts_pending(&self) -> bool {
        self.settle_gate.lock().unwrap().is_some()
    }

    fn settle<'a>(&'a self, cfg: &'a SandboxConfig) -> BoxFuture<'a, SandboxResult<()>> {
        let gate = self.settle_gate.lock().unwrap().clone();
        Box::pin(async move {
            self.note("settle", &cfg.id);
            let Some(mut gate) = gate else { return Ok(()) };
            let made = gate.wait_for(Option::is_some).await.map(|v| *v);
            match made {
                Ok(Some(true)) => Ok(()),
                _ => Err(SandboxError::refused(
                    "starting the sandbox",
                    "no node fits",
                )),
            }
        })
    }

    fn provision(&self, cfg: &SandboxConfig, _readonly: &[ReadonlyFile]) -> SandboxResult<()> {
        self.note("provision", &cfg.id);
        // The sandbox's own directory holds its record; the view is its filesystem.
        std::fs::create_dir_all(self.layout.sandbox(&cfg.id))
            .and_then(|()| std::fs::create_dir_all(self.root_dir(&cfg.id).join("workspace")))
            .map_err(|e| failed("making the sandbox directory", e))
    }

    fn restore(&self, cfg: &SandboxConfig) -> SandboxResult<()> {
        self.note("restore", &cfg.id);
        Ok(())
    }

    fn fs(&self, id: &str) -> SandboxResult<Arc<dyn SandboxFs>> {
        let root = Root::open(&self.root_dir(id)).map_err(|e| failed("opening the root", e))?;
        Ok(Arc::new(root))
    }

    fn make_readonly(&self, id: &str, path: &SandboxPath) -> SandboxResult<()> {
        self.note(&format!("readonly {path}"), id);
        Ok(())
    }

    fn start<'a>(
        &'a self,
        cfg: &'a SandboxConfig,
    ) -> BoxFuture<'a, SandboxResult<Arc<dyn Running>>> {
        Box::pin(async move {
            self.note("start", &cfg.id);
            let (stopped, _) = watch::channel(false);
            self.running
                .lock()
                .unwrap()
                .insert(cfg.id.clone(), stopped.clone());
            Ok(Arc::new(FakeRunning {
                id: cfg.id.clone(),
                dir: self.root_dir(&cfg.id),
                stopped,
                calls: self.calls.clone(),
            }) as Arc<dyn Running>)
        })
    }

    fn destroy(&self, id: &str) -> SandboxResult<()> {
        self.note("destroy", id);
        for dir in [self.layout.sandbox(id), self.root_dir(id)] {
            match std::fs::remove_dir_all(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(failed("removing the sandbox", e));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn strays(&self) -> Vec<String> {
        Vec::new()
    }

    fn remove_stray(&self, id: &str) -> SandboxResult<()> {
        self.note("remove_stray", id);
        Ok(())
    }

    fn disk_free_mb(&self) -> u64 {
        1 << 20
    }
}

#[derive(Debug)]
struct FakeRunning {
    id: String,
    dir: std::path::PathBuf,
    /// True once it has stopped, by a stop or by [`FakeBackend::crash`].
    stopped: watch::Sender<bool>,
    calls: Calls,
}

impl Running for FakeRunning {
    fn exited(&self) -> BoxFuture<'_, ()> {
        let mut stopped = self.stopped.subscribe();
        Box::pin(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
    }

    fn stop(&self, _grace: Duration) -> BoxFuture<'_, SandboxResult<()>> {
        Box::pin(async move {
            note(&self.calls, "stop", &self.id);
            self.stopped.send_replace(true);
            Ok(())
        })
    }

    fn spawn<'a>(
        &'a self,
        _name: &'a str,
        plan: ExecPlan,
    ) -> BoxFuture<'a, SandboxResult<Spawned>> {
        Box::pin(async move { self.spawn_now(plan) })
    }
}

impl FakeRunning {
    fn spawn_now(&self, plan: ExecPlan) -> SandboxResult<Spawned> {
        let mut child = std::process::Command::new(&plan.argv[0])
            .args(&plan.argv[1..])
            .env_clear()
            .envs(plan.env)
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed("starting a command", e))?;
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        // Held before the pipes are made async, so one that fails drops a held command,
        // which is killed.
        let command = HostCommand::of(child).map_err(|e| failed("holding a command", e))?;
        Ok(Spawned {
            stdin: async_pipe(stdin, ChildStdin::from_std)?.map(|i| Box::new(i) as _),
            stdout: async_pipe(stdout, ChildStdout::from_std)?.map(|o| Box::new(o) as _),
            stderr: async_pipe(stderr, ChildStderr::from_std)?.map(|e| Box::new(e) as _),
            terminal: None,
            command: Arc::new(command),
        })
    }
}

/// `program` started as a plain host process, with no pipes.
pub(crate) fn host_command(program: &str) -> Arc<dyn Command> {
    let child = std::process::Command::new(program).spawn().unwrap();
    Arc::new(HostCommand::of(child).unwrap())
}

/// A command as a plain child process, held by a pidfd as the engine holds its helpers:
/// a signal never reaches a recycled pid, and one dropped unwaited is killed and reaped.
#[derive(Debug)]
pub(crate) struct HostCommand(HelperProcess);

impl HostCommand {
    /// Takes over `child` (its pipes taken first): std's `Child` neither waits nor kills
    /// on drop, so the pidfd is its only keeper.
    fn of(child: std::process::Child) -> std::io::Result<Self> {
        let pid = i32::try_from(child.id()).map_err(std::io::Error::other)?;
        HelperProcess::adopt(pid).map(Self)
    }
}

impl Command for HostCommand {
    fn wait(&self) -> BoxFuture<'_, std::io::Result<i32>> {
        Box::pin(self.0.wait())
    }

    fn signal(&self, signal: Signal) -> std::io::Result<()> {
        self.0.signal(signal.as_raw())
    }

    fn kill_all(&self) -> BoxFuture<'_, SandboxResult<()>> {
        Box::pin(async move {
            let _ = self.signal(Signal::KILL);
            Ok(())
        })
    }

    fn finish(&self) {}
}
