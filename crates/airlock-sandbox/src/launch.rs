//! The daemon's side of the helpers: spawning them with their spec on descriptor 3, and
//! holding a sandbox's init in a pidfd that async code can await.

use std::io::{self, Seek, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use tokio::io::unix::AsyncFd;
use tokio::process::{Child, Command};

use crate::sys;

/// Hidden subcommand that runs the init helper.
pub const INIT_HELPER: &str = "__airlock-init";
/// Hidden subcommand that runs the exec helper.
pub const EXEC_HELPER: &str = "__airlock-exec";

/// The standard streams of a helper.
#[derive(Debug)]
pub struct HelperIo {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

/// Runs helper `kind` (from the binary `helper_binary` chose) with `spec` in an inherited
/// memfd and, when given, a copy of a sandbox init's pidfd, both named in its arguments.
///
/// Nothing runs between fork and exec, so std spawns through `posix_spawn`, which shares
/// the daemon's memory until the exec instead of copying its page tables as `fork` does:
/// with a `pre_exec` hook that placed these descriptors at fixed numbers, each spawn cost
/// about a millisecond more. The price is that both descriptors are inheritable until the
/// spawn returns, so a child spawned at the same moment gets them too: helpers close every
/// descriptor they were not given before anything else (`spec::read_spec`), and the only
/// other child the daemon starts is the host's `mkfs.ext4`.
pub fn spawn_helper(
    kind: &str,
    spec: &impl Serialize,
    io: HelperIo,
    init: Option<&InitProcess>,
) -> io::Result<Child> {
    let memfd = rustix::fs::memfd_create("airlock-spec", rustix::fs::MemfdFlags::empty())?;
    let mut file = std::fs::File::from(memfd);
    // Encoded whole, then written at once: `to_writer` on the bare file made one write
    // call per JSON token, some 150 for a command's spec.
    file.write_all(&serde_json::to_vec(spec).map_err(io::Error::other)?)?;
    file.rewind()?;
    // `dup` leaves the copy without close-on-exec; the init keeps its own pidfd private.
    let pidfd = init
        .map(|i| rustix::io::dup(i.pidfd.get_ref()))
        .transpose()?;
    let mut cmd = Command::new(crate::helper_binary::program());
    cmd.arg(kind)
        .arg(file.as_raw_fd().to_string())
        .args(pidfd.as_ref().map(|fd| fd.as_raw_fd().to_string()))
        .stdin(io.stdin)
        .stdout(io.stdout)
        .stderr(io.stderr)
        .env_clear();
    let child = cmd.spawn();
    drop((file, pidfd));
    child
}

/// A sandbox's pid 1, held by a pidfd: signals can never hit a recycled pid, and it is our
/// child (the helper forked it with CLONE_PARENT) so it stays unreaped until we reap it.
#[derive(Debug)]
pub struct InitProcess {
    pid: i32,
    pidfd: AsyncFd<OwnedFd>,
    reaped: AtomicBool,
}

impl InitProcess {
    /// Wraps init `pid`, which must be an unreaped child of this process.
    pub fn adopt(pid: i32) -> io::Result<Self> {
        let fd = sys::pidfd_open(pid)?;
        // SAFETY: `fd` is an OwnedFd moved into the AsyncFd, so it stays open and the same
        // description for the AsyncFd's whole life.
        let pidfd =
            unsafe { AsyncFd::register(fd) }.map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Self {
            pid,
            pidfd,
            reaped: AtomicBool::new(false),
        })
    }

    /// Host pid of the init.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends a signal to the init.
    pub fn signal(&self, signal: libc::c_int) -> io::Result<()> {
        match sys::pidfd_kill(self.pidfd.get_ref(), signal) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            other => other,
        }
    }

    /// Waits until the init has exited, and reaps it. Safe to call again after.
    pub async fn wait(&self) -> io::Result<()> {
        while !self.reaped.load(Ordering::Acquire) {
            let mut guard = self.pidfd.readable().await?;
            match sys::pidfd_reap(self.pidfd.get_ref(), false) {
                Ok(Some(_)) => self.reaped.store(true, Ordering::Release),
                Ok(None) => guard.clear_ready(),
                // Reaped already by a concurrent waiter.
                Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {
                    self.reaped.store(true, Ordering::Release)
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Drop for InitProcess {
    fn drop(&mut self) {
        // Never leave a zombie: if nobody reaped it, kill it and reap it through the pidfd,
        // which (unlike waitpid by number) can never reap some other, recycled child.
        if !self.reaped.load(Ordering::Acquire) {
            let _ = sys::pidfd_kill(self.pidfd.get_ref(), libc::SIGKILL);
            let _ = sys::pidfd_reap(self.pidfd.get_ref(), true);
        }
    }
}
