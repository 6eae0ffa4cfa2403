//! Airlock's embedded Linux sandbox engine.
//!
//! A sandbox is a mount tree (its *view*) in the daemon's private mount namespace, a
//! cgroup node with its limits, and, while running, a pid 1 in fresh mount, pid, ipc, uts,
//! network and cgroup namespaces rooted at that view. Commands run through a helper that
//! joins those namespaces and drops to uid 1000 under Landlock and seccomp. The engine
//! knows nothing of HTTP or of persisted records; the daemon's service layer drives it.

mod cgroup;
mod cgroup_moves;
mod confine;
mod disk;
mod engine;
mod error;
pub mod exec;
mod forker;
mod helper_binary;
mod helper_process;
pub mod init;
mod janitor;
mod launch;
mod layout;
mod mounts;
mod skeleton;
mod skeleton_spares;
mod spec;
mod spread;
mod sys;
mod templates;
mod terminal;
mod view;

pub use cgroup_moves::favor_cgroup_moves;
pub use engine::{Engine, ExecPlan, SandboxConfig, instance_name};
pub use error::{FailureKind, SandboxError, SandboxResult};
pub use helper_process::HelperProcess;
pub use launch::{EXEC_HELPER, INIT_HELPER, InitProcess, Started};
pub use layout::Layout;
pub use skeleton::WRITABLE_DIRS;
pub use skeleton_spares::KEEP as SPARE_SKELETONS;
pub use templates::{HOST_TEMPLATE, TemplateStore, valid_template_name};

/// A process's end as a shell reports it: its exit code, or 128 + the signal that ended it.
pub fn shell_exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}
pub use terminal::{Terminal, TerminalIo, WindowSize};
pub use view::TemplateRoot;

/// Resource limits with the daemon's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Memory in MiB; `None` means unlimited.
    pub memory_mb: Option<u64>,
    /// Maximum number of processes and threads.
    pub pids: u64,
    /// CPU cores' worth of time; `None` means unlimited.
    pub cpus: Option<f64>,
    /// Disk in MiB; `None` means the sandbox writes to the daemon's filesystem directly.
    pub disk_mb: Option<u64>,
}

/// Runs a helper subcommand if this process was started as one; returns otherwise.
/// Call first thing in `main`, before any thread exists.
pub fn run_helper_if_requested() {
    match std::env::args().nth(1).as_deref() {
        Some(INIT_HELPER) => init::main(),
        Some(EXEC_HELPER) => exec::main(),
        Some(forker::FORKER) => forker::main(),
        Some(helper_binary::IDENTITY) => {
            println!("{}", helper_binary::BUILD);
            std::process::exit(0)
        }
        _ => {}
    }
}
