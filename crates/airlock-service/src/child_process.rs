//! A command run as a host process of the test backend's: one task waits for it while others
//! may signal it, and a signal never reaches its pid once it has been reaped (the number
//! may belong to someone else by then).

use std::sync::{Arc, Mutex};

use rustix::process::Signal;
use tokio::process::Child;

use crate::backend::{Command, CommandTerminal, Spawned};

#[derive(Debug)]
pub(crate) struct ChildProcess {
    /// The host's number for it while it runs; `None` once it was waited for.
    pid: Mutex<Option<u32>>,
    child: tokio::sync::Mutex<Child>,
}

impl ChildProcess {
    /// Its exit code, or 128 + the signal that ended it, as a shell reports it.
    pub(crate) async fn wait(&self) -> std::io::Result<i32> {
        let status = self.child.lock().await.wait().await?;
        *self.pid.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(airlock_sandbox::shell_exit_code(status))
    }

    /// Sends one signal; `NotFound` once it has ended.
    pub(crate) fn signal(&self, signal: Signal) -> std::io::Result<()> {
        let pid = *self.pid.lock().unwrap_or_else(|p| p.into_inner());
        let pid = pid
            .and_then(|pid| rustix::process::Pid::from_raw(pid as i32))
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "it has ended"))?;
        Ok(rustix::process::kill_process(pid, signal)?)
    }
}

/// A child just started, as the service takes it: its pipes (those it has), its terminal
/// if it was given one, and the handle `command` makes from the process.
pub(crate) fn spawned(
    mut child: Child,
    terminal: Option<Arc<dyn CommandTerminal>>,
    command: impl FnOnce(ChildProcess) -> Arc<dyn Command>,
) -> Spawned {
    Spawned {
        stdin: child.stdin.take().map(|i| Box::new(i) as _),
        stdout: child.stdout.take().map(|o| Box::new(o) as _),
        stderr: child.stderr.take().map(|e| Box::new(e) as _),
        terminal,
        command: command(ChildProcess {
            pid: Mutex::new(child.id()),
            child: tokio::sync::Mutex::new(child),
        }),
    }
}
