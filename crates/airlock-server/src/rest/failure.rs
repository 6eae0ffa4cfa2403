//! The service's errors as HTTP answers: `{"error": {code, message}}` with the code's
//! status.

use airlock_api::{ErrorBody, ErrorDetail};
use airlock_service::ApiError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error answered over REST.
#[derive(Debug)]
pub struct Failure(pub ApiError);

impl From<ApiError> for Failure {
    fn from(err: ApiError) -> Self {
        Self(err)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.0.retry_after;
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.0.code,
                message: self.0.message,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// A handler's result.
pub type Answer<T> = Result<T, Failure>;
