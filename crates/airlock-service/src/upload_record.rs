//! What the daemon remembers of a resumable upload, in
//! `HOME/sandboxes/<id>/uploads/<upload id>.json`. The bytes themselves wait in a partial
//! file beside the destination, inside the sandbox, so the sandbox's disk quota counts them.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::record::save_json;

/// One upload in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadRecord {
    /// Random id, the last segment of the upload's URL.
    pub id: String,
    /// Absolute destination inside the sandbox.
    pub path: String,
    /// Total length the client announced.
    pub length: u64,
    /// Bytes received and kept so far.
    pub offset: u64,
    /// Permission bits of the finished file.
    pub mode: Option<u32>,
    /// Modification time of the finished file, seconds since the epoch.
    #[serde(default)]
    pub mtime: Option<i64>,
    /// Replace an existing destination when complete.
    pub overwrite: bool,
    /// Hex sha256 the whole content must have, when the client gave one.
    pub sha256: Option<String>,
    /// Hex CRC-64/NVME the whole content must have, when the client gave one.
    #[serde(default)]
    pub crc64nvme: Option<String>,
    /// The extra checksum the client asked to have reported (`sha256`).
    #[serde(default)]
    pub checksum: Option<String>,
    /// The partial file's name in the destination's directory.
    pub partial: String,
    /// `Upload-Metadata` as the client sent it, echoed on HEAD.
    pub metadata: String,
    /// Seconds since the epoch after which the upload is abandoned.
    pub expires_at: u64,
}

impl UploadRecord {
    /// The checksums the finished file must be given and checked against.
    pub fn checks(&self) -> Result<airlock_fs::Checks, crate::ApiError> {
        crate::ChecksumText {
            algorithm: self.checksum.as_deref(),
            crc64nvme: self.crc64nvme.as_deref(),
            sha256: self.sha256.as_deref(),
        }
        .parse()
    }

    fn file(dir: &Path, id: &str) -> PathBuf {
        dir.join(format!("{id}.json"))
    }

    /// Saves the record into a sandbox's uploads directory.
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        save_json(self, &Self::file(dir, &self.id))
    }

    /// Loads upload `id`; `None` if there is no such upload.
    pub fn load(dir: &Path, id: &str) -> io::Result<Option<Self>> {
        // Ids are ours (hex); anything else cannot name a record.
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        match std::fs::read(Self::file(dir, id)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Forgets the record.
    pub fn remove(dir: &Path, id: &str) -> io::Result<()> {
        match std::fs::remove_file(Self::file(dir, id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every record in a sandbox's uploads directory (unreadable ones skipped).
    pub fn all(dir: &Path) -> Vec<Self> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
            .collect()
    }
}

/// A fresh random upload id: 128 bits, hex.
pub fn new_upload_id() -> String {
    super::record::random_hex::<16>()
}
