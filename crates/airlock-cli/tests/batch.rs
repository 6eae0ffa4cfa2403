//! `POST /files/batch`: many files in one multipart request, a result per part, one bad
//! part never aborting the rest, and a broken stream keeping what was already written.
#![allow(clippy::unwrap_used)]

mod common;

use common::files::{Files, HostSentinel, random, sandbox_with, sha_hex};
use common::{Daemon, sh};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

fn part(path: &str, data: Vec<u8>, headers: &[(&'static str, &str)]) -> Part {
    let mut map = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, value.parse().unwrap());
    }
    Part::bytes(data).file_name(path.to_owned()).headers(map)
}

impl Files {
    async fn batch(&self, form: Form) -> (u16, Value) {
        let response = self
            .http
            .post(self.url("/batch", &[]))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }
}

#[tokio::test]
async fn one_bad_part_never_aborts_the_rest() {
    let daemon = Daemon::start();
    let id = sandbox_with(
        &daemon,
        json!({"files": [{"path": "/home/user/ro.conf", "content": "pinned", "readonly": true}]}),
    )
    .await;
    let files = Files::new(&daemon, &id);
    let binary = random(200_000, 7);
    let form = Form::new()
        .part("f", part("/workspace/b/a.txt", b"hello".to_vec(), &[]))
        .part("f", part("relative/path", b"no".to_vec(), &[]))
        .part(
            "f",
            part(
                "/workspace/b/bin",
                binary.clone(),
                &[
                    ("x-airlock-mode", "0755"),
                    ("x-airlock-sha256", &sha_hex(&binary)),
                ],
            ),
        )
        .part(
            "f",
            part(
                "/workspace/b/wrong",
                b"data".to_vec(),
                &[("x-airlock-sha256", &"0".repeat(64))],
            ),
        )
        .part("f", part("/home/user/ro.conf", b"changed".to_vec(), &[]))
        .part("f", part("/workspace/b/deep/er/c", vec![], &[]));
    let (status, body) = files.batch(form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["written"].as_u64(), body["failed"].as_u64()),
        (Some(3), Some(3)),
        "{body}"
    );
    let results = body["results"].as_array().unwrap();
    let codes: Vec<_> = results
        .iter()
        .map(|r| r["error"]["code"].as_str().unwrap_or("ok"))
        .collect();
    assert_eq!(
        codes,
        ["ok", "bad_request", "ok", "bad_request", "forbidden", "ok"]
    );
    assert_eq!(results[2]["result"]["sha256"], sha_hex(&binary));
    assert_eq!(results[2]["result"]["mode"], "0755");
    assert_eq!(files.bytes("/workspace/b/bin").await, binary);
    assert_eq!(files.bytes("/workspace/b/a.txt").await, b"hello");
    assert_eq!(files.bytes("/home/user/ro.conf").await, b"pinned");
    let left = sh(&daemon.client(), &id, "ls -A /workspace/b").await;
    assert_eq!(
        left.stdout, "a.txt\nbin\ndeep\n",
        "no stray temporary files"
    );

    // A thousand small files in one request.
    let mut form = Form::new();
    for i in 0..1000 {
        form = form.part(
            "f",
            part(
                &format!("/workspace/many/f{i}"),
                format!("{i}").into_bytes(),
                &[],
            ),
        );
    }
    let (status, body) = files.batch(form).await;
    assert_eq!((status, body["written"].as_u64()), (200, Some(1000)));
    assert_eq!(files.bytes("/workspace/many/f999").await, b"999");
}

#[tokio::test]
async fn malformed_and_broken_bodies_keep_what_was_written() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let files = Files::new(&daemon, &id);
    let (status, body) = files
        .send(reqwest::Method::POST, "/batch", &[], "not multipart")
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );

    // A body that ends in the middle of its second part.
    let boundary = "XyZ";
    let mut raw = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"/workspace/k/first\"\r\n\r\nkept\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"/workspace/k/second\"\r\n\r\n"
    )
    .into_bytes();
    raw.extend_from_slice(&[b'x'; 10_000]);
    let response = files
        .http
        .post(files.url("/batch", &[]))
        .bearer_auth(&files.token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let message = response.json::<Value>().await.unwrap()["error"]["message"].clone();
    assert!(message.as_str().unwrap().contains("1 written"), "{message}");
    let left = sh(
        &daemon.client(),
        &id,
        "ls -A /workspace/k && cat /workspace/k/first",
    )
    .await;
    assert_eq!(left.stdout, "first\nkept", "{}", left.stderr);
}

#[tokio::test]
async fn parts_aimed_at_the_host_never_reach_it() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let files = Files::new(&daemon, &id);
    let sentinel = HostSentinel::new();
    let host = &sentinel.host;
    sh(
        &daemon.client(),
        &id,
        &format!("ln -s {host} /workspace/abs; ln -s ../../../../../..{host} /workspace/rel"),
    )
    .await;
    let targets = [
        "/workspace/abs/secret".to_owned(),
        "/workspace/rel/secret".to_owned(),
        format!("{host}/secret"),
        format!("/workspace/../../..{host}/secret"),
    ];
    let mut form = Form::new();
    for target in &targets {
        form = form.part(
            "f",
            part(target, b"pwned".to_vec(), &[("x-airlock-mode", "4755")]),
        );
    }
    let (status, body) = files.batch(form).await;
    assert_eq!(status, 200, "{body}");
    sentinel.assert_untouched();
    // The host path, made inside the sandbox by parents=true, is the only one written.
    let written: Vec<_> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["result"].is_object())
        .map(|r| {
            (
                r["path"].as_str().unwrap(),
                r["result"]["mode"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(written, [(targets[2].as_str(), "0755")], "{body}");
}
