//! Who a bearer token is. The admin token lives in `HOME/token`; minted tokens live in
//! `HOME/tokens.json` (mode 0600) as records holding only the token's sha256, never the
//! token. A token is 256 random bits, shown once when it is made.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use sha2::Digest;
use subtle::ConstantTimeEq;

use crate::ApiError;
use crate::principal::{Access, Principal};
use crate::record::{now_secs, random_hex, save_json};
use crate::token::{self, Token};

/// Prefixes that tell the kinds apart (and let secret scanners find leaked ones).
const API_PREFIX: &str = "alk_";
const SANDBOX_PREFIX: &str = "als_";

/// One minted token, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Stable id, for listing and revoking.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// The tenant it acts as.
    pub tenant: String,
    /// sha256 of the token, hex.
    hash: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds; none: no expiry.
    pub expires_at: Option<u64>,
    /// Set for a sandbox token: the one sandbox and what it may do there.
    pub scope: Option<Scope>,
}

/// What a sandbox token reaches.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scope {
    /// The sandbox.
    pub sandbox_id: String,
    /// Read or write.
    pub access: Access,
}

/// The admin token and every minted one.
pub struct Credentials {
    admin: Token,
    file: PathBuf,
    tokens: RwLock<Vec<TokenRecord>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

impl Credentials {
    /// Loads (or makes) the admin token and the minted tokens of `home`.
    pub fn open(home: &Path) -> io::Result<Self> {
        let admin = token::load_or_create(&home.join("token"))?;
        let file = home.join("tokens.json");
        let tokens = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(io::Error::other)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            admin,
            file,
            tokens: RwLock::new(tokens),
        })
    }

    /// The principal a presented token names. Unknown, revoked and expired tokens are
    /// all 401, with no hint of which.
    pub fn resolve(&self, presented: &str) -> Result<Principal, ApiError> {
        if self.admin.matches(presented) {
            return Ok(Principal::Admin);
        }
        let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        let Some(record) = find(&tokens, presented) else {
            return Err(unauthorized("the token is not valid for this daemon"));
        };
        if record.expires_at.is_some_and(|at| at <= now_secs()) {
            return Err(unauthorized("the token has expired"));
        }
        Ok(match &record.scope {
            None => Principal::Tenant {
                tenant: record.tenant.clone(),
                by: format!("token {}", record.id),
            },
            Some(scope) => Principal::Sandbox {
                tenant: record.tenant.clone(),
                sandbox_id: scope.sandbox_id.clone(),
                access: scope.access,
                by: format!("sandbox token {}", record.id),
            },
        })
    }

    /// Mints a token; answers its record and the secret (shown once).
    pub fn mint(
        &self,
        name: String,
        tenant: String,
        ttl_secs: Option<u64>,
        scope: Option<Scope>,
    ) -> Result<(TokenRecord, String), ApiError> {
        let prefix = if scope.is_some() {
            SANDBOX_PREFIX
        } else {
            API_PREFIX
        };
        let secret = format!("{prefix}{}", random_hex::<32>());
        let now = now_secs();
        let record = TokenRecord {
            id: random_hex::<6>(),
            name,
            tenant,
            hash: hash(&secret),
            created_at: now,
            expires_at: ttl_secs.map(|ttl| now.saturating_add(ttl)),
            scope,
        };
        self.change(|tokens| tokens.push(record.clone()))?;
        Ok((record, secret))
    }

    /// Stores a sandbox token whose secret the daemon derives rather than draws (see
    /// `envd_tokens`); storing it again is a no-op.
    pub fn adopt(
        &self,
        name: String,
        tenant: String,
        scope: Scope,
        secret: &str,
    ) -> Result<(), ApiError> {
        let known = find(
            &self.tokens.read().unwrap_or_else(|p| p.into_inner()),
            secret,
        )
        .is_some();
        if known {
            return Ok(());
        }
        let record = TokenRecord {
            id: random_hex::<6>(),
            name,
            tenant,
            hash: hash(secret),
            created_at: now_secs(),
            expires_at: None,
            scope: Some(scope),
        };
        self.change(|tokens| tokens.push(record))
    }

    /// Every API token (not sandbox tokens).
    pub fn api_tokens(&self) -> Vec<TokenRecord> {
        let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        tokens
            .iter()
            .filter(|t| t.scope.is_none())
            .cloned()
            .collect()
    }

    /// Revokes a token at once; false when there was none with that id.
    pub fn revoke(&self, id: &str) -> Result<bool, ApiError> {
        let mut found = false;
        self.change(|tokens| {
            let before = tokens.len();
            tokens.retain(|t| t.id != id);
            found = tokens.len() != before;
        })?;
        Ok(found)
    }

    /// Forgets the tokens of a deleted sandbox (the file is rewritten only if it had
    /// any: most deletions touch no token).
    pub fn forget_sandbox(&self, sandbox_id: &str) {
        let scoped = |t: &TokenRecord| t.scope.as_ref().is_some_and(|s| s.sandbox_id == sandbox_id);
        let any = self
            .tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(scoped);
        if !any {
            return;
        }
        let outcome = self.change(|tokens| tokens.retain(|t| !scoped(t)));
        if let Err(err) = outcome {
            tracing::warn!(%err, "forgetting a deleted sandbox's tokens");
        }
    }

    /// Changes the records and saves them; the change stands only if it was saved.
    fn change(&self, edit: impl FnOnce(&mut Vec<TokenRecord>)) -> Result<(), ApiError> {
        let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        let mut next = tokens.clone();
        edit(&mut next);
        save_private(&next, &self.file).map_err(|e| ApiError::internal("saving tokens", e))?;
        *tokens = next;
        Ok(())
    }
}

/// The record of a secret, found by its hash, compared in constant time.
fn find<'a>(tokens: &'a [TokenRecord], secret: &str) -> Option<&'a TokenRecord> {
    let hash = hash(secret);
    tokens
        .iter()
        .find(|t| bool::from(t.hash.as_bytes().ct_eq(hash.as_bytes())))
}

fn hash(token: &str) -> String {
    airlock_fs::hex(&sha2::Sha256::digest(token.as_bytes()))
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(airlock_api::ErrorCode::Unauthorized, message)
}

/// Saves the records readable by root alone.
fn save_private(tokens: &[TokenRecord], file: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    save_json(&tokens, file)?;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_as_hashes_and_resolve_to_their_principal() {
        let home = tempfile::tempdir().unwrap();
        let creds = Credentials::open(home.path()).unwrap();
        let (record, secret) = creds
            .mint("ci".into(), "team-a".into(), None, None)
            .unwrap();
        assert!(secret.starts_with(API_PREFIX) && secret.len() == 4 + 64);
        let stored = std::fs::read_to_string(home.path().join("tokens.json")).unwrap();
        assert!(
            !stored.contains(&secret[4..]),
            "the secret itself was stored"
        );
        assert_eq!(
            creds.resolve(&secret).unwrap(),
            Principal::Tenant {
                tenant: "team-a".into(),
                by: format!("token {}", record.id),
            }
        );
        // Kept across a restart; revoked at once.
        let again = Credentials::open(home.path()).unwrap();
        assert!(again.resolve(&secret).is_ok());
        assert!(again.revoke(&record.id).unwrap());
        assert!(again.resolve(&secret).is_err());
        assert!(again.resolve("").is_err() && again.resolve("alk_").is_err());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let home = tempfile::tempdir().unwrap();
        let creds = Credentials::open(home.path()).unwrap();
        let (_, secret) = creds.mint("x".into(), "t".into(), Some(0), None).unwrap();
        let refused = creds.resolve(&secret).unwrap_err();
        assert_eq!(refused.code, airlock_api::ErrorCode::Unauthorized);
    }
}
