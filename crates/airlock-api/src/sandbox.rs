//! Sandboxes as clients create and see them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::FileMode;

/// Where a sandbox is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SandboxState {
    /// Being made where it runs (a cluster's pod not yet answering); nothing can be
    /// done in it yet. It becomes `created` or `running` by itself, or is removed if it
    /// cannot be made.
    Pending,
    /// Exists, files can be written, no process has run yet.
    Created,
    /// Its init process is up; exec works.
    Running,
    /// Was running; files intact; can be started again.
    Stopped,
    /// A state this client does not know (sent by a newer daemon); never sent.
    #[serde(other)]
    Unknown,
}

/// Resource limits; a missing field means the daemon's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Memory, in MiB, for all processes of the sandbox together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// How many processes and threads may exist at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
    /// CPU time as a number of cores (`0.5` is half a core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Disk space, in MiB, for everything the sandbox writes; over it writers get ENOSPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_mb: Option<u64>,
}

/// A file written into the sandbox before any of its processes runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectedFile {
    /// Absolute path inside the sandbox.
    pub path: String,
    /// Text content (UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Binary content, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_b64: Option<String>,
    /// Permission bits; `0644` (or `0444` when read-only) if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FileMode>,
    /// When true nothing inside the sandbox can change, remove or rename it.
    #[serde(default)]
    pub readonly: bool,
}

/// The body of `POST /v1/sandboxes`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSandbox {
    /// Template name; `host` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Environment every command in the sandbox gets.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Resource limits.
    #[serde(default)]
    pub limits: Limits,
    /// Free-form labels for the caller's bookkeeping.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Start right away (the default) or stay `created` so files can be uploaded first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<bool>,
    /// Delete the sandbox this many seconds after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// Files written before the sandbox starts.
    #[serde(default)]
    pub files: Vec<InjectedFile>,
}

/// A sandbox as every read route shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sandbox {
    /// Stable id, 12 hex digits.
    pub id: String,
    /// The template it was made from.
    pub template: String,
    /// Current state.
    pub state: SandboxState,
    /// Environment of its commands.
    pub env: BTreeMap<String, String>,
    /// Limits in force, defaults filled in.
    pub limits: Limits,
    /// Caller's labels.
    pub labels: BTreeMap<String, String>,
    /// Who created it (the tenant).
    pub owner: String,
    /// Absolute paths of the read-only injected files.
    pub readonly_paths: Vec<String>,
    /// RFC 3339 time of creation.
    pub created_at: String,
    /// RFC 3339 time of the last start, if it ever ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// RFC 3339 time when the TTL deletes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// One template's warm pool, as `GET /v1/warm-pools` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolInfo {
    /// The template its sandboxes are made from.
    pub template: String,
    /// How many started sandboxes it keeps ready.
    pub size: usize,
    /// How many are ready now.
    pub ready: usize,
    /// Creates it has served since the daemon started.
    pub claimed: u64,
}
