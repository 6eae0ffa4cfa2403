//! The service's error: a code, a message, and the HTTP answer they make.

use airlock_api::{ErrorBody, ErrorCode, ErrorDetail};
use airlock_fs::FsError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error any face can report; REST turns it into `{"error": {code, message}}`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// Stable code.
    pub code: ErrorCode,
    /// What failed, for people.
    pub message: String,
}

impl ApiError {
    /// An error with `code` and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// 500, logged with its cause.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(%err, "{context}");
        Self::new(ErrorCode::Internal, format!("{context}: {err}"))
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
            FsError::NotRegular { .. } | FsError::ChecksumMismatch { .. } => ErrorCode::BadRequest,
            FsError::BadArchive { .. } => ErrorCode::BadArchive,
            FsError::TooLarge { .. } => ErrorCode::TooLarge,
            FsError::Interrupted { stalled: true, .. } => ErrorCode::Timeout,
            FsError::Interrupted { .. } => ErrorCode::BadRequest,
            FsError::Io { .. } => ErrorCode::Internal,
        };
        Self::new(code, err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        (status, axum::Json(body)).into_response()
    }
}
