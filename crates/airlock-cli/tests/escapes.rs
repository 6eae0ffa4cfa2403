//! The escape corpus: every file route × every path attack of SECURITY.md, each against a
//! host sentinel at the very absolute path the sandbox's links name. Every case must end
//! in a clean 4xx or in a result inside the sandbox; the sentinel never changes.
#![allow(clippy::unwrap_used)]

mod common;

use common::files::{Files, HostSentinel, sandbox_with};
use common::{Daemon, sh};
use serde_json::{Value, json};

/// How one route is driven with one hostile path.
type Route = fn(&Files, String) -> futures_util::future::BoxFuture<'_, u16>;

fn routes() -> Vec<(&'static str, Route)> {
    vec![
        ("GET content", |f, p| {
            Box::pin(async move { f.get(&p, None).await.status().as_u16() })
        }),
        ("PUT content", |f, p| {
            Box::pin(async move { f.put(&p, &[], "pwned").await.0 })
        }),
        ("PUT content parents", |f, p| {
            Box::pin(async move {
                f.put(&format!("{p}/new"), &[("parents", "true")], "pwned")
                    .await
                    .0
            })
        }),
        ("POST append", |f, p| {
            Box::pin(async move {
                f.send(
                    reqwest::Method::POST,
                    "/content",
                    &[("path", &p), ("append", "true")],
                    "pwned",
                )
                .await
                .0
            })
        }),
        ("POST offset", |f, p| {
            Box::pin(async move {
                f.send(
                    reqwest::Method::POST,
                    "/content",
                    &[("path", &p), ("offset", "0")],
                    "pwned",
                )
                .await
                .0
            })
        }),
        ("GET list", |f, p| {
            Box::pin(async move {
                f.call(reqwest::Method::GET, "", &[("path", &p)], None)
                    .await
                    .0
            })
        }),
        ("GET stat", |f, p| {
            Box::pin(async move {
                f.call(reqwest::Method::GET, "/stat", &[("path", &p)], None)
                    .await
                    .0
            })
        }),
        ("POST mkdir", |f, p| {
            Box::pin(async move {
                f.call(
                    reqwest::Method::POST,
                    "/mkdir",
                    &[],
                    Some(json!({"path": format!("{p}/d")})),
                )
                .await
                .0
            })
        }),
        ("POST move from", |f, p| {
            Box::pin(async move {
                f.call(
                    reqwest::Method::POST,
                    "/move",
                    &[],
                    Some(json!({"from": p, "to": "/workspace/moved"})),
                )
                .await
                .0
            })
        }),
        ("POST move onto", |f, p| {
            Box::pin(async move {
                f.put("/workspace/mover", &[], "m").await;
                f.call(
                    reqwest::Method::POST,
                    "/move",
                    &[],
                    Some(json!({"from": "/workspace/mover", "to": p, "overwrite": true})),
                )
                .await
                .0
            })
        }),
        ("DELETE", |f, p| {
            Box::pin(async move {
                f.call(
                    reqwest::Method::DELETE,
                    "",
                    &[("path", &p), ("recursive", "true")],
                    None,
                )
                .await
                .0
            })
        }),
        ("POST compose source", |f, p| {
            Box::pin(async move {
                f.call(
                    reqwest::Method::POST,
                    "/compose",
                    &[],
                    Some(json!({"sources": [p], "destination": "/workspace/composed"})),
                )
                .await
                .0
            })
        }),
        ("POST compose destination", |f, p| {
            Box::pin(async move {
                f.put("/workspace/part", &[], "pwned").await;
                f.call(
                    reqwest::Method::POST,
                    "/compose",
                    &[],
                    Some(json!({"sources": ["/workspace/part"], "destination": p})),
                )
                .await
                .0
            })
        }),
        ("GET archive", |f, p| {
            Box::pin(async move {
                let r = f
                    .http
                    .get(f.url("/archive", &[("path", &p)]))
                    .bearer_auth(&f.token)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let body = r.bytes().await.unwrap();
                // A 200 must be a tar of the sandbox's files, never the host's sentinel.
                assert!(
                    !String::from_utf8_lossy(&body).contains("host-secret"),
                    "archive leaked the host file"
                );
                status
            })
        }),
        ("PUT archive", |f, p| {
            Box::pin(async move {
                let mut tar = tar::Builder::new(Vec::new());
                let mut header = tar::Header::new_gnu();
                header.set_size(5);
                header.set_mode(0o644);
                tar.append_data(&mut header, "secret", &b"pwned"[..])
                    .unwrap();
                f.send(
                    reqwest::Method::PUT,
                    "/archive",
                    &[("path", &p)],
                    tar.into_inner().unwrap(),
                )
                .await
                .0
            })
        }),
        ("POST batch", |f, p| {
            Box::pin(async move {
                let form = reqwest::multipart::Form::new().part(
                    "f",
                    reqwest::multipart::Part::bytes(b"pwned".to_vec()).file_name(p),
                );
                let r = f
                    .http
                    .post(f.url("/batch", &[]))
                    .bearer_auth(&f.token)
                    .multipart(form)
                    .send()
                    .await
                    .unwrap();
                r.status().as_u16()
            })
        }),
        ("tus upload", |f, p| {
            Box::pin(async move {
                use base64::Engine as _;
                let uploads = format!("{}/uploads", f.base.trim_end_matches("/files"));
                let path = base64::engine::general_purpose::STANDARD.encode(&p);
                let created = f
                    .http
                    .post(&uploads)
                    .bearer_auth(&f.token)
                    .header("Tus-Resumable", "1.0.0")
                    .header("Upload-Length", "5")
                    .header("Upload-Metadata", format!("path {path}"))
                    .send()
                    .await
                    .unwrap();
                if created.status() != 201 {
                    return created.status().as_u16();
                }
                let location = created.headers()["location"].to_str().unwrap().to_owned();
                let origin = f.base.split("/v1/").next().unwrap().to_owned();
                f.http
                    .patch(format!("{origin}{location}"))
                    .bearer_auth(&f.token)
                    .header("Tus-Resumable", "1.0.0")
                    .header("Content-Type", "application/offset+octet-stream")
                    .header("Upload-Offset", "0")
                    .body("pwned")
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        }),
        ("GET watch", |f, p| {
            Box::pin(async move {
                let r = f
                    .http
                    .get(f.url("/watch", &[("path", &p), ("recursive", "true")]))
                    .bearer_auth(&f.token)
                    .timeout(std::time::Duration::from_secs(10))
                    .send()
                    .await;
                // The answer's head comes at once (a stream follows); dropping it ends it.
                r.unwrap().status().as_u16()
            })
        }),
    ]
}

#[tokio::test]
async fn every_route_against_every_path_attack() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let files = Files::new(&daemon, &id);
    let sentinel = HostSentinel::new();
    std::fs::write(&sentinel.file, "host-secret").unwrap();
    let host = sentinel.host.clone();
    let setup = format!(
        "ln -s {host} /workspace/abs; ln -s ../../../../../../../..{host} /workspace/rel; \
         ln -s {host}/secret /workspace/filelink; mkdir -p /workspace/nest && ln -s {host} /workspace/nest/deep"
    );
    assert_eq!(sh(&daemon.client(), &id, &setup).await.exit_code, 0);
    let attacks = [
        (
            "absolute symlink to the host dir",
            "/workspace/abs/secret".to_owned(),
        ),
        (
            "climbing relative symlink",
            "/workspace/rel/secret".to_owned(),
        ),
        ("the host path itself", format!("{host}/secret")),
        (
            "final symlink to the host file",
            "/workspace/filelink".to_owned(),
        ),
        (
            "symlinked dir in a nested parent",
            "/workspace/nest/deep/secret".to_owned(),
        ),
        (
            "proc magic link to the host root",
            format!("/proc/self/root{host}/secret"),
        ),
        ("dot-dot climb", format!("/workspace/../../..{host}/secret")),
    ];
    let mut cases = 0;
    let mut outcomes: std::collections::BTreeMap<u16, usize> = Default::default();
    for (route, drive) in routes() {
        for (attack, path) in &attacks {
            let status = drive(&files, path.clone()).await;
            cases += 1;
            *outcomes.entry(status).or_default() += 1;
            assert!(status < 500, "{route} × {attack}: server error {status}");
            assert_eq!(
                std::fs::read_to_string(&sentinel.file).unwrap(),
                "host-secret",
                "{route} × {attack} changed the host sentinel"
            );
            assert_eq!(
                std::fs::read_dir(sentinel.dir.path()).unwrap().count(),
                1,
                "{route} × {attack} made something beside the host sentinel"
            );
        }
    }
    let health: Value = daemon
        .client()
        .get(&id)
        .await
        .map(|s| serde_json::to_value(s).unwrap())
        .unwrap();
    assert_eq!(health["state"], "running");
    eprintln!(
        "escape corpus: {cases} cases (18 routes × 7 attacks), outcomes by status: {outcomes:?}"
    );
    assert!(cases >= 40);
}
