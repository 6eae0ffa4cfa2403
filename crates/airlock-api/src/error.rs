//! The one error shape every route answers with: `{"error": {"code", "message"}}`.

use serde::{Deserialize, Serialize};

/// A stable, machine-readable error code; each maps to one HTTP status.
///
/// Clients decode this from daemons that may be newer: a code they do not know becomes
/// [`ErrorCode::Unknown`] instead of a decoding failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// A malformed request, path or argument (400).
    BadRequest,
    /// No token, or a wrong one (401).
    Unauthorized,
    /// Read-only target or outside the caller's scope (403).
    Forbidden,
    /// No such sandbox, template or file (404).
    NotFound,
    /// The client stopped sending its request body for longer than the idle timeout (408).
    Timeout,
    /// Exists already, or the sandbox is in the wrong state (409).
    Conflict,
    /// Over a size or count limit (413).
    TooLarge,
    /// A body of a media type the route does not take (415).
    UnsupportedMediaType,
    /// The request head (URI and headers) is over the daemon's limit (431).
    HeadersTooLarge,
    /// An unsatisfiable byte range (416).
    BadRange,
    /// A malformed archive (422).
    BadArchive,
    /// A resumable upload's chunk or whole content did not match its checksum (460, as
    /// tus asks).
    ChecksumMismatch,
    /// The daemon failed; the message says what (500).
    Internal,
    /// The sandbox's disk quota is exhausted (507).
    DiskQuota,
    /// The target kept changing under a lookup (a rename race); try again (503).
    Busy,
    /// The tenant is at its cap of concurrent watches, commands or uploads; try again
    /// after `Retry-After` seconds (429).
    TooManyRequests,
    /// A code this client does not know (sent by a newer daemon); never sent.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it travels in JSON (`disk_quota`, ...).
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "internal".to_owned())
    }

    /// The HTTP status this code is sent with.
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::Timeout => 408,
            Self::Conflict => 409,
            Self::TooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::BadRange => 416,
            Self::HeadersTooLarge => 431,
            Self::BadArchive => 422,
            Self::ChecksumMismatch => 460,
            Self::Internal => 500,
            Self::DiskQuota => 507,
            Self::Busy => 503,
            Self::TooManyRequests => 429,
            Self::Unknown => 500,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_from_a_newer_daemon_decode_as_unknown() {
        let code: ErrorCode = serde_json::from_str(r#""some_future_code""#).unwrap();
        assert_eq!(code, ErrorCode::Unknown);
        let known: ErrorCode = serde_json::from_str(r#""disk_quota""#).unwrap();
        assert_eq!(known, ErrorCode::DiskQuota);
    }
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// Code and human message of an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable code for programs.
    pub code: ErrorCode,
    /// A sentence for people, naming what failed and on what.
    pub message: String,
}
