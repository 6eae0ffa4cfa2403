//! What the daemon hands a helper process. It travels as JSON on descriptor 3 (a memfd),
//! so neither argv nor environment size limits apply.

use std::io::Read;
use std::os::fd::FromRawFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Descriptor number the spec arrives on.
pub const SPEC_FD: i32 = 3;
/// Descriptor number of the sandbox init's pidfd, for the exec helper.
pub const INIT_PIDFD: i32 = 4;

/// How to start a sandbox's init.
#[derive(Debug, Serialize, Deserialize)]
pub struct InitSpec {
    /// The sandbox's root view, mounted in the daemon's namespace.
    pub view: PathBuf,
    /// Host name inside.
    pub hostname: String,
    /// `cgroup.procs` files to join before anything else.
    pub cgroup_procs: Vec<PathBuf>,
    /// Size of the sandbox's /dev/shm, in MiB.
    pub shm_mb: u64,
}

/// How to run one command in a running sandbox.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExecSpec {
    /// `cgroup.procs` files to join (the exec's own leaf groups).
    pub cgroup_procs: Vec<PathBuf>,
    /// The command.
    pub argv: Vec<String>,
    /// Its whole environment.
    pub env: Vec<(String, String)>,
    /// Working directory inside the sandbox.
    pub cwd: String,
    /// Directories the command may write (Landlock).
    pub writable: Vec<String>,
    /// User and group ids it runs as.
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
    /// Stdin is a terminal to claim as the command's controlling terminal.
    #[serde(default)]
    pub terminal: bool,
}

/// Reads the spec from descriptor 3 and closes it and every other inherited descriptor
/// above the init pidfd slot (4), so nothing of the daemon's leaks into the sandbox.
pub fn read_spec<T: DeserializeOwned>() -> std::io::Result<T> {
    // SAFETY: the daemon placed the spec memfd at descriptor 3 for us and nothing else
    // in this fresh process owns it.
    let mut file = unsafe { std::fs::File::from_raw_fd(SPEC_FD) };
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    drop(file);
    // SAFETY: integer-only call; closes every descriptor from 5 up.
    unsafe { libc::syscall(libc::SYS_close_range, 5u32, u32::MAX, 0u32) };
    serde_json::from_str(&text).map_err(std::io::Error::other)
}

/// Writes ourselves into each `cgroup.procs` file.
pub fn join_cgroups(files: &[PathBuf]) -> std::io::Result<()> {
    let pid = std::process::id().to_string();
    for file in files {
        std::fs::write(file, &pid).map_err(|e| {
            std::io::Error::new(e.kind(), format!("joining {}: {e}", file.display()))
        })?;
    }
    Ok(())
}
