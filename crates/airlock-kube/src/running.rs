//! A sandbox whose pod runs: its commands go through the pod's agent.

use std::sync::Arc;
use std::time::Duration;

use airlock_agent::calls::Spawn;
use airlock_agent::commands_client::{AgentCommands, RemoteCommand, RemoteTerminal};
use airlock_fs::SandboxPath;
use airlock_sandbox::{ExecPlan, SandboxError, SandboxResult, WindowSize};
use airlock_service::{Command, CommandTerminal, Running, Spawned};
use futures_util::future::BoxFuture;
use rustix::process::Signal;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::Handle;

use crate::block::wait;

/// How often the gateway looks whether the agent still answers, and how many misses in a
/// row mean the pod is gone.
const HEARTBEAT: Duration = Duration::from_secs(2);
const MISSES: u32 = 3;

#[derive(Debug)]
pub(crate) struct KubeRunning {
    commands: AgentCommands,
    runtime: Handle,
    /// This gateway's prefix on command names: several gateways start commands in one
    /// pod, each numbering its own.
    gateway: String,
}

impl KubeRunning {
    pub(crate) fn new(commands: AgentCommands, runtime: Handle, gateway: &str) -> Self {
        Self {
            commands,
            runtime,
            gateway: gateway.to_owned(),
        }
    }
}

fn failed(action: &'static str) -> impl FnOnce(std::io::Error) -> SandboxError {
    move |e| SandboxError::new(action, e)
}

impl Running for KubeRunning {
    fn exited(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut misses = 0;
            while misses < MISSES {
                tokio::time::sleep(HEARTBEAT).await;
                if self.commands.alive(HEARTBEAT).await {
                    misses = 0;
                } else {
                    misses += 1;
                }
            }
        })
    }

    /// The pod keeps running (a pod cannot pause); its commands end, its files stay.
    fn stop(&self, grace: Duration) -> BoxFuture<'_, SandboxResult<()>> {
        Box::pin(async move {
            self.commands
                .stop_all(grace)
                .await
                .map_err(failed("stopping the sandbox's commands"))
        })
    }

    fn spawn<'a>(&'a self, name: &'a str, plan: ExecPlan) -> BoxFuture<'a, SandboxResult<Spawned>> {
        Box::pin(async move {
            let cwd = SandboxPath::parse(&plan.cwd).map_err(|e| {
                SandboxError::new("starting a command", std::io::Error::other(e.to_string()))
            })?;
            let spawn = Spawn {
                name: format!("{}-{name}", self.gateway),
                argv: plan.argv,
                env: plan.env,
                cwd,
                terminal: plan.terminal.map(|t| (t.cols, t.rows)),
            };
            let child = self
                .commands
                .spawn(&spawn)
                .await
                .map_err(failed("starting a command"))?;
            let terminal = child.terminal.map(|remote| {
                Arc::new(KubeTerminal {
                    remote,
                    runtime: self.runtime.clone(),
                }) as Arc<dyn CommandTerminal>
            });
            Ok(Spawned {
                stdin: child.stdin,
                stdout: child.stdout,
                stderr: child.stderr,
                terminal,
                command: Arc::new(KubeCommand {
                    remote: child.handle,
                    runtime: self.runtime.clone(),
                }),
            })
        })
    }
}

/// A command in a pod.
#[derive(Debug)]
struct KubeCommand {
    remote: RemoteCommand,
    runtime: Handle,
}

impl Command for KubeCommand {
    fn wait(&self) -> BoxFuture<'_, std::io::Result<i32>> {
        Box::pin(self.remote.wait())
    }

    /// Sent without waiting for the agent's answer: the caller only needs to know that
    /// the command had not ended yet.
    fn signal(&self, signal: Signal) -> std::io::Result<()> {
        if self.remote.has_ended() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "it has ended",
            ));
        }
        let remote = self.remote.clone();
        self.runtime.spawn(async move {
            let _ = remote.signal(signal.as_raw()).await;
        });
        Ok(())
    }

    fn kill_all(&self) -> BoxFuture<'_, SandboxResult<()>> {
        Box::pin(async move {
            self.remote
                .kill_all()
                .await
                .map_err(failed("killing a command"))
        })
    }

    fn finish(&self) {
        let remote = self.remote.clone();
        self.runtime.spawn(async move {
            let _ = remote.finish().await;
        });
    }
}

/// A command's terminal in a pod.
#[derive(Debug)]
struct KubeTerminal {
    remote: RemoteTerminal,
    runtime: Handle,
}

impl CommandTerminal for KubeTerminal {
    /// Waited for, so what is typed after a resize reaches a command that already has
    /// the new size (the kernel in the pod tells it).
    fn resize(&self, size: WindowSize) -> std::io::Result<()> {
        wait(&self.runtime, self.remote.resize(size.cols, size.rows))
    }

    fn output(&self) -> Box<dyn AsyncRead + Send + Unpin> {
        self.remote.output()
    }

    fn input(&self) -> Box<dyn AsyncWrite + Send + Unpin> {
        self.remote.input()
    }
}
