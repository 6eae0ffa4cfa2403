//! Tokens: a tenant's API tokens (minted by the admin) and sandbox-scoped tokens (minted
//! by the sandbox's tenant). A token's secret is shown once, when it is made.

use serde::{Deserialize, Serialize};

/// Body of `POST /v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A name for people (what the token is for).
    pub name: String,
    /// The tenant it acts as: `[a-z0-9._-]`, 1 to 64 characters, not `admin`.
    pub tenant: String,
    /// Lifetime in seconds; no expiry when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
}

/// A new API token: the secret is in this answer only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenCreated {
    /// Stable id, for listing and revoking.
    pub id: String,
    /// The secret bearer token.
    pub token: String,
    /// Its name.
    pub name: String,
    /// Its tenant.
    pub tenant: String,
    /// RFC 3339 expiry, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// An API token as listings show it: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Stable id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its tenant.
    pub tenant: String,
    /// RFC 3339 time it was made.
    pub created_at: String,
    /// RFC 3339 expiry, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// Body of `POST /v1/sandboxes/{id}/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSandboxToken {
    /// `read` (file reads, listings, archive download, watch) or `write` (also writes
    /// and exec).
    pub access: String,
    /// Lifetime in seconds; until the sandbox is deleted when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
}

/// A new sandbox token: the secret is in this answer only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxToken {
    /// The secret bearer token.
    pub token: String,
    /// `read` or `write`.
    pub access: String,
    /// RFC 3339 expiry, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// Body of `POST /v1/sandboxes/{id}/files/signed-url`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignUrl {
    /// The one file the URL reaches, as the file routes take it.
    pub path: String,
    /// `GET` (download; `HEAD` too) or `PUT` (upload); `GET` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Lifetime in seconds (1 to 604800); 300 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
}

/// A signed URL: anyone holding it may do its one method on its one file, with no
/// header, until it expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedUrl {
    /// The URL. The daemon answers it absolute, from the request's `Host`.
    pub url: String,
    /// `GET` or `PUT`.
    pub method: String,
    /// RFC 3339 expiry.
    pub expires_at: String,
}
