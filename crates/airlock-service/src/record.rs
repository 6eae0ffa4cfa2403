//! The persisted record of a sandbox, `HOME/sandboxes/<id>/sandbox.json`. It holds the
//! state the sandbox should be in, so a restarted daemon brings running ones back.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use airlock_api::{Limits, Sandbox, SandboxState};
use serde::{Deserialize, Serialize};

/// Everything the daemon keeps about one sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub id: String,
    pub template: String,
    pub state: SandboxState,
    pub env: BTreeMap<String, String>,
    pub limits: Limits,
    pub labels: BTreeMap<String, String>,
    pub owner: String,
    pub readonly_paths: Vec<String>,
    pub created_at: u64,
    #[serde(default)]
    pub started_at: Option<u64>,
    #[serde(default)]
    pub expires_at: Option<u64>,
}

impl SandboxRecord {
    /// The record as clients see it.
    pub fn to_api(&self) -> Sandbox {
        Sandbox {
            id: self.id.clone(),
            template: self.template.clone(),
            state: self.state,
            env: self.env.clone(),
            limits: self.limits.clone(),
            labels: self.labels.clone(),
            owner: self.owner.clone(),
            readonly_paths: self.readonly_paths.clone(),
            created_at: rfc3339(self.created_at),
            started_at: self.started_at.map(rfc3339),
            expires_at: self.expires_at.map(rfc3339),
        }
    }

    /// Writes the record atomically (temp file, then rename) into `dir`.
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        save_json(self, &dir.join("sandbox.json"))
    }

    /// Reads a record.
    pub fn load(file: &Path) -> io::Result<Self> {
        serde_json::from_slice(&std::fs::read(file)?).map_err(io::Error::other)
    }
}

/// Writes `value` as JSON to `file` atomically: a reader sees the old file or the new one.
pub fn save_json(value: &impl Serialize, file: &Path) -> io::Result<()> {
    replace_file(
        file,
        &serde_json::to_vec_pretty(value).map_err(io::Error::other)?,
    )
}

/// Writes `bytes` to `file` atomically (a temporary file beside it, then a rename): a
/// reader sees the old file, or none, or the whole new one, never a part.
pub fn replace_file(file: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut temp = file.as_os_str().to_owned();
    temp.push(".tmp");
    std::fs::write(&temp, bytes)?;
    std::fs::rename(temp, file)
}

/// `N` random bytes as lowercase hex: sandbox and upload ids. A failure of the kernel's
/// random source is not expected here; the token file's creation reports it.
pub fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    let _ = getrandom::fill(&mut bytes);
    airlock_fs::hex(&bytes)
}

/// Seconds since the epoch, now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}
