//! The unmodified agent-sandbox Python SDK (k8s-agent-sandbox, pinned in scripts/setup)
//! drives an Airlock sandbox over a direct connection: its file and command calls and
//! the examples of its files documentation (tests/clients/agent_sandbox_sdk.py), with a
//! tenant's API token.
#![allow(clippy::unwrap_used)]

mod common;

use common::Daemon;

#[tokio::test]
async fn the_agent_sandbox_sdk_drives_a_sandbox() {
    let daemon = Daemon::start();
    let token = daemon
        .client()
        .create_token("agents", "team-a", None)
        .await
        .unwrap()
        .token;
    let tenant = airlock_client::Client::new(daemon.url.clone(), token.clone());
    let id = common::sandbox(&tenant).await.id;
    let client = common::python_client("agent_sandbox_sdk.py");
    let env = [
        ("AIRLOCK_URL", daemon.url.as_str()),
        ("AIRLOCK_TOKEN", token.as_str()),
        ("SANDBOX_ID", id.as_str()),
    ];
    common::run_client(client, &env).await;
    // The files the SDK wrote are the sandbox's, owned by its user.
    let check = common::sh(&daemon.client(), &id, "stat -c %U /home/user/data.csv").await;
    assert_eq!(check.stdout.trim(), "user");
    assert!(!daemon.log().contains(&token), "the token reached the log");

    // Who may touch what holds here too: a read-only sandbox token reads but may not
    // write or run; another tenant's token finds no sandbox.
    let read = tenant
        .create_sandbox_token(&id, "read", None)
        .await
        .unwrap()
        .token;
    let other = daemon
        .client()
        .create_token("b", "team-b", None)
        .await
        .unwrap()
        .token;
    let call = |token: &str, method: reqwest::Method, route: &str| {
        reqwest::Client::new()
            .request(method, format!("{}/agent-sandbox/{route}", daemon.url))
            .bearer_auth(token)
            .header("X-Sandbox-ID", &id)
    };
    let status =
        |r: reqwest::RequestBuilder| async move { r.send().await.unwrap().status().as_u16() };
    assert_eq!(
        status(call(
            &read,
            reqwest::Method::GET,
            "download/home%2Fuser%2Fdata.csv"
        ))
        .await,
        200
    );
    assert_eq!(
        status(call(
            &read,
            reqwest::Method::GET,
            "exists/home%2Fuser%2Fdata.csv"
        ))
        .await,
        200
    );
    assert_eq!(
        status(call(&read, reqwest::Method::PUT, "v1/files/home%2Fuser%2Fx").body("x")).await,
        403
    );
    let run =
        call(&read, reqwest::Method::POST, "execute").json(&serde_json::json!({"command": "true"}));
    assert_eq!(status(run).await, 403);
    assert_eq!(
        status(call(
            &other,
            reqwest::Method::GET,
            "download/home%2Fuser%2Fdata.csv"
        ))
        .await,
        404
    );
    assert_eq!(
        status(call(
            &other,
            reqwest::Method::GET,
            "exists/home%2Fuser%2Fdata.csv"
        ))
        .await,
        404
    );
}
