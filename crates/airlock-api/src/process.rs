//! Processes that outlive the request that started them: started in the background,
//! listed, reconnected to, fed input, signalled.

use serde::{Deserialize, Serialize};

/// A process as listings and `GET .../processes/{pid}` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// The daemon's number for it, unique in its sandbox.
    pub pid: u32,
    /// The caller's name for it, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The argv it runs (`/bin/sh -c LINE` for a shell line).
    pub cmd: Vec<String>,
    /// Its working directory.
    pub cwd: String,
    /// Still running.
    pub running: bool,
    /// Once it ended: as in an exec's result (128+N when killed by signal N).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// RFC 3339.
    pub started_at: String,
    /// Its terminal's size, when it runs with a terminal instead of pipes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal: Option<TerminalSize>,
}

/// A terminal's size in character cells: asked for when a process starts with a
/// terminal, and the body of `POST .../processes/{pid}/resize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminalSize {
    /// Columns, 1 to 4096.
    pub cols: u16,
    /// Rows, 1 to 4096.
    pub rows: u16,
}

/// Body of `POST .../processes/{pid}/signal`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalProcess {
    /// `SIGTERM`, `SIGKILL`, `SIGINT`, `SIGHUP`, `SIGQUIT`, `SIGUSR1`, `SIGUSR2`,
    /// `SIGSTOP` or `SIGCONT`. `SIGKILL` kills the process's whole tree.
    pub signal: String,
}
