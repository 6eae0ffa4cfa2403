//! Tokens: a tenant's API tokens (the admin mints, lists and revokes them) and tokens
//! for one sandbox (its tenant mints them).

use airlock_api::{
    CreateSandboxToken, CreateToken, SandboxToken, SignUrl, SignedUrl, TokenCreated, TokenInfo,
};
use reqwest::Method;

use crate::{Client, Error, json, send};

impl Client {
    /// Mints an API token for `tenant` (admin only); the secret is in the answer only.
    pub async fn create_token(
        &self,
        name: &str,
        tenant: &str,
        ttl_secs: Option<u64>,
    ) -> Result<TokenCreated, Error> {
        let body = CreateToken {
            name: name.to_owned(),
            tenant: tenant.to_owned(),
            ttl_secs,
        };
        json(self.request(Method::POST, "/tokens").json(&body)).await
    }

    /// Every API token, without secrets (admin only).
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, Error> {
        json(self.request(Method::GET, "/tokens")).await
    }

    /// Revokes an API token at once (admin only).
    pub async fn revoke_token(&self, id: &str) -> Result<(), Error> {
        send(self.request(Method::DELETE, &format!("/tokens/{id}")))
            .await
            .map(drop)
    }

    /// Mints a token for sandbox `id` alone: `read`, or `write` (also writes and exec).
    pub async fn create_sandbox_token(
        &self,
        id: &str,
        access: &str,
        ttl_secs: Option<u64>,
    ) -> Result<SandboxToken, Error> {
        let body = CreateSandboxToken {
            access: access.to_owned(),
            ttl_secs,
        };
        json(
            self.request(Method::POST, &format!("/sandboxes/{id}/tokens"))
                .json(&body),
        )
        .await
    }

    /// Signs a URL for one file of sandbox `id` and one method (`GET` or `PUT`): usable
    /// with no header until it expires.
    pub async fn sign_url(
        &self,
        id: &str,
        path: &str,
        method: &str,
        ttl_secs: Option<u64>,
    ) -> Result<SignedUrl, Error> {
        let body = SignUrl {
            path: path.to_owned(),
            method: Some(method.to_owned()),
            ttl_secs,
        };
        json(
            self.request(Method::POST, &format!("/sandboxes/{id}/files/signed-url"))
                .json(&body),
        )
        .await
    }
}
