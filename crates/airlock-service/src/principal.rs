//! Who is calling. Every face resolves its caller to a principal before it calls the
//! service, and every service call takes one; the service's one door to a sandbox
//! ([`crate::Service`]'s `entry`) decides what that caller may reach.

/// The caller of a service operation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Principal {
    /// The daemon's own token: every sandbox, every operation.
    Admin,
}

impl Principal {
    /// The name a sandbox created by this caller records as its owner.
    pub fn owner(&self) -> &str {
        match self {
            Self::Admin => crate::ADMIN_OWNER,
        }
    }

    /// Refuses callers that are not the admin; `what` names the operation.
    pub(crate) fn require_admin(&self, what: &str) -> Result<(), crate::ApiError> {
        match self {
            Self::Admin => Ok(()),
            #[allow(unreachable_patterns)]
            _ => Err(crate::ApiError::forbidden(format!(
                "only the admin may {what}"
            ))),
        }
    }

    /// Whether this caller may reach a sandbox owned by `owner`.
    pub(crate) fn may_reach(&self, _owner: &str) -> bool {
        match self {
            Self::Admin => true,
        }
    }
}
