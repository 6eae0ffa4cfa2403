//! The service's errors as gRPC statuses: an honest status code, the message, and
//! Airlock's own error code twice over: as a `google.rpc.ErrorInfo` in the status details
//! (reason = the code, domain `airlock`) and as the `airlock-error-code` trailer, for
//! clients that do not decode details.

use airlock_api::ErrorCode;
use airlock_service::ApiError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The domain of every `ErrorInfo` Airlock sends.
pub const ERROR_DOMAIN: &str = "airlock";

/// The gRPC code for each of Airlock's codes.
pub fn grpc_code(code: ErrorCode) -> Code {
    match code {
        ErrorCode::BadRequest | ErrorCode::HeadersTooLarge => Code::InvalidArgument,
        ErrorCode::Unauthorized => Code::Unauthenticated,
        ErrorCode::Forbidden => Code::PermissionDenied,
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::Timeout => Code::DeadlineExceeded,
        ErrorCode::Conflict => Code::FailedPrecondition,
        ErrorCode::TooLarge | ErrorCode::DiskQuota => Code::ResourceExhausted,
        ErrorCode::UnsupportedMediaType | ErrorCode::BadArchive => Code::InvalidArgument,
        ErrorCode::BadRange => Code::OutOfRange,
        ErrorCode::ChecksumMismatch => Code::DataLoss,
        ErrorCode::Busy => Code::Unavailable,
        ErrorCode::TooManyRequests => Code::ResourceExhausted,
        _ => Code::Internal,
    }
}

/// The status answering `err`. REST has one 409 for "in the way"; gRPC tells a target
/// that already exists (ALREADY_EXISTS) from a wrong state (FAILED_PRECONDITION) by the
/// engine's wording of the former.
pub fn status(err: ApiError) -> Status {
    let name = err.code.name();
    let mut details = ErrorDetails::with_error_info(name.clone(), ERROR_DOMAIN, []);
    if let Some(secs) = err.retry_after {
        details.set_retry_info(Some(std::time::Duration::from_secs(secs)));
    }
    let code = match grpc_code(err.code) {
        Code::FailedPrecondition if err.message.contains("already exists") => Code::AlreadyExists,
        code => code,
    };
    let mut status = Status::with_error_details(code, err.message, details);
    if let Ok(value) = name.parse() {
        status.metadata_mut().insert("airlock-error-code", value);
    }
    status
}

/// A malformed request, answered before the service is called.
pub fn invalid(message: impl Into<String>) -> Status {
    status(ApiError::bad_request(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_honest_statuses_with_the_airlock_code_in_the_details() {
        let quota = status(ApiError::new(ErrorCode::DiskQuota, "full"));
        assert_eq!(quota.code(), Code::ResourceExhausted);
        let info = quota.get_details_error_info().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("disk_quota", ERROR_DOMAIN)
        );
        assert_eq!(
            quota.metadata().get("airlock-error-code").unwrap(),
            "disk_quota"
        );
        assert_eq!(status(ApiError::not_found("x")).code(), Code::NotFound);
        assert_eq!(
            status(ApiError::conflict("x")).code(),
            Code::FailedPrecondition
        );
        let sum = status(ApiError::new(ErrorCode::ChecksumMismatch, "x"));
        assert_eq!(sum.code(), Code::DataLoss);
    }
}
