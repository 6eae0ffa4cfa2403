//! Per-tenant caps: a tenant at its cap of watches, commands or uploads gets 429 with
//! `Retry-After` (RESOURCE_EXHAUSTED on gRPC), while another tenant is served; a slot
//! comes back when its work ends.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Daemon, grpc};

struct Tenant {
    token: String,
    id: String,
}

async fn tenant(daemon: &Daemon, name: &str) -> Tenant {
    let token = daemon
        .client()
        .create_token(name, name, None)
        .await
        .unwrap()
        .token;
    let client = airlock_client::Client::new(daemon.url.clone(), token.clone());
    let id = common::sandbox(&client).await.id;
    Tenant { token, id }
}

fn watch(daemon: &Daemon, t: &Tenant) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .get(format!(
            "{}/v1/sandboxes/{}/files/watch?path=/workspace",
            daemon.url, t.id
        ))
        .bearer_auth(&t.token)
}

fn exec(daemon: &Daemon, t: &Tenant, line: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!("{}/v1/sandboxes/{}/exec", daemon.url, t.id))
        .bearer_auth(&t.token)
        .json(&serde_json::json!({"shell": line}))
}

fn put(daemon: &Daemon, t: &Tenant, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .put(format!(
            "{}/v1/sandboxes/{}/files/content?path={path}",
            daemon.url, t.id
        ))
        .bearer_auth(&t.token)
}

fn assert_refused(response: &reqwest::Response, what: &str) {
    assert_eq!(response.status(), 429, "{what}");
    assert_eq!(response.headers()["retry-after"], "1", "{what}");
}

#[tokio::test]
async fn a_tenant_at_its_cap_waits_and_others_do_not() {
    let daemon = Daemon::start_with(&[
        "--max-watches-per-tenant",
        "1",
        "--max-execs-per-tenant",
        "1",
        "--max-uploads-per-tenant",
        "1",
    ]);
    let a = tenant(&daemon, "team-a").await;
    let b = tenant(&daemon, "team-b").await;

    // Watches: the second of team-a's is refused, team-b's is not; ending one frees it.
    let held = watch(&daemon, &a).send().await.unwrap();
    assert_eq!(held.status(), 200);
    assert_refused(&watch(&daemon, &a).send().await.unwrap(), "second watch");
    let mut grpc_a = grpc::files_with(&daemon, &a.token).await;
    let refused = grpc_a
        .watch(airlock_proto::v1::WatchRequest {
            sandbox_id: a.id.clone(),
            path: "/workspace".into(),
            recursive: false,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert_eq!(watch(&daemon, &b).send().await.unwrap().status(), 200);
    // The count is taken after the door: team-b, pointed at team-a's sandbox, learns
    // of no sandbox, not of team-a's load.
    let prying = Tenant {
        token: b.token.clone(),
        id: a.id.clone(),
    };
    assert_eq!(watch(&daemon, &prying).send().await.unwrap().status(), 404);
    drop(held);
    let mut freed = false;
    for _ in 0..50 {
        let again = watch(&daemon, &a).send().await.unwrap();
        if again.status() == 200 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "a dropped watch never gave its slot back");

    // Commands: one running command holds the slot until it exits.
    let running = exec(&daemon, &a, "sleep 2").send();
    let running = tokio::spawn(running);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_refused(
        &exec(&daemon, &a, "true").send().await.unwrap(),
        "second exec",
    );
    assert_eq!(
        exec(&daemon, &b, "true").send().await.unwrap().status(),
        200
    );
    assert_eq!(running.await.unwrap().unwrap().status(), 200);
    assert_eq!(
        exec(&daemon, &a, "true").send().await.unwrap().status(),
        200
    );

    // Uploads: a body still streaming holds the slot.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    tx.send(Ok(vec![b'x'; 1000])).await.unwrap();
    let slow = tokio::spawn(put(&daemon, &a, "/workspace/slow").body(body).send());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_refused(
        &put(&daemon, &a, "/workspace/fast")
            .body("x")
            .send()
            .await
            .unwrap(),
        "second upload",
    );
    assert_eq!(
        put(&daemon, &b, "/workspace/fast")
            .body("x")
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    drop(tx);
    assert_eq!(slow.await.unwrap().unwrap().status(), 201);
    assert_eq!(
        put(&daemon, &a, "/workspace/fast")
            .body("x")
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
}
