//! Who may touch what, on REST and on gRPC: tenants' API tokens reach only their own
//! sandboxes (another tenant's are 404, never 403), sandbox tokens reach one sandbox's
//! files (read, or read and write; 403 beyond), and expired or revoked tokens are 401.
//! No token ever reaches the daemon's log.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Daemon, grpc};
use reqwest::Method;
use serde_json::{Value, json};

struct Caller<'d> {
    daemon: &'d Daemon,
    token: String,
    http: reqwest::Client,
}

impl<'d> Caller<'d> {
    fn new(daemon: &'d Daemon, token: &str) -> Self {
        Self {
            daemon,
            token: token.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: Method, route: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{route}", self.daemon.url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn status(&self, method: Method, route: &str, body: Option<Value>) -> u16 {
        self.call(method, route, body).await.0
    }

    async fn put_file(&self, id: &str, path: &str) -> u16 {
        self.http
            .put(format!(
                "{}/v1/sandboxes/{id}/files/content?path={path}",
                self.daemon.url
            ))
            .bearer_auth(&self.token)
            .body("data")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

async fn mint(admin: &Caller<'_>, tenant: &str, ttl: Option<u64>) -> (String, String) {
    let (status, made) = admin
        .call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": format!("{tenant} ci"), "tenant": tenant, "ttl_secs": ttl})),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    (
        made["id"].as_str().unwrap().to_owned(),
        made["token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn tenants_and_scoped_tokens_reach_only_what_they_may() {
    let daemon = Daemon::start();
    let admin = Caller::new(&daemon, &daemon.token);
    let (_, token_a) = mint(&admin, "team-a", None).await;
    let (b_id, token_b) = mint(&admin, "team-b", None).await;
    let a = Caller::new(&daemon, &token_a);
    let b = Caller::new(&daemon, &token_b);

    let (status, made) = a.call(Method::POST, "/v1/sandboxes", Some(json!({}))).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["owner"], "team-a");
    let id = made["id"].as_str().unwrap().to_owned();
    let (_, other) = a.call(Method::POST, "/v1/sandboxes", Some(json!({}))).await;
    let other_id = other["id"].as_str().unwrap().to_owned();
    assert_eq!(a.put_file(&id, "/workspace/f").await, 201);

    // Listing: each tenant its own, the admin all.
    let ids = |list: Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(ids(a.call(Method::GET, "/v1/sandboxes", None).await.1).contains(&id));
    assert!(ids(b.call(Method::GET, "/v1/sandboxes", None).await.1).is_empty());
    assert!(ids(admin.call(Method::GET, "/v1/sandboxes", None).await.1).contains(&id));

    // Another tenant: every route is 404, never 403.
    let s = format!("/v1/sandboxes/{id}");
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, s.clone(), None),
        (Method::POST, format!("{s}/start"), None),
        (Method::POST, format!("{s}/stop"), None),
        (
            Method::POST,
            format!("{s}/exec"),
            Some(json!({"shell": "true"})),
        ),
        (Method::GET, format!("{s}/files?path=/workspace"), None),
        (
            Method::GET,
            format!("{s}/files/stat?path=/workspace/f"),
            None,
        ),
        (
            Method::GET,
            format!("{s}/files/content?path=/workspace/f"),
            None,
        ),
        (
            Method::GET,
            format!("{s}/files/archive?path=/workspace"),
            None,
        ),
        (
            Method::POST,
            format!("{s}/files/mkdir"),
            Some(json!({"path": "/workspace/d"})),
        ),
        (
            Method::POST,
            format!("{s}/tokens"),
            Some(json!({"access": "read"})),
        ),
        (Method::DELETE, s.clone(), None),
    ];
    for (method, route, body) in &routes {
        let got = b.status(method.clone(), route, body.clone()).await;
        assert_eq!(got, 404, "team-b {method} {route}");
    }
    assert_eq!(b.put_file(&id, "/workspace/g").await, 404);

    // Sandbox tokens: read reaches reads only; write adds writes and exec; neither
    // governs sandboxes or mints tokens; neither reaches the tenant's other sandbox.
    let (status, read) = a
        .call(
            Method::POST,
            &format!("{s}/tokens"),
            Some(json!({"access": "read"})),
        )
        .await;
    assert_eq!(status, 201, "{read}");
    let read = Caller::new(&daemon, read["token"].as_str().unwrap());
    let (_, write) = a
        .call(
            Method::POST,
            &format!("{s}/tokens"),
            Some(json!({"access": "write", "ttl_secs": 3600})),
        )
        .await;
    let write = Caller::new(&daemon, write["token"].as_str().unwrap());
    for scoped in [&read, &write] {
        assert_eq!(
            scoped
                .status(
                    Method::GET,
                    &format!("{s}/files/content?path=/workspace/f"),
                    None
                )
                .await,
            200
        );
        assert_eq!(
            scoped
                .status(Method::GET, &format!("{s}/files?path=/workspace"), None)
                .await,
            200
        );
        assert_eq!(
            scoped
                .status(
                    Method::GET,
                    &format!("{s}/files/archive?path=/workspace"),
                    None
                )
                .await,
            200
        );
        assert_eq!(
            scoped
                .status(Method::POST, "/v1/sandboxes", Some(json!({})))
                .await,
            403
        );
        assert_eq!(scoped.status(Method::GET, "/v1/sandboxes", None).await, 403);
        assert_eq!(scoped.status(Method::DELETE, &s, None).await, 403);
        assert_eq!(
            scoped
                .status(Method::POST, &format!("{s}/stop"), None)
                .await,
            403
        );
        assert_eq!(
            scoped
                .status(
                    Method::POST,
                    &format!("{s}/tokens"),
                    Some(json!({"access": "read"}))
                )
                .await,
            403
        );
        assert_eq!(
            scoped
                .status(
                    Method::GET,
                    &format!("/v1/sandboxes/{other_id}/files?path=/"),
                    None
                )
                .await,
            404
        );
        assert_eq!(scoped.status(Method::GET, "/v1/tokens", None).await, 403);
    }
    assert_eq!(read.put_file(&id, "/workspace/r").await, 403);
    assert_eq!(
        read.status(
            Method::POST,
            &format!("{s}/exec"),
            Some(json!({"shell": "true"}))
        )
        .await,
        403
    );
    assert_eq!(write.put_file(&id, "/workspace/w").await, 201);
    assert_eq!(
        write
            .status(
                Method::POST,
                &format!("{s}/exec"),
                Some(json!({"shell": "true"}))
            )
            .await,
        200
    );

    // gRPC takes the same tokens to the same door.
    let mut rpc_b = grpc::files_with(&daemon, &token_b).await;
    let missing = grpc::download(&mut rpc_b, grpc::get(&id, "/workspace/f"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let mut rpc_read = grpc::files_with(&daemon, &read.token).await;
    assert!(
        grpc::download(&mut rpc_read, grpc::get(&id, "/workspace/f"))
            .await
            .is_ok()
    );
    let refused = rpc_read
        .upload_file(tokio_stream::iter(grpc::upload_messages(
            grpc::meta(&id, "/workspace/x"),
            b"x",
            1,
        )))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);

    // Only the admin mints, lists and revokes API tokens; revoking is immediate.
    assert_eq!(
        a.status(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "x", "tenant": "team-a"}))
        )
        .await,
        403
    );
    assert_eq!(a.status(Method::GET, "/v1/tokens", None).await, 403);
    let (_, listed) = admin.call(Method::GET, "/v1/tokens", None).await;
    assert!(
        !listed.to_string().contains(&token_b),
        "a listing showed a secret"
    );
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(
        admin
            .status(Method::DELETE, &format!("/v1/tokens/{b_id}"), None)
            .await,
        204
    );
    assert_eq!(b.status(Method::GET, "/v1/sandboxes", None).await, 401);
    let revoked = grpc::download(&mut rpc_b, grpc::get(&id, "/workspace/f"))
        .await
        .unwrap_err();
    assert_eq!(revoked.code(), tonic::Code::Unauthenticated);
    assert_eq!(
        admin
            .status(
                Method::POST,
                "/v1/tokens",
                Some(json!({"name": "x", "tenant": "admin"}))
            )
            .await,
        400
    );

    // Expired tokens are 401.
    let (_, brief) = mint(&admin, "team-c", Some(1)).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        Caller::new(&daemon, &brief)
            .status(Method::GET, "/v1/sandboxes", None)
            .await,
        401
    );

    // Deleting the sandbox forgets its tokens.
    assert_eq!(a.status(Method::DELETE, &s, None).await, 204);
    assert_eq!(
        write
            .status(Method::GET, &format!("{s}/files?path=/"), None)
            .await,
        401
    );

    // No secret ever reaches the log.
    let log = daemon.log();
    for secret in [
        &token_a,
        &token_b,
        &read.token,
        &write.token,
        &brief,
        &daemon.token,
    ] {
        assert!(
            !log.contains(secret.as_str()),
            "a token reached the daemon's log"
        );
    }
}

#[test]
fn the_cli_mints_lists_uses_and_revokes_tokens() {
    let daemon = Daemon::start();
    let text = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let token = text(daemon.cli(&["token", "create", "--tenant", "team-a", "--name", "ci"]));
    assert!(token.starts_with("alk_"), "{token}");
    // `--token` is every verb's own flag, so it goes after the verb.
    let as_tenant = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--token", token.as_str()]);
        daemon.cli(&all)
    };
    let id = text(as_tenant(&["create"]));
    let scoped = text(as_tenant(&["token", "sandbox", &id, "--access", "write"]));
    assert!(scoped.starts_with("als_"), "{scoped}");
    let listed: Value =
        serde_json::from_str(&text(daemon.cli(&["token", "ls", "--json"]))).unwrap();
    let token_id = listed[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(listed[0]["tenant"], "team-a");
    assert!(!listed.to_string().contains(&token));
    // The tenant's token may not mint API tokens.
    assert!(!as_tenant(&["token", "ls"]).status.success());
    // The sandbox token runs a command in its sandbox, and nothing beyond it.
    let ran = daemon.cli(&["exec", "--token", &scoped, &id, "--", "true"]);
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(!daemon.cli(&["--token", &scoped, "ls"]).status.success());
    assert_eq!(text(daemon.cli(&["token", "rm", &token_id])), token_id);
    assert!(
        !as_tenant(&["ls"]).status.success(),
        "a revoked token still worked"
    );
}
