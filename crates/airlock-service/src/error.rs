//! The service's error: a stable code and a message for the caller. The cause of an
//! internal failure (which may name host paths) goes to the log only, under an incident
//! number the message repeats, so a 500 never shows the host's layout.

use std::sync::atomic::{AtomicU64, Ordering};

use airlock_api::ErrorCode;
use airlock_fs::{FsError, FsErrorKind};

/// An error any face can report: REST as `{"error": {code, message}}`, gRPC as a status
/// with the code in its details.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// Stable code.
    pub code: ErrorCode,
    /// What failed, for the caller; never an internal cause.
    pub message: String,
    /// Seconds after which trying again may succeed (REST `Retry-After`, gRPC
    /// `RetryInfo`).
    pub retry_after: Option<u64>,
}

/// Numbers internal failures so an answer can point at its log line.
static INCIDENTS: AtomicU64 = AtomicU64::new(1);

impl ApiError {
    /// An error with `code` and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error, telling the caller when to try again.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// A malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// No such thing (or not the caller's).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// In the way, or in the wrong state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// The caller may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// A daemon failure: `cause` is logged with `context`; the caller sees only the
    /// context and an incident number.
    pub fn internal(context: &str, cause: impl std::fmt::Display) -> Self {
        let incident = INCIDENTS.fetch_add(1, Ordering::Relaxed);
        tracing::error!(incident, %cause, "{context}");
        Self::new(
            ErrorCode::Internal,
            format!(
                "internal error {context} (incident {incident}: the daemon's log has the cause)"
            ),
        )
    }
}

/// An engine failure: its kind picks the code; its cause goes to the log only.
impl From<airlock_sandbox::SandboxError> for ApiError {
    fn from(err: airlock_sandbox::SandboxError) -> Self {
        use airlock_sandbox::FailureKind;
        let action = err.action();
        match err.kind() {
            FailureKind::NotFound => Self::not_found(format!("{action}: not found")),
            FailureKind::Busy => Self::new(ErrorCode::Busy, format!("{action}: busy; try again")),
            FailureKind::Exhausted => {
                tracing::warn!(%err, "out of a resource");
                Self::new(
                    ErrorCode::TooLarge,
                    format!(
                        "{action}: the machine is out of a resource (disk, memory or processes)"
                    ),
                )
            }
            FailureKind::Refused => Self::new(ErrorCode::Busy, err.to_string()),
            _ => Self::internal(action, &err),
        }
    }
}

impl From<FsError> for ApiError {
    fn from(err: FsError) -> Self {
        // By kind, so an error an agent reported answers as it would have here.
        let code = match err.kind() {
            FsErrorKind::BadPath => ErrorCode::BadRequest,
            FsErrorKind::NotFound => ErrorCode::NotFound,
            FsErrorKind::ReadOnly => ErrorCode::Forbidden,
            FsErrorKind::NoSpace => ErrorCode::DiskQuota,
            FsErrorKind::Conflict | FsErrorKind::IsDirectory => ErrorCode::Conflict,
            // A whole-file checksum miss has always been a 400 on REST; 460 is tus's own.
            FsErrorKind::NotRegular | FsErrorKind::ChecksumMismatch => ErrorCode::BadRequest,
            FsErrorKind::BadArchive => ErrorCode::BadArchive,
            FsErrorKind::TooLarge => ErrorCode::TooLarge,
            FsErrorKind::Busy => ErrorCode::Busy,
            FsErrorKind::Stalled => ErrorCode::Timeout,
            FsErrorKind::Interrupted => ErrorCode::BadRequest,
            FsErrorKind::Io => {
                return Self::internal(&format!("on {}", err.path()), &err);
            }
        };
        Self::new(code, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_failures_keep_their_cause_out_of_the_answer() {
        let cause = "open /var/lib/airlock/sandboxes/abc/rootfs: Permission denied";
        let err = ApiError::internal("opening sandbox root", cause);
        assert_eq!(err.code, ErrorCode::Internal);
        assert!(!err.message.contains("/var/lib"), "{}", err.message);
        assert!(err.message.contains("opening sandbox root"));
    }

    #[test]
    fn an_error_from_another_process_answers_as_the_original_would() {
        let originals = [
            FsError::NotFound { path: "/a".into() },
            FsError::BadPath {
                path: "/b".into(),
                reason: "is the root directory",
            },
            FsError::ReadOnly { path: "/c".into() },
            FsError::NoSpace { path: "/d".into() },
            FsError::Conflict {
                path: "/e".into(),
                reason: "already exists",
            },
            FsError::ChecksumMismatch {
                path: "/f".into(),
                algorithm: "crc64nvme",
                expected: "00".into(),
                actual: "11".into(),
            },
            FsError::BadArchive {
                path: "/g".into(),
                reason: "a link leaves the target".into(),
            },
            FsError::TooLarge {
                path: "/h".into(),
                reason: "over 1 byte".into(),
            },
            FsError::Interrupted {
                path: "/i".into(),
                reason: "gone".into(),
                stalled: true,
            },
            FsError::Busy { path: "/j".into() },
        ];
        for original in originals {
            let wire = original.to_wire();
            let json = serde_json::to_string(&wire).unwrap();
            let back = FsError::from_wire(serde_json::from_str(&json).unwrap());
            let (here, there) = (ApiError::from(original), ApiError::from(back));
            assert_eq!((here.code, &here.message), (there.code, &there.message));
        }
    }

    #[test]
    fn an_engine_failure_crosses_without_its_host_details() {
        let source = std::io::Error::other("/var/lib/airlock/views/abc: EIO");
        let wire = FsError::Io {
            path: "/work/f".into(),
            source,
        }
        .to_wire();
        assert!(!wire.message.contains("/var/lib"), "{}", wire.message);
        let answered = ApiError::from(FsError::from_wire(wire));
        assert_eq!(answered.code, ErrorCode::Internal);
    }

    #[test]
    fn engine_io_errors_become_internal_without_their_source() {
        let source = std::io::Error::other("/host/secret/path: EIO");
        let err = ApiError::from(FsError::Io {
            path: "/home/user/f".into(),
            source,
        });
        assert_eq!(err.code, ErrorCode::Internal);
        assert!(!err.message.contains("/host/secret"), "{}", err.message);
        assert!(err.message.contains("/home/user/f"));
    }
}
