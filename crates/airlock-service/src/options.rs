//! The options of a write, as faces receive them, and the rules that read them: modes in
//! octal, mtimes as epoch seconds or RFC 3339, checksums as hex. Every face (query
//! strings, multipart part headers, tus metadata, protobuf fields) goes through these, so
//! one rule holds everywhere.

use airlock_api::FileMode;
use airlock_fs::Checks;

use crate::ApiError;

/// A whole-file write. `None` means "the service's default": mode 0644, overwrite on,
/// parents as the operation decides (off for a single write, on within a batch).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PutFile {
    /// Permission bits.
    pub mode: Option<u32>,
    /// Modification time: seconds and nanoseconds since the epoch.
    pub mtime: Option<(i64, u32)>,
    /// Make missing parent directories.
    pub parents: Option<bool>,
    /// Replace an existing file.
    pub overwrite: Option<bool>,
    /// Checksums to compute beyond the CRC, and to verify: nothing is committed when one
    /// differs.
    pub checks: Checks,
}

/// An in-place write: exactly one of `append` and `offset`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PatchFile {
    /// Append at the end.
    pub append: Option<bool>,
    /// Write at this byte offset.
    pub offset: Option<u64>,
    /// Checksums to report beyond the CRC.
    pub checks: Checks,
}

/// A write's checksum options in their text forms.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChecksumText<'a> {
    /// `checksum`: the extra algorithm to compute and report (`sha256`), or `crc64nvme`
    /// (always computed).
    pub algorithm: Option<&'a str>,
    /// The CRC-64/NVME the content must have: 16 hex digits.
    pub crc64nvme: Option<&'a str>,
    /// The SHA-256 the content must have: 64 hex digits.
    pub sha256: Option<&'a str>,
}

impl ChecksumText<'_> {
    /// Reads the options by the one rule every face shares.
    pub fn parse(self) -> Result<Checks, ApiError> {
        let sha256 = match self.algorithm {
            None | Some("") | Some("crc64nvme") => false,
            Some("sha256") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "checksum {other:?} is not one of crc64nvme, sha256"
                )));
            }
        };
        Ok(Checks {
            sha256,
            expect_crc64nvme: self.crc64nvme.map(parse_crc64nvme).transpose()?,
            expect_sha256: self.sha256.map(parse_sha256).transpose()?,
        })
    }
}

impl PutFile {
    /// The options from their text forms (a query string, a part's headers).
    pub fn from_text(
        mode: Option<&str>,
        mtime: Option<&str>,
        checksums: ChecksumText<'_>,
        parents: Option<bool>,
        overwrite: Option<bool>,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            mode: mode.map(parse_mode).transpose()?,
            mtime: mtime.map(parse_mtime).transpose()?,
            parents,
            overwrite,
            checks: checksums.parse()?,
        })
    }

    /// Checks numeric options that arrived unparsed (protobuf fields).
    pub fn checked(self) -> Result<Self, ApiError> {
        if let Some(mode) = self.mode {
            check_mode(mode)?;
        }
        if let Some((secs, nanos)) = self.mtime {
            check_mtime(secs, nanos)?;
        }
        Ok(self)
    }
}

/// Permission bits in octal text (`644`, `0755`, up to `07777`).
pub fn parse_mode(text: &str) -> Result<u32, ApiError> {
    FileMode::parse_octal(text)
        .map(|m| m.0)
        .map_err(ApiError::bad_request)
}

pub(crate) fn check_mode(mode: u32) -> Result<(), ApiError> {
    if mode > 0o7777 {
        return Err(ApiError::bad_request(format!(
            "mode {mode:o} has bits beyond 07777"
        )));
    }
    Ok(())
}

/// The same range RFC 3339 can name; 1e300 would otherwise saturate to a nonsense time.
const LAST_SECOND_OF_9999: i64 = 253_402_300_799;

/// Seconds since the epoch (fractions allowed) or RFC 3339, from 1970 to 9999.
pub fn parse_mtime(text: &str) -> Result<(i64, u32), ApiError> {
    if let Ok(secs) = text.parse::<f64>() {
        if !(0.0..=LAST_SECOND_OF_9999 as f64).contains(&secs) {
            return Err(ApiError::bad_request(format!(
                "mtime {text:?} is outside 1970 to 9999"
            )));
        }
        return Ok((secs.trunc() as i64, (secs.fract() * 1e9) as u32));
    }
    let time = humantime::parse_rfc3339_weak(text).map_err(|_| {
        ApiError::bad_request(format!(
            "mtime {text:?} is neither epoch seconds nor RFC 3339"
        ))
    })?;
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| ApiError::bad_request("mtime before 1970"))?;
    Ok((since.as_secs() as i64, since.subsec_nanos()))
}

fn check_mtime(secs: i64, nanos: u32) -> Result<(), ApiError> {
    if !(0..=LAST_SECOND_OF_9999).contains(&secs) || nanos >= 1_000_000_000 {
        return Err(ApiError::bad_request(format!(
            "mtime {secs}.{nanos:09} is outside 1970 to 9999"
        )));
    }
    Ok(())
}

/// A sha256 given as 64 hex digits.
pub fn parse_sha256(text: &str) -> Result<[u8; 32], ApiError> {
    let mut out = [0u8; 32];
    parse_hex(text, "sha256", &mut out)?;
    Ok(out)
}

/// A CRC-64/NVME given as 16 hex digits (its big-endian bytes).
pub fn parse_crc64nvme(text: &str) -> Result<u64, ApiError> {
    let mut out = [0u8; 8];
    parse_hex(text, "crc64nvme", &mut out)?;
    Ok(u64::from_be_bytes(out))
}

/// Exactly `out.len()` bytes as hex digits, either case.
fn parse_hex(text: &str, name: &str, out: &mut [u8]) -> Result<(), ApiError> {
    let digits = out.len() * 2;
    let bad = || ApiError::bad_request(format!("{name} {text:?} is not {digits} hex digits"));
    // Bytes, not string slices: a multi-byte character must be refused, not split (the
    // fuzzer found a panic here).
    let digit = |b: u8| (b as char).to_digit(16).ok_or_else(bad);
    let hex = text.as_bytes();
    if hex.len() != digits {
        return Err(bad());
    }
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (digit(pair[0])? << 4 | digit(pair[1])?) as u8;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_text_with_multibyte_characters_is_refused() {
        let mut text = "a".repeat(61);
        text.push('é');
        text.push('b');
        assert_eq!(text.len(), 64);
        assert!(parse_sha256(&text).is_err());
        let good = "0123456789abcdefABCDEF".repeat(3)[..64].to_owned();
        assert_eq!(parse_sha256(&good).unwrap()[..3], [0x01, 0x23, 0x45]);
    }

    #[test]
    fn checksum_options_are_read_by_one_rule() {
        let checks = ChecksumText {
            algorithm: Some("sha256"),
            crc64nvme: Some("D9160D1FA8E418E3"),
            sha256: None,
        }
        .parse()
        .unwrap();
        assert!(checks.sha256);
        assert_eq!(checks.expect_crc64nvme, Some(0xd916_0d1f_a8e4_18e3));
        let refused = |text: ChecksumText<'_>| text.parse().unwrap_err().to_string();
        assert!(
            refused(ChecksumText {
                algorithm: Some("md5"),
                ..ChecksumText::default()
            })
            .contains("not one of crc64nvme, sha256")
        );
        for crc in [
            "d9160d1fa8e418e",
            "d9160d1fa8e418e3a",
            "d9160d1fa8e418eé",
            "0x160d1fa8e418e3",
        ] {
            assert!(
                refused(ChecksumText {
                    crc64nvme: Some(crc),
                    ..ChecksumText::default()
                })
                .contains("16 hex digits")
            );
        }
    }

    #[test]
    fn mtimes_outside_1970_to_9999_are_refused_in_every_form() {
        assert!(parse_mtime("1e300").is_err());
        assert!(parse_mtime("-1").is_err());
        assert_eq!(parse_mtime("1.5").unwrap(), (1, 500_000_000));
        assert!(parse_mtime("2024-01-02T03:04:05Z").is_ok());
        let numeric = |secs, nanos| PutFile {
            mtime: Some((secs, nanos)),
            ..PutFile::default()
        };
        assert!(numeric(-1, 0).checked().is_err());
        assert!(numeric(LAST_SECOND_OF_9999 + 1, 0).checked().is_err());
        assert!(numeric(0, 1_000_000_000).checked().is_err());
        assert!(numeric(1, 2).checked().is_ok());
    }

    #[test]
    fn modes_beyond_the_permission_bits_are_refused() {
        assert!(parse_mode("10000").is_err());
        assert_eq!(parse_mode("0755").unwrap(), 0o755);
        let numeric = PutFile {
            mode: Some(0o10000),
            ..PutFile::default()
        };
        assert!(numeric.checked().is_err());
    }
}
