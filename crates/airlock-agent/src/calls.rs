//! The calls and their arguments, as both sides write and read them.

use airlock_fs::{Checks, FileOwner, Placement, SandboxPath, Unpacking, WriteOptions};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The header that carries a call's arguments.
pub const ARGS: &str = "airlock-args";
/// The header that carries a streamed answer's small result.
pub const RESULT: &str = "airlock-result";

/// Encodes a header value: base64url JSON, so any path crosses as visible ASCII.
pub fn encode(value: &impl Serialize) -> String {
    let json = serde_json::to_vec(value).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

/// Decodes a header value written by [`encode`].
pub fn decode<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, String> {
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| format!("arguments are not base64url: {e}"))?;
    serde_json::from_slice(&json).map_err(|e| format!("arguments are not what the call takes: {e}"))
}

/// One path.
#[derive(Debug, Serialize, Deserialize)]
pub struct OnPath {
    pub path: SandboxPath,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct List {
    pub dir: SandboxPath,
    pub depth: u32,
    pub limit: usize,
    pub cursor: Option<SandboxPath>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Read {
    pub path: SandboxPath,
    /// Where the body starts.
    pub offset: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Sums {
    pub path: SandboxPath,
    pub checks: Checks,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Write {
    pub path: SandboxPath,
    pub opts: WriteOptions,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WriteInPlace {
    pub path: SandboxPath,
    pub at: Placement,
    pub owner: FileOwner,
    pub checks: Checks,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Mkdir {
    pub path: SandboxPath,
    pub mode: u32,
    pub owner: FileOwner,
    pub parents: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Rename {
    pub from: SandboxPath,
    pub to: SandboxPath,
    pub overwrite: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Remove {
    pub path: SandboxPath,
    pub recursive: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Compose {
    pub sources: Vec<SandboxPath>,
    pub dest: SandboxPath,
    pub opts: WriteOptions,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Pack {
    pub dir: SandboxPath,
    /// Only these entries below `dir`, when set.
    pub rels: Option<Vec<String>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Unpack {
    pub dir: SandboxPath,
    pub how: Unpacking,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CreatePartial {
    pub dest: SandboxPath,
    pub parents: bool,
    pub owner: FileOwner,
}

/// A partial upload's file, and for an append or a cut, where.
#[derive(Debug, Serialize, Deserialize)]
pub struct Partial {
    pub dest: SandboxPath,
    pub name: String,
    pub at: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CommitPartial {
    pub dest: SandboxPath,
    pub name: String,
    pub opts: WriteOptions,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Sweep {
    /// Nanoseconds since the epoch.
    pub before_ns: u128,
    pub keep: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Watch {
    pub dir: SandboxPath,
    pub recursive: bool,
}

/// A command to start in the pod, with pipes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Spawn {
    /// Unique among the sandbox's commands; later calls name it.
    pub name: String,
    pub argv: Vec<String>,
    /// The whole environment.
    pub env: Vec<(String, String)>,
    pub cwd: SandboxPath,
    /// A terminal of (columns, rows) as its stdin, stdout, stderr and controlling
    /// terminal, instead of pipes.
    #[serde(default)]
    pub terminal: Option<(u16, u16)>,
}

/// A call on one started command.
#[derive(Debug, Serialize, Deserialize)]
pub struct OnCommand {
    pub name: String,
    /// For `signal`: the signal's number.
    #[serde(default)]
    pub signal: Option<i32>,
    /// For `resize`: the terminal's new (columns, rows).
    #[serde(default)]
    pub size: Option<(u16, u16)>,
}

impl OnCommand {
    /// A call on command `name` with no further arguments.
    pub fn of(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            signal: None,
            size: None,
        }
    }
}

/// Ends every command: a polite signal, then `grace_ms` later a kill.
#[derive(Debug, Serialize, Deserialize)]
pub struct StopAll {
    pub grace_ms: u64,
}
