//! The audit log: a line per mutating call and per transfer, on REST and gRPC alike,
//! naming who, which tenant and sandbox, what, which path, bytes and sha256, and the
//! outcome; never a secret.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Daemon, grpc};
use serde_json::Value;

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn find<'a>(lines: &'a [Value], action: &str, path: &str) -> &'a Value {
    lines
        .iter()
        .rev()
        .find(|l| l["action"] == action && l["path"] == path)
        .unwrap_or_else(|| panic!("no {action} line for {path} in {lines:#?}"))
}

#[tokio::test]
async fn transfers_and_changes_are_audited_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let daemon = Daemon::start_with(&["--audit-log", audit_path.to_str().unwrap()]);
    let admin = daemon.client();
    let made = admin.create_token("ci", "team-a", None).await.unwrap();
    let tenant = airlock_client::Client::new(daemon.url.clone(), made.token.clone());
    let id = common::sandbox(&tenant).await.id;
    let http = reqwest::Client::new();
    let content: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    let crc = common::files::crc_hex(&content);

    // A REST upload and a streamed download.
    let rest = common::files::Files::new(&daemon, &id).with_token(&made.token);
    rest.round_trip("/workspace/data.bin", &content).await;
    // A gRPC upload, and a download through a signed URL.
    let mut files = grpc::files_with(&daemon, &made.token).await;
    files
        .upload_file(tokio_stream::iter(grpc::upload_messages(
            grpc::meta(&id, "/workspace/g.bin"),
            &content,
            100_000,
        )))
        .await
        .unwrap();
    // A gRPC download large enough to leave by `sendfile` (`h2_sendfile`), counted as
    // its bytes leave.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    files
        .upload_file(tokio_stream::iter(grpc::upload_messages(
            grpc::meta(&id, "/workspace/big.bin"),
            &big,
            1 << 20,
        )))
        .await
        .unwrap();
    let (_, got) = grpc::download(&mut files, grpc::get(&id, "/workspace/big.bin"))
        .await
        .unwrap();
    assert!(got == big);
    let signed = tenant
        .sign_url(&id, "/workspace/data.bin", "GET", None)
        .await
        .unwrap();
    assert_eq!(
        reqwest::get(&signed.url)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .len(),
        content.len()
    );
    // A refused write: a read-only token.
    let read = tenant
        .create_sandbox_token(&id, "read", None)
        .await
        .unwrap()
        .token;
    let refused = http
        .put(format!(
            "{}/v1/sandboxes/{id}/files/content?path=/workspace/no",
            daemon.url
        ))
        .bearer_auth(&read)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    let log = lines(&audit_path);
    let write = find(&log, "file.write", "/workspace/data.bin");
    assert_eq!(write["principal"], format!("token {}", made.id));
    assert_eq!(write["tenant"], "team-a");
    assert_eq!(write["sandbox"], id.as_str());
    assert_eq!(write["bytes"], content.len() as u64);
    assert_eq!(write["crc64nvme"], crc.as_str());
    assert_eq!(write["outcome"], "ok");
    let grpc_write = find(&log, "file.write", "/workspace/g.bin");
    assert_eq!(grpc_write["crc64nvme"], crc.as_str());
    let grpc_read = find(&log, "file.read", "/workspace/big.bin");
    assert_eq!(grpc_read["bytes"], big.len() as u64);
    assert_eq!(grpc_read["outcome"], "ok");
    let reads: Vec<&Value> = log
        .iter()
        .filter(|l| l["action"] == "file.read" && l["path"] == "/workspace/data.bin")
        .collect();
    assert_eq!(reads.len(), 2, "{log:#?}");
    assert!(
        reads
            .iter()
            .all(|r| r["bytes"] == content.len() as u64 && r["outcome"] == "ok")
    );
    assert_eq!(reads[1]["principal"], "signed URL");
    let no = find(&log, "file.write", "/workspace/no");
    assert_eq!(no["outcome"], "forbidden");
    assert!(
        no["principal"]
            .as_str()
            .unwrap()
            .starts_with("sandbox token ")
    );
    assert!(
        log.iter()
            .any(|l| l["action"] == "sandbox.create" && l["sandbox"] == id.as_str())
    );
    let minted = log.iter().find(|l| l["action"] == "token.create").unwrap();
    assert_eq!(minted["tenant"], "team-a");
    assert_eq!(minted["principal"], "admin token");

    // No secret in the audit log or the daemon's log.
    let text = std::fs::read_to_string(&audit_path).unwrap() + &daemon.log();
    let signature = signed.url.split("signature=").nth(1).unwrap();
    for secret in [
        made.token.as_str(),
        read.as_str(),
        daemon.token.as_str(),
        signature,
    ] {
        assert!(!text.contains(secret), "a secret reached a log");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&audit_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}
