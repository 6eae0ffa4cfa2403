//! Signed URLs: one file, one method, no header, until expiry. Changing the path, the
//! method, the expiry or the signature is refused; streaming and Range work through
//! them as on the token routes.
#![allow(clippy::unwrap_used)]

mod common;

use common::Daemon;
use serde_json::json;

/// Signs `path` in sandbox `id` with `token`; answers the status and the URL.
async fn sign(daemon: &Daemon, token: &str, id: &str, body: serde_json::Value) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/sandboxes/{id}/files/signed-url", daemon.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    (
        status,
        answer["url"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Writes a file with a bearer token.
async fn put(daemon: &Daemon, token: &str, id: &str, path: &str, body: Vec<u8>) {
    let response = reqwest::Client::new()
        .put(format!("{}/v1/sandboxes/{id}/files/content", daemon.url))
        .query(&[("path", path)])
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

/// Reads a file with a bearer token.
async fn get(daemon: &Daemon, token: &str, id: &str, path: &str) -> Vec<u8> {
    let response = reqwest::Client::new()
        .get(format!("{}/v1/sandboxes/{id}/files/content", daemon.url))
        .query(&[("path", path)])
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn a_signed_url_grants_one_method_on_one_file() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = common::sandbox(&client).await.id;
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    put(
        &daemon,
        &daemon.token,
        &id,
        "/workspace/data.bin",
        content.clone(),
    )
    .await;
    let http = reqwest::Client::new();

    // A download with no header, whole and ranged; HEAD is covered too.
    let (status, url) = sign(
        &daemon,
        &daemon.token,
        &id,
        json!({"path": "/workspace/data.bin"}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(url.starts_with(&daemon.url), "{url}");
    let got = http.get(&url).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap(), content);
    let ranged = http
        .get(&url)
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap(), content[1000..2000]);
    assert_eq!(http.head(&url).send().await.unwrap().status(), 200);

    // Tampering: another path, method, expiry or signature; another route.
    let swap = |from: &str, to: &str| url.replacen(from, to, 1);
    let changed_path = swap("data.bin", "other.bin");
    assert_eq!(http.get(&changed_path).send().await.unwrap().status(), 403);
    let expires: u64 = url.split("expires=").nth(1).unwrap()[..10].parse().unwrap();
    let later = swap(
        &format!("expires={expires}"),
        &format!("expires={}", expires + 1000),
    );
    assert_eq!(http.get(&later).send().await.unwrap().status(), 403);
    let sig_at = url.find("signature=").unwrap() + "signature=".len();
    let mut forged = url.clone();
    let flipped = if &url[sig_at..=sig_at] == "A" {
        "B"
    } else {
        "A"
    };
    forged.replace_range(sig_at..=sig_at, flipped);
    assert_eq!(http.get(&forged).send().await.unwrap().status(), 403);
    assert_eq!(http.put(&url).body("x").send().await.unwrap().status(), 403);
    assert_eq!(
        http.post(format!("{url}&append=true"))
            .body("x")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let stat = swap("/files/content?", "/files/stat?");
    assert_eq!(http.get(&stat).send().await.unwrap().status(), 403);
    let twice = format!("{url}&path=/etc/passwd");
    assert_eq!(http.get(&twice).send().await.unwrap().status(), 400);
    let no_signature = url.split("&signature=").next().unwrap().to_owned();
    assert_eq!(http.get(&no_signature).send().await.unwrap().status(), 401);
    // Another sandbox's id in the same URL.
    let other = common::sandbox(&client).await.id;
    put(
        &daemon,
        &daemon.token,
        &other,
        "/workspace/data.bin",
        b"x".to_vec(),
    )
    .await;
    assert_eq!(
        http.get(swap(&id, &other)).send().await.unwrap().status(),
        403
    );

    // An upload, streamed, through a PUT URL; it does not reach downloads.
    let (_, put) = sign(
        &daemon,
        &daemon.token,
        &id,
        json!({"path": "/workspace/up.bin", "method": "PUT", "ttl_secs": 60}),
    )
    .await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        content.chunks(100_000).map(|c| Ok(c.to_vec())).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let sent = http.put(&put).body(body).send().await.unwrap();
    assert_eq!(sent.status(), 201, "{:?}", sent.text().await);
    assert_eq!(
        get(&daemon, &daemon.token, &id, "/workspace/up.bin").await,
        content
    );
    assert_eq!(http.get(&put).send().await.unwrap().status(), 403);

    // Expiry: 401 once the time has passed.
    let (_, brief) = sign(
        &daemon,
        &daemon.token,
        &id,
        json!({"path": "/workspace/data.bin", "ttl_secs": 1}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(http.get(&brief).send().await.unwrap().status(), 401);

    // Bad requests to sign.
    for bad in [
        json!({"path": "/workspace/data.bin", "method": "DELETE"}),
        json!({"path": "/workspace/data.bin", "ttl_secs": 0}),
        json!({"path": "/workspace/data.bin", "ttl_secs": 10_000_000}),
        json!({"path": ""}),
    ] {
        assert_eq!(
            sign(&daemon, &daemon.token, &id, bad.clone()).await.0,
            400,
            "{bad}"
        );
    }

    // A deleted sandbox's URLs reach nothing.
    client.delete(&id).await.unwrap();
    assert_eq!(http.get(&url).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn only_callers_with_the_right_may_sign() {
    let daemon = Daemon::start();
    let admin = daemon.client();
    let a = admin.create_token("a", "team-a", None).await.unwrap().token;
    let b = admin.create_token("b", "team-b", None).await.unwrap().token;
    let as_a = airlock_client::Client::new(daemon.url.clone(), a.clone());
    let id = common::sandbox(&as_a).await.id;
    put(&daemon, &a, &id, "/workspace/f", b"data".to_vec()).await;
    let read = as_a
        .create_sandbox_token(&id, "read", None)
        .await
        .unwrap()
        .token;
    let file = json!({"path": "/workspace/f"});
    let put = json!({"path": "/workspace/f", "method": "PUT"});

    assert_eq!(sign(&daemon, &a, &id, put.clone()).await.0, 200);
    assert_eq!(sign(&daemon, &read, &id, file.clone()).await.0, 200);
    assert_eq!(sign(&daemon, &read, &id, put.clone()).await.0, 403);
    assert_eq!(sign(&daemon, &b, &id, file.clone()).await.0, 404);
    assert_eq!(sign(&daemon, "alk_wrong", &id, file.clone()).await.0, 401);

    // The CLI prints a URL that works with no header.
    let out = daemon.cli(&["sign", &format!("{id}:/workspace/f"), "--ttl", "60"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let body = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    assert_eq!(&body[..], b"data");
}
