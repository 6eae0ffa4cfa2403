//! The private root of a `host`-template sandbox: writable home, tmp and workspace, a
//! generated /etc, and empty mount points where the host's system directories go.

use std::io;
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::path::Path;

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

/// Writes the skeleton into an empty directory `root`.
pub fn build(root: &Path, hostname: &str) -> io::Result<()> {
    dir(root, "", 0o755, 0)?;
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
        dir(root, name, mode, owner)?;
    }
    for name in SYSTEM_DIRS {
        let host = Path::new("/").join(name);
        match std::fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                symlink(std::fs::read_link(&host)?, root.join(name))?
            }
            Ok(meta) if meta.is_dir() => dir(root, name, 0o755, 0)?,
            _ => {}
        }
    }
    for name in ETC_SHARED {
        match std::fs::metadata(Path::new("/").join(name)) {
            Ok(meta) if meta.is_dir() => dir(root, name, 0o755, 0)?,
            Ok(_) => file(root, name, "", 0o644)?,
            Err(_) => {}
        }
    }
    if let Ok(zone) = std::fs::read_link("/etc/localtime") {
        symlink(zone, root.join("etc/localtime"))?;
    }
    file(root, "etc/passwd", PASSWD, 0o644)?;
    file(root, "etc/group", GROUP, 0o644)?;
    file(root, "etc/hostname", &format!("{hostname}\n"), 0o644)?;
    file(
        root,
        "etc/hosts",
        &format!("127.0.0.1 localhost {hostname}\n::1 localhost\n"),
        0o644,
    )?;
    file(root, "etc/resolv.conf", "", 0o644)?;
    file(
        root,
        "etc/nsswitch.conf",
        "passwd: files\ngroup: files\nhosts: files\n",
        0o644,
    )?;
    file(root, "home/user/.profile", PROFILE, 0o644)?;
    chown(root.join("home/user/.profile"), Some(USER), Some(USER))
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n";
const PROFILE: &str = "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n";

fn dir(root: &Path, name: &str, mode: u32, owner: u32) -> io::Result<()> {
    let path = root.join(name);
    match std::fs::create_dir(&path) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    // Explicit chmod: create_dir's mode is filtered by the daemon's umask.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    chown(&path, Some(owner), Some(owner))
}

fn file(root: &Path, name: &str, content: &str, mode: u32) -> io::Result<()> {
    let path = root.join(name);
    std::fs::write(&path, content)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
}
