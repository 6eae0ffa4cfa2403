//! Processes that outlive the request that started them (E2B's background commands):
//! each sandbox keeps a registry of them. A process runs until it exits, is signalled,
//! or its sandbox stops, whoever is or is not listening. Its output goes to a bounded
//! buffer (the last [`BUFFER_BYTES`] per process, for a client that reconnects) and to
//! whoever is connected now; a listener too slow to keep up loses events rather than
//! stalling the process, and is told so. Ended processes are kept a while
//! ([`LINGER`], at most [`KEEP_ENDED`] of them) so their exit status can be read.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_api::{ExecRequest, ProcessInfo, TerminalSize};
use airlock_sandbox::WindowSize;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc};

use crate::backend::{Command, CommandTerminal, Spawned};
use crate::exec::{Launched, drain, last_event, read_pipe};
use crate::record::{now_secs, rfc3339};
use crate::{ApiError, Need, Principal, ProcessEvent, Service};

/// Output kept per process for clients that connect later.
const BUFFER_BYTES: usize = 1 << 20;
/// Events queued for one live listener; past this it loses events (bounded memory: at
/// most this many chunks of at most 64 KiB, a pipe read).
const LISTENER_QUEUE: usize = 256;
/// How long an ended process stays listed.
const LINGER: Duration = Duration::from_secs(600);
/// The most ended processes a sandbox keeps.
const KEEP_ENDED: usize = 64;
/// Stdin chunks queued for a process before `send_input` waits.
const STDIN_QUEUE: usize = 64;

/// Which process: by number, or by the tag it was started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The daemon's number.
    Pid(u32),
    /// The caller's tag.
    Tag(String),
}

/// How a process starts, beyond its command.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// The caller's name for it, to find it by later.
    pub tag: Option<String>,
    /// Keep stdin open after the request's own input, for `send_input`.
    pub keep_stdin: bool,
    /// Run it with a terminal of this size instead of pipes: its stdout and stderr
    /// arrive together as `Stdout`, and its stdin stays open.
    pub terminal: Option<TerminalSize>,
}

/// The events of one process, as a stream that ends after `Exit`.
pub type ProcessEvents = std::pin::Pin<Box<dyn Stream<Item = ProcessEvent> + Send>>;

/// Signals a caller may send.
const SIGNALS: [(&str, rustix::process::Signal); 9] = [
    ("SIGTERM", rustix::process::Signal::TERM),
    ("SIGKILL", rustix::process::Signal::KILL),
    ("SIGINT", rustix::process::Signal::INT),
    ("SIGHUP", rustix::process::Signal::HUP),
    ("SIGQUIT", rustix::process::Signal::QUIT),
    ("SIGUSR1", rustix::process::Signal::USR1),
    ("SIGUSR2", rustix::process::Signal::USR2),
    ("SIGSTOP", rustix::process::Signal::STOP),
    ("SIGCONT", rustix::process::Signal::CONT),
];

/// One sandbox's processes.
#[derive(Debug, Default)]
pub struct Registry {
    next: AtomicU32,
    table: Mutex<BTreeMap<u32, Arc<Process>>>,
}

/// What stdin's feeder is told.
#[derive(Debug)]
enum Input {
    Data(Bytes),
    Close,
}

#[derive(Debug)]
struct Process {
    pid: u32,
    tag: Option<String>,
    cmd: Vec<String>,
    cwd: String,
    started_at: u64,
    /// The command, for signals.
    command: Arc<dyn Command>,
    stdin: mpsc::Sender<Input>,
    /// Its terminal, when it has one.
    terminal: Option<ProcessTerminal>,
    state: Mutex<State>,
    live: broadcast::Sender<ProcessEvent>,
}

/// A process's terminal: the daemon's side while the process runs (closed when it ends,
/// which hangs up on anything it left behind), and the size last set.
#[derive(Debug)]
struct ProcessTerminal {
    side: Mutex<Option<Arc<dyn CommandTerminal>>>,
    size: Mutex<TerminalSize>,
}

#[derive(Debug, Default)]
struct State {
    /// The latest output, oldest first, at most [`BUFFER_BYTES`].
    buffer: VecDeque<ProcessEvent>,
    buffered: usize,
    /// The exit event, once it ended, and when.
    ended: Option<(ProcessEvent, Instant)>,
}

impl Process {
    fn info(&self) -> ProcessInfo {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let exit_code = match &state.ended {
            Some((ProcessEvent::Exit { exit_code, .. }, _)) => Some(*exit_code),
            _ => None,
        };
        ProcessInfo {
            pid: self.pid,
            tag: self.tag.clone(),
            cmd: self.cmd.clone(),
            cwd: self.cwd.clone(),
            running: state.ended.is_none(),
            exit_code,
            started_at: rfc3339(self.started_at),
            terminal: self
                .terminal
                .as_ref()
                .map(|t| *t.size.lock().unwrap_or_else(|p| p.into_inner())),
        }
    }

    /// Keeps an event and hands it to whoever listens.
    fn record(&self, event: ProcessEvent) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &event {
            ProcessEvent::Stdout(bytes) | ProcessEvent::Stderr(bytes) => {
                state.buffered += bytes.len();
                state.buffer.push_back(event.clone());
                while state.buffered > BUFFER_BYTES {
                    match state.buffer.pop_front() {
                        Some(ProcessEvent::Stdout(b) | ProcessEvent::Stderr(b)) => {
                            state.buffered -= b.len();
                        }
                        Some(_) => {}
                        None => break,
                    }
                }
            }
            _ => state.ended = Some((event.clone(), Instant::now())),
        }
        // Sent under the lock, so a listener that subscribes under it misses nothing.
        let _ = self.live.send(event);
    }

    /// The events from now on (with the buffered output first when `replay`), ending
    /// with the exit.
    fn listen(&self, replay: bool) -> ProcessEvents {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let start = ProcessEvent::Start { pid: self.pid };
        let mut first = vec![start];
        if replay {
            first.extend(state.buffer.iter().cloned());
        }
        if let Some((exit, _)) = &state.ended {
            first.push(exit.clone());
            return Box::pin(futures_util::stream::iter(first));
        }
        let receiver = self.live.subscribe();
        drop(state);
        // Ends right after the process's last event: the sender lives on in the
        // registry, so the channel itself would never close.
        let until_exit =
            futures_util::stream::unfold((receiver, false), |(mut rx, done)| async move {
                if done {
                    return None;
                }
                match rx.recv().await {
                    Ok(event) => {
                        let last = !matches!(
                            event,
                            ProcessEvent::Stdout(_)
                                | ProcessEvent::Stderr(_)
                                | ProcessEvent::Start { .. }
                        );
                        Some((event, (rx, last)))
                    }
                    Err(broadcast::error::RecvError::Lagged(lost)) => {
                        let message =
                            format!("{lost} output events were lost: this listener fell behind");
                        Some((ProcessEvent::Error { message }, (rx, false)))
                    }
                    Err(broadcast::error::RecvError::Closed) => None,
                }
            });
        Box::pin(futures_util::stream::iter(first).chain(until_exit))
    }
}

impl Registry {
    fn find(&self, selector: &Selector) -> Result<Arc<Process>, ApiError> {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let found = match selector {
            Selector::Pid(pid) => table.get(pid).cloned(),
            // The newest process with that tag.
            Selector::Tag(tag) => table
                .values()
                .rev()
                .find(|p| p.tag.as_deref() == Some(tag.as_str()))
                .cloned(),
        };
        found.ok_or_else(|| ApiError::not_found(format!("no process {selector:?}")))
    }

    /// Forgets ended processes past their linger, and the oldest beyond the cap.
    fn prune(table: &mut BTreeMap<u32, Arc<Process>>) {
        let ended: Vec<(u32, Instant)> = table
            .values()
            .filter_map(|p| {
                let state = p.state.lock().unwrap_or_else(|e| e.into_inner());
                state.ended.as_ref().map(|(_, at)| (p.pid, *at))
            })
            .collect();
        let excess = ended.len().saturating_sub(KEEP_ENDED);
        for (n, (pid, at)) in ended.into_iter().enumerate() {
            if n < excess || at.elapsed() > LINGER {
                table.remove(&pid);
            }
        }
    }
}

impl Service {
    /// Starts a process that runs on when the caller goes away. The answer's events
    /// begin with `Start` and its output from the first byte.
    pub async fn start_process(
        &self,
        caller: &Principal,
        id: &str,
        req: ExecRequest,
        options: StartOptions,
    ) -> Result<(ProcessInfo, ProcessEvents), ApiError> {
        let audit = self.audit(caller, "process.start", Some(id));
        let result = async {
            let StartOptions {
                tag,
                keep_stdin,
                terminal: size,
            } = options;
            if let Some(tag) = &tag
                && (tag.is_empty() || tag.len() > 256 || tag.contains('\0'))
            {
                return Err(ApiError::bad_request("a tag is 1 to 256 bytes, no NUL"));
            }
            let Launched {
                entry,
                spawned,
                checked,
                slot,
            } = self.launch(caller, id, &req, size).await?;
            let Spawned {
                stdin: pipe_in,
                stdout,
                stderr,
                terminal,
                command,
            } = spawned;
            let registry = entry.processes.clone();
            let (stdin, inputs) = mpsc::channel(STDIN_QUEUE);
            let process = Arc::new(Process {
                pid: registry.next.fetch_add(1, Ordering::Relaxed) + 1,
                tag,
                cmd: checked.argv.clone(),
                cwd: checked.cwd.clone(),
                started_at: now_secs(),
                command: command.clone(),
                stdin,
                terminal: terminal
                    .clone()
                    .zip(size)
                    .map(|(side, size)| ProcessTerminal {
                        side: Mutex::new(Some(side)),
                        size: Mutex::new(size),
                    }),
                state: Mutex::default(),
                live: broadcast::channel(LISTENER_QUEUE).0,
            });
            let events = process.listen(true);
            {
                let mut table = registry.table.lock().unwrap_or_else(|p| p.into_inner());
                Registry::prune(&mut table);
                table.insert(process.pid, process.clone());
            }
            let (input, outputs) = streams(pipe_in, stdout, stderr, terminal.as_deref());
            // A terminal's input is its user's typing: it stays open.
            let keep_stdin = keep_stdin || terminal.is_some();
            let deadline = checked.timeout_ms.map(Duration::from_millis);
            let first_input = Bytes::from(checked.stdin);
            let proc = process.clone();
            tokio::spawn(async move {
                let feeder = tokio::spawn(feed(input, first_input, inputs, keep_stdin));
                let record = |proc: Arc<Process>| {
                    move |event| {
                        proc.record(event);
                        std::future::ready(true)
                    }
                };
                let readers = outputs
                    .into_iter()
                    .map(|(out, wrap)| {
                        Some(tokio::spawn(read_pipe(out, wrap, record(proc.clone()))))
                    })
                    .collect();
                let waited =
                    tokio::time::timeout(deadline.unwrap_or(Duration::MAX), command.wait()).await;
                let (status, timed_out) = match waited {
                    Ok(status) => (status, false),
                    Err(_) => {
                        let _ = command.kill_all().await;
                        let _ = command.wait().await;
                        (Ok(crate::exec::TIMED_OUT), true)
                    }
                };
                feeder.abort();
                drain(readers).await;
                if let Some(terminal) = &proc.terminal {
                    terminal
                        .side
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take();
                }
                proc.record(last_event(status, timed_out));
                command.finish();
                drop(slot);
            });
            self.metrics.exec_started();
            Ok((process.info(), events))
        }
        .await;
        audit.done(result)
    }

    /// The sandbox's processes, running and recently ended, oldest first.
    pub fn processes(&self, caller: &Principal, id: &str) -> Result<Vec<ProcessInfo>, ApiError> {
        let registry = self.entry(caller, id, Need::Read)?.processes.clone();
        let mut table = registry.table.lock().unwrap_or_else(|p| p.into_inner());
        Registry::prune(&mut table);
        Ok(table.values().map(|p| p.info()).collect())
    }

    /// One process.
    pub fn process(
        &self,
        caller: &Principal,
        id: &str,
        which: &Selector,
    ) -> Result<ProcessInfo, ApiError> {
        let registry = self.entry(caller, id, Need::Read)?.processes.clone();
        Ok(registry.find(which)?.info())
    }

    /// A process's events from now on: `Start`, its buffered output too when `replay`,
    /// then what it writes until it exits.
    pub fn connect_process(
        &self,
        caller: &Principal,
        id: &str,
        which: &Selector,
        replay: bool,
    ) -> Result<ProcessEvents, ApiError> {
        let registry = self.entry(caller, id, Need::Read)?.processes.clone();
        Ok(registry.find(which)?.listen(replay))
    }

    /// Feeds `body` to a process's stdin as it arrives (waiting while the process's
    /// queue is full), then closes stdin when `close`.
    pub async fn send_input(
        &self,
        caller: &Principal,
        id: &str,
        which: &Selector,
        mut body: crate::ByteStream,
        close: bool,
    ) -> Result<(), ApiError> {
        let registry = self.entry(caller, id, Need::Write)?.processes.clone();
        let process = registry.find(which)?;
        if close && process.terminal.is_some() {
            return Err(ApiError::bad_request(format!(
                "process {} reads a terminal, which has no input to close: send Ctrl-D (0x04)",
                process.pid
            )));
        }
        let gone = || {
            ApiError::conflict(format!(
                "process {} has closed its input or ended",
                process.pid
            ))
        };
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::bad_request(format!("reading the input: {e}")))?;
            if !chunk.is_empty() {
                process
                    .stdin
                    .send(Input::Data(chunk))
                    .await
                    .map_err(|_| gone())?;
            }
        }
        if close {
            process.stdin.send(Input::Close).await.map_err(|_| gone())?;
        }
        Ok(())
    }

    /// Resizes a process's terminal; the process is told by `SIGWINCH`.
    pub async fn resize_terminal(
        &self,
        caller: &Principal,
        id: &str,
        which: &Selector,
        size: TerminalSize,
    ) -> Result<(), ApiError> {
        let target = format!("{}x{}", size.cols, size.rows);
        let audit = self
            .audit(caller, "process.resize", Some(id))
            .target(&target);
        let result = async {
            crate::validate::terminal(size)?;
            let registry = self.entry(caller, id, Need::Write)?.processes.clone();
            let process = registry.find(which)?;
            let terminal = process.terminal.as_ref().ok_or_else(|| {
                ApiError::bad_request(format!("process {} has no terminal", process.pid))
            })?;
            // Taken out of the lock: a resize may wait on the network (a pod's agent).
            let side = terminal
                .side
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .ok_or_else(|| ApiError::conflict(format!("process {} has ended", process.pid)))?;
            let window = WindowSize {
                cols: size.cols,
                rows: size.rows,
            };
            side.resize(window)
                .map_err(|e| ApiError::conflict(format!("resizing the terminal: {e}")))?;
            *terminal.size.lock().unwrap_or_else(|p| p.into_inner()) = size;
            Ok(())
        }
        .await;
        audit.done(result)
    }

    /// Sends a signal to a process; `SIGKILL` kills its whole tree (everything it
    /// started, however it forked).
    pub async fn signal_process(
        &self,
        caller: &Principal,
        id: &str,
        which: &Selector,
        signal: &str,
    ) -> Result<(), ApiError> {
        let audit = self
            .audit(caller, "process.signal", Some(id))
            .target(signal);
        let result = async {
            let registry = self.entry(caller, id, Need::Write)?.processes.clone();
            let process = registry.find(which)?;
            let (_, signal) = SIGNALS
                .iter()
                .find(|(name, _)| *name == signal)
                .ok_or_else(|| ApiError::bad_request(format!("signal {signal:?} is not one of SIGTERM, SIGKILL, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGSTOP, SIGCONT")))?;
            if *signal == rustix::process::Signal::KILL {
                return Ok(process.command.kill_all().await?);
            }
            process.command.signal(*signal).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    ApiError::conflict(format!("process {} has ended", process.pid))
                }
                _ => ApiError::conflict(format!("signalling process {}: {e}", process.pid)),
            })
        }
        .await;
        audit.done(result)
    }
}

type StdinSink = Box<dyn AsyncWrite + Send + Unpin>;
type Output = (Box<dyn AsyncRead + Send + Unpin>, fn(Bytes) -> ProcessEvent);

/// Where a process's input goes and its output comes from: its pipes, or its terminal
/// (one stream for both outputs).
fn streams(
    stdin: Option<StdinSink>,
    stdout: Option<Box<dyn AsyncRead + Send + Unpin>>,
    stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
    terminal: Option<&dyn CommandTerminal>,
) -> (Option<StdinSink>, Vec<Output>) {
    if let Some(terminal) = terminal {
        let output: Output = (terminal.output(), ProcessEvent::Stdout);
        return (Some(terminal.input()), vec![output]);
    }
    let mut outputs: Vec<Output> = Vec::new();
    if let Some(out) = stdout {
        outputs.push((out, ProcessEvent::Stdout));
    }
    if let Some(err) = stderr {
        outputs.push((err, ProcessEvent::Stderr));
    }
    (stdin, outputs)
}

/// Writes the request's stdin, then whatever `send_input` queues, until told to close.
/// Without `keep_open`, stdin closes after the request's own input, as a command run
/// with no terminal expects.
async fn feed(
    pipe: Option<StdinSink>,
    first: Bytes,
    mut inputs: mpsc::Receiver<Input>,
    keep_open: bool,
) {
    let Some(mut pipe) = pipe else { return };
    if !first.is_empty() && pipe.write_all(&first).await.is_err() {
        return;
    }
    if !keep_open {
        return;
    }
    while let Some(input) = inputs.recv().await {
        match input {
            Input::Data(bytes) => {
                if pipe.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Input::Close => return,
        }
    }
    // Every sender is gone (the process was forgotten): the pipe closes here too.
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process() -> Process {
        Process {
            pid: 1,
            tag: None,
            cmd: vec!["true".into()],
            cwd: "/".into(),
            started_at: 0,
            command: crate::fake_backend::host_command("true"),
            stdin: mpsc::channel(1).0,
            terminal: None,
            state: Mutex::default(),
            live: broadcast::channel(LISTENER_QUEUE).0,
        }
    }

    #[tokio::test]
    async fn a_listener_that_falls_behind_is_told_and_the_buffer_stays_bounded() {
        let p = process();
        let mut slow = p.listen(false);
        // More chunks than the listener's queue holds, and more bytes than the buffer.
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        for _ in 0..LISTENER_QUEUE + 10 {
            p.record(ProcessEvent::Stdout(chunk.clone()));
        }
        p.record(ProcessEvent::Exit {
            exit_code: 0,
            timed_out: false,
        });
        assert_eq!(slow.next().await, Some(ProcessEvent::Start { pid: 1 }));
        match slow.next().await {
            Some(ProcessEvent::Error { message }) => assert!(message.contains("lost"), "{message}"),
            other => panic!("expected the loss to be told, got {other:?}"),
        }
        let rest: Vec<ProcessEvent> = slow.collect().await;
        assert!(matches!(rest.last(), Some(ProcessEvent::Exit { .. })));
        // The replay buffer keeps the last MiB only.
        let replayed: Vec<ProcessEvent> = p.listen(true).collect().await;
        let bytes: usize = replayed
            .iter()
            .map(|e| match e {
                ProcessEvent::Stdout(b) => b.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(bytes, BUFFER_BYTES);
    }
}
