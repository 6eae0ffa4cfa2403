//! OIDC bearers, against an issuer this test starts on loopback with keys made at test
//! time: discovery, RS256 and EdDSA, key rotation (a new kid is fetched), and every
//! refusal: wrong audience or issuer, expired, not yet valid, unknown signer, `alg:
//! none`, HMAC keyed with the public key, a tenant claim that is missing or "admin".
//! The same JWT works on gRPC, tenants stay apart, and no JWT reaches a log.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use common::{Daemon, grpc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const AUDIENCE: &str = "airlock";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A signing key made now, and its public half as a JWK.
struct Key {
    private_pem: Vec<u8>,
    public_pem: Vec<u8>,
    jwk: Value,
    alg: Algorithm,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn rsa_key(dir: &std::path::Path, kid: &str) -> Key {
    let pem = dir.join(format!("{kid}.pem"));
    let pem = pem.to_str().unwrap();
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        pem,
    ]);
    let modulus = String::from_utf8(openssl(&["rsa", "-in", pem, "-noout", "-modulus"])).unwrap();
    let hex = modulus.trim().trim_start_matches("Modulus=");
    let n: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    Key {
        private_pem: std::fs::read(pem).unwrap(),
        public_pem: openssl(&["pkey", "-in", pem, "-pubout"]),
        jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": B64.encode(n), "e": "AQAB"}),
        alg: Algorithm::RS256,
    }
}

fn ed_key(dir: &std::path::Path, kid: &str) -> Key {
    let pem = dir.join(format!("{kid}.pem"));
    let pem = pem.to_str().unwrap();
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", pem]);
    let der = openssl(&["pkey", "-in", pem, "-pubout", "-outform", "DER"]);
    let x = &der[der.len() - 32..];
    Key {
        private_pem: std::fs::read(pem).unwrap(),
        public_pem: openssl(&["pkey", "-in", pem, "-pubout"]),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig", "x": B64.encode(x)}),
        alg: Algorithm::EdDSA,
    }
}

/// An issuer on loopback serving discovery and a key set the test may change.
struct Issuer {
    url: String,
    jwks: Arc<Mutex<Vec<Value>>>,
}

async fn issuer() -> Issuer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let jwks = Arc::new(Mutex::new(Vec::new()));
    let (keys, me) = (jwks.clone(), url.clone());
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || {
                let me = me.clone();
                async move { axum::Json(json!({"issuer": me, "jwks_uri": format!("{me}/jwks")})) }
            }),
        )
        .route(
            "/jwks",
            axum::routing::get(move || {
                let keys = keys.lock().unwrap().clone();
                async move { axum::Json(json!({ "keys": keys })) }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Issuer { url, jwks }
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn sign(key: &Key, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = key.jwk["kid"].as_str().map(str::to_owned);
    let encoding = match key.alg {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&key.private_pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(&key.private_pem).unwrap(),
    };
    jsonwebtoken::encode(&header, claims, &encoding).unwrap()
}

async fn status(daemon: &Daemon, bearer: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/v1/sandboxes", daemon.url))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn oidc_bearers_are_checked_against_the_issuers_keys() {
    let keys_dir = tempfile::tempdir().unwrap();
    let issuer = issuer().await;
    let k1 = rsa_key(keys_dir.path(), "k1");
    let k2 = ed_key(keys_dir.path(), "k2");
    let stranger = rsa_key(keys_dir.path(), "k9");
    issuer.jwks.lock().unwrap().push(k1.jwk.clone());
    let daemon = Daemon::start_with(&[
        "--oidc-issuer",
        &issuer.url,
        "--oidc-audience",
        AUDIENCE,
        "--oidc-tenant-claim",
        "team",
    ]);
    let claims = |team: &str| {
        json!({"iss": issuer.url, "aud": AUDIENCE, "sub": format!("{team}-user"), "team": team,
               "exp": now() + 600, "iat": now()})
    };

    // A good RS256 token is a tenant: it creates and lists its own sandboxes.
    let alice = sign(&k1, &claims("team-a"));
    let made = reqwest::Client::new()
        .post(format!("{}/v1/sandboxes", daemon.url))
        .bearer_auth(&alice)
        .json(&json!({"start": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.unwrap();
    assert_eq!(made["owner"], "team-a");
    let id = made["id"].as_str().unwrap().to_owned();
    // The same JWT on gRPC.
    let mut files = grpc::files_with(&daemon, &alice).await;
    let stat = files
        .stat(airlock_proto::v1::StatRequest {
            sandbox_id: id.clone(),
            path: "/".into(),
        })
        .await;
    assert!(stat.is_ok(), "{stat:?}");
    // Another tenant's subject does not see it.
    let bob = sign(&k1, &claims("team-b"));
    let seen = reqwest::Client::new()
        .get(format!("{}/v1/sandboxes/{id}", daemon.url))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(seen.status(), 404);

    // Refusals.
    let mut wrong_aud = claims("team-a");
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = claims("team-a");
    wrong_iss["iss"] = json!("http://127.0.0.1:1");
    let mut expired = claims("team-a");
    expired["exp"] = json!(now() - 3600);
    let mut early = claims("team-a");
    early["nbf"] = json!(now() + 3600);
    let mut admin = claims("team-a");
    admin["team"] = json!("admin");
    let mut no_claim = claims("team-a");
    no_claim.as_object_mut().unwrap().remove("team");
    let none = format!(
        "{}.{}.",
        B64.encode(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#),
        B64.encode(claims("team-a").to_string())
    );
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("k1".into());
    let hmac_with_public_key = jsonwebtoken::encode(
        &hs,
        &claims("team-a"),
        &EncodingKey::from_secret(&k1.public_pem).unwrap(),
    )
    .unwrap();
    for (what, token) in [
        ("wrong audience", sign(&k1, &wrong_aud)),
        ("wrong issuer", sign(&k1, &wrong_iss)),
        ("expired", sign(&k1, &expired)),
        ("not yet valid", sign(&k1, &early)),
        ("tenant claim admin", sign(&k1, &admin)),
        ("no tenant claim", sign(&k1, &no_claim)),
        ("alg none", none),
        ("HMAC keyed with the public key", hmac_with_public_key),
        ("garbage", "a.b.c".to_owned()),
    ] {
        assert_eq!(status(&daemon, &token).await, 401, "{what}");
    }
    let refused = grpc::files_with(&daemon, &sign(&k1, &expired))
        .await
        .stat(airlock_proto::v1::StatRequest {
            sandbox_id: id.clone(),
            path: "/".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    // Rotation: the issuer publishes a new key; a token signed with it is taken once
    // the daemon fetches the keys again (it does when it meets an unknown kid).
    issuer.jwks.lock().unwrap().push(k2.jwk.clone());
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        status(&daemon, &sign(&k2, &claims("team-a"))).await,
        200,
        "rotated key"
    );
    // A signer the issuer never published stays refused.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        status(&daemon, &sign(&stranger, &claims("team-a"))).await,
        401,
        "unknown signer"
    );
    // A key the issuer withdrew is refused once the daemon has fetched again.
    issuer.jwks.lock().unwrap().retain(|k| k["kid"] != "k1");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let fresh = sign(&k2, &claims("team-a"));
    // A kid the cache lacks makes it fetch: k9 again, then k1 is gone.
    assert_eq!(
        status(&daemon, &sign(&stranger, &claims("team-a"))).await,
        401
    );
    assert_eq!(
        status(&daemon, &alice).await,
        401,
        "a withdrawn key still worked"
    );
    assert_eq!(status(&daemon, &fresh).await, 200);

    // No JWT reaches the daemon's log or its audit log.
    let logs = daemon.log()
        + &std::fs::read_to_string(daemon.home().join("audit.log")).unwrap_or_default();
    assert!(
        !logs.contains(&alice) && !logs.contains(&fresh),
        "a JWT reached a log"
    );
    assert!(
        logs.contains("oidc team-a-user"),
        "the audit log names the subject"
    );
}
