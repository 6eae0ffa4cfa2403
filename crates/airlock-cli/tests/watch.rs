//! `GET /files/watch` end to end: a file created in a brand-new nested directory is seen,
//! and the stream ends when the sandbox is deleted.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::files::{Files, sandbox_with};
use common::{Daemon, sh};
use futures_util::StreamExt;
use serde_json::{Value, json};

/// Reads NDJSON lines from a streaming response.
struct Lines {
    stream: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    pending: Vec<u8>,
}

impl Lines {
    fn new(response: reqwest::Response) -> Self {
        Self {
            stream: response.bytes_stream().boxed(),
            pending: Vec::new(),
        }
    }

    /// The next event, or None when the stream ended; panics after 10 s of silence.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            let next = tokio::time::timeout(Duration::from_secs(10), self.stream.next()).await;
            match next.expect("no event and no end for 10 s") {
                Some(Ok(chunk)) => self.pending.extend_from_slice(&chunk),
                _ => return None,
            }
        }
    }
}

async fn open_watch(files: &Files, path: &str, recursive: &str) -> reqwest::Response {
    files
        .http
        .get(files.url("/watch", &[("path", path), ("recursive", recursive)]))
        .bearer_auth(&files.token)
        .send()
        .await
        .unwrap()
}

/// Reads events as "TYPE PATH" into `seen` until one satisfies `last` (or the stream ends).
async fn read_until(lines: &mut Lines, seen: &mut Vec<String>, last: impl Fn(&str) -> bool) {
    while let Some(event) = lines.next().await {
        let line = format!(
            "{} {}",
            event["type"].as_str().unwrap(),
            event["path"].as_str().unwrap()
        );
        let done = last(&line);
        seen.push(line);
        if done {
            return;
        }
    }
}

#[tokio::test]
async fn sees_a_file_in_a_brand_new_nested_directory() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let files = Files::new(&daemon, &id);
    let response = open_watch(&files, "/workspace", "true").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let mut lines = Lines::new(response);
    assert_eq!(lines.next().await.unwrap()["type"], "ready");

    let made = sh(
        &daemon.client(),
        &id,
        "mkdir -p /workspace/x/y/z && echo hi > /workspace/x/y/z/f",
    )
    .await;
    assert_eq!(made.exit_code, 0, "{}", made.stderr);
    // The file is moved on only once it has been seen: done at once in the same command,
    // it could come and go before the watcher had scanned the new directories, leaving
    // nothing to see (that run of the test failed on a loaded machine).
    let mut seen = Vec::new();
    read_until(&mut lines, &mut seen, |line| {
        line.ends_with(" /workspace/x/y/z/f")
    })
    .await;
    let made = sh(
        &daemon.client(),
        &id,
        "mv /workspace/x/y/z/f /workspace/x/g && chmod 600 /workspace/x/g && rm /workspace/x/g",
    )
    .await;
    assert_eq!(made.exit_code, 0, "{}", made.stderr);
    read_until(&mut lines, &mut seen, |line| {
        line == "remove /workspace/x/g"
    })
    .await;
    for wanted in [
        "create /workspace/x",
        "create /workspace/x/y/z/f",
        "rename /workspace/x/g",
        "chmod /workspace/x/g",
        "remove /workspace/x/g",
    ] {
        assert!(
            seen.iter().any(|s| s == wanted),
            "{wanted} missing from {seen:?}"
        );
    }

    // Deleting the sandbox ends the stream.
    daemon.client().delete(&id).await.unwrap();
    while lines.next().await.is_some() {}
}

#[tokio::test]
async fn bad_watch_targets_answer_clearly() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let files = Files::new(&daemon, &id);
    sh(&daemon.client(), &id, "touch /workspace/file").await;
    assert_eq!(
        open_watch(&files, "/workspace/none", "true").await.status(),
        404
    );
    assert_eq!(
        open_watch(&files, "/workspace/file", "false")
            .await
            .status(),
        409
    );
    assert_eq!(open_watch(&files, "relative", "false").await.status(), 400);
}
