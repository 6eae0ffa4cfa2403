//! A sandbox's root as one mount tree in the daemon's private mount namespace: its own
//! storage plus, for the `host` template, the host's system directories bound read-only,
//! or, for a registered rootfs, an overlay of the template under the sandbox's storage.
//! The sandbox's init takes this tree as its root, and the file API resolves paths in it,
//! so both see the same files. Read-only injected files are bound read-only onto
//! themselves here, which the sandbox inherits.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use airlock_fs::{FileOwner, Root, SandboxPath};
use rustix::fs::{FileType, Mode, OFlags};

use crate::layout::Layout;
use crate::mounts::{self, BindFlags};
use crate::skeleton_spares::SkeletonSpares;
use crate::{disk, skeleton, sys};

/// What a sandbox's root is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateRoot {
    /// The host's system directories, read-only, under a private skeleton.
    Host,
    /// A registered root filesystem (read-only lower layer of an overlay).
    Rootfs(PathBuf),
    /// A container image, run by a cluster backend; this machine's engine refuses it.
    Image(String),
}

fn image_refused(image: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("image {image:?} is a cluster's template; this machine runs root filesystems"),
    )
}

/// Creates a new sandbox's storage (and disk image) and mounts its view; a `host`
/// sandbox's root is one of `spares` when one is ready.
pub fn provision(
    layout: &Layout,
    spares: &SkeletonSpares,
    id: &str,
    template: &TemplateRoot,
    disk_mb: Option<u64>,
) -> io::Result<()> {
    if let TemplateRoot::Image(image) = template {
        return Err(image_refused(image));
    }
    std::fs::create_dir_all(layout.data(id))?;
    if let Some(mb) = disk_mb {
        disk::create_image(&layout.disk_image(id), mb)?;
    }
    mount_storage(layout, id)?;
    match template {
        TemplateRoot::Host => {
            let root = layout.data(id).join("root");
            let name = hostname(id);
            // A disk-limited sandbox's storage is a file system of its own, which no
            // rename from the home reaches.
            if disk_mb.is_some() || !spares.take_into(&root, &name)? {
                skeleton::build(&root, &name)?
            }
        }
        TemplateRoot::Rootfs(_) => {
            for layer in ["upper", "work"] {
                std::fs::create_dir_all(layout.data(id).join(layer))?;
            }
        }
        TemplateRoot::Image(image) => return Err(image_refused(image)),
    }
    mount_view(layout, id, template, &[])?;
    if let TemplateRoot::Rootfs(_) = template {
        prepare_rootfs_dirs(&Root::open(&layout.view(id))?)?;
    }
    Ok(())
}

/// The host name sandbox `id` sees.
pub fn hostname(id: &str) -> String {
    format!("sandbox-{id}")
}

/// Mounts the disk image on the storage directory, when the sandbox has one.
pub fn mount_storage(layout: &Layout, id: &str) -> io::Result<()> {
    let image = layout.disk_image(id);
    if image.exists() {
        disk::mount_image(&image, &layout.data(id))
    } else {
        Ok(())
    }
}

/// Mounts the view of sandbox `id` and re-applies its read-only files.
pub fn mount_view(
    layout: &Layout,
    id: &str,
    template: &TemplateRoot,
    readonly: &[SandboxPath],
) -> io::Result<()> {
    let view = layout.view(id);
    std::fs::create_dir_all(&view)?;
    match template {
        TemplateRoot::Host => mount_host_view(layout, id, &view)?,
        TemplateRoot::Rootfs(lower) => mount_overlay_view(layout, id, lower, &view)?,
        TemplateRoot::Image(image) => return Err(image_refused(image)),
    }
    let root = Root::open(&view)?;
    for path in readonly {
        make_readonly(&root, path)?;
    }
    Ok(())
}

/// Unmounts the view and the storage of sandbox `id` (missing mounts are fine).
pub fn unmount(layout: &Layout, id: &str) -> io::Result<()> {
    for target in [layout.view(id), layout.data(id)] {
        match sys::unmount_detach(&target) {
            Err(e) if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) => {
                return Err(e);
            }
            _ => {}
        }
    }
    match std::fs::remove_dir(layout.view(id)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Binds the file at `path` read-only onto itself, so nothing can write, truncate,
/// chmod, remove or rename it (the mount point is busy) from inside the sandbox.
pub fn make_readonly(root: &Root, path: &SandboxPath) -> io::Result<()> {
    let fd = root.lookup_nofollow(path).map_err(io::Error::other)?;
    if file_type(&fd)? != FileType::RegularFile {
        return Err(io::Error::other(format!(
            "{path}: read-only injection needs a regular file"
        )));
    }
    mounts::bind(
        &fd,
        &fd,
        BindFlags {
            recursive: false,
            readonly: true,
            nodev: true,
        },
    )
}

fn mount_host_view(layout: &Layout, id: &str, view: &Path) -> io::Result<()> {
    let own_root = mounts::open_host_path(&layout.data(id).join("root"))?;
    // `nodev`, as the overlay views are: the sandbox's devices are binds on its own
    // /dev tmpfs, and no device node on its storage may act when the daemon opens it
    // (which lets reads open files directly: `Root::open_read`).
    mounts::bind(
        &own_root,
        &mounts::open_host_path(view)?,
        BindFlags {
            recursive: false,
            readonly: false,
            nodev: true,
        },
    )?;
    let root = Root::open(view)?;
    for (name, entry) in &skeleton::host().shared {
        let is_dir = match entry {
            skeleton::HostEntry::Symlink(_) => continue,
            skeleton::HostEntry::Dir => true,
            skeleton::HostEntry::File => false,
        };
        let host = Path::new("/").join(name);
        let target = open_mount_point(&root, name, is_dir)?;
        mounts::bind(
            &mounts::open_host_path(&host)?,
            &target,
            BindFlags {
                recursive: true,
                readonly: true,
                nodev: true,
            },
        )?;
        mask_daemon_home(layout, &host, &root, name)?;
    }
    Ok(())
}

/// If the daemon's home sits inside a host directory we share, cover it with an empty
/// read-only tmpfs so the sandbox can never see tokens or other sandboxes.
fn mask_daemon_home(layout: &Layout, host_dir: &Path, root: &Root, name: &str) -> io::Result<()> {
    let Ok(inner) = layout.home().strip_prefix(host_dir) else {
        return Ok(());
    };
    let path =
        SandboxPath::parse(&format!("/{name}/{}", inner.display())).map_err(io::Error::other)?;
    let target = root
        .resolve(&path, OFlags::PATH | OFlags::DIRECTORY)
        .map_err(io::Error::other)?;
    sys::mount(
        "tmpfs",
        &sys::fd_path(&target),
        "tmpfs",
        libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        "size=4k,mode=0",
    )
}

fn mount_overlay_view(layout: &Layout, id: &str, lower: &Path, view: &Path) -> io::Result<()> {
    let data = layout.data(id);
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        overlay_path(lower)?,
        overlay_path(&data.join("upper"))?,
        overlay_path(&data.join("work"))?
    );
    let target = view
        .to_str()
        .ok_or_else(|| io::Error::other("non-UTF-8 view path"))?;
    sys::mount("overlay", target, "overlay", libc::MS_NODEV, &options)
}

/// Overlay options are a comma- and colon-separated list; paths containing either would
/// change their meaning, so they are refused.
fn overlay_path(path: &Path) -> io::Result<&str> {
    let text = path
        .to_str()
        .ok_or_else(|| io::Error::other("non-UTF-8 path"))?;
    if text.contains([',', ':', '\\']) {
        return Err(io::Error::other(format!(
            "{text}: overlay paths may not contain ',', ':' or '\\'"
        )));
    }
    Ok(text)
}

/// Opens an existing mount point in the view, refusing symlinks anywhere on the way.
fn open_mount_point(root: &Root, name: &str, want_dir: bool) -> io::Result<OwnedFd> {
    let fd = root.open_beneath(name, OFlags::PATH)?;
    let is_dir = file_type(&fd)? == FileType::Directory;
    if is_dir != want_dir {
        return Err(io::Error::other(format!(
            "/{name} in the sandbox root is not the expected kind of file"
        )));
    }
    Ok(fd)
}

fn file_type(fd: &OwnedFd) -> io::Result<FileType> {
    Ok(FileType::from_raw_mode(rustix::fs::fstat(fd)?.st_mode))
}

/// A rootfs may lack the directories every sandbox relies on; make them, confined.
fn prepare_rootfs_dirs(root: &Root) -> io::Result<()> {
    let dirs: [(&str, u32, FileOwner); 7] = [
        ("/proc", 0o555, FileOwner::ROOT),
        ("/dev", 0o755, FileOwner::ROOT),
        ("/sys", 0o555, FileOwner::ROOT),
        ("/tmp", 0o1777, FileOwner::ROOT),
        ("/home", 0o755, FileOwner::ROOT),
        ("/home/user", 0o750, FileOwner::SANDBOX_USER),
        ("/workspace", 0o755, FileOwner::SANDBOX_USER),
    ];
    for (path, mode, owner) in dirs {
        let path = SandboxPath::parse(path).map_err(io::Error::other)?;
        root.mkdir_all(&path, mode, owner)
            .map_err(io::Error::other)?;
        // mkdir's mode loses the sticky bit and meets the umask; set it exactly.
        let dir = root
            .resolve(&path, OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(io::Error::other)?;
        rustix::fs::fchmod(&dir, Mode::from_raw_mode(mode))?;
    }
    Ok(())
}
