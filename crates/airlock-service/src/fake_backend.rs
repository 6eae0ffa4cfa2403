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
use airlock_sandbox::{ExecPlan, Layout, SandboxConfig, SandboxError, SandboxResult};
use futures_util::future::BoxFuture;
use rustix::process::Signal;
use tokio::sync::watch;

use crate::backend::{Command, Running, SandboxBackend, Spawned};

#[derive(Debug)]
pub(crate) struct FakeBackend {
    layout: Layout,
    /// Every call, in order: `provision ID`, `start ID`, `stop ID`, `destroy ID`, ...
    calls: Arc<Mutex<Vec<String>>>,
    /// Each running sandbox's "stopped" switch, so a test can make one end by itself.
    running: Mutex<HashMap<String, watch::Sender<bool>>>,
}

impl FakeBackend {
    pub(crate) fn new(home: &std::path::Path) -> Arc<Self> {
        Arc::new(Self {
            layout: Layout::new(home),
            calls: Arc::default(),
            running: Mutex::default(),
        })
    }

    fn note(&self, call: &str, id: &str) {
        self.calls.lock().unwrap().push(format!("{call} {id}"));
    }

    /// The calls so far that concern sandbox `id`, without it: `["provision", "start"]`.
    pub(crate) fn calls_for(&self, id: &str) -> Vec<String> {
        let suffix = format!(" {id}");
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter_map(|c| c.strip_suffix(&suffix).map(str::to_owned))
            .collect()
    }

    /// The ids of every sandbox provisioned so far, oldest first.
    pub(crate) fn provisioned(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter_map(|c| c.strip_prefix("provision ").map(str::to_owned))
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

fn failed(action: &'static str, e: std::io::Error) -> SandboxError {
    SandboxError::new(action, e)
}

impl SandboxBackend for FakeBackend {
    fn provision(&self, cfg: &SandboxConfig) -> SandboxResult<()> {
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
    calls: Arc<Mutex<Vec<String>>>,
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
            self.calls.lock().unwrap().push(format!("stop {}", self.id));
            self.stopped.send_replace(true);
            Ok(())
        })
    }

    fn spawn(&self, _name: &str, plan: ExecPlan) -> SandboxResult<Spawned> {
        let mut child = tokio::process::Command::new(&plan.argv[0])
            .args(&plan.argv[1..])
            .env_clear()
            .envs(plan.env)
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed("starting a command", e))?;
        Ok(Spawned {
            stdin: child.stdin.take().map(|i| Box::new(i) as _),
            stdout: child.stdout.take().map(|o| Box::new(o) as _),
            stderr: child.stderr.take().map(|e| Box::new(e) as _),
            terminal: None,
            command: Arc::new(HostCommand {
                pid: Mutex::new(child.id()),
                child: tokio::sync::Mutex::new(child),
            }),
        })
    }
}

/// `program` started as a plain host process, with no pipes.
pub(crate) fn host_command(program: &str) -> Arc<dyn Command> {
    let child = tokio::process::Command::new(program)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    Arc::new(HostCommand {
        pid: Mutex::new(child.id()),
        child: tokio::sync::Mutex::new(child),
    })
}

/// A command as a plain child process.
#[derive(Debug)]
pub(crate) struct HostCommand {
    pid: Mutex<Option<u32>>,
    child: tokio::sync::Mutex<tokio::process::Child>,
}

impl Command for HostCommand {
    fn wait(&self) -> BoxFuture<'_, std::io::Result<i32>> {
        Box::pin(async move {
            let status = self.child.lock().await.wait().await?;
            *self.pid.lock().unwrap() = None;
            Ok(crate::local_backend::exit_code(status))
        })
    }

    fn signal(&self, signal: Signal) -> std::io::Result<()> {
        let pid = self
            .pid
            .lock()
            .unwrap()
            .and_then(|p| rustix::process::Pid::from_raw(p as i32));
        let pid = pid.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "ended"))?;
        Ok(rustix::process::kill_process(pid, signal)?)
    }

    fn kill_all(&self) -> BoxFuture<'_, SandboxResult<()>> {
        Box::pin(async move {
            let _ = self.signal(Signal::KILL);
            Ok(())
        })
    }

    fn finish(&self) {}
}
