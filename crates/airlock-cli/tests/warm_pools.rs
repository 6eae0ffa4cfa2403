//! Warm pools: started sandboxes kept ready per template. A matching create claims one
//! and gets a sandbox indistinguishable from a fresh one (its owner, env, labels, files
//! and TTL applied at the claim, nothing else in it); a create a pool cannot serve as
//! asked makes a fresh one; pools are sized by flag and by the admin's REST route, are
//! invisible to everyone until claimed, and leave nothing behind across a restart.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Daemon;
use serde_json::{Value, json};

async fn pools(daemon: &Daemon, token: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{}/v1/warm-pools", daemon.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Waits until the `host` pool holds `ready` sandboxes; answers its description.
async fn ready(daemon: &Daemon, ready: u64) -> Value {
    for _ in 0..300 {
        let (_, all) = pools(daemon, &daemon.token).await;
        let host = all
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["template"] == "host")
            .cloned();
        if let Some(host) = host.filter(|h| h["ready"] == ready) {
            return host;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the host pool never held {ready} ready sandboxes");
}

async fn create(daemon: &Daemon, token: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/sandboxes", daemon.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn a_create_claims_a_warm_sandbox_that_looks_fresh() {
    let mut daemon = Daemon::start_with(&["--warm-pool", "host=2"]);
    let client = daemon.client();
    let team_a = client
        .create_token("a", "team-a", None)
        .await
        .unwrap()
        .token;
    let team_b = client
        .create_token("b", "team-b", None)
        .await
        .unwrap()
        .token;
    ready(&daemon, 2).await;
    // Warm sandboxes belong to no one: not even the admin lists them.
    assert_eq!(client.list().await.unwrap().len(), 0);

    let (status, made) = create(
        &daemon,
        &team_a,
        json!({
            "env": {"GREETING": "hello"},
            "labels": {"job": "7"},
            "ttl_secs": 600,
            "files": [{"path": "/workspace/seed.txt", "content": "seeded"}],
        }),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_str().unwrap().to_owned();
    let host = ready(&daemon, 2).await; // refilled behind the claim
    assert_eq!(host["claimed"], 1);
    assert_eq!(made["state"], "running");
    assert_eq!(made["labels"], json!({"job": "7"}));
    assert!(made["expires_at"].is_string());
    assert_eq!(made["created_at"], made["started_at"]);

    // What the create asked for is there, and nothing else: the claimed sandbox looks
    // exactly like one made fresh (started later, so no pool could serve it).
    let sandbox = airlock_client::Client::new(&daemon.url, &team_a);
    let probe = "echo $GREETING; cat /workspace/seed.txt; echo; stat -c %U /workspace/seed.txt; \
                 ls -A /tmp /home/user /workspace; ps -e -o comm= > /tmp/ps; sort /tmp/ps | tr '\\n' ' '";
    let claimed = common::sh(&sandbox, &id, probe).await;
    let (_, fresh) = create(
        &daemon,
        &team_a,
        json!({
            "env": {"GREETING": "hello"},
            "start": false,
            "files": [{"path": "/workspace/seed.txt", "content": "seeded"}],
        }),
    )
    .await;
    let fresh = fresh["id"].as_str().unwrap().to_owned();
    sandbox.start(&fresh).await.unwrap();
    let fresh_look = common::sh(&sandbox, &fresh, probe).await;
    assert!(
        claimed.stdout.starts_with("hello\nseeded\nuser\n"),
        "{}",
        claimed.stdout
    );
    assert_eq!(claimed.stdout, fresh_look.stdout, "{}", claimed.stderr);
    sandbox.delete(&fresh).await.unwrap();
    // It is team-a's alone.
    let listed = sandbox.list().await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
    let other = airlock_client::Client::new(&daemon.url, &team_b);
    assert!(other.get(&id).await.is_err());

    // A create the pool cannot serve as asked makes a fresh sandbox.
    for body in [
        json!({"limits": {"disk_mb": 64}}),
        json!({"limits": {"pids": 77}}),
        json!({"start": false}),
        json!({"files": [{"path": "/etc/policy", "content": "x", "readonly": true}]}),
        json!({"template": "none-such"}),
    ] {
        let (status, _) = create(&daemon, &team_a, body.clone()).await;
        assert!(status == 201 || status == 404, "{body}: {status}");
    }
    assert_eq!(ready(&daemon, 2).await["claimed"], 1);

    // A crash leaves no warm sandbox behind as anyone's (they have no record: the next
    // daemon removes them as half-made), and the pool fills again.
    daemon.kill9();
    daemon.restart();
    ready(&daemon, 2).await;
    let after = daemon.client().list().await.unwrap();
    assert!(
        after
            .iter()
            .all(|s| !s.labels.contains_key("job") || s.id == id)
    );
    assert_eq!(
        after.len(),
        5,
        "the claimed sandbox and the four fresh ones, nothing more"
    );
}

#[tokio::test]
async fn pools_are_sized_by_the_admin_alone() {
    let daemon = Daemon::start();
    let tenant = daemon
        .client()
        .create_token("t", "team-a", None)
        .await
        .unwrap()
        .token;
    let size = |token: String, template: &str, body: Value| {
        let url = format!("{}/v1/warm-pools/{template}", daemon.url);
        async move {
            let r = reqwest::Client::new()
                .put(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(pools(&daemon, &tenant).await.0, 403);
    assert_eq!(
        size(tenant.clone(), "host", json!({"size": 1})).await.0,
        403
    );
    let (status, body) = size(daemon.token.clone(), "none-such", json!({"size": 1})).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = size(daemon.token.clone(), "host", json!({"size": 65})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = size(daemon.token.clone(), "host", json!({"size": 1})).await;
    assert_eq!((status, &body["size"]), (200, &json!(1)), "{body}");
    ready(&daemon, 1).await;
    let (_, body) = size(daemon.token.clone(), "host", json!({"size": 0})).await;
    assert_eq!(body["size"], 0);
    ready(&daemon, 0).await;
    assert_eq!(daemon.client().list().await.unwrap().len(), 0);
}

/// Host pids in the daemon's cgroups, however deep.
fn processes_in_cgroups(daemon: &Daemon) -> Vec<String> {
    fn walk(dir: &std::path::Path, found: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten().filter(|e| e.path().is_dir()) {
            let procs =
                std::fs::read_to_string(entry.path().join("cgroup.procs")).unwrap_or_default();
            found.extend(procs.lines().map(str::to_owned));
            walk(&entry.path(), found);
        }
    }
    let mut found = Vec::new();
    walk(&common::census::instance_cgroup(daemon, "pids"), &mut found);
    found
}

#[tokio::test]
async fn a_daemon_stopped_while_its_pools_fill_leaves_no_sandbox_running() {
    for _ in 0..3 {
        let mut daemon = Daemon::start_with(&["--warm-pool", "host=16"]);
        // Stopped as soon as one is ready: the filler is making the next.
        loop {
            let (_, all) = pools(&daemon, &daemon.token).await;
            if all[0]["ready"].as_u64().unwrap() >= 1 {
                assert!(all[0]["ready"].as_u64().unwrap() < 16, "{all}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            daemon.terminate(),
            "the daemon exits cleanly:\n{}",
            daemon.log()
        );
        let left = processes_in_cgroups(&daemon);
        assert!(left.is_empty(), "processes outlived the daemon: {left:?}");
    }
}
