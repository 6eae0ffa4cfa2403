//! Who is calling, and what they may do. Every face resolves its caller to a principal
//! (through [`crate::Service::authenticate`]) before it calls the service, and every
//! service call takes one; the one door to a sandbox ([`crate::Service`]'s `entry`)
//! checks its reach and rights.

use crate::ApiError;

/// What a sandbox-scoped token may do in its sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Read its files: content, list, stat, archive download, watch.
    Read,
    /// Also write files and run commands.
    Write,
}

/// What an operation on a sandbox needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Look: read files, list, stat, download, watch, get the sandbox.
    Read,
    /// Change: write files, run commands.
    Write,
    /// Govern: start, stop, delete, mint tokens.
    Manage,
}

/// The caller of a service operation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Principal {
    /// The daemon's own token: every sandbox, every operation.
    Admin,
    /// A tenant's API token: the tenant's own sandboxes, every operation on them.
    Tenant {
        /// The tenant's name.
        tenant: String,
        /// Which credential, in words safe to log: `token 3fa2c1d0e9b8`, `oidc alice`.
        by: String,
    },
    /// A token for one sandbox, with read or write access to it.
    Sandbox {
        /// The tenant the sandbox belongs to.
        tenant: String,
        /// The one sandbox it reaches.
        sandbox_id: String,
        /// What it may do there.
        access: Access,
        /// Which credential, in words safe to log: `token 3fa2c1d0e9b8`, `signed URL`.
        by: String,
    },
}

impl Principal {
    /// The name a sandbox created by this caller records as its owner (its tenant).
    pub fn owner(&self) -> &str {
        match self {
            Self::Admin => crate::ADMIN_OWNER,
            Self::Tenant { tenant, .. } | Self::Sandbox { tenant, .. } => tenant,
        }
    }

    /// The credential, in words safe to log (never a secret).
    pub fn by(&self) -> &str {
        match self {
            Self::Admin => "admin token",
            Self::Tenant { by, .. } | Self::Sandbox { by, .. } => by,
        }
    }

    /// Refuses callers that are not the admin; `what` names the operation.
    pub(crate) fn require_admin(&self, what: &str) -> Result<(), ApiError> {
        match self {
            Self::Admin => Ok(()),
            _ => Err(ApiError::forbidden(format!("only the admin may {what}"))),
        }
    }

    /// Refuses sandbox-scoped tokens, which reach one sandbox's files and nothing else
    /// (creating, listing or deleting sandboxes, minting tokens); `what` names the
    /// operation.
    pub(crate) fn require_account(&self, what: &str) -> Result<(), ApiError> {
        match self {
            Self::Sandbox { .. } => Err(ApiError::forbidden(format!(
                "a sandbox token may not {what}; use an API token"
            ))),
            _ => Ok(()),
        }
    }

    /// Whether this caller may reach sandbox `id`, owned by `owner`, at all.
    pub(crate) fn reaches(&self, owner: &str, id: &str) -> bool {
        match self {
            Self::Admin => true,
            Self::Tenant { tenant, .. } => tenant == owner,
            Self::Sandbox {
                tenant, sandbox_id, ..
            } => tenant == owner && sandbox_id == id,
        }
    }

    /// Whether this caller may do `need` in a sandbox it reaches (403 otherwise).
    pub(crate) fn allows(&self, need: Need) -> Result<(), ApiError> {
        let allowed = match (self, need) {
            (Self::Admin | Self::Tenant { .. }, _) => true,
            (Self::Sandbox { access, .. }, Need::Read) => {
                matches!(access, Access::Read | Access::Write)
            }
            (Self::Sandbox { access, .. }, Need::Write) => *access == Access::Write,
            (Self::Sandbox { .. }, Need::Manage) => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::forbidden(match need {
                Need::Manage => {
                    "a sandbox token may not start, stop or delete its sandbox, nor mint tokens"
                }
                _ => "this sandbox token may only read",
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scoped(access: Access) -> Principal {
        Principal::Sandbox {
            tenant: "t".into(),
            sandbox_id: "s1".into(),
            access,
            by: "token x".into(),
        }
    }

    #[test]
    fn reach_is_by_tenant_and_by_sandbox() {
        let tenant = Principal::Tenant {
            tenant: "t".into(),
            by: "token y".into(),
        };
        assert!(tenant.reaches("t", "any") && !tenant.reaches("u", "any"));
        assert!(scoped(Access::Read).reaches("t", "s1"));
        assert!(!scoped(Access::Read).reaches("t", "s2"));
        assert!(!scoped(Access::Write).reaches("u", "s1"));
        assert!(Principal::Admin.reaches("anyone", "anything"));
    }

    #[test]
    fn rights_follow_the_scope() {
        assert!(scoped(Access::Read).allows(Need::Read).is_ok());
        assert!(scoped(Access::Read).allows(Need::Write).is_err());
        assert!(scoped(Access::Write).allows(Need::Write).is_ok());
        assert!(scoped(Access::Write).allows(Need::Manage).is_err());
        assert!(
            scoped(Access::Write)
                .require_account("create sandboxes")
                .is_err()
        );
        let tenant = Principal::Tenant {
            tenant: "t".into(),
            by: "token y".into(),
        };
        assert!(tenant.allows(Need::Manage).is_ok());
        assert!(tenant.require_admin("mint API tokens").is_err());
    }
}
