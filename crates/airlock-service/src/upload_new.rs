//! What starts a resumable upload and what checks one chunk, in the forms faces receive
//! them: tus's `Upload-Metadata` and `Upload-Checksum` text, or typed fields (gRPC).
//! Both faces create the same upload, so one begun over tus finishes over gRPC.

use base64::Engine as _;
use sha2::digest::DynDigest;

use crate::ApiError;
use crate::options::{ChecksumText, parse_mode, parse_mtime};

/// Chunk checksum algorithms a client may name.
pub const CHUNK_CHECKSUMS: &str = "sha1,sha256";

/// A new upload as the client describes it. `None` means the service's default: mode
/// 0644, overwrite on, the time of the commit, no whole-file check.
#[derive(Debug, Clone, Default)]
pub struct NewUpload {
    /// Absolute destination inside the sandbox.
    pub path: String,
    /// Total bytes the upload will carry.
    pub length: u64,
    /// Permission bits.
    pub mode: Option<u32>,
    /// Modification time, whole seconds since the epoch.
    pub mtime: Option<i64>,
    /// Replace an existing file.
    pub overwrite: Option<bool>,
    /// sha256 of the whole file, lower-case hex; the commit is refused when it differs.
    pub sha256: Option<String>,
    /// CRC-64/NVME of the whole file, lower-case hex; the commit is refused when it differs.
    pub crc64nvme: Option<String>,
    /// The extra checksum to compute and report (`sha256`).
    pub checksum: Option<String>,
    /// The tus metadata as sent, kept to be shown back.
    pub metadata: String,
}

impl NewUpload {
    /// Reads tus `Upload-Metadata`: `key base64value` pairs, comma-separated, with `path`
    /// and optionally `mode` (octal), `mtime`, `sha256` and `crc64nvme` (hex, to verify),
    /// `checksum` (`sha256`: report one) and `overwrite`. Unknown
    /// keys are kept but ignored, as tus asks.
    pub fn from_tus_metadata(raw: &str, length: u64) -> Result<Self, ApiError> {
        let mut new = Self {
            length,
            metadata: raw.to_owned(),
            ..Self::default()
        };
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
            let value = base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .ok()
                .and_then(|v| String::from_utf8(v).ok())
                .ok_or_else(|| {
                    ApiError::bad_request(format!("Upload-Metadata {key}: not base64 UTF-8"))
                })?;
            match key {
                "path" => new.path = value,
                "mode" => new.mode = Some(parse_mode(&value)?),
                "sha256" => new.sha256 = Some(value),
                "crc64nvme" => new.crc64nvme = Some(value),
                "checksum" => new.checksum = Some(value),
                "overwrite" => new.overwrite = Some(value != "false"),
                // The same rule as every other write's mtime (whole seconds are kept).
                "mtime" => new.mtime = Some(parse_mtime(&value)?.0),
                _ => {}
            }
        }
        if new.path.is_empty() {
            return Err(ApiError::bad_request(
                "Upload-Metadata needs path (base64 of the absolute destination)",
            ));
        }
        new.checked()
    }

    /// Checks the fields every face may fill: the checksums' forms.
    pub fn checked(mut self) -> Result<Self, ApiError> {
        ChecksumText {
            algorithm: self.checksum.as_deref(),
            crc64nvme: self.crc64nvme.as_deref(),
            sha256: self.sha256.as_deref(),
        }
        .parse()?;
        let lower = |text: &mut Option<String>| {
            if let Some(text) = text.as_mut() {
                text.make_ascii_lowercase();
            }
        };
        lower(&mut self.sha256);
        lower(&mut self.crc64nvme);
        Ok(self)
    }
}

/// A checksum the client sent for one chunk.
pub struct ChunkChecksum {
    pub(crate) hasher: Box<dyn DynDigest + Send>,
    pub(crate) expected: Vec<u8>,
}

impl ChunkChecksum {
    /// `algorithm` (`sha1` or `sha256`) and the digest the chunk must have.
    pub fn new(algorithm: &str, expected: Vec<u8>) -> Result<Self, ApiError> {
        let hasher: Box<dyn DynDigest + Send> = match algorithm {
            "sha1" => Box::new(sha1::Sha1::default()),
            "sha256" => Box::new(sha2::Sha256::default()),
            other => {
                return Err(ApiError::bad_request(format!(
                    "checksum algorithm {other:?} is not one of {CHUNK_CHECKSUMS}"
                )));
            }
        };
        Ok(Self { hasher, expected })
    }

    /// tus `Upload-Checksum: <algorithm> <base64 digest>`.
    pub fn from_tus_header(value: &str) -> Result<Self, ApiError> {
        let (algorithm, digest) = value
            .split_once(' ')
            .ok_or_else(|| ApiError::bad_request("Upload-Checksum is '<algorithm> <base64>'"))?;
        let expected = base64::engine::general_purpose::STANDARD
            .decode(digest.trim())
            .map_err(|_| ApiError::bad_request("Upload-Checksum's digest is not base64"))?;
        Self::new(algorithm, expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn metadata_is_read_with_the_write_rules() {
        let raw = format!("path {},mode {},extra {}", b64("/a"), b64("0600"), b64("x"));
        let new = NewUpload::from_tus_metadata(&raw, 5).unwrap();
        assert_eq!(
            (new.path.as_str(), new.mode, new.overwrite),
            ("/a", Some(0o600), None)
        );
        let bad_mode = format!("path {},mode {}", b64("/a"), b64("99"));
        assert!(NewUpload::from_tus_metadata(&bad_mode, 5).is_err());
        let bad_sum = format!("path {},sha256 {}", b64("/a"), b64("zz"));
        assert!(NewUpload::from_tus_metadata(&bad_sum, 5).is_err());
        assert!(NewUpload::from_tus_metadata("mode MDY0NA==", 5).is_err());
        assert!(NewUpload::from_tus_metadata("path !!!", 5).is_err());
    }

    #[test]
    fn chunk_checksums_name_a_known_algorithm() {
        assert!(ChunkChecksum::from_tus_header("sha256 AAAA").is_ok());
        assert!(ChunkChecksum::from_tus_header("md5 AAAA").is_err());
        assert!(ChunkChecksum::from_tus_header("sha256 ***").is_err());
        assert!(ChunkChecksum::from_tus_header("sha256").is_err());
    }
}
