//! Reads that open a file directly must do so only where nothing but a regular file can
//! be opened, and no read may wait on a sandbox's lease. Each test that mounts runs in a
//! process of its own, in a mount namespace of its own.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::{FileType, Mode};
use rustix::mount::{MountFlags, MountPropagationFlags};
use rusty_fork::rusty_fork_test;

use crate::{FileOwner, FsErrorKind, Placement, Root, SandboxPath};

fn path(text: &str) -> SandboxPath {
    SandboxPath::parse(text).expect("path")
}

/// A private mount namespace for this thread of this (forked) test process, where the
/// test runs whole.
fn own_mounts() {
    // SAFETY: a new mount namespace (and with it a private cwd and root) for this thread
    // alone; no descriptor or memory is shared differently afterwards.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .expect("unshare");
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .expect("private mounts");
}

fn tmpfs(at: &Path, flags: MountFlags) {
    rustix::mount::mount("tmpfs", at, "tmpfs", flags, None).expect("tmpfs");
}

/// In `dir`: a regular file `f`, a FIFO `p`, a character device `null` (1:3) and a
/// socket `s` (its listener gone, the node stays).
fn plant(dir: &Path) {
    std::fs::write(dir.join("f"), "file").expect("file");
    let at = rustix::fs::CWD;
    let node = |name: &str, kind: FileType, dev: u64| {
        rustix::fs::mknodat(at, dir.join(name), kind, Mode::from_raw_mode(0o666), dev)
            .expect("mknod");
    };
    node("p", FileType::Fifo, 0);
    node("null", FileType::CharacterDevice, rustix::fs::makedev(1, 3));
    std::os::unix::net::UnixListener::bind(dir.join("s")).expect("socket");
}

/// A `nodev` tmpfs holding [`plant`]'s files, with a tmpfs that allows devices mounted
/// on its `sub` (the same files again), and a link `/into-sub` to `/sub/f`.
fn nodev_root_with_a_dev_submount() -> (tempfile::TempDir, Root) {
    own_mounts();
    let home = tempfile::tempdir().expect("tempdir");
    tmpfs(home.path(), MountFlags::NODEV);
    plant(home.path());
    std::fs::create_dir(home.path().join("sub")).expect("mkdir");
    tmpfs(&home.path().join("sub"), MountFlags::empty());
    plant(&home.path().join("sub"));
    std::os::unix::fs::symlink("/sub/f", home.path().join("into-sub")).expect("symlink");
    let root = Root::open(home.path()).expect("root");
    (home, root)
}

rusty_fork_test! {
    #[test]
    fn a_nodev_root_opens_its_own_files_directly_and_nothing_across_a_mount() {
        let (_home, root) = nodev_root_with_a_dev_submount();
        assert!(root.nodev());
        assert!(root.open_read_direct(&path("/f")).is_some());
        // On the submount, where a device would open, the direct way takes nothing;
        // the general way still reads the file.
        for across in ["/sub/f", "/into-sub"] {
            assert!(root.open_read_direct(&path(across)).is_none(), "{across}");
            let (mut file, entry) = root.open_read(&path(across)).expect(across);
            assert_eq!(entry.size, 4);
            let mut text = String::new();
            std::io::Read::read_to_string(&mut file, &mut text).expect("read");
            assert_eq!(text, "file");
        }
    }

    #[test]
    fn devices_fifos_and_sockets_are_refused_on_either_way_at_once() {
        let (_home, root) = nodev_root_with_a_dev_submount();
        let started = Instant::now();
        for refused in ["/null", "/p", "/s", "/sub/null", "/sub/p", "/sub/s"] {
            assert!(root.open_read_direct(&path(refused)).is_none(), "{refused}");
            let err = root.open_read(&path(refused)).expect_err(refused);
            assert_eq!(err.kind(), FsErrorKind::NotRegular, "{refused}");
        }
        assert!(started.elapsed() < Duration::from_secs(5), "a FIFO's open blocked");
    }

    #[test]
    fn a_root_that_allows_devices_never_opens_directly() {
        own_mounts();
        let home = tempfile::tempdir().expect("tempdir");
        tmpfs(home.path(), MountFlags::empty());
        plant(home.path());
        let root = Root::open(home.path()).expect("root");
        assert!(!root.nodev());
        assert!(root.open_read_direct(&path("/f")).is_none());
        assert_eq!(root.open_read(&path("/f")).expect("read").1.size, 4);
        let err = root.open_read(&path("/null")).expect_err("device");
        assert_eq!(err.kind(), FsErrorKind::NotRegular);
    }

    #[test]
    fn a_lease_on_the_file_answers_busy_at_once_on_either_way() {
        // The holder is this process, which ignores the break notice, as a sandbox
        // process that means to stall the daemon would.
        // SAFETY: setting a signal's disposition to ignore runs no code of ours.
        unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
        own_mounts();
        let nodev = tempfile::tempdir().expect("tempdir");
        tmpfs(nodev.path(), MountFlags::NODEV);
        let plain = tempfile::tempdir().expect("tempdir");
        tmpfs(plain.path(), MountFlags::empty());
        for home in [nodev.path(), plain.path()] {
            std::fs::write(home.join("w"), "leased").expect("file");
            std::fs::write(home.join("r"), "leased").expect("file");
            let write_leased = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(home.join("w"))
                .expect("open");
            let read_leased = std::fs::File::open(home.join("r")).expect("open");
            for (file, lease) in [(&write_leased, libc::F_WRLCK), (&read_leased, libc::F_RDLCK)] {
                // SAFETY: fcntl on a descriptor we own, with an integer argument.
                let set = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, lease) };
                assert_eq!(set, 0, "lease: {}", std::io::Error::last_os_error());
            }
            let root = Root::open(home).expect("root");
            let started = Instant::now();
            // A write lease holds off readers.
            let err = root.open_read(&path("/w")).expect_err("read under a write lease");
            assert_eq!(err.kind(), FsErrorKind::Busy);
            // A read lease holds off writers in place.
            let err = root
                .write_in_place(
                    &path("/r"),
                    &mut &b"more"[..],
                    Placement::Append,
                    FileOwner::ROOT,
                    crate::Checks::default(),
                )
                .expect_err("append under a read lease");
            assert_eq!(err.kind(), FsErrorKind::Busy);
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "waited on a lease: {:?}",
                started.elapsed()
            );
        }
    }
}
