//! Who is calling, the same way on every face: `Authorization: Bearer <token>` resolves to
//! a [`Principal`] before any handler runs. (Tenants and scoped tokens join here.)

use airlock_api::ErrorCode;
use airlock_service::{ApiError, Principal};

use crate::token::Token;

/// Resolves a request's credentials.
#[derive(Debug)]
pub struct Authenticator {
    admin: Token,
}

impl Authenticator {
    /// Knows the daemon's admin token.
    pub fn new(admin: Token) -> Self {
        Self { admin }
    }

    /// The principal an `Authorization` header value names, or why there is none.
    pub fn principal(&self, authorization: Option<&str>) -> Result<Principal, ApiError> {
        let presented = authorization
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            Some(candidate) if self.admin.matches(candidate) => Ok(Principal::Admin),
            Some(_) => Err(ApiError::new(
                ErrorCode::Unauthorized,
                "the token is not valid for this daemon",
            )),
            None => Err(ApiError::new(
                ErrorCode::Unauthorized,
                "send Authorization: Bearer <token> (the token is in the daemon's home, file `token`)",
            )),
        }
    }
}
