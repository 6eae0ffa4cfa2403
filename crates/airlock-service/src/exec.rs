//! Running commands: one event pump serves both the streamed and the buffered answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use airlock_api::exec::b64;
use airlock_api::{ExecRequest, ExecResult, TerminalSize};
use airlock_sandbox::{ExecPlan, WindowSize};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::Service;
use super::validate::{self, CheckedExec};
use crate::ApiError;
use crate::backend::Spawned;
use crate::caps::Work;
use crate::{Need, Principal};

/// Events of one exec, in order; the last is `Exit` (or `Error`).
pub type ExecEvents = mpsc::Receiver<ProcessEvent>;

/// What a running command does, as raw bytes: each face picks its encoding (JSON text or
/// base64, protobuf bytes).
#[derive(Debug, Clone, PartialEq)]
pub enum ProcessEvent {
    /// A process that outlives its request started: its number. First of its events.
    Start {
        /// See [`airlock_api::ProcessInfo::pid`].
        pid: u32,
    },
    /// Bytes written to stdout.
    Stdout(Bytes),
    /// Bytes written to stderr.
    Stderr(Bytes),
    /// The command ended; always the last event.
    Exit {
        /// Exit status; 128+N when killed by signal N; 124 on timeout.
        exit_code: i32,
        /// The timeout ran out and the tree was killed.
        timed_out: bool,
    },
    /// The daemon could not follow the command.
    Error {
        /// What went wrong.
        message: String,
    },
}

/// Where a command's standard input comes from: the request's buffer, or a stream the
/// client keeps sending (closed when the stream ends).
pub type ProcessInput = Option<crate::ByteStream>;

/// Bytes read from a pipe at a time.
const CHUNK: usize = 64 * 1024;
/// Events buffered ahead of a slow reader; past this the command blocks on its pipe,
/// so a slow client costs bounded memory.
const QUEUE: usize = 16;
/// Once the command exits, how long we keep draining pipes that a background process
/// it left behind may hold open.
const DRAIN_GRACE: Duration = Duration::from_millis(50);
/// Buffered answers keep at most this much of each stream.
const BUFFER_CAP: usize = 16 * 1024 * 1024;
/// Exit code reported for a timeout, as coreutils' `timeout` does.
pub(crate) const TIMED_OUT: i32 = 124;

impl Service {
    /// Starts a command; its output and exit arrive as events.
    pub async fn exec_stream(
        &self,
        caller: &Principal,
        id: &str,
        req: ExecRequest,
        stdin: ProcessInput,
    ) -> Result<ExecEvents, ApiError> {
        let audit = self.audit(caller, "exec.start", Some(id));
        let result = async {
            let Launched {
                spawned,
                checked,
                slot,
                ..
            } = self.launch(caller, id, &req, None).await?;
            let (tx, rx) = mpsc::channel(QUEUE);
            let pumped = pump(spawned, checked, stdin, tx);
            // The tenant's slot is held until the command has exited and been reaped.
            tokio::spawn(async move {
                pumped.await;
                drop(slot);
            });
            Ok(rx)
        }
        .await;
        if result.is_ok() {
            self.metrics.exec_started();
        }
        audit.done(result)
    }

    /// Checks a command, takes a slot of the tenant's exec cap, and spawns it in the
    /// sandbox (which must be running), with pipes or with a terminal of `terminal`'s
    /// size; shared by exec and by processes that outlive their request.
    pub(crate) async fn launch(
        &self,
        caller: &Principal,
        id: &str,
        req: &ExecRequest,
        terminal: Option<TerminalSize>,
    ) -> Result<Launched, ApiError> {
        let checked = validate::exec(req)?;
        if let Some(size) = terminal {
            validate::terminal(size)?;
        }
        let entry = self.entry(caller, id, Need::Write)?;
        let slot = self.slot(id, Work::Exec)?;
        let record = entry.record();
        let leaf = format!("exec-{}", entry.exec_seq.fetch_add(1, Ordering::Relaxed));
        let mut env = environment(id, &record.env, &req.env);
        if terminal.is_some() && !env.iter().any(|(k, _)| k == "TERM") {
            env.push(("TERM".into(), "xterm-256color".into()));
        }
        let plan = ExecPlan {
            argv: checked.argv.clone(),
            env,
            cwd: checked.cwd.clone(),
            terminal: terminal.map(|t| WindowSize {
                cols: t.cols,
                rows: t.rows,
            }),
        };
        // Held while spawning so a concurrent stop cannot tear the groups down under us.
        let life = entry.life.lock().await;
        let init = life
            .init
            .clone()
            .ok_or_else(|| not_running(id, record.state))?;
        let spawned = init.spawn(&leaf, plan).await?;
        drop(life);
        Ok(Launched {
            entry,
            spawned,
            checked,
            slot,
        })
    }

    /// Runs a command to the end and answers with all of its output.
    pub async fn exec(
        &self,
        caller: &Principal,
        id: &str,
        req: ExecRequest,
    ) -> Result<ExecResult, ApiError> {
        let mut events = self.exec_stream(caller, id, req, None).await?;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut result = ExecResult::default();
        while let Some(event) = events.recv().await {
            match event {
                ProcessEvent::Stdout(chunk) => result.truncated |= append_capped(&mut out, &chunk),
                ProcessEvent::Stderr(chunk) => result.truncated |= append_capped(&mut err, &chunk),
                ProcessEvent::Exit {
                    exit_code,
                    timed_out,
                } => {
                    result.exit_code = exit_code;
                    result.timed_out = timed_out;
                }
                ProcessEvent::Error { message } => {
                    return Err(ApiError::internal("running command", message));
                }
                ProcessEvent::Start { .. } => {}
            }
        }
        (result.stdout, result.stdout_b64) = text_and_exact(out);
        (result.stderr, result.stderr_b64) = text_and_exact(err);
        Ok(result)
    }
}

/// Why a command cannot start in a sandbox in `state`.
pub(crate) fn not_running(id: &str, state: airlock_api::SandboxState) -> ApiError {
    if state == airlock_api::SandboxState::Pending {
        return ApiError::conflict(format!(
            "sandbox {id} is still pending; wait until it is running"
        ));
    }
    ApiError::conflict(format!(
        "sandbox {id} is {state:?}, not running; start it first"
    ))
}

/// A command just spawned, with what its pump needs.
pub(crate) struct Launched {
    /// The sandbox it runs in.
    pub entry: Arc<crate::Entry>,
    /// Its streams and its handle.
    pub spawned: Spawned,
    pub checked: CheckedExec,
    /// The tenant's exec slot, held until the command has exited.
    pub slot: crate::caps::Slot,
}

/// The command's environment: sane defaults, then the sandbox's, then the request's.
fn environment(
    id: &str,
    sandbox: &BTreeMap<String, String>,
    request: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = [
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("HOME", "/home/user"),
        ("USER", "user"),
        ("LOGNAME", "user"),
        ("SHELL", "/bin/sh"),
        ("LANG", "C.UTF-8"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.insert("HOSTNAME".into(), format!("sandbox-{id}"));
    env.extend(sandbox.clone());
    env.extend(request.clone());
    env.into_iter().collect()
}

async fn pump(
    spawned: Spawned,
    exec: CheckedExec,
    input: ProcessInput,
    tx: mpsc::Sender<ProcessEvent>,
) {
    let Spawned {
        stdin,
        stdout,
        stderr,
        command,
        ..
    } = spawned;
    let feeder = tokio::spawn(async move {
        let Some(mut pipe) = stdin else { return };
        // A command that never reads its input must not make us fail.
        let _ = pipe.write_all(&exec.stdin).await;
        if let Some(mut input) = input {
            while let Some(Ok(chunk)) = input.next().await {
                if pipe.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        }
        // Dropping the pipe closes the command's stdin.
    });
    // Each chunk waits for room in the queue: a slow reader slows the command.
    let send = |tx: mpsc::Sender<ProcessEvent>| {
        move |event| {
            let tx = tx.clone();
            async move { tx.send(event).await.is_ok() }
        }
    };
    let readers = vec![
        stdout.map(|out| tokio::spawn(read_pipe(out, ProcessEvent::Stdout, send(tx.clone())))),
        stderr.map(|err| tokio::spawn(read_pipe(err, ProcessEvent::Stderr, send(tx.clone())))),
    ];
    let deadline = exec
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(Duration::MAX);
    let outcome = tokio::select! {
        status = command.wait() => Ended::Exited(status),
        _ = tokio::time::sleep(deadline) => Ended::TimedOut,
        _ = tx.closed() => Ended::Abandoned,
    };
    let timed_out = matches!(outcome, Ended::TimedOut);
    let exit = match outcome {
        Ended::Exited(status) => status,
        Ended::TimedOut | Ended::Abandoned => {
            let _ = command.kill_all().await;
            let _ = command.wait().await;
            Ok(TIMED_OUT)
        }
    };
    feeder.abort();
    drain(readers).await;
    let _ = tx.send(last_event(exit, timed_out)).await;
    // The events end here: an exec's answer need not wait for its cgroup's upkeep.
    drop(tx);
    command.finish();
}

/// Lets the output readers finish once the command has exited. A background process it
/// left may still hold a pipe; a reader still reading after a short grace is stopped,
/// so the events can end (the process itself runs on, inside the sandbox).
pub(crate) async fn drain(readers: Vec<Option<tokio::task::JoinHandle<()>>>) {
    for mut reader in readers.into_iter().flatten() {
        if tokio::time::timeout(DRAIN_GRACE, &mut reader)
            .await
            .is_err()
        {
            reader.abort();
        }
    }
}

/// A command's last event: its exit, or why it could not be followed.
pub(crate) fn last_event(exit: std::io::Result<i32>, timed_out: bool) -> ProcessEvent {
    match exit {
        Ok(exit_code) => ProcessEvent::Exit {
            exit_code,
            timed_out,
        },
        Err(err) => ProcessEvent::Error {
            message: format!("waiting for the command: {err}"),
        },
    }
}

enum Ended {
    Exited(std::io::Result<i32>),
    TimedOut,
    Abandoned,
}

/// Reads a pipe in chunks, handing each, wrapped, to `deliver` until the pipe ends or
/// `deliver` answers false.
pub(crate) async fn read_pipe<F>(
    mut pipe: impl AsyncRead + Unpin,
    wrap: fn(Bytes) -> ProcessEvent,
    mut deliver: impl FnMut(ProcessEvent) -> F,
) where
    F: std::future::Future<Output = bool>,
{
    let mut buf = vec![0u8; CHUNK];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if !deliver(wrap(Bytes::copy_from_slice(&buf[..n]))).await {
                    return;
                }
            }
        }
    }
}

/// Appends up to the cap; true when something was dropped.
fn append_capped(into: &mut Vec<u8>, bytes: &[u8]) -> bool {
    let room = BUFFER_CAP.saturating_sub(into.len());
    into.extend_from_slice(&bytes[..bytes.len().min(room)]);
    bytes.len() > room
}

/// Text for people, and the exact bytes in base64 when the text could not hold them.
fn text_and_exact(bytes: Vec<u8>) -> (String, Option<String>) {
    match String::from_utf8(bytes) {
        Ok(text) => (text, None),
        Err(err) => {
            let bytes = err.into_bytes();
            (
                String::from_utf8_lossy(&bytes).into_owned(),
                Some(b64(&bytes)),
            )
        }
    }
}
