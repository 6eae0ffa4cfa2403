//! Where everything lives under the daemon's home directory.
//!
//! ```text
//! HOME/token                      admin token (0600)
//! HOME/sandboxes/<id>/sandbox.json  the service's record
//! HOME/sandboxes/<id>/disk.ext4     disk image, when a disk limit is set
//! HOME/sandboxes/<id>/uploads/      resumable upload records (the bytes wait in the sandbox)
//! HOME/sandboxes/<id>/data/         writable storage (the image's mount point if any)
//!                         root/     host template: the sandbox's own root skeleton
//!                         upper/ work/  rootfs templates: overlay layers
//! HOME/views/<id>/                the sandbox's whole root, mounted in the daemon's
//!                                 private mount namespace; the file API works here
//! HOME/templates/<name>/rootfs/   registered root filesystems
//! HOME/skeletons/<n>/             host-template roots made ahead of their sandboxes
//! ```

use std::path::{Path, PathBuf};

/// Paths under one daemon home.
#[derive(Debug, Clone)]
pub struct Layout {
    home: PathBuf,
}

impl Layout {
    /// A layout rooted at `home` (which should be absolute).
    pub fn new(home: impl Into<PathBuf>) -> Self {
        Self { home: home.into() }
    }

    /// The home directory itself.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Directory of all sandbox records and storage.
    pub fn sandboxes(&self) -> PathBuf {
        self.home.join("sandboxes")
    }

    /// Deleted sandboxes' directories, until the janitor has removed them.
    pub fn trash(&self) -> PathBuf {
        self.home.join("trash")
    }

    /// One sandbox's directory.
    pub fn sandbox(&self, id: &str) -> PathBuf {
        self.sandboxes().join(id)
    }

    /// The sandbox's persisted record.
    pub fn record(&self, id: &str) -> PathBuf {
        self.sandbox(id).join("sandbox.json")
    }

    /// The sandbox's disk image, used when it has a disk limit.
    pub fn disk_image(&self, id: &str) -> PathBuf {
        self.sandbox(id).join("disk.ext4")
    }

    /// Records of the sandbox's resumable uploads (`<upload id>.json`).
    pub fn uploads(&self, id: &str) -> PathBuf {
        self.sandbox(id).join("uploads")
    }

    /// The sandbox's writable storage.
    pub fn data(&self, id: &str) -> PathBuf {
        self.sandbox(id).join("data")
    }

    /// Where the sandbox's root is mounted for the daemon.
    pub fn view(&self, id: &str) -> PathBuf {
        self.home.join("views").join(id)
    }

    /// Spare skeletons for `host` sandboxes' roots, made ahead of their creates.
    pub fn skeletons(&self) -> PathBuf {
        self.home.join("skeletons")
    }

    /// Directory of registered templates.
    pub fn templates(&self) -> PathBuf {
        self.home.join("templates")
    }

    /// A registered template's root filesystem.
    pub fn template_rootfs(&self, name: &str) -> PathBuf {
        self.templates().join(name).join("rootfs")
    }
}
