//! E2B's access tokens and the file URLs signed with them. E2B's SDKs sign a file URL
//! themselves, with the sandbox's access token: `v1_` + unpadded base64 of the sha256 of
//! `path:operation:user:token[:expiration]`. To check such a signature the daemon must
//! know the token, yet it stores tokens only as hashes; so a sandbox's E2B access token
//! is derived from the daemon's key and the sandbox id (the same token each time it is
//! asked for), and stored like any sandbox write token. It dies with its sandbox, or
//! when the daemon's signing key is replaced.

use base64::Engine as _;
use sha2::Digest;
use subtle::ConstantTimeEq;

use crate::credentials::Scope;
use crate::record::now_secs;
use crate::{Access, ApiError, Need, Principal, Service};

/// What the derivation is for, so the key yields nothing else with the same input.
const LABEL: &str = "e2b-envd-access-token";

/// A file URL's signature, as the request carries it.
#[derive(Debug)]
pub struct EnvdSignature<'a> {
    /// The `path` parameter, exactly as signed.
    pub path: &'a str,
    /// `read` for a download, `write` for an upload.
    pub write: bool,
    /// The `username` parameter; empty when absent.
    pub user: &'a str,
    /// The `signature` parameter.
    pub signature: &'a str,
    /// The `signature_expiration` parameter (Unix seconds), when there is one.
    pub expiration: Option<&'a str>,
}

impl Service {
    /// The sandbox's E2B access token: a write token for that sandbox alone, derived so
    /// that signatures made with it can be checked. Needs the right to mint its tokens.
    pub fn envd_token(&self, caller: &Principal, id: &str) -> Result<String, ApiError> {
        let entry = self.entry(caller, id, Need::Manage)?;
        let secret = format!("als_{}", self.signer.derive(LABEL, &entry.id));
        let scope = Scope {
            sandbox_id: entry.id.clone(),
            access: Access::Write,
        };
        let name = format!("sandbox {} (e2b access token)", entry.id);
        self.credentials
            .adopt(name, entry.owner.clone(), scope, &secret)?;
        Ok(secret)
    }

    /// The sandbox a signed E2B file URL is for (the one `sandbox` names, or else the one
    /// whose token made the signature) and the principal it acts as: that sandbox's,
    /// reading or writing. Expired: 401; matching no sandbox: 403.
    pub fn authenticate_envd_signature(
        &self,
        sandbox: Option<&str>,
        signed: &EnvdSignature<'_>,
    ) -> Result<(String, Principal), ApiError> {
        let expiration = match signed.expiration {
            Some(text) => Some(
                text.parse::<u64>()
                    .map_err(|_| ApiError::bad_request("signature_expiration is Unix seconds"))?,
            ),
            None => None,
        };
        if expiration.is_some_and(|at| at < now_secs()) {
            return Err(ApiError::new(
                airlock_api::ErrorCode::Unauthorized,
                "the signed URL has expired",
            ));
        }
        let operation = if signed.write { "write" } else { "read" };
        let candidates: Vec<(String, String)> = self
            .entries()
            .into_iter()
            .filter(|e| sandbox.is_none_or(|id| id == e.id))
            .map(|e| (e.id.clone(), e.owner.clone()))
            .collect();
        for (id, owner) in candidates {
            let token = format!("als_{}", self.signer.derive(LABEL, &id));
            let raw = match expiration {
                Some(at) => format!("{}:{operation}:{}:{token}:{at}", signed.path, signed.user),
                None => format!("{}:{operation}:{}:{token}", signed.path, signed.user),
            };
            let digest = sha2::Sha256::digest(raw.as_bytes());
            let expected = format!(
                "v1_{}",
                base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
            );
            if bool::from(expected.as_bytes().ct_eq(signed.signature.as_bytes())) {
                let access = if signed.write {
                    Access::Write
                } else {
                    Access::Read
                };
                let principal = Principal::Sandbox {
                    tenant: owner,
                    sandbox_id: id.clone(),
                    access,
                    by: "e2b signed URL".into(),
                };
                return Ok((id, principal));
            }
        }
        Err(ApiError::forbidden(
            "the signature does not match this path, operation, user and expiry",
        ))
    }
}
