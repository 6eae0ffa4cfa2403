//! The exec helper: joins a running sandbox's namespaces, forks the command inside its pid
//! namespace, confines it, execs it and exits with its status.

use std::ffi::CString;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;

use crate::init::SANDBOX_NAMESPACES;
use crate::spec::{ExecSpec, join_cgroups, read_spec, read_spec_at};
use crate::{confine, sys};

/// Exit code when the helper itself failed before the command could start.
pub const SETUP_FAILED: i32 = 125;

/// Entry point of `airlock __airlock-exec`: exits with the command's code.
pub fn main() -> ! {
    finish(read_spec::<ExecSpec>())
}

/// The exec helper in a process the forker made: its spec at `spec_fd`, the sandbox
/// init's pidfd at `init_fd`.
pub(crate) fn main_at(spec_fd: RawFd, init_fd: Option<RawFd>) -> ! {
    finish(read_spec_at::<ExecSpec>(spec_fd, init_fd))
}

fn finish(spec: io::Result<(ExecSpec, Option<OwnedFd>)>) -> ! {
    let code = match spec.and_then(|(spec, init)| {
        let init = init.ok_or_else(|| io::Error::other("no sandbox init given"))?;
        run(&spec, init)
    }) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("airlock: {e}");
            SETUP_FAILED
        }
    };
    std::process::exit(code)
}

fn run(spec: &ExecSpec, init: std::os::fd::OwnedFd) -> io::Result<i32> {
    sys::set_process_name(c"airlock-exec");
    join_cgroups(&spec.cgroup_procs)?;
    // The daemon passes the init's pidfd, not its pid: a pid could be recycled by the time
    // we get here, a pidfd cannot, and setns through it fails once the init is gone.
    sys::setns(&init, SANDBOX_NAMESPACES)
        .map_err(|e| io::Error::new(e.kind(), format!("entering sandbox: {e}")))?;
    drop(init);
    // The daemon signals this helper, the command's parent outside the namespace: every
    // signal is held from here and passed on, so the command decides what a SIGTERM
    // means and the exit code the daemon hears is the command's own. Blocked before the
    // fork, so neither a signal nor the child's end can slip past.
    let signals = sys::block_all_signals();
    match sys::fork()? {
        0 => {
            sys::reset_signals_for_exec();
            let err = exec_command(spec);
            let program = spec.argv.first().map(String::as_str).unwrap_or_default();
            eprintln!("airlock: {program}: {err}");
            std::process::exit(if err.kind() == io::ErrorKind::NotFound {
                127
            } else {
                126
            })
        }
        child => forward_until_exit(child, &signals),
    }
}

/// Passes every signal but SIGCHLD on to `child` until it ends; its exit code.
fn forward_until_exit(child: i32, signals: &libc::sigset_t) -> io::Result<i32> {
    loop {
        match sys::wait_signal(signals) {
            libc::SIGCHLD => {
                if let Some(code) = sys::try_wait_exit_code(child)? {
                    return Ok(code);
                }
            }
            // Interrupted before a signal came.
            -1 => {}
            signal => {
                // SAFETY: integer-only call; the child is ours and not yet reaped.
                unsafe { libc::kill(child, signal) };
            }
        }
    }
}

/// Returns only on failure.
fn exec_command(spec: &ExecSpec) -> io::Error {
    let prepared = (|| -> io::Result<(CString, Vec<CString>, Vec<CString>)> {
        // A session of its own, so terminal signals from the daemon's session never reach it.
        // SAFETY: integer-free call.
        unsafe { libc::setsid() };
        if spec.terminal {
            // SAFETY: an ioctl on stdin with an integer argument. Stdin is the terminal
            // the daemon opened for us; the new session takes it as its own.
            if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        confine::drop_privileges(spec.uid, spec.gid)?;
        std::env::set_current_dir(&spec.cwd).map_err(|e| {
            io::Error::new(e.kind(), format!("working directory {}: {e}", spec.cwd))
        })?;
        let writable: Vec<&str> = spec
            .writable
            .iter()
            .map(String::as_str)
            .filter(|p| Path::new(p).exists())
            .collect();
        confine::apply_landlock(&writable)?;
        let program = find_program(spec)?;
        let argv = spec
            .argv
            .iter()
            .map(|a| cstring(a))
            .collect::<io::Result<_>>()?;
        let envp = spec
            .env
            .iter()
            .map(|(k, v)| cstring(&format!("{k}={v}")))
            .collect::<io::Result<_>>()?;
        confine::apply_seccomp()?;
        Ok((program, argv, envp))
    })();
    let (program, argv, envp) = match prepared {
        Ok(parts) => parts,
        Err(e) => return e,
    };
    let argv_ptrs: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let envp_ptrs: Vec<*const libc::c_char> = envp
        .iter()
        .map(|e| e.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    // SAFETY: program, argv and envp are NUL-terminated strings in null-terminated arrays
    // that outlive the call; execve returns only on failure.
    unsafe { libc::execve(program.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// Looks the program up in the command's own `PATH` when it has no slash, as a shell would.
fn find_program(spec: &ExecSpec) -> io::Result<CString> {
    let name = spec
        .argv
        .first()
        .ok_or_else(|| io::Error::other("empty command"))?;
    if name.contains('/') {
        return cstring(name);
    }
    let path = spec
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/usr/bin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = format!("{dir}/{name}");
        let c = cstring(&candidate)?;
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 && Path::new(&candidate).is_file() {
            return Ok(c);
        }
    }
    Err(io::Error::new(io::ErrorKind::NotFound, "command not found"))
}

fn cstring(text: &str) -> io::Result<CString> {
    CString::new(text)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "argument contains a NUL byte"))
}
