//! The service's error: a stable code and a message for the caller. The cause of an
//! internal failure (which may name host paths) goes to the log only, under an incident
//! number the message repeats, so a 500 never shows the host's layout.

use std::sync::atomic::{AtomicU64, Ordering};

use airlock_api::ErrorCode;
use airlock_fs::FsError;

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
            _ => Self::internal(action, &err),
        }
    }
}

impl From<FsError> for ApiError {
    fn from(err: FsError) -> Self {
        let code = match &err {
            FsError::BadPath { .. } => ErrorCode::BadRequest,
            FsError::NotFound { .. } => ErrorCode::NotFound,
            FsError::ReadOnly { .. } => ErrorCode::Forbidden,
            FsError::NoSpace { .. } => ErrorCode::DiskQuota,
            FsError::Conflict { .. } | FsError::IsDirectory { .. } => ErrorCode::Conflict,
            // A whole-file checksum miss has always been a 400 on REST; 460 is tus's own.
            FsError::NotRegular { .. } | FsError::ChecksumMismatch { .. } => ErrorCode::BadRequest,
            FsError::BadArchive { .. } => ErrorCode::BadArchive,
            FsError::TooLarge { .. } => ErrorCode::TooLarge,
            FsError::Busy { .. } => ErrorCode::Busy,
            FsError::Interrupted { stalled: true, .. } => ErrorCode::Timeout,
            FsError::Interrupted { .. } => ErrorCode::BadRequest,
            FsError::Io { path, .. } => {
                return Self::internal(&format!("on {path}"), &err);
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
