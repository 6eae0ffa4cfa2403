//! Where `cp` remembers the URL of a large upload in progress, so that running the same
//! copy again resumes it: `$AIRLOCK_STATE_DIR`, else `$XDG_STATE_HOME/airlock`, else
//! `~/.local/state/airlock`, one small file per upload under `uploads/`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// One remembered upload.
pub struct ResumeState {
    file: PathBuf,
}

impl ResumeState {
    /// The state of copying `local` (as it is now: same size and mtime) to `dest` in
    /// sandbox `id` of the daemon at `daemon`.
    pub fn for_upload(
        daemon: &str,
        id: &str,
        local: &Path,
        dest: &str,
        meta: &std::fs::Metadata,
    ) -> anyhow::Result<Self> {
        let local = std::fs::canonicalize(local)?;
        let key = format!(
            "{daemon}\n{id}\n{}\n{dest}\n{}\n{}.{}",
            local.display(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec()
        );
        let digest = airlock_fs::hex(&Sha256::digest(key.as_bytes())[..16]);
        Ok(Self {
            file: state_dir().join("uploads").join(digest),
        })
    }

    /// The remembered upload URL, if any.
    pub fn load(&self) -> Option<String> {
        std::fs::read_to_string(&self.file)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| s.starts_with("/v1/"))
    }

    pub fn save(&self, url: &str) -> std::io::Result<()> {
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&self.file, url)
    }

    pub fn clear(&self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("AIRLOCK_STATE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(dir).join("airlock");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    home.join(".local/state/airlock")
}
