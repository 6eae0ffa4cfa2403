//! A helper process, a child of the daemon, held by a pidfd: async code can await its
//! end, and a signal can never reach a recycled pid. Helpers are started either by the
//! forker (which makes them the daemon's children) or by a plain spawn; both end here.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

use tokio::io::unix::AsyncFd;

use crate::sys;

#[derive(Debug)]
pub struct HelperProcess {
    pidfd: AsyncFd<OwnedFd>,
    /// Its end as a shell reports it, once reaped.
    ended: Mutex<Option<i32>>,
}

impl HelperProcess {
    /// Wraps `pid`, which must be an unreaped child of this process.
    pub fn adopt(pid: i32) -> io::Result<Self> {
        let fd = sys::pidfd_open(pid)?;
        // SAFETY: `fd` is an OwnedFd moved into the AsyncFd, so it stays open and the same
        // description for the AsyncFd's whole life.
        let pidfd =
            unsafe { AsyncFd::register(fd) }.map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Self {
            pidfd,
            ended: Mutex::new(None),
        })
    }

    /// The pidfd, to hand on (an exec helper enters the init's namespaces through it).
    pub(crate) fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.get_ref().as_fd()
    }

    fn ended(&self) -> Option<i32> {
        *self.ended.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a signal; `NotFound` once it has ended.
    pub fn signal(&self, signal: libc::c_int) -> io::Result<()> {
        let gone = || io::Error::new(io::ErrorKind::NotFound, "it has ended");
        if self.ended().is_some() {
            return Err(gone());
        }
        match sys::pidfd_kill(self.pidfd.get_ref(), signal) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err(gone()),
            other => other,
        }
    }

    /// Waits for its end and reaps it: its exit code, or 128 + the signal that ended it.
    /// Safe to call again, and from several tasks.
    pub async fn wait(&self) -> io::Result<i32> {
        loop {
            if let Some(code) = self.ended() {
                return Ok(code);
            }
            let mut ready = self.pidfd.readable().await?;
            let mut ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
            if ended.is_some() {
                continue;
            }
            match sys::pidfd_reap(self.pidfd.get_ref(), false)? {
                Some(code) => *ended = Some(code),
                None => ready.clear_ready(),
            }
        }
    }
}

impl Drop for HelperProcess {
    fn drop(&mut self) {
        // Never leave a zombie: one nobody waited for is killed and reaped, through the
        // pidfd, which can never reap some other, recycled child.
        if self.ended().is_none() {
            let _ = sys::pidfd_kill(self.pidfd.get_ref(), libc::SIGKILL);
            let _ = sys::pidfd_reap(self.pidfd.get_ref(), true);
        }
    }
}
