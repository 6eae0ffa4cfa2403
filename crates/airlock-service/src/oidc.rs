//! OIDC bearers: JWTs from one issuer, validated against the keys it publishes. The
//! keys are found through `{issuer}/.well-known/openid-configuration`, cached, and
//! fetched again when a token names a key id the cache lacks (the issuer rotated its
//! keys), at most once per [`REFETCH_GAP`] so made-up key ids cannot make the daemon
//! hammer the issuer. Only asymmetric algorithms are taken, and only the one the key
//! itself is for: never `none`, never HMAC (whose "secret" would be the public key).
//! `iss`, `aud`, `exp` and `nbf` are checked with a small leeway. A claim names the
//! tenant (`sub` unless told otherwise).
//!
//! The service does not fetch anything itself (it knows no transport); the daemon hands
//! it a [`Fetch`] that does.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::{ApiError, Principal};

/// The shortest time between two key fetches.
const REFETCH_GAP: Duration = Duration::from_secs(2);
/// Keys are fetched again after this long even when every kid is known, so a key the
/// issuer withdrew stops being accepted.
const KEYS_MAX_AGE: Duration = Duration::from_secs(15 * 60);
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;
/// Algorithms a token may use: the asymmetric ones.
const ALLOWED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Fetches a JSON document over HTTP(S): the daemon's own client.
pub trait Fetch: Send + Sync + std::fmt::Debug {
    /// The JSON at `url`, or why not.
    fn json<'a>(
        &'a self,
        url: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<serde_json::Value, String>> + Send + 'a>>;
}

/// `airlock serve --oidc-*`.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The issuer URL, exactly as tokens name it in `iss`.
    pub issuer: String,
    /// The audience tokens must name in `aud`.
    pub audience: String,
    /// The claim that names the tenant.
    pub tenant_claim: String,
    /// How documents are fetched.
    pub fetch: Arc<dyn Fetch>,
}

/// The issuer's keys, as last fetched.
#[derive(Debug, Default)]
struct Keys {
    set: Option<JwkSet>,
    fetched: Option<Instant>,
}

/// Validates OIDC bearers for one issuer.
#[derive(Debug)]
pub struct Oidc {
    settings: OidcSettings,
    keys: tokio::sync::Mutex<Keys>,
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(airlock_api::ErrorCode::Unauthorized, message)
}

impl Oidc {
    pub fn new(settings: OidcSettings) -> Self {
        Self {
            settings,
            keys: tokio::sync::Mutex::default(),
        }
    }

    /// Whether a bearer looks like a JWT (three dot-separated parts), not an API token.
    pub fn looks_like_jwt(bearer: &str) -> bool {
        bearer.split('.').count() == 3
    }

    /// The tenant principal a valid token names; 401 for anything else, saying why
    /// without echoing the token.
    pub async fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| unauthorized(format!("not a JWT this daemon takes: {e}")))?;
        let alg = header.alg;
        if !ALLOWED.contains(&alg) {
            return Err(unauthorized(format!(
                "algorithm {alg:?} is not taken; use an asymmetric one (RS*, PS*, ES*, EdDSA)"
            )));
        }
        let kid = header.kid.unwrap_or_default();
        let jwk = self.key(&kid).await?;
        let key = decoding_key(&jwk, alg)?;
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key,
            &validation,
        )
        .map_err(|e| unauthorized(format!("the token was refused: {e}")))?;
        let claims = data.claims;
        let claim = &self.settings.tenant_claim;
        let tenant = claims
            .get(claim)
            .and_then(|v| v.as_str())
            .ok_or_else(|| unauthorized(format!("the token has no string claim {claim:?}")))?;
        check_tenant(tenant)?;
        let subject = claims.get("sub").and_then(|v| v.as_str()).unwrap_or(tenant);
        Ok(Principal::Tenant {
            tenant: tenant.to_owned(),
            by: format!("oidc {}", printable(subject)),
        })
    }

    /// The key `kid` names, fetching the issuer's keys when the cache lacks it or is old.
    async fn key(&self, kid: &str) -> Result<Jwk, ApiError> {
        let mut keys = self.keys.lock().await;
        let stale = keys.fetched.is_none_or(|at| at.elapsed() > KEYS_MAX_AGE);
        let known = find(keys.set.as_ref(), kid);
        let may_refetch = keys.fetched.is_none_or(|at| at.elapsed() >= REFETCH_GAP);
        if (known.is_none() || stale) && may_refetch {
            keys.fetched = Some(Instant::now());
            match self.fetch_keys().await {
                Ok(set) => keys.set = Some(set),
                Err(err) => {
                    tracing::warn!(issuer = %self.settings.issuer, %err, "fetching the issuer's keys")
                }
            }
        }
        find(keys.set.as_ref(), kid)
            .ok_or_else(|| unauthorized("the token's signing key is not one the issuer publishes"))
    }

    async fn fetch_keys(&self) -> Result<JwkSet, String> {
        let issuer = self.settings.issuer.trim_end_matches('/');
        let discovery = format!("{issuer}/.well-known/openid-configuration");
        let config = self.settings.fetch.json(&discovery).await?;
        // The document must be the issuer's own (OpenID Connect Discovery, 4.3).
        if config.get("issuer").and_then(|v| v.as_str()) != Some(&self.settings.issuer) {
            return Err(format!("{discovery} names another issuer"));
        }
        let jwks_uri = config
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("{discovery} has no jwks_uri"))?;
        let set = self.settings.fetch.json(jwks_uri).await?;
        serde_json::from_value(set).map_err(|e| format!("{jwks_uri}: {e}"))
    }
}

/// The key with id `kid` (or the only key, when the token names none and there is one).
fn find(set: Option<&JwkSet>, kid: &str) -> Option<Jwk> {
    let set = set?;
    if kid.is_empty() {
        return match set.keys.as_slice() {
            [only] => Some(only.clone()),
            _ => None,
        };
    }
    set.keys
        .iter()
        .find(|k| k.common.key_id.as_deref() == Some(kid))
        .cloned()
}

/// The key for `alg`, only if the key is of that algorithm's kind (and names that
/// algorithm, when it names one): a public key is never taken as an HMAC secret.
fn decoding_key(jwk: &Jwk, alg: Algorithm) -> Result<DecodingKey, ApiError> {
    let kind_fits = matches!(
        (&jwk.algorithm, alg.family()),
        (
            AlgorithmParameters::RSA(_),
            jsonwebtoken::AlgorithmFamily::Rsa
        ) | (
            AlgorithmParameters::EllipticCurve(_),
            jsonwebtoken::AlgorithmFamily::Ec
        ) | (
            AlgorithmParameters::OctetKeyPair(_),
            jsonwebtoken::AlgorithmFamily::Ed
        )
    );
    let named = jwk
        .common
        .key_algorithm
        .map(|named| format!("{named:?}") == format!("{alg:?}"))
        .unwrap_or(true);
    if !kind_fits || !named {
        return Err(unauthorized(format!(
            "the token's algorithm {alg:?} does not fit its key"
        )));
    }
    DecodingKey::from_jwk(jwk)
        .map_err(|e| unauthorized(format!("the issuer's key is unusable: {e}")))
}

/// A tenant a claim may name: printable, short, and never the admin's own owner name.
fn check_tenant(tenant: &str) -> Result<(), ApiError> {
    let fine = (1..=128).contains(&tenant.len())
        && !tenant.chars().any(char::is_control)
        && tenant != crate::ADMIN_OWNER;
    if fine {
        Ok(())
    } else {
        Err(unauthorized(
            "the token's tenant claim is empty, too long, not printable, or \"admin\"",
        ))
    }
}

/// A claim as it may go to the logs: printable and at most 128 characters.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(128).collect()
}
