//! The checksums a write computes and checks.
//!
//! Every write reports a CRC-64/NVME of the whole content, as S3 does for new uploads: it
//! is computed with carry-less multiplication at many GB/s, so it costs almost nothing
//! per byte, and it catches what goes wrong in transfer and storage (truncation, a flipped
//! or dropped block, a mixed-up chunk). It is not a cryptographic digest: someone who
//! controls the bytes can make two contents with one CRC. SHA-256 is computed as well
//! when the client asks for it or sends one to verify; it is what to use when the content
//! must be the very bytes a third party vouched for.

use sha2::{Digest as _, Sha256};

use crate::write::hex;
use crate::{FsError, FsResult, SandboxPath};

/// What a write must compute and check beyond its CRC-64/NVME.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checks {
    /// Compute the SHA-256 too (implied by `expect_sha256`).
    pub sha256: bool,
    /// Commit only if the content's CRC-64/NVME is this.
    pub expect_crc64nvme: Option<u64>,
    /// Commit only if the content's SHA-256 is this.
    pub expect_sha256: Option<[u8; 32]>,
}

impl Checks {
    /// Whether the SHA-256 must be computed.
    pub fn wants_sha256(&self) -> bool {
        self.sha256 || self.expect_sha256.is_some()
    }

    /// Fails with a checksum mismatch when the content is not what the client expected.
    pub fn verify(&self, sums: &Checksums, path: &SandboxPath) -> FsResult<()> {
        let mismatch = |algorithm, expected: String, actual: String| FsError::ChecksumMismatch {
            path: path.to_string(),
            algorithm,
            expected,
            actual,
        };
        if let Some(expected) = self.expect_crc64nvme
            && expected != sums.crc64nvme
        {
            return Err(mismatch(
                "crc64nvme",
                crc_hex(expected),
                crc_hex(sums.crc64nvme),
            ));
        }
        if let (Some(expected), Some(actual)) = (self.expect_sha256, sums.sha256)
            && expected != actual
        {
            return Err(mismatch("sha256", hex(&expected), hex(&actual)));
        }
        Ok(())
    }
}

/// The checksums of a whole content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checksums {
    /// CRC-64/NVME (the polynomial S3 calls CRC64NVME).
    pub crc64nvme: u64,
    /// SHA-256, when it was asked for.
    pub sha256: Option<[u8; 32]>,
}

impl Checksums {
    /// The CRC as 16 lower-case hex digits (its big-endian bytes).
    pub fn crc64nvme_hex(&self) -> String {
        crc_hex(self.crc64nvme)
    }

    /// The SHA-256 as 64 lower-case hex digits, when computed.
    pub fn sha256_hex(&self) -> Option<String> {
        self.sha256.as_ref().map(|d| hex(d))
    }
}

/// A CRC-64 as 16 lower-case hex digits.
pub fn crc_hex(crc: u64) -> String {
    format!("{crc:016x}")
}

/// Computes a content's checksums as it passes.
pub struct Hasher {
    crc: crc_fast::Digest,
    sha256: Option<Sha256>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("sha256", &self.sha256.is_some())
            .finish_non_exhaustive()
    }
}

impl Hasher {
    /// A hasher for what `checks` needs.
    pub fn new(checks: &Checks) -> Self {
        Self {
            crc: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme),
            sha256: checks.wants_sha256().then(Sha256::new),
        }
    }

    /// Adds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.crc.update(bytes);
        if let Some(sha) = self.sha256.as_mut() {
            sha.update(bytes);
        }
    }

    /// The checksums of everything added.
    pub fn finish(self) -> Checksums {
        Checksums {
            crc64nvme: self.crc.finalize(),
            sha256: self.sha256.map(|sha| sha.finalize().into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(bytes: &[u8], sha256: bool) -> Checksums {
        let mut hasher = Hasher::new(&Checks {
            sha256,
            ..Checks::default()
        });
        for piece in bytes.chunks(3) {
            hasher.update(piece);
        }
        hasher.finish()
    }

    #[test]
    fn crc64nvme_is_the_published_check_value() {
        // The catalogue's check value for "123456789", and the value S3's SDKs give.
        assert_eq!(sums(b"123456789", false).crc64nvme, 0xae8b_1486_0a79_9888);
        assert_eq!(
            sums(b"hello world!", false).crc64nvme_hex(),
            "d9160d1fa8e418e3"
        );
    }

    #[test]
    fn sha256_only_when_asked() {
        assert_eq!(sums(b"abc", false).sha256, None);
        assert_eq!(
            sums(b"abc", true).sha256_hex().as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        let expecting = Checks {
            expect_sha256: Some([0; 32]),
            ..Checks::default()
        };
        assert!(expecting.wants_sha256());
    }

    #[test]
    fn a_wrong_expected_checksum_is_refused_by_name() {
        let path = SandboxPath::parse("/f").expect("path");
        let got = sums(b"abc", true);
        let wrong_crc = Checks {
            expect_crc64nvme: Some(got.crc64nvme ^ 1),
            ..Checks::default()
        };
        let err = wrong_crc.verify(&got, &path).expect_err("crc differs");
        assert!(err.to_string().contains("crc64nvme"), "{err}");
        let wrong_sha = Checks {
            expect_sha256: Some([7; 32]),
            ..Checks::default()
        };
        let err = wrong_sha.verify(&got, &path).expect_err("sha differs");
        assert!(err.to_string().contains("sha256"), "{err}");
        let right = Checks {
            sha256: true,
            expect_crc64nvme: Some(got.crc64nvme),
            expect_sha256: got.sha256,
        };
        right.verify(&got, &path).expect("both match");
    }
}
