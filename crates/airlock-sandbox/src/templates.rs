//! Registered root filesystem templates, stored unpacked under `HOME/templates/<name>`.

use std::io::{self, Read};
use std::path::PathBuf;

use crate::layout::Layout;

/// Name of the built-in template.
pub const HOST_TEMPLATE: &str = "host";

/// True for names made of `[a-z0-9._-]`, starting with a letter or digit, at most 64 long.
pub fn valid_template_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

/// The registered templates of one daemon home.
#[derive(Debug, Clone)]
pub struct TemplateStore {
    layout: Layout,
}

impl TemplateStore {
    /// The store under `layout`'s home.
    pub fn new(layout: Layout) -> Self {
        Self { layout }
    }

    /// The root filesystem of a registered template, if there is one by that name.
    pub fn rootfs(&self, name: &str) -> Option<PathBuf> {
        let path = self.layout.template_rootfs(name);
        (valid_template_name(name) && path.is_dir()).then_some(path)
    }

    /// Names of the registered templates, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.layout.templates())
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.retain(|n| valid_template_name(n) && self.rootfs(n).is_some());
        names.sort();
        names
    }

    /// Unpacks a tar stream as template `name`. The archive comes from the admin, not
    /// from a sandbox; it is unpacked into a fresh private directory (the tar crate refuses
    /// `..` and absolute names there) and renamed into place only when complete. Blocking.
    pub fn register(&self, name: &str, archive: impl Read) -> io::Result<()> {
        let dir = self.layout.templates();
        std::fs::create_dir_all(&dir)?;
        let staging = tempfile::Builder::new()
            .prefix(".incoming-")
            .tempdir_in(&dir)?;
        let rootfs = staging.path().join("rootfs");
        std::fs::create_dir(&rootfs)?;
        let mut tar = tar::Archive::new(archive);
        tar.set_preserve_permissions(true);
        tar.set_preserve_ownerships(true);
        tar.set_unpack_xattrs(false);
        tar.unpack(&rootfs)?;
        let target = dir.join(name);
        std::fs::rename(staging.keep(), &target).map_err(|e| match e.kind() {
            io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::AlreadyExists => io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("template {name} exists"),
            ),
            _ => e,
        })
    }

    /// Deletes template `name`. Blocking.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        std::fs::remove_dir_all(self.layout.templates().join(name))
    }
}

#[cfg(test)]
mod tests {
    use super::valid_template_name;

    #[test]
    fn names_are_plain() {
        assert!(valid_template_name("busybox-1.36"));
        for bad in ["", "../x", "A", "-x", "a/b", &"a".repeat(65)] {
            assert!(!valid_template_name(bad), "{bad}");
        }
    }
}
