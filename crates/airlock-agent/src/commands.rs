//! The agent's commands: started in the pod with pipes, each leading its own process
//! group so that everything it started can be ended with it, or with a terminal, each
//! leading its own session with the terminal as its controlling one. A command's streams, its
//! exit and its signals are separate calls, so each stream is one plain HTTP/1.1 body
//! and none waits on another.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use rustix::process::{Pid, Signal};
use tokio::io::AsyncRead;
use tokio::process::{ChildStderr, ChildStdin, ChildStdout};
use tokio::sync::watch;
use tokio_util::io::{ReaderStream, StreamReader};

use airlock_sandbox::{Terminal, WindowSize};

use crate::calls::{self, OnCommand, Spawn, StopAll};

/// The commands started through this agent and not yet finished with.
#[derive(Debug)]
pub(crate) struct Commands {
    root: PathBuf,
    /// Run commands chrooted into `root` (a sidecar's view of another container).
    chroot: bool,
    running: Mutex<HashMap<String, Arc<Started>>>,
}

#[derive(Debug)]
struct Started {
    /// The command's pid, which is also its process group's (and, with a terminal, its
    /// session's) id.
    pid: Pid,
    /// Its terminal, when it was given one instead of pipes.
    terminal: Option<Terminal>,
    stdin: Mutex<Option<ChildStdin>>,
    stdout: Mutex<Option<ChildStdout>>,
    stderr: Mutex<Option<ChildStderr>>,
    /// Its exit code (or 128 + signal) once it has ended.
    exit: watch::Receiver<Option<i32>>,
}

impl Started {
    fn ended(&self) -> bool {
        self.exit.borrow().is_some()
    }
}

type Answer = Result<Response, Box<Response>>;

fn refuse(status: StatusCode, message: impl Into<String>) -> Box<Response> {
    Box::new((status, message.into()).into_response())
}

impl Commands {
    pub(crate) fn new(root: &Path, chroot: bool) -> Self {
        Self {
            root: root.to_owned(),
            chroot,
            running: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, name: &str) -> Result<Arc<Started>, Box<Response>> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| refuse(StatusCode::NOT_FOUND, format!("no command {name:?}")))
    }

    /// Runs call `call` with arguments `text` (and `body`, for stdin).
    pub(crate) async fn dispatch(&self, call: &str, text: &str, body: Body) -> Answer {
        let args = |e: String| refuse(StatusCode::BAD_REQUEST, e);
        match call {
            "spawn" => self.spawn(calls::decode(text).map_err(args)?),
            "stop_all" => {
                let a: StopAll = calls::decode(text).map_err(args)?;
                self.stop_all(Duration::from_millis(a.grace_ms)).await;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            _ => {
                let a: OnCommand = calls::decode(text).map_err(args)?;
                self.on_command(call, a, body).await
            }
        }
    }

    fn spawn(&self, spawn: Spawn) -> Answer {
        let Some(program) = spawn.argv.first() else {
            return Err(refuse(StatusCode::BAD_REQUEST, "an empty command"));
        };
        let cwd = self.root.join(spawn.cwd.as_str().trim_start_matches('/'));
        if !cwd.is_dir() {
            return Err(refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the working directory {} is not a directory", spawn.cwd),
            ));
        }
        let mut command = tokio::process::Command::new(program);
        command.args(&spawn.argv[1..]).env_clear().envs(spawn.env);
        if self.chroot {
            let root = CString::new(self.root.as_os_str().as_bytes()).map_err(bad_path)?;
            let inside = CString::new(spawn.cwd.as_str()).map_err(bad_path)?;
            // SAFETY: between fork and exec the child only changes its root and its
            // working directory: async-signal-safe syscalls on strings made beforehand.
            unsafe {
                command.pre_exec(move || {
                    if libc::chroot(root.as_ptr()) < 0 || libc::chdir(inside.as_ptr()) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        } else {
            command.current_dir(&cwd);
        }
        let failed = |e: std::io::Error| {
            refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("starting {program:?}: {e}"),
            )
        };
        let terminal = match spawn.terminal {
            Some((cols, rows)) => {
                let (terminal, replica) =
                    Terminal::open(WindowSize { cols, rows }).map_err(failed)?;
                let std = |fd: &std::os::fd::OwnedFd| fd.try_clone().map(Stdio::from);
                command
                    .stdin(std(&replica).map_err(failed)?)
                    .stdout(std(&replica).map_err(failed)?)
                    .stderr(Stdio::from(replica));
                // SAFETY: between fork and exec the child only makes itself a session
                // leader and takes its stdin (the terminal) as its controlling terminal:
                // two async-signal-safe syscalls, no allocation.
                unsafe {
                    command.pre_exec(|| {
                        rustix::process::setsid()?;
                        if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                Some(terminal)
            }
            None => {
                command
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .process_group(0);
                None
            }
        };
        let mut child = command.spawn().map_err(failed)?;
        let pid = child
            .id()
            .and_then(|id| Pid::from_raw(id as i32))
            .ok_or_else(|| refuse(StatusCode::INTERNAL_SERVER_ERROR, "the command has no pid"))?;
        let (tell, exit) = watch::channel(None);
        let started = Arc::new(Started {
            pid,
            terminal,
            stdin: Mutex::new(child.stdin.take()),
            stdout: Mutex::new(child.stdout.take()),
            stderr: Mutex::new(child.stderr.take()),
            exit,
        });
        tokio::spawn(async move {
            let code = child
                .wait()
                .await
                .map_or(255, airlock_sandbox::shell_exit_code);
            tell.send_replace(Some(code));
        });
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.insert(spawn.name.clone(), started).is_some() {
            tracing::warn!(name = %spawn.name, "a command's name was used twice");
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    }

    async fn on_command(&self, call: &str, a: OnCommand, body: Body) -> Answer {
        let started = self.get(&a.name)?;
        let gone = || refuse(StatusCode::GONE, "that stream was already taken");
        match call {
            "stdin" => {
                let Some(mut stdin) = take(&started.stdin) else {
                    return Err(gone());
                };
                Ok(pour(body, &mut stdin).await)
            }
            "terminal_output" => {
                let terminal = started.terminal.as_ref().ok_or_else(no_terminal)?;
                Ok(stream(terminal.io()))
            }
            "terminal_input" => {
                let terminal = started.terminal.as_ref().ok_or_else(no_terminal)?;
                Ok(pour(body, &mut terminal.io()).await)
            }
            "resize" => {
                let terminal = started.terminal.as_ref().ok_or_else(no_terminal)?;
                let (cols, rows) = a
                    .size
                    .ok_or_else(|| refuse(StatusCode::BAD_REQUEST, "a resize needs `size`"))?;
                terminal
                    .resize(WindowSize { cols, rows })
                    .map_err(|e| refuse(StatusCode::GONE, e.to_string()))?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            "stdout" => take(&started.stdout).map(stream).ok_or_else(gone),
            "stderr" => take(&started.stderr).map(stream).ok_or_else(gone),
            "wait" => {
                let mut exit = started.exit.clone();
                let code = exit
                    .wait_for(Option::is_some)
                    .await
                    .map(|c| c.unwrap_or(255))
                    .unwrap_or(255);
                Ok(axum::Json(code).into_response())
            }
            "signal" => {
                if started.ended() {
                    return Err(refuse(StatusCode::GONE, "the command has ended"));
                }
                let signal = a
                    .signal
                    .and_then(Signal::from_named_raw)
                    .ok_or_else(|| refuse(StatusCode::BAD_REQUEST, "no such signal"))?;
                rustix::process::kill_process(started.pid, signal)
                    .map_err(|e| refuse(StatusCode::GONE, e.to_string()))?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            "kill_all" => {
                let _ = rustix::process::kill_process_group(started.pid, Signal::KILL);
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            "finish" => {
                self.running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&a.name);
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            other => Err(refuse(
                StatusCode::NOT_FOUND,
                format!("no command call {other:?}"),
            )),
        }
    }

    /// Asks every command's group to end, then kills what is left after `grace`. They
    /// stay known until finished, so their exit can still be asked for.
    async fn stop_all(&self, grace: Duration) {
        let all: Vec<Arc<Started>> = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for started in &all {
            let _ = rustix::process::kill_process_group(started.pid, Signal::TERM);
        }
        let ended = futures_util::future::join_all(all.iter().map(|s| {
            let mut exit = s.exit.clone();
            async move { exit.wait_for(Option::is_some).await.map(drop) }
        }));
        let _ = tokio::time::timeout(grace, ended).await;
        for started in &all {
            let _ = rustix::process::kill_process_group(started.pid, Signal::KILL);
        }
    }
}

fn bad_path(_: std::ffi::NulError) -> Box<Response> {
    refuse(StatusCode::BAD_REQUEST, "a path holds a NUL byte")
}

fn no_terminal() -> Box<Response> {
    refuse(StatusCode::CONFLICT, "the command has no terminal")
}

/// Copies a request's body into a command's input. The command may stop reading (it
/// ended, or closed its input): not a failure.
async fn pour(body: Body, into: &mut (impl tokio::io::AsyncWrite + Unpin)) -> Response {
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let _ = tokio::io::copy(&mut StreamReader::new(stream), into).await;
    StatusCode::NO_CONTENT.into_response()
}

fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock().unwrap_or_else(|p| p.into_inner()).take()
}

fn stream(pipe: impl AsyncRead + Send + 'static) -> Response {
    Body::from_stream(ReaderStream::new(pipe)).into_response()
}
