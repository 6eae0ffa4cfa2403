//! The few kernel calls the engine needs that neither std nor rustix wraps the way we use
//! them. Each is a thin, checked wrapper; every `unsafe` block says why it is sound.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Turns a C-style return value into an `io::Result`.
pub fn cvt(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Moves this process into new namespaces of the given `CLONE_NEW*` kinds.
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare takes no pointers; it only changes this task's namespaces.
    cvt(unsafe { libc::unshare(flags) }.into()).map(drop)
}

/// A descriptor on process `pid` that stays valid even if the pid is later reused.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags; on success it returns a new descriptor we own.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the kernel just returned this descriptor to us and nobody else holds it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Joins the namespaces of the process behind `pidfd` (all kinds in `flags` at once).
pub fn setns(pidfd: &OwnedFd, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: setns takes a descriptor we hold open and a flag set.
    cvt(unsafe { libc::setns(pidfd.as_raw_fd(), flags) }.into()).map(drop)
}

/// Sends `signal` through a pidfd, so a recycled pid can never be hit.
pub fn pidfd_kill(pidfd: &OwnedFd, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: no pointers besides a null siginfo, which the call documents as allowed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            0usize,
            0u32,
        )
    };
    cvt(ret).map(drop)
}

/// Reaps the exited child behind `pidfd`: its end as a shell reports it (its exit code, or
/// 128 + the signal that ended it); with `block` false, `None` while it still runs.
pub fn pidfd_reap(pidfd: &OwnedFd, block: bool) -> io::Result<Option<i32>> {
    // SAFETY: siginfo_t is plain data; zeroed is a valid initial value for waitid to fill.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    const P_PIDFD: libc::idtype_t = 3;
    // SAFETY: `info` is a valid, writable siginfo_t for the duration of the call.
    let ret = unsafe {
        libc::waitid(
            P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED | if block { 0 } else { libc::WNOHANG },
        )
    };
    cvt(ret.into())?;
    // SAFETY: waitid filled `info`; si_pid is 0 when no child had exited yet.
    let pid = unsafe { info.si_pid() };
    Ok((pid != 0).then(|| {
        // SAFETY: as above, `info` describes an exited child.
        let status = unsafe { info.si_status() };
        if info.si_code == libc::CLD_EXITED {
            status
        } else {
            128 + status
        }
    }))
}

/// Forks a child whose parent is our parent (`CLONE_PARENT`), so the daemon that spawned
/// us owns it and can hold it in a race-free pidfd. Returns 0 in the child.
///
/// Only for single-threaded callers: the child runs on a copy of this thread's stack.
pub fn fork_as_sibling() -> io::Result<i32> {
    let flags = (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: with a null stack the raw clone behaves like fork(); the caller is
    // single-threaded (a freshly exec'd helper), so no lock is held by another thread.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    cvt(ret).map(|pid| pid as i32)
}

/// Plain fork for a single-threaded caller.
pub fn fork() -> io::Result<i32> {
    // SAFETY: callers are single-threaded helpers; the child only sets itself up and execs.
    cvt(unsafe { libc::fork() }.into()).map(|pid| pid as i32)
}

/// `pivot_root(".", ".")` then detach the old root: the runc trick that needs no spare dir.
pub fn pivot_into(new_root: &std::path::Path) -> io::Result<()> {
    std::env::set_current_dir(new_root)?;
    let dot = c".";
    // SAFETY: both arguments are valid NUL-terminated strings.
    cvt(unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) })?;
    // SAFETY: as above; MNT_DETACH lazily drops the old root stacked under ".".
    cvt(unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) }.into())?;
    std::env::set_current_dir("/")
}

/// Classic mount(2), with every string argument checked for interior NULs.
pub fn mount(
    src: &str,
    target: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let c = |s: &str| {
        CString::new(s)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in mount argument"))
    };
    let (src, target, fstype, data) = (c(src)?, c(target)?, c(fstype)?, c(data)?);
    // SAFETY: all four pointers are valid NUL-terminated strings living across the call.
    let ret = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    cvt(ret.into()).map(drop)
}

/// Lazily detaches the mount at `target` and everything below it.
pub fn unmount_detach(target: &std::path::Path) -> io::Result<()> {
    let target = CString::new(target.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: a valid NUL-terminated path.
    cvt(unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) }.into()).map(drop)
}

/// Changes the propagation of every mount from `/` down (e.g. `MS_REC | MS_PRIVATE`).
pub fn set_root_propagation(flags: libc::c_ulong) -> io::Result<()> {
    // SAFETY: static NUL-terminated strings; null fstype and data are allowed for this call.
    let ret = unsafe {
        libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        )
    };
    cvt(ret.into()).map(drop)
}

/// The path that names an open descriptor, for calls that only take paths.
pub fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Sets the host name of this UTS namespace.
pub fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length describe the bytes of a live &str.
    cvt(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }.into()).map(drop)
}

/// Brings up `lo` in this network namespace, which starts with it down.
pub fn loopback_up() -> io::Result<()> {
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )?;
    // SAFETY: ifreq is plain data; zeroed is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads a valid ifreq that lives across the call.
    let ret = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) };
    cvt(ret.into()).map(drop)
}

/// Blocks every catchable signal for this thread, returning the set for `sigwaitinfo`.
pub fn block_all_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigfillset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Unblocks every signal and gives SIGPIPE its default action back, as a program expects
/// to start: a mask and an ignored signal both survive `execve`.
pub fn reset_signals_for_exec() {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset; signal() with SIG_DFL
    // installs no handler.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The exit code of `pid` if it has ended (reaping it), else `None`.
pub fn try_wait_exit_code(pid: i32) -> io::Result<Option<i32>> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer for the call's duration.
    let ret = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    if ret == 0 {
        return Ok(None);
    }
    // Killed by signal N is 128+N, as a shell reports it.
    Ok(Some(if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    }))
}

/// Waits for one of the signals in `set`, returning its number.
pub fn wait_signal(set: &libc::sigset_t) -> i32 {
    // SAFETY: `set` is initialised; a null siginfo pointer is allowed.
    unsafe { libc::sigwaitinfo(set, std::ptr::null_mut()) }
}

/// Makes the calling thread the machine's least urgent (nice 19), for background work
/// no request waits for (the janitor, the spare skeletons). Best effort.
pub fn yield_to_everything_else() {
    // SAFETY: plain integer arguments; on Linux, PRIO_PROCESS with a thread id sets that
    // thread's nice value alone.
    let tid = unsafe { libc::gettid() };
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) } != 0 {
        let err = io::Error::last_os_error();
        tracing::debug!(%err, "lowering a background thread's priority");
    }
}

/// Names this process as `ps` and `/proc/PID/comm` show it (15 bytes at most). A helper
/// the forker made would otherwise go by the forker's name.
pub fn set_process_name(name: &std::ffi::CStr) {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string, which a CStr is.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) };
}

/// Writes this process's OOM score adjustment (-1000 shields it from the OOM killer).
pub fn set_oom_score_adj(value: i32) -> io::Result<()> {
    std::fs::write("/proc/self/oom_score_adj", value.to_string())
}
