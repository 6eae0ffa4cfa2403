//! Resumable (tus) appends with a raw body (`Upgrade: airlock-body`) against a real
//! daemon: bytes that arrive before a cut are kept and the upload resumes from them,
//! everything that can refuse an append refuses before the go-ahead, a newer request
//! takes over a stalled raw append at once, and the SDK's large appends (so `airlock cp`)
//! go this way.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Seek, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::files::{Files, crc_hex, random, sandbox_with};
use common::raw_body::{self, Send, patch};
use common::tus::{self, Tus};
use common::{Daemon, sandbox};
use serde_json::json;

/// Waits until the sandbox's one partial upload file holds `size` bytes.
async fn partial_reaches(daemon: &Daemon, id: &str, size: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let held = tus::partial_size(daemon, id);
        if held >= size {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the partial file holds {held} of {size} bytes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_raw_append_cut_short_keeps_what_came_and_the_upload_resumes_raw() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let f = Files::new(&daemon, &id);
    let data = random((3 << 20) + 5, 21);
    let tus = Tus::new(&daemon, &id);
    let location = tus
        .create(data.len() as u64, &[("path", "/workspace/up.bin")])
        .await;

    let cut = patch(&f, &location, 0, &[], &data, Send::CutAt(1 << 20)).await;
    assert!(cut.upgraded);
    // Asked before the daemon took the bytes in, HEAD would find the upload as it was
    // and (as a newer request) stop the append: wait until the partial file holds them.
    partial_reaches(&daemon, &id, 1 << 20).await;
    // Every byte the client sent before it closed is kept.
    assert_eq!(tus.offset(&location).await.unwrap(), 1 << 20);

    let rest = patch(&f, &location, 1 << 20, &[], &data[1 << 20..], Send::Whole).await;
    assert!(rest.upgraded);
    assert_eq!(rest.status, 204, "{}", rest.json);
    assert_eq!(rest.header("upload-offset"), Some(&*data.len().to_string()));
    assert_eq!(
        rest.header("x-airlock-crc64nvme"),
        Some(&*crc_hex(&data)),
        "{}",
        rest.head
    );
    assert_eq!(rest.header("tus-resumable"), Some("1.0.0"));
    assert_eq!(f.bytes("/workspace/up.bin").await, data);
}

/// What is asked, the offset, the header lines, the body, and the status expected.
type Case<'a> = (&'a str, u64, Vec<(&'a str, &'a str)>, &'a [u8], u16);

#[tokio::test]
async fn raw_appends_are_refused_before_the_go_ahead_as_plain_ones_are() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let f = Files::new(&daemon, &id);
    let data = random(1000, 5);
    let tus = Tus::new(&daemon, &id);
    let location = tus
        .create(data.len() as u64, &[("path", "/workspace/small.bin")])
        .await;
    let digest = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
    let checksum = format!("sha256 {digest}");
    let too_long = random(1001, 6);
    let cases: Vec<Case> = vec![
        ("an offset not where it stands", 5, vec![], &data[5..], 409),
        ("a body past the upload's end", 0, vec![], &too_long, 413),
        (
            "a chunk checksum",
            0,
            vec![("upload-checksum", checksum.as_str())],
            &data,
            400,
        ),
        (
            "a length that is no number",
            0,
            vec![("x-airlock-length", "lots")],
            &data,
            400,
        ),
    ];
    for (what, at, headers, body, status) in cases {
        let refused = patch(&f, &location, at, &headers, body, Send::Whole).await;
        assert_eq!(
            (refused.status, refused.upgraded),
            (status, false),
            "{what}"
        );
        assert!(refused.json["error"]["message"].is_string(), "{what}");
    }
    let unknown = location.rsplit_once('/').unwrap().0.to_owned() + "/nosuchupload";
    let refused = patch(&f, &unknown, 0, &[], &data, Send::Whole).await;
    assert_eq!((refused.status, refused.upgraded), (404, false));
    let mut stranger = Files::new(&daemon, &id);
    stranger.token = "not-a-token".into();
    let refused = patch(&stranger, &location, 0, &[], &data, Send::Whole).await;
    assert_eq!((refused.status, refused.upgraded), (401, false));
    let other = sandbox_with(&daemon, json!({})).await;
    let elsewhere = location.replace(&id, &other);
    let refused = patch(&f, &elsewhere, 0, &[], &data, Send::Whole).await;
    assert_eq!((refused.status, refused.upgraded), (404, false));

    // None of that moved the upload; the right append completes it.
    assert_eq!(tus.offset(&location).await.unwrap(), 0);
    let done = patch(&f, &location, 0, &[], &data, Send::Whole).await;
    assert_eq!((done.status, done.upgraded), (204, true), "{}", done.json);
    assert_eq!(f.bytes("/workspace/small.bin").await, data);
}

#[tokio::test]
async fn a_newer_request_takes_over_a_stalled_raw_append_at_once() {
    // The idle timeout is long: only the take-over can end the stalled append soon.
    let daemon = Daemon::start_with(&["--idle-timeout", "60s"]);
    let id = sandbox_with(&daemon, json!({})).await;
    let f = Files::new(&daemon, &id);
    let data = random(2 << 20, 9);
    let tus = Tus::new(&daemon, &id);
    let location = tus
        .create(data.len() as u64, &[("path", "/workspace/stalled.bin")])
        .await;
    let stalled = patch(&f, &location, 0, &[], &data, Send::StallAt(100_000)).await;
    assert!(stalled.upgraded);
    partial_reaches(&daemon, &id, 100_000).await;
    let started = Instant::now();
    let at = tus.offset(&location).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(at, 100_000);
    let rest = patch(&f, &location, at, &[], &data[100_000..], Send::Whole).await;
    assert_eq!(rest.status, 204, "{}", rest.json);
    assert_eq!(f.bytes("/workspace/stalled.bin").await, data);
}

#[tokio::test]
async fn the_sdk_sends_a_large_append_raw_and_sees_every_byte() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = sandbox(&client).await.id;
    let data = random((12 << 20) + 77, 13);
    let url = client
        .create_upload(
            &id,
            "/workspace/sdk.bin",
            data.len() as u64,
            Some(0o600),
            None,
        )
        .await
        .unwrap();
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&data).unwrap();
    // From an offset, as a resumed upload sends.
    let from = 4096;
    client
        .upload_chunk(&url, 0, std::io::Cursor::new(data[..from].to_vec()))
        .await
        .unwrap();
    file.seek(std::io::SeekFrom::Start(from as u64)).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let watching = seen.clone();
    let done = client
        .upload_file(&url, from as u64, file, move |piece| {
            watching.lock().unwrap().extend_from_slice(piece)
        })
        .await
        .unwrap();
    assert_eq!(done.offset, data.len() as u64);
    assert_eq!(done.crc64nvme.as_deref(), Some(&*crc_hex(&data)));
    assert_eq!(*seen.lock().unwrap(), &data[from..]);
    let f = Files::new(&daemon, &id);
    assert_eq!(f.bytes("/workspace/sdk.bin").await, data);

    // It went raw: the daemon counted a `101` on the append's route.
    let appends = raw_body::answered(&daemon, "uploads/{upload}").await;
    assert!(
        appends.iter().any(|l| l.contains("status=\"101\"")),
        "{appends:?}"
    );
}
