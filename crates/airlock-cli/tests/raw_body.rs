//! Whole-file uploads with a raw body (`Upgrade: airlock-body`) against a real daemon:
//! the SDK's large `write_file` takes it, everything that can refuse a write refuses
//! before the go-ahead, and a body that breaks, stalls or fails its checksum commits
//! nothing while the daemon goes on serving.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Seek, Write};
use std::time::{Duration, Instant};

use airlock_client::WriteOptions;
use common::files::{Files, crc_hex, random, sandbox_with};
use common::raw_body::{self, Send, put};
use common::{Daemon, sandbox};
use serde_json::json;
use sha2::Digest;

/// Query pairs or header lines.
type Pairs = Vec<(&'static str, &'static str)>;

/// A local file holding `data`, at its start.
fn local(data: &[u8]) -> std::fs::File {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(data).unwrap();
    file.rewind().unwrap();
    file
}

#[tokio::test]
async fn the_sdk_sends_a_large_file_raw_from_its_offset_with_its_options() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = sandbox(&client).await.id;
    let data = random((20 << 20) + 4321, 3);
    let opts = WriteOptions {
        mode: Some(0o600),
        parents: true,
        report_sha256: true,
        ..WriteOptions::default()
    };
    let written = client
        .write_file(&id, "/workspace/raw/big.bin", local(&data), &opts)
        .await
        .unwrap();
    assert_eq!(
        (written.entry.size, written.entry.mode.0),
        (data.len() as u64, 0o600)
    );
    assert_eq!(written.crc64nvme, crc_hex(&data));
    let sha = written.sha256.expect("asked for");
    assert_eq!(sha, format!("{:x}", sha2::Sha256::digest(&data)));
    let files = Files::new(&daemon, &id);
    assert_eq!(files.bytes("/workspace/raw/big.bin").await, data);

    let mut from_offset = local(&data);
    from_offset.seek(std::io::SeekFrom::Start(12345)).unwrap();
    let rest = client
        .write_file(&id, "/workspace/raw/big.bin", from_offset, &opts)
        .await
        .unwrap();
    assert_eq!(rest.crc64nvme, crc_hex(&data[12345..]));
    assert_eq!(files.bytes("/workspace/raw/big.bin").await, &data[12345..]);

    // Both went raw: the daemon counted two `101`s on the route, and no `201` of a
    // plain PUT.
    let puts = raw_body::answered(&daemon, "files/content").await;
    // Their bytes count as received, though they never passed through hyper's body.
    let received = raw_body::received(&daemon).await;
    let sent = (data.len() + data.len() - 12345) as u64;
    assert!(received >= sent, "{received} bytes counted of {sent}");
    assert!(
        puts.iter()
            .any(|l| l.contains("status=\"101\"") && l.ends_with(" 2")),
        "{puts:?}"
    );
    assert!(!puts.iter().any(|l| l.contains("status=\"201")), "{puts:?}");
}

#[tokio::test]
async fn a_raw_body_answers_as_a_put_does_and_refusals_come_before_the_go_ahead() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let f = Files::new(&daemon, &id);
    let body = random(300_000, 7);

    let (status, answer, upgraded) = put(&f, "/workspace/a", &[], &[], &body, Send::Whole).await;
    assert_eq!((status, upgraded), (201, true), "{answer}");
    assert_eq!(answer["crc64nvme"], crc_hex(&body));
    assert_eq!(answer["size"], body.len());
    let (status, _, _) = put(&f, "/workspace/a", &[], &[], b"again", Send::Whole).await;
    assert_eq!(status, 200, "a replaced file is 200");
    assert_eq!(f.bytes("/workspace/a").await, b"again");

    // Refused with the body still unsent: a plain answer, no upgrade. What only the
    // filesystem can tell (a missing parent, a name taken) is told after the go-ahead,
    // as a plain `PUT` tells it after its body began.
    let cases: Vec<(&str, Pairs, Pairs, (u16, bool))> = vec![
        ("../../etc/passwd", vec![], vec![], (400, false)),
        ("/workspace/b", vec![("mode", "999")], vec![], (400, false)),
        (
            "/workspace/b",
            vec![],
            vec![("x-airlock-length", "many")],
            (400, false),
        ),
        (
            "/workspace/b",
            vec![],
            vec![("content-length", "3")],
            (400, false),
        ),
        ("/workspace/none/x", vec![], vec![], (404, true)),
        (
            "/workspace/a",
            vec![("overwrite", "false")],
            vec![],
            (409, true),
        ),
    ];
    for (path, query, headers, expected) in cases {
        let (status, answer, upgraded) = put(&f, path, &query, &headers, b"abc", Send::Whole).await;
        assert_eq!(
            (status, upgraded),
            expected,
            "{path} {query:?} {headers:?}: {answer}"
        );
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }
    let mut stranger = Files::new(&daemon, &id);
    stranger.token = "not-a-token".into();
    let (status, _, upgraded) = put(&stranger, "/workspace/b", &[], &[], b"x", Send::Whole).await;
    assert_eq!((status, upgraded), (401, false));
    let (status, _) = f.list("/workspace", "1").await;
    assert_eq!(status, 200);
    let (_, listing) = f.list("/workspace", "1").await;
    let names: Vec<&str> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a"], "nothing refused was made");
}

#[tokio::test]
async fn a_broken_or_wrong_raw_body_commits_nothing_and_the_daemon_serves_on() {
    let daemon = Daemon::start_with(&["--idle-timeout", "2s"]);
    let id = sandbox_with(&daemon, json!({})).await;
    let f = Files::new(&daemon, &id);
    let (status, _) = f.put("/workspace/kept", &[], "old").await;
    assert_eq!(status, 201);
    let body = random(2 << 20, 11);

    // Cut short: the client closes half-way.
    let (_, _, upgraded) = put(&f, "/workspace/kept", &[], &[], &body, Send::CutAt(1 << 20)).await;
    assert!(upgraded);
    // A wrong expected checksum, found once the whole body is in.
    let wrong = [("crc64nvme", "0000000000000001")];
    let (status, answer, _) = put(&f, "/workspace/kept", &wrong, &[], &body, Send::Whole).await;
    assert_eq!(status, 400, "{answer}");
    // A client that announces more than it sends and goes quiet: the idle timeout.
    let started = Instant::now();
    let more = [("x-airlock-length", "5000000")];
    let (status, answer, _) = put(&f, "/workspace/kept", &[], &more, &body, Send::Whole).await;
    assert_eq!(status, 408, "{answer}");
    assert!(started.elapsed() < Duration::from_secs(20));

    // The old file stands, nothing half-written is left beside it, and the daemon
    // answers everyone.
    assert_eq!(f.bytes("/workspace/kept").await, b"old");
    let (_, listing) = f.list("/workspace", "1").await;
    assert_eq!(listing["entries"].as_array().unwrap().len(), 1, "{listing}");
    let (status, _, _) = put(&f, "/workspace/after", &[], &[], &body, Send::Whole).await;
    assert_eq!(status, 201);
    assert_eq!(f.bytes("/workspace/after").await, body);
}
