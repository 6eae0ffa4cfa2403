//! The private root of a `host`-template sandbox: writable home, tmp and workspace, a
//! generated /etc, and empty mount points where the host's system directories go.
//!
//! It is written on every create's path, so it is written in as few system calls as it
//! takes: each entry relative to the held root directory (not by a path walked from `/`
//! again), born with its mode where the umask leaves it whole and with its owner where
//! that is the daemon's own, and the host's layout looked up once per daemon. Written
//! path by path with a chmod and a chown each, it was 115 calls and 1.6 ms of a 6 ms
//! create.

use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::{AtFlags, Gid, Mode, OFlags, Uid};

/// Host directories shared read-only. `/bin`-style entries that are symlinks on the host
/// (merged /usr) are copied as symlinks instead.
pub const SYSTEM_DIRS: &[&str] = &["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];
/// Host files and directories under /etc that programs need and that hold no secrets.
pub const ETC_SHARED: &[&str] = &[
    "etc/alternatives",
    "etc/ssl",
    "etc/ld.so.cache",
    "etc/mime.types",
];
/// Directories the sandbox user may write.
pub const WRITABLE_DIRS: &[&str] = &["/home/user", "/tmp", "/workspace"];

const USER: u32 = 1000;

/// What one of the shared host paths is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEntry {
    Dir,
    File,
    Symlink(PathBuf),
}

/// The host paths a skeleton mirrors, looked up once: the host's layout (merged /usr or
/// not, where its time zone points) does not change under a running daemon, and a path
/// that did change makes the bind that needs it fail, never reach further.
#[derive(Debug)]
pub struct HostLayout {
    /// [`SYSTEM_DIRS`] then [`ETC_SHARED`] that exist on the host, with what each is.
    pub shared: Vec<(&'static str, HostEntry)>,
    /// Where the host's `/etc/localtime` points, when it is a symlink.
    pub localtime: Option<PathBuf>,
}

/// This host's layout.
pub fn host() -> &'static HostLayout {
    static HOST: OnceLock<HostLayout> = OnceLock::new();
    HOST.get_or_init(|| HostLayout {
        shared: SYSTEM_DIRS
            .iter()
            .chain(ETC_SHARED)
            .filter_map(|name| Some((*name, host_entry(&Path::new("/").join(name))?)))
            .collect(),
        localtime: std::fs::read_link("/etc/localtime").ok(),
    })
}

fn host_entry(path: &Path) -> Option<HostEntry> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if meta.file_type().is_symlink() {
        Some(HostEntry::Symlink(std::fs::read_link(path).ok()?))
    } else if meta.is_dir() {
        Some(HostEntry::Dir)
    } else {
        Some(HostEntry::File)
    }
}

/// Writes the skeleton into `root`, which must not exist yet.
pub fn build(root: &Path, hostname: &str) -> io::Result<()> {
    make(root)?.name(hostname)
}

/// Writes all of the skeleton into `root` (which must not exist yet) but the two files
/// that name its sandbox, which [`name`] writes once it has one: a spare made ahead of
/// its sandbox ([`crate::skeleton_spares`]).
pub fn build_unnamed(root: &Path) -> io::Result<()> {
    make(root).map(drop)
}

/// Writes the files that name the sandbox into a skeleton from [`build_unnamed`].
pub fn name(root: &Path, hostname: &str) -> io::Result<()> {
    Skeleton::at(open_dir(root)?).name(hostname)
}

fn open_dir(root: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn make(root: &Path) -> io::Result<Skeleton> {
    rustix::fs::mkdir(root, Mode::from_raw_mode(0o755))?;
    let dir = Skeleton::at(open_dir(root)?);
    // Set outright, whatever the parent passed down (a setgid bit, a group): everything
    // below is then born root's, as the daemon is.
    rustix::fs::fchmod(&dir.root, Mode::from_raw_mode(0o755))?;
    rustix::fs::fchown(&dir.root, Some(Uid::ROOT), Some(Gid::ROOT))?;
    for (name, mode, owner) in [
        ("etc", 0o755, 0),
        ("home", 0o755, 0),
        ("home/user", 0o750, USER),
        ("workspace", 0o755, USER),
        ("tmp", 0o1777, 0),
        ("var", 0o755, 0),
        ("var/tmp", 0o1777, 0),
        ("run", 0o755, 0),
        ("root", 0o700, 0),
        ("proc", 0o555, 0),
        ("dev", 0o755, 0),
        ("sys", 0o555, 0),
    ] {
        dir.dir(name, mode, owner)?;
    }
    let host = host();
    for (name, entry) in &host.shared {
        // Directories and files are mount points for the host's, bound read-only.
        match entry {
            HostEntry::Symlink(target) => rustix::fs::symlinkat(target, &dir.root, *name)?,
            HostEntry::Dir => dir.dir(name, 0o755, 0)?,
            HostEntry::File => dir.file(name, "", 0o644, 0)?,
        }
    }
    if let Some(zone) = &host.localtime {
        rustix::fs::symlinkat(zone, &dir.root, "etc/localtime")?;
    }
    dir.file("etc/passwd", PASSWD, 0o644, 0)?;
    dir.file("etc/group", GROUP, 0o644, 0)?;
    dir.file("etc/resolv.conf", "", 0o644, 0)?;
    dir.file(
        "etc/nsswitch.conf",
        "passwd: files\ngroup: files\nhosts: files\n",
        0o644,
        0,
    )?;
    dir.file("home/user/.profile", PROFILE, 0o644, USER)?;
    Ok(dir)
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n";
const PROFILE: &str = "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n";

/// Entries made relative to the skeleton's held root.
struct Skeleton {
    root: OwnedFd,
    /// The user and group what the daemon makes is born to.
    born_to: (u32, u32),
}

impl Skeleton {
    fn at(root: OwnedFd) -> Self {
        let born_to = (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        );
        Self { root, born_to }
    }

    /// The files that name the sandbox.
    fn name(&self, hostname: &str) -> io::Result<()> {
        self.file("etc/hostname", &format!("{hostname}\n"), 0o644, 0)?;
        self.file(
            "etc/hosts",
            &format!("127.0.0.1 localhost {hostname}\n::1 localhost\n"),
            0o644,
            0,
        )
    }

    fn dir(&self, name: &str, mode: u32, owner: u32) -> io::Result<()> {
        rustix::fs::mkdirat(&self.root, name, Mode::from_raw_mode(mode))?;
        if airlock_fs::lost_to_umask(mode) != 0 {
            rustix::fs::chmodat(
                &self.root,
                name,
                Mode::from_raw_mode(mode),
                AtFlags::empty(),
            )?;
        }
        self.own(&self.root, name, owner, AtFlags::SYMLINK_NOFOLLOW)
    }

    fn file(&self, name: &str, content: &str, mode: u32, owner: u32) -> io::Result<()> {
        let fd = rustix::fs::openat(
            &self.root,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        if airlock_fs::lost_to_umask(mode) != 0 {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
        }
        self.own(&fd, "", owner, AtFlags::EMPTY_PATH)?;
        std::fs::File::from(fd).write_all(content.as_bytes())
    }

    /// Gives `name` to `owner`, unless it was born theirs (made by the daemon, root).
    fn own(&self, at: impl AsFd, name: &str, owner: u32, flags: AtFlags) -> io::Result<()> {
        if self.born_to == (owner, owner) {
            return Ok(());
        }
        let (uid, gid) = (Uid::from_raw(owner), Gid::from_raw(owner));
        Ok(rustix::fs::chownat(at, name, Some(uid), Some(gid), flags)?)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn every_entry_has_its_mode_owner_and_content() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        build(&root, "sandbox-x").unwrap();
        let me = (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        );
        let root_owner = if me == (0, 0) { 0 } else { me.0 };
        for (name, mode, uid) in [
            ("", 0o755, root_owner),
            ("home/user", 0o750, USER),
            ("workspace", 0o755, USER),
            ("tmp", 0o1777, root_owner),
            ("var/tmp", 0o1777, root_owner),
            ("root", 0o700, root_owner),
            ("proc", 0o555, root_owner),
            ("etc/hosts", 0o644, root_owner),
            ("home/user/.profile", 0o644, USER),
        ] {
            let meta = std::fs::symlink_metadata(root.join(name)).unwrap();
            assert_eq!(meta.mode() & 0o7777, mode, "{name}");
            assert_eq!(meta.uid(), uid, "{name}");
            assert_eq!(meta.gid(), uid, "{name}");
        }
        let hosts = std::fs::read_to_string(root.join("etc/hosts")).unwrap();
        assert_eq!(hosts, "127.0.0.1 localhost sandbox-x\n::1 localhost\n");
        assert_eq!(
            std::fs::read_to_string(root.join("etc/hostname")).unwrap(),
            "sandbox-x\n"
        );
        for (name, entry) in &host().shared {
            let meta = std::fs::symlink_metadata(root.join(name)).unwrap();
            match entry {
                HostEntry::Dir => assert!(meta.is_dir(), "{name}"),
                HostEntry::Symlink(t) => {
                    assert_eq!(&std::fs::read_link(root.join(name)).unwrap(), t)
                }
                HostEntry::File => assert!(meta.is_file() && meta.len() == 0, "{name}"),
            }
        }
    }

    #[test]
    fn a_root_that_exists_is_refused_rather_than_built_into() {
        let tmp = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/", tmp.path().join("root")).unwrap();
        assert!(build(&tmp.path().join("root"), "x").is_err());
    }

    #[test]
    fn a_setgid_parent_passes_nothing_down() {
        let tmp = tempfile::tempdir().unwrap();
        let parent = tmp.path().join("data");
        std::fs::create_dir(&parent).unwrap();
        std::fs::set_permissions(
            &parent,
            std::os::unix::fs::PermissionsExt::from_mode(0o2777),
        )
        .unwrap();
        rustix::fs::chown(&parent, None, Some(Gid::from_raw(4242))).unwrap();
        build(&parent.join("root"), "x").unwrap();
        for name in ["root", "root/etc", "root/etc/passwd", "root/tmp"] {
            let meta = std::fs::metadata(parent.join(name)).unwrap();
            assert_eq!(meta.gid(), 0, "{name}");
            assert_eq!(meta.mode() & 0o2000, 0, "{name}");
        }
    }
}
