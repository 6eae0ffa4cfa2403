//! The init helper: makes the sandbox's namespaces, forks the sandbox's pid 1 as a child of
//! the daemon, and reports its pid. Pid 1 mounts /proc and /dev, pivots into the view and
//! then only reaps orphans and forwards SIGTERM until the daemon kills it.

use std::io::{self, Read, Write};
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::fs::symlink;
use std::path::Path;

use airlock_fs::Root;
use rustix::fs::OFlags;

use crate::spec::{InitSpec, join_cgroups, read_spec, read_spec_at};
use crate::sys;

/// Every namespace a sandbox gets (a user namespace is not needed: we are root outside
/// and its processes run as uid 1000 with no capabilities).
pub const SANDBOX_NAMESPACES: libc::c_int = libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWCGROUP;

/// Entry point of `airlock __airlock-init`; prints one JSON line and exits.
pub fn main() -> ! {
    finish(read_spec::<InitSpec>())
}

/// The init helper in a process the forker made, its spec at descriptor `spec_fd`.
pub(crate) fn main_at(spec_fd: RawFd) -> ! {
    finish(read_spec_at::<InitSpec>(spec_fd, None))
}

fn finish(spec: io::Result<(InitSpec, Option<OwnedFd>)>) -> ! {
    let outcome = spec
        .map(|(spec, _)| spec)
        .map_err(|e| (0, e))
        .and_then(|spec| start(&spec));
    match outcome {
        Ok(pid) => {
            println!("{{\"pid\":{pid}}}");
            std::process::exit(0)
        }
        Err((pid, err)) => {
            println!(
                "{}",
                serde_json::json!({"pid": pid, "error": err.to_string()})
            );
            std::process::exit(1)
        }
    }
}

type Failure = (i32, io::Error);

fn start(spec: &InitSpec) -> Result<i32, Failure> {
    let early = |e| (0, e);
    // Inherited by the sandbox's pid 1, which is what `ps` inside shows as 1.
    sys::set_process_name(c"airlock-init");
    join_cgroups(&spec.cgroup_procs).map_err(early)?;
    // Inherited by the init we fork: the OOM killer then picks the sandbox's hungry
    // process, never its pid 1 (whose death would end the whole sandbox). Best effort:
    // it needs CAP_SYS_RESOURCE, which some hosts withhold even from root; init's tiny
    // footprint makes it the OOM killer's last choice anyway.
    let _ = sys::set_oom_score_adj(-1000);
    sys::unshare(SANDBOX_NAMESPACES).map_err(early)?;
    let (ready_r, ready_w) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| early(e.into()))?;
    let mut ready_r = std::fs::File::from(ready_r);
    match sys::fork_as_sibling().map_err(early)? {
        0 => {
            drop(ready_r);
            let mut ready_w = std::fs::File::from(ready_w);
            match become_init(spec) {
                Ok(()) => {
                    let _ = ready_w.write_all(b"ok");
                    drop(ready_w);
                    reap_forever()
                }
                Err(e) => {
                    let _ = ready_w.write_all(e.to_string().as_bytes());
                    std::process::exit(1)
                }
            }
        }
        pid => {
            drop(ready_w);
            let mut answer = String::new();
            let _ = ready_r.read_to_string(&mut answer);
            match answer.as_str() {
                "ok" => Ok(pid),
                "" => Err((pid, io::Error::other("sandbox init died while setting up"))),
                why => Err((
                    pid,
                    io::Error::other(format!("sandbox setup failed: {why}")),
                )),
            }
        }
    }
}

/// Runs as pid 1 of the new pid namespace, before anything of the sandbox's runs.
fn become_init(spec: &InitSpec) -> io::Result<()> {
    step(
        "making mounts private",
        sys::set_root_propagation(libc::MS_REC | libc::MS_PRIVATE),
    )?;
    step("setting the host name", sys::sethostname(&spec.hostname))?;
    step("bringing up loopback", sys::loopback_up())?;
    let root = step("opening the sandbox root", Root::open(&spec.view))?;
    let proc_dir = mount_point(&root, "proc")?;
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    step(
        "mounting /proc",
        sys::mount("proc", &sys::fd_path(&proc_dir), "proc", flags, ""),
    )?;
    let dev_dir = mount_point(&root, "dev")?;
    let flags = libc::MS_NOSUID | libc::MS_NOEXEC;
    step(
        "mounting /dev",
        sys::mount(
            "tmpfs",
            &sys::fd_path(&dev_dir),
            "tmpfs",
            flags,
            "mode=755,size=64k",
        ),
    )?;
    step(
        "populating /dev",
        populate_dev(&spec.view.join("dev"), spec.shm_mb),
    )?;
    step("masking /proc", mask_proc(&spec.view.join("proc")))?;
    step(
        "pivoting into the sandbox root",
        sys::pivot_into(&spec.view),
    )?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for fd in 0..3 {
        // SAFETY: integer-only call; points our stdio at /dev/null.
        sys::cvt(unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) }.into())?;
    }
    Ok(())
}

/// Names the setup step an error came from.
fn step<T>(what: &str, result: io::Result<T>) -> io::Result<T> {
    result.map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))
}

/// Opens a top-level directory of the root, refusing symlinks (a rootfs could plant one).
fn mount_point(root: &Root, name: &str) -> io::Result<std::os::fd::OwnedFd> {
    root.open_beneath(name, OFlags::PATH | OFlags::DIRECTORY)
}

/// A minimal /dev on the fresh tmpfs: the harmless character devices bound from the host,
/// the usual fd links and a private, size-capped /dev/shm.
fn populate_dev(dev: &Path, shm_mb: u64) -> io::Result<()> {
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let node = dev.join(name);
        std::fs::File::create(&node)?;
        let target = node
            .to_str()
            .ok_or_else(|| io::Error::other("non-UTF-8 path"))?;
        sys::mount(&format!("/dev/{name}"), target, "", libc::MS_BIND, "")?;
    }
    for (name, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(to, dev.join(name))?;
    }
    let shm = dev.join("shm");
    std::fs::create_dir(&shm)?;
    let target = shm
        .to_str()
        .ok_or_else(|| io::Error::other("non-UTF-8 path"))?;
    sys::mount(
        "tmpfs",
        target,
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NODEV,
        &format!("mode=1777,size={shm_mb}m"),
    )
}

/// Hides the /proc files that leak host kernel state, and makes the tunables read-only,
/// as container runtimes do.
fn mask_proc(proc_dir: &Path) -> io::Result<()> {
    for name in [
        "kcore",
        "keys",
        "timer_list",
        "sched_debug",
        "latency_stats",
        "kallsyms",
    ] {
        let path = proc_dir.join(name);
        if path.exists() {
            sys::mount(
                "/dev/null",
                path.to_str().unwrap_or_default(),
                "",
                libc::MS_BIND,
                "",
            )?;
        }
    }
    for name in ["sys", "sysrq-trigger", "bus", "fs", "irq"] {
        let path = proc_dir.join(name);
        let Some(text) = path.to_str().filter(|_| path.exists()) else {
            continue;
        };
        sys::mount(text, text, "", libc::MS_BIND | libc::MS_REC, "")?;
        let ro = libc::MS_REMOUNT
            | libc::MS_BIND
            | libc::MS_RDONLY
            | libc::MS_NOSUID
            | libc::MS_NODEV
            | libc::MS_NOEXEC;
        sys::mount("none", text, "", ro, "")?;
    }
    Ok(())
}

/// Pid 1's whole life after setup: reap whatever is orphaned to us, pass SIGTERM on to
/// every process of the sandbox, ignore the rest. SIGKILL from the daemon ends it, and
/// with it, the kernel ends every process in the namespace.
fn reap_forever() -> ! {
    let signals = sys::block_all_signals();
    loop {
        match sys::wait_signal(&signals) {
            libc::SIGCHLD => loop {
                // SAFETY: integer-only call with a null status pointer.
                if unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } <= 0 {
                    break;
                }
            },
            libc::SIGTERM => {
                // SAFETY: integer-only call; -1 from pid 1 means every other process here.
                unsafe { libc::kill(-1, libc::SIGTERM) };
            }
            _ => {}
        }
    }
}
