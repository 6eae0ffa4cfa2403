//! The unmodified E2B SDKs, Python (e2b, pinned in scripts/setup) and JavaScript (npm
//! e2b, pinned in compat/e2b-js), configured by
//! environment alone, drives Airlock: create, files, watch, commands (foreground,
//! background, stdin, kill), connect, list, timeout, pause and resume, the async client
//! (tests/clients/e2b_sdk.py); then 1 GiB written from a file object and read back as a
//! stream, byte-exact, with the daemon's RSS flat.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Daemon, e2b_env, run_e2b};

#[tokio::test]
async fn the_e2b_sdk_drives_airlock() {
    let daemon = Daemon::start();
    let key = daemon
        .client()
        .create_token("e2b", "team-a", None)
        .await
        .unwrap()
        .token;
    let pid = daemon.pid();
    let before = common::rss_kib(pid);
    let sampler = common::RssSampler::start(pid);
    let gib = std::env::var("AIRLOCK_E2B_BIG_GIB")
        .ok()
        .and_then(|g| g.parse().ok())
        .unwrap_or(1);
    let mut env = e2b_env(&daemon, &key);
    env.push(("BIG_GIB".into(), gib.to_string()));
    let out = run_e2b(common::python_client("e2b_sdk.py"), &env).await;
    let peak = sampler.peak();
    eprintln!(
        "{} daemon RSS {} MiB before, {} MiB at peak",
        String::from_utf8_lossy(&out.stderr).trim(),
        before >> 10,
        peak >> 10
    );
    assert!(
        peak.saturating_sub(before) < 64 * 1024,
        "the daemon grew by {} MiB moving {gib} GiB",
        (peak - before) >> 10
    );
    // Sandboxes the SDK made belong to the key's tenant; nothing it did left a token
    // in the log.
    assert!(!daemon.log().contains(&key), "the key reached the log");
}

/// The JavaScript SDK (npm `e2b`, pinned in compat/e2b-js) through `node --test`.
#[tokio::test]
async fn the_e2b_javascript_sdk_drives_airlock() {
    let daemon = Daemon::start();
    let key = daemon
        .client()
        .create_token("e2b-js", "team-a", None)
        .await
        .unwrap()
        .token;
    let mut node = tokio::process::Command::new("node");
    node.arg("--test")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../compat/e2b-js"));
    run_e2b(node, &e2b_env(&daemon, &key)).await;
}

#[tokio::test]
async fn e2b_routes_refuse_without_credentials() {
    let daemon = Daemon::start();
    let http = reqwest::Client::new();
    let list = http
        .get(format!("{}/e2b/v2/sandboxes", daemon.url))
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 401);
    let files = http
        .get(format!("{}/e2b/envd/files?path=/etc/hostname", daemon.url))
        .header("E2b-Sandbox-Id", "0123456789ab")
        .send()
        .await
        .unwrap();
    assert_eq!(files.status(), 401);
    // envd's health answers anyone.
    let health = http
        .get(format!("{}/e2b/envd/health", daemon.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 204);
    // Another tenant's key finds no sandbox.
    let admin = daemon.client();
    let a = admin.create_token("a", "team-a", None).await.unwrap().token;
    let b = admin.create_token("b", "team-b", None).await.unwrap().token;
    let create = || async {
        let made = http
            .post(format!("{}/e2b/v2/sandboxes", daemon.url))
            .header("X-API-KEY", &a)
            .json(&serde_json::json!({"templateID": "base"}))
            .send()
            .await
            .unwrap();
        made.json::<serde_json::Value>().await.unwrap()
    };
    let made = create().await;
    let id = made["sandboxID"].as_str().unwrap();
    let seen = http
        .get(format!("{}/e2b/sandboxes/{id}", daemon.url))
        .header("X-API-KEY", &b)
        .send()
        .await
        .unwrap();
    assert_eq!(seen.status(), 404);
    // Its envd token reaches that sandbox alone.
    let envd = made["envdAccessToken"].as_str().unwrap();
    let other = create().await;
    let elsewhere = http
        .get(format!("{}/e2b/envd/files?path=/etc/hostname", daemon.url))
        .header("E2b-Sandbox-Id", other["sandboxID"].as_str().unwrap())
        .header("X-Access-Token", envd)
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);

    // SeaCloud's envd-compatible extensions, with that token.
    let envd_call = |method: reqwest::Method, route: &str| {
        http.request(method, format!("{}/e2b/envd/{route}", daemon.url))
            .header("E2b-Sandbox-Id", id)
            .header("X-Access-Token", envd)
    };
    let raw = envd_call(reqwest::Method::POST, "file?path=raw.txt").body("raw body");
    assert_eq!(raw.send().await.unwrap().status(), 200);
    let read = envd_call(reqwest::Method::GET, "file?path=/home/user/raw.txt");
    assert_eq!(read.send().await.unwrap().text().await.unwrap(), "raw body");
    let content = envd_call(reqwest::Method::GET, "files/content?path=raw.txt");
    assert_eq!(
        content.send().await.unwrap().text().await.unwrap(),
        "raw body"
    );
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"1".to_vec()).file_name("/home/user/b1"),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"2".to_vec()).file_name("b2"),
        );
    let batch = envd_call(reqwest::Method::POST, "files/batch").multipart(form);
    let batch: serde_json::Value = batch.send().await.unwrap().json().await.unwrap();
    assert_eq!(batch.as_array().unwrap().len(), 2, "{batch}");
    let compose = envd_call(reqwest::Method::POST, "files/compose").json(
        &serde_json::json!({"source_paths": ["b1", "/home/user/b2", "raw.txt"], "destination": "all"}),
    );
    assert_eq!(compose.send().await.unwrap().status(), 200);
    let all = envd_call(reqwest::Method::GET, "files?path=all");
    assert_eq!(
        all.send().await.unwrap().text().await.unwrap(),
        "12raw body"
    );
}
