//! Running a command in a sandbox: the request, the buffered result and the streamed events.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

/// The body of `POST /v1/sandboxes/{id}/exec`: exactly one of `cmd` or `shell`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// argv; the first word is looked up in `PATH` when it has no `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// A command line for `/bin/sh -c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// Extra environment on top of the sandbox's.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory inside the sandbox; `/home/user` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Text fed to standard input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Bytes fed to standard input, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_b64: Option<String>,
    /// Kill the whole process tree after this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// The buffered answer of an exec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecResult {
    /// Exit status; 128+N when killed by signal N; 124 on timeout.
    pub exit_code: i32,
    /// Standard output as text (invalid UTF-8 replaced; see `stdout_b64`).
    pub stdout: String,
    /// Standard error as text (invalid UTF-8 replaced; see `stderr_b64`).
    pub stderr: String,
    /// The exact bytes of stdout, present only when they are not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_b64: Option<String>,
    /// The exact bytes of stderr, present only when they are not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_b64: Option<String>,
    /// True when `timeout_ms` ran out and the tree was killed.
    #[serde(default)]
    pub timed_out: bool,
    /// True when output beyond the buffered cap was dropped (use `?stream=true`).
    #[serde(default)]
    pub truncated: bool,
}

impl ExecResult {
    /// The exact bytes of stdout, whichever field carries them.
    pub fn stdout_bytes(&self) -> Vec<u8> {
        exact_bytes(&self.stdout, self.stdout_b64.as_deref())
    }

    /// The exact bytes of stderr, whichever field carries them.
    pub fn stderr_bytes(&self) -> Vec<u8> {
        exact_bytes(&self.stderr, self.stderr_b64.as_deref())
    }
}

/// One event of `?stream=true`, sent as one line of JSON (NDJSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecEvent {
    /// A process started in the background: its number. First of its events.
    Start {
        /// See [`crate::ProcessInfo::pid`].
        pid: u32,
    },
    /// Bytes the command wrote to stdout.
    Stdout(Chunk),
    /// Bytes the command wrote to stderr.
    Stderr(Chunk),
    /// The command ended; always the last event.
    Exit {
        /// As in [`ExecResult::exit_code`].
        exit_code: i32,
        /// As in [`ExecResult::timed_out`].
        #[serde(default)]
        timed_out: bool,
    },
    /// The daemon could not run or follow the command.
    Error {
        /// What went wrong.
        message: String,
    },
}

/// Output bytes: `data` when they are valid UTF-8, else `data_b64`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// The bytes as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The bytes, base64, when they are not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_b64: Option<String>,
}

impl Chunk {
    /// Wraps bytes in whichever field keeps them exact.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) => Self {
                data: Some(text.to_owned()),
                data_b64: None,
            },
            Err(_) => Self {
                data: None,
                data_b64: Some(b64(bytes)),
            },
        }
    }

    /// The exact bytes.
    pub fn bytes(&self) -> Vec<u8> {
        exact_bytes(self.data.as_deref().unwrap_or(""), self.data_b64.as_deref())
    }
}

/// Standard base64 of bytes.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn exact_bytes(text: &str, encoded: Option<&str>) -> Vec<u8> {
    encoded
        .and_then(|e| base64::engine::general_purpose::STANDARD.decode(e).ok())
        .unwrap_or_else(|| text.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_binary_exact() {
        let bytes = [0xff, 0x00, b'a'];
        let chunk = Chunk::from_bytes(&bytes);
        assert!(chunk.data.is_none());
        assert_eq!(chunk.bytes(), bytes);
        assert_eq!(Chunk::from_bytes(b"hi").data.as_deref(), Some("hi"));
    }

    #[test]
    fn events_are_tagged_by_type() {
        let line = serde_json::to_string(&ExecEvent::Exit {
            exit_code: 3,
            timed_out: false,
        })
        .unwrap();
        assert_eq!(line, r#"{"type":"exit","exit_code":3,"timed_out":false}"#);
    }
}
