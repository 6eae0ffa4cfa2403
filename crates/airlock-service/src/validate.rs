//! Checks on what clients ask for, turning nonsense into clear 400s before any work.

use std::collections::BTreeMap;

use airlock_api::{CreateSandbox, ExecRequest, InjectedFile, Limits};
use airlock_fs::SandboxPath;
use base64::Engine as _;

use crate::ApiError;

/// Defaults for limits a client leaves out.
pub const DEFAULT_MEMORY_MB: u64 = 2048;
pub const DEFAULT_PIDS: u64 = 1024;
const MAX_TTL_SECS: u64 = 365 * 24 * 3600;
const MAX_TIMEOUT_MS: u64 = 24 * 3600 * 1000;
const MAX_FILES: usize = 10_000;
const MAX_LABELS: usize = 64;
/// Paths where the sandbox's own kernel filesystems are mounted; a file written there
/// would be hidden under them.
const RESERVED: &[&str] = &["/proc", "/dev", "/sys"];

/// Fills in default limits and refuses impossible ones.
pub fn limits(asked: &Limits, disk_free_mb: u64) -> Result<Limits, ApiError> {
    let machine_mb = machine_memory_mb();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    let memory = asked.memory_mb.unwrap_or(DEFAULT_MEMORY_MB.min(machine_mb));
    if !(16..=machine_mb).contains(&memory) {
        return Err(ApiError::bad_request(format!(
            "limits.memory_mb must be between 16 and {machine_mb} (this machine's memory)"
        )));
    }
    let pids = asked.pids.unwrap_or(DEFAULT_PIDS);
    if !(8..=1_000_000).contains(&pids) {
        return Err(ApiError::bad_request(
            "limits.pids must be between 8 and 1000000",
        ));
    }
    if let Some(cpus) = asked.cpus
        && !(cpus.is_finite() && (0.01..=cores).contains(&cpus))
    {
        return Err(ApiError::bad_request(format!(
            "limits.cpus must be between 0.01 and {cores} (this machine's cores)"
        )));
    }
    if let Some(disk) = asked.disk_mb
        && !(16..=disk_free_mb).contains(&disk)
    {
        return Err(ApiError::bad_request(format!(
            "limits.disk_mb must be between 16 and {disk_free_mb} (free space under the daemon's home)"
        )));
    }
    Ok(Limits {
        memory_mb: Some(memory),
        pids: Some(pids),
        cpus: asked.cpus,
        disk_mb: asked.disk_mb,
    })
}

fn machine_memory_mb() -> u64 {
    let info = rustix::system::sysinfo();
    (info.totalram as u64 * u64::from(info.mem_unit)) / (1024 * 1024)
}

/// Checks the parts of a create request that need no engine.
pub fn create(req: &CreateSandbox) -> Result<(), ApiError> {
    env(&req.env)?;
    if req.labels.len() > MAX_LABELS || req.labels.keys().any(|k| k.is_empty() || k.len() > 128) {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_LABELS} labels, with keys of 1 to 128 bytes"
        )));
    }
    if let Some(ttl) = req.ttl_secs
        && !(1..=MAX_TTL_SECS).contains(&ttl)
    {
        return Err(ApiError::bad_request(format!(
            "ttl_secs must be between 1 and {MAX_TTL_SECS}"
        )));
    }
    if req.files.len() > MAX_FILES {
        return Err(ApiError::new(
            airlock_api::ErrorCode::TooLarge,
            format!("at most {MAX_FILES} files at creation"),
        ));
    }
    Ok(())
}

/// Environment names must be non-empty, without `=` or NUL; values without NUL.
pub fn env(vars: &BTreeMap<String, String>) -> Result<(), ApiError> {
    for (key, value) in vars {
        if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
            return Err(ApiError::bad_request(format!(
                "bad environment variable {key:?}: names need no '=' or NUL"
            )));
        }
    }
    Ok(())
}

/// An injected file, checked and decoded.
#[derive(Clone)]
pub struct CheckedFile {
    pub path: SandboxPath,
    pub content: Vec<u8>,
    pub mode: u32,
    pub readonly: bool,
}

/// Checks one injected file and decodes its content.
pub fn injected_file(file: &InjectedFile) -> Result<CheckedFile, ApiError> {
    let path =
        SandboxPath::parse(&file.path).map_err(|e| ApiError::bad_request(format!("files: {e}")))?;
    if path.is_root()
        || RESERVED
            .iter()
            .any(|r| path.starts_with(&SandboxPath::parse(r).unwrap_or_else(|_| path.clone())))
    {
        return Err(ApiError::bad_request(format!(
            "files: {path} is reserved for the sandbox's kernel filesystems"
        )));
    }
    let content = match (&file.content, &file.content_b64) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(format!(
                "files: {path} has both content and content_b64"
            )));
        }
        (Some(text), None) => text.clone().into_bytes(),
        (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| {
                ApiError::bad_request(format!("files: {path}: content_b64 is not base64: {e}"))
            })?,
        (None, None) => Vec::new(),
    };
    let default_mode = if file.readonly { 0o444 } else { 0o644 };
    let mode = file.mode.map_or(default_mode, |m| m.0);
    Ok(CheckedFile {
        path,
        content,
        mode,
        readonly: file.readonly,
    })
}

/// An exec request turned into argv, cwd and timeout.
pub struct CheckedExec {
    pub argv: Vec<String>,
    pub cwd: String,
    pub stdin: Vec<u8>,
    pub timeout_ms: Option<u64>,
}

/// The largest terminal side taken, in cells.
const TERMINAL_MAX: u16 = 4096;

/// Checks a terminal's size: each side 1 to [`TERMINAL_MAX`] cells.
pub fn terminal(size: airlock_api::TerminalSize) -> Result<(), ApiError> {
    let fits = |n: u16| (1..=TERMINAL_MAX).contains(&n);
    if fits(size.cols) && fits(size.rows) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "a terminal is 1 to {TERMINAL_MAX} columns and rows, not {}x{}",
            size.cols, size.rows
        )))
    }
}

/// Checks an exec request.
pub fn exec(req: &ExecRequest) -> Result<CheckedExec, ApiError> {
    let argv = match (&req.cmd, &req.shell) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give either cmd or shell, not both"));
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "give cmd (an argv list) or shell (a command line)",
            ));
        }
        (Some(cmd), None) if cmd.is_empty() => {
            return Err(ApiError::bad_request("cmd must not be empty"));
        }
        (Some(cmd), None) => cmd.clone(),
        (None, Some(line)) => vec!["/bin/sh".into(), "-c".into(), line.clone()],
    };
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(ApiError::bad_request(
            "command arguments must not contain NUL bytes",
        ));
    }
    env(&req.env)?;
    let cwd = match &req.cwd {
        Some(raw) => SandboxPath::parse(raw)
            .map_err(|e| ApiError::bad_request(format!("cwd: {e}")))?
            .to_string(),
        None => "/home/user".into(),
    };
    if let Some(ms) = req.timeout_ms
        && !(1..=MAX_TIMEOUT_MS).contains(&ms)
    {
        return Err(ApiError::bad_request(format!(
            "timeout_ms must be between 1 and {MAX_TIMEOUT_MS}"
        )));
    }
    let stdin = match (&req.stdin, &req.stdin_b64) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give stdin or stdin_b64, not both"));
        }
        (Some(text), None) => text.clone().into_bytes(),
        (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| ApiError::bad_request(format!("stdin_b64 is not base64: {e}")))?,
        (None, None) => Vec::new(),
    };
    Ok(CheckedExec {
        argv,
        cwd,
        stdin,
        timeout_ms: req.timeout_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_get_defaults_and_bounds() {
        let filled = limits(&Limits::default(), 10_000).unwrap();
        assert_eq!(filled.pids, Some(DEFAULT_PIDS));
        assert!(filled.memory_mb.is_some());
        for bad in [
            Limits {
                memory_mb: Some(1),
                ..Limits::default()
            },
            Limits {
                memory_mb: Some(u64::MAX),
                ..Limits::default()
            },
            Limits {
                pids: Some(0),
                ..Limits::default()
            },
            Limits {
                cpus: Some(-1.0),
                ..Limits::default()
            },
            Limits {
                cpus: Some(f64::NAN),
                ..Limits::default()
            },
            Limits {
                cpus: Some(10_000.0),
                ..Limits::default()
            },
            Limits {
                disk_mb: Some(20_000),
                ..Limits::default()
            },
        ] {
            assert!(limits(&bad, 10_000).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn injected_files_are_checked() {
        let file = |path: &str| InjectedFile {
            path: path.into(),
            content: Some("x".into()),
            content_b64: None,
            mode: None,
            readonly: false,
        };
        assert!(injected_file(&file("relative/path")).is_err());
        assert!(injected_file(&file("/proc/self/mem")).is_err());
        assert!(injected_file(&file("/a/../etc/passwd")).is_err());
        assert!(injected_file(&file("/")).is_err());
        assert!(
            injected_file(&file("/devices/ok")).is_ok(),
            "only whole components are reserved"
        );
        let mut both = file("/x");
        both.content_b64 = Some("eA==".into());
        assert!(injected_file(&both).is_err());
    }

    #[test]
    fn exec_needs_exactly_one_command_form() {
        assert!(exec(&ExecRequest::default()).is_err());
        let shell = exec(&ExecRequest {
            shell: Some("echo hi".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(shell.argv, ["/bin/sh", "-c", "echo hi"]);
        assert!(
            exec(&ExecRequest {
                cmd: Some(vec![]),
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            exec(&ExecRequest {
                cmd: Some(vec!["ls".into()]),
                cwd: Some("tmp".into()),
                ..Default::default()
            })
            .is_err()
        );
    }
}
