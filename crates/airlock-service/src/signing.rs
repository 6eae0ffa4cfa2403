//! Signed URLs: a URL for one file of one sandbox and one method, usable with no header
//! until it expires (a browser link, a `curl -T` target, a download handed to another
//! program). The signature is an HMAC-SHA256, under a key of the daemon's own
//! (`HOME/signing-key`), of everything the URL grants: sandbox, method, path, expiry.
//! Deleting the key file and restarting the daemon voids every URL ever signed.

use airlock_api::{SignUrl, SignedUrl};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;

use crate::record::{now_secs, rfc3339};
use crate::token::Token;
use crate::{Access, ApiError, Need, Principal, Service};

/// Lifetime when none is asked for.
const DEFAULT_TTL_SECS: u64 = 300;
/// The longest lifetime a URL may be given: a week, as S3 allows.
const MAX_TTL_SECS: u64 = 7 * 24 * 3600;

/// Query characters left as they are: RFC 3986's unreserved set, plus `/` for paths.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// The methods a URL may be signed for, and what each needs in the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedMethod {
    /// Download (and `HEAD`).
    Get,
    /// Upload, replacing the file.
    Put,
}

impl SignedMethod {
    /// The method a request names; `HEAD` is covered by a `GET` signature.
    pub fn from_request(method: &str) -> Option<Self> {
        match method {
            "GET" | "HEAD" => Some(Self::Get),
            "PUT" => Some(Self::Put),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Put => "PUT",
        }
    }

    fn access(self) -> Access {
        match self {
            Self::Get => Access::Read,
            Self::Put => Access::Write,
        }
    }
}

/// What a request presenting a signature asks for, as the face read it off the
/// request: its sandbox, method and `path`, and its `expires` and `signature` parameters.
#[derive(Debug)]
pub struct SignedRequest<'a> {
    /// The sandbox id in the request's route.
    pub sandbox_id: &'a str,
    /// The request's method.
    pub method: SignedMethod,
    /// The request's `path` parameter: the file the handler will touch.
    pub path: &'a str,
    /// The `expires` parameter (Unix seconds).
    pub expires: &'a str,
    /// The `signature` parameter.
    pub signature: &'a str,
}

/// The daemon's signing key.
#[derive(Debug)]
pub struct Signer(Token);

impl Signer {
    #[cfg(test)]
    pub fn open(home: &std::path::Path) -> std::io::Result<Self> {
        Self::open_in(&crate::secrets::HomeSecrets::new(home))
    }

    /// The key kept in `store`, made there if it is not yet.
    pub fn open_in(store: &dyn crate::SecretStore) -> std::io::Result<Self> {
        crate::token::load_or_create(store, "signing-key").map(Self)
    }

    /// A secret derived from the daemon's key for `label` and `subject`, hex: the same
    /// every time, unguessable without the key.
    pub fn derive(&self, label: &str, subject: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.key())
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(label.as_bytes());
        mac.update(b"\0");
        mac.update(subject.as_bytes());
        airlock_fs::hex(&mac.finalize().into_bytes())
    }

    fn sign(
        &self,
        sandbox_id: &str,
        method: SignedMethod,
        path: &str,
        expires: u64,
    ) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.key())
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        // Fields are separated by NUL, which none of them may hold, so no two grants
        // sign the same bytes.
        for field in [
            "airlock-signed-url-v1",
            sandbox_id,
            method.name(),
            path,
            &expires.to_string(),
        ] {
            mac.update(field.as_bytes());
            mac.update(b"\0");
        }
        mac
    }
}

fn encode(mac: Hmac<Sha256>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

impl Service {
    /// Signs a URL for one file and one method. The caller needs the right the method
    /// needs in that sandbox: a read-only sandbox token may sign downloads only.
    pub fn sign_url(
        &self,
        caller: &Principal,
        id: &str,
        req: SignUrl,
    ) -> Result<SignedUrl, ApiError> {
        let audit = self.audit(caller, "url.sign", Some(id)).path(&req.path);
        let result = (|| {
            let asked = req.method.as_deref().unwrap_or("GET");
            let method = SignedMethod::from_request(asked)
                .filter(|_| asked != "HEAD")
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "method {asked:?}: a URL is signed for GET or PUT"
                    ))
                })?;
            let need = match method.access() {
                Access::Read => Need::Read,
                Access::Write => Need::Write,
            };
            let entry = self.entry(caller, id, need)?;
            if req.path.is_empty() || req.path.contains('\0') || req.path.len() > 4096 {
                return Err(ApiError::bad_request(
                    "a signed URL's path is 1 to 4096 bytes, no NUL",
                ));
            }
            let ttl = req.ttl_secs.unwrap_or(DEFAULT_TTL_SECS);
            if !(1..=MAX_TTL_SECS).contains(&ttl) {
                return Err(ApiError::bad_request(format!(
                    "ttl_secs is 1 to {MAX_TTL_SECS}"
                )));
            }
            let expires = now_secs().saturating_add(ttl);
            let signature = encode(self.signer.sign(&entry.id, method, &req.path, expires));
            Ok(SignedUrl {
                url: format!(
                    "/v1/sandboxes/{}/files/content?path={}&expires={expires}&signature={signature}",
                    entry.id,
                    utf8_percent_encode(&req.path, QUERY_VALUE)
                ),
                method: method.name().to_owned(),
                expires_at: rfc3339(expires),
            })
        })();
        audit.done(result)
    }

    /// The principal a signed request acts as: a sandbox token of that one sandbox,
    /// reading for `GET`, writing for `PUT`. The face must touch only the file whose
    /// path it passed here, with the method it passed. Expired: 401; a signature that
    /// does not match what is asked: 403.
    pub fn authenticate_signed(&self, req: &SignedRequest<'_>) -> Result<Principal, ApiError> {
        let expires: u64 = req
            .expires
            .parse()
            .map_err(|_| ApiError::bad_request("expires is Unix seconds"))?;
        if expires <= now_secs() {
            return Err(ApiError::new(
                airlock_api::ErrorCode::Unauthorized,
                "the signed URL has expired",
            ));
        }
        let presented = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(req.signature)
            .unwrap_or_default();
        // `verify_slice` compares in constant time.
        self.signer
            .sign(req.sandbox_id, req.method, req.path, expires)
            .verify_slice(&presented)
            .map_err(|_| {
                ApiError::forbidden(
                    "the signature does not match this sandbox, method, path and expiry",
                )
            })?;
        Ok(Principal::Sandbox {
            tenant: self.owner_of(req.sandbox_id)?,
            sandbox_id: req.sandbox_id.to_owned(),
            access: req.method.access(),
            by: "signed URL".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_grants_exactly_what_was_signed() {
        let home = tempfile::tempdir().unwrap();
        let signer = Signer::open(home.path()).unwrap();
        let good = encode(signer.sign("s1", SignedMethod::Get, "/a", 100));
        let check = |id: &str, method, path: &str, expires| {
            let presented = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&good)
                .unwrap();
            signer
                .sign(id, method, path, expires)
                .verify_slice(&presented)
                .is_ok()
        };
        assert!(check("s1", SignedMethod::Get, "/a", 100));
        assert!(!check("s2", SignedMethod::Get, "/a", 100));
        assert!(!check("s1", SignedMethod::Put, "/a", 100));
        assert!(!check("s1", SignedMethod::Get, "/a/", 100));
        assert!(!check("s1", SignedMethod::Get, "/a", 101));
        // Field boundaries count: moving a byte across one changes the signature.
        assert!(!check("s", SignedMethod::Get, "1/a", 100));
        // Another daemon's key signs differently.
        let other = Signer::open(tempfile::tempdir().unwrap().path()).unwrap();
        let theirs = encode(other.sign("s1", SignedMethod::Get, "/a", 100));
        assert_ne!(theirs, good);
    }
}
