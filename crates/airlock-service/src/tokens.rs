//! Tokens as the API offers them: authenticating a bearer, API tokens for tenants (the
//! admin mints, lists and revokes them), and sandbox-scoped tokens (a sandbox's tenant
//! mints them).

use airlock_api::{CreateSandboxToken, CreateToken, SandboxToken, TokenCreated, TokenInfo};

use crate::credentials::Scope;
use crate::record::rfc3339;
use crate::{Access, ApiError, Need, Principal, Service};

impl Service {
    /// The principal an `Authorization` header value names: the one authenticator
    /// every face calls before anything else. A bearer is the admin token, a minted
    /// token, or (when an issuer is configured) an OIDC JWT.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, ApiError> {
        match authorization
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
        {
            Some(token) if !token.is_empty() => match &self.oidc {
                Some(oidc) if crate::oidc::Oidc::looks_like_jwt(token) => oidc.verify(token).await,
                _ => self.credentials.resolve(token).await,
            },
            _ => Err(ApiError::new(
                airlock_api::ErrorCode::Unauthorized,
                "send Authorization: Bearer <token> (the admin token is in the daemon's home, file `token`)",
            )),
        }
    }

    /// Mints an API token for a tenant (admin only).
    pub fn create_token(
        &self,
        caller: &Principal,
        req: CreateToken,
    ) -> Result<TokenCreated, ApiError> {
        let mut audit = self.audit(caller, "token.create", None);
        let result = (|| {
            caller.require_admin("mint API tokens")?;
            check_tenant(&req.tenant)?;
            if req.name.is_empty() || req.name.len() > 128 {
                return Err(ApiError::bad_request(
                    "a token's name is 1 to 128 characters",
                ));
            }
            let (record, token) =
                self.credentials
                    .mint(req.name, req.tenant, req.ttl_secs, None)?;
            Ok(TokenCreated {
                id: record.id,
                token,
                name: record.name,
                tenant: record.tenant,
                expires_at: record.expires_at.map(rfc3339),
            })
        })();
        if let Ok(value) = &result {
            audit.set_target(&value.id);
            audit.set_tenant(&value.tenant);
        }
        audit.done(result)
    }

    /// Every API token, without secrets (admin only).
    pub fn list_tokens(&self, caller: &Principal) -> Result<Vec<TokenInfo>, ApiError> {
        caller.require_admin("list API tokens")?;
        Ok(self
            .credentials
            .api_tokens()
            .into_iter()
            .map(|t| TokenInfo {
                id: t.id,
                name: t.name,
                tenant: t.tenant,
                created_at: rfc3339(t.created_at),
                expires_at: t.expires_at.map(rfc3339),
            })
            .collect())
    }

    /// Revokes an API token at once (admin only).
    pub fn revoke_token(&self, caller: &Principal, id: &str) -> Result<(), ApiError> {
        let audit = self.audit(caller, "token.revoke", None).target(id);
        let result = (|| {
            caller.require_admin("revoke API tokens")?;
            if self.credentials.revoke(id)? {
                Ok(())
            } else {
                Err(ApiError::not_found(format!("no token {id}")))
            }
        })();
        audit.done(result)
    }

    /// Mints a token for one sandbox, by its tenant or the admin.
    pub fn create_sandbox_token(
        &self,
        caller: &Principal,
        id: &str,
        req: CreateSandboxToken,
    ) -> Result<SandboxToken, ApiError> {
        let audit = self.audit(caller, "sandbox_token.create", Some(id));
        let result = (|| {
            let entry = self.entry(caller, id, Need::Manage)?;
            let access = match req.access.as_str() {
                "read" => Access::Read,
                "write" => Access::Write,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "access {other:?} is not read or write"
                    )));
                }
            };
            let scope = Scope {
                sandbox_id: entry.id.clone(),
                access,
            };
            let name = format!("sandbox {} ({})", entry.id, req.access);
            let (record, token) =
                self.credentials
                    .mint(name, entry.owner.clone(), req.ttl_secs, Some(scope))?;
            Ok(SandboxToken {
                token,
                access: req.access,
                expires_at: record.expires_at.map(rfc3339),
            })
        })();
        audit.done(result)
    }
}

/// Tenant names are plain, and never the admin's own owner name.
fn check_tenant(tenant: &str) -> Result<(), ApiError> {
    let plain = (1..=64).contains(&tenant.len())
        && tenant
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !plain || tenant == crate::ADMIN_OWNER {
        return Err(ApiError::bad_request(format!(
            "tenant {tenant:?}: use [a-z0-9._-], 1 to 64 characters, not \"admin\""
        )));
    }
    Ok(())
}
