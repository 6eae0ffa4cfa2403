//! The escape corpus: every file route × every path attack of SECURITY.md, each against a
//! host sentinel at the very absolute path the sandbox's links name. Every case must end
//! in a clean 4xx or in a result inside the sandbox; the sentinel never changes.
#![allow(clippy::unwrap_used)]

mod common;

use airlock_proto::v1 as pb;
use common::files::{Files, HostSentinel, sandbox_with};
use common::{Daemon, grpc, raw_body, sh, tus};
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
        ("PUT content, raw body", |f, p| {
            Box::pin(async move {
                let sent = raw_body::Send::Whole;
                raw_body::put(f, &p, &[], &[], b"pwned", sent).await.0
            })
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
        ("POST archive paths", |f, p| {
            Box::pin(async move {
                // The hostile path as the directory, and as a chosen entry under /.
                let mut worst = 0;
                for body in [
                    json!({"path": p, "paths": ["secret"]}),
                    json!({"path": "/", "paths": [p.trim_start_matches('/')]}),
                ] {
                    let r = f
                        .http
                        .post(f.url("/archive", &[]))
                        .bearer_auth(&f.token)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    let status = r.status().as_u16();
                    let body = r.bytes().await.unwrap();
                    assert!(
                        !String::from_utf8_lossy(&body).contains("host-secret"),
                        "archive of chosen paths leaked the host file"
                    );
                    worst = worst.max(status);
                }
                worst
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
                let location = match tus::create_at(f, &p, 5).await {
                    Ok(location) => location,
                    Err(status) => return status,
                };
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
        ("tus upload, raw body", |f, p| {
            Box::pin(async move {
                let location = match tus::create_at(f, &p, 5).await {
                    Ok(location) => location,
                    Err(status) => return status,
                };
                let sent = raw_body::Send::Whole;
                raw_body::patch(f, &location, 0, &[], b"pwned", sent)
                    .await
                    .status
            })
        }),
        ("signed GET", |f, p| {
            Box::pin(async move {
                let Some(url) = signed(f, &p, "GET").await else {
                    return 400;
                };
                let got = f.http.get(url).send().await.unwrap();
                let status = got.status().as_u16();
                let body = got.bytes().await.unwrap_or_default();
                assert!(!String::from_utf8_lossy(&body).contains("host-secret"));
                status
            })
        }),
        ("signed PUT", |f, p| {
            Box::pin(async move {
                let Some(url) = signed(f, &p, "PUT").await else {
                    return 400;
                };
                f.http
                    .put(url)
                    .body("pwned")
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        }),
        ("agent-sandbox download", |f, p| {
            Box::pin(async move {
                let got = agent(
                    f,
                    reqwest::Method::GET,
                    &format!("download/{}", relative(&p)),
                );
                let got = got.send().await.unwrap();
                let status = got.status().as_u16();
                let body = got.bytes().await.unwrap_or_default();
                assert!(!String::from_utf8_lossy(&body).contains("host-secret"));
                status
            })
        }),
        ("agent-sandbox list", |f, p| {
            Box::pin(async move {
                let path = format!("list/{}", relative(&p));
                status(agent(f, reqwest::Method::GET, &path)).await
            })
        }),
        ("agent-sandbox upload", |f, p| {
            Box::pin(async move {
                // The filename as the SDK sends it: relative, raw.
                let name = p.trim_start_matches('/').to_owned();
                let part = reqwest::multipart::Part::bytes(b"pwned".to_vec()).file_name(name);
                let form = reqwest::multipart::Form::new().part("file", part);
                let sent = agent(f, reqwest::Method::POST, "upload").multipart(form);
                status(sent).await
            })
        }),
        ("agent-sandbox v1 PUT", |f, p| {
            Box::pin(async move {
                let path = format!("v1/files/{}", relative(&p));
                let sent = agent(f, reqwest::Method::PUT, &path).body("pwned");
                status(sent).await
            })
        }),
        ("agent-sandbox v1 DELETE", |f, p| {
            Box::pin(async move {
                let path = format!("v1/files/{}?recursive=true", relative(&p));
                status(agent(f, reqwest::Method::DELETE, &path)).await
            })
        }),
        ("e2b GET /files", |f, p| {
            Box::pin(async move {
                let got = envd(f, reqwest::Method::GET, "files").query(&[("path", &p)]);
                let got = got.send().await.unwrap();
                let status = got.status().as_u16();
                let body = got.bytes().await.unwrap_or_default();
                assert!(!String::from_utf8_lossy(&body).contains("host-secret"));
                status
            })
        }),
        ("e2b POST /files octet-stream", |f, p| {
            Box::pin(async move {
                let sent = envd(f, reqwest::Method::POST, "files")
                    .query(&[("path", &p)])
                    .header("content-type", "application/octet-stream")
                    .body("pwned");
                status(sent).await
            })
        }),
        ("e2b POST /files multipart", |f, p| {
            Box::pin(async move {
                let part = reqwest::multipart::Part::bytes(b"pwned".to_vec()).file_name(p);
                let form = reqwest::multipart::Form::new().part("file", part);
                let sent = envd(f, reqwest::Method::POST, "files").multipart(form);
                status(sent).await
            })
        }),
        ("e2b Connect ListDir", |f, p| {
            Box::pin(async move {
                let call = envd(f, reqwest::Method::POST, "filesystem.Filesystem/ListDir")
                    .json(&json!({"path": p, "depth": 3}));
                let got = call.send().await.unwrap();
                let status = got.status().as_u16();
                let body = got.text().await.unwrap_or_default();
                assert!(!body.contains("host-secret"));
                status
            })
        }),
        ("e2b Connect ListDir, binary codec", |f, p| {
            Box::pin(async move {
                // ListDirRequest{path = 1, depth = 2} encoded by hand, so the path's
                // bytes reach the service exactly as sent.
                let mut message = common::protobuf_string(1, &p);
                message.extend([0x10, 3]);
                let call = envd(f, reqwest::Method::POST, "filesystem.Filesystem/ListDir")
                    .header("content-type", "application/proto")
                    .body(message);
                let got = call.send().await.unwrap();
                let status = got.status().as_u16();
                let body = got.bytes().await.unwrap_or_default();
                assert!(!String::from_utf8_lossy(&body).contains("host-secret"));
                status
            })
        }),
        ("e2b Connect MakeDir", |f, p| {
            Box::pin(async move {
                let call = envd(f, reqwest::Method::POST, "filesystem.Filesystem/MakeDir")
                    .json(&json!({"path": format!("{p}/d")}));
                status(call).await
            })
        }),
        ("e2b Connect Move", |f, p| {
            Box::pin(async move {
                let call = envd(f, reqwest::Method::POST, "filesystem.Filesystem/Move")
                    .json(&json!({"source": p, "destination": "/workspace/e2b-moved"}));
                status(call).await
            })
        }),
        ("e2b Connect Remove", |f, p| {
            Box::pin(async move {
                let call = envd(f, reqwest::Method::POST, "filesystem.Filesystem/Remove")
                    .json(&json!({"path": p}));
                status(call).await
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

/// A request's status.
async fn status(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.unwrap().status().as_u16()
}

/// A request to the agent-sandbox face for the fixture's sandbox.
fn agent(f: &Files, method: reqwest::Method, route: &str) -> reqwest::RequestBuilder {
    let (origin, rest) = f.base.split_once("/v1/sandboxes/").unwrap();
    let id = rest.split('/').next().unwrap();
    f.http
        .request(method, format!("{origin}/agent-sandbox/{route}"))
        .bearer_auth(&f.token)
        .header("X-Sandbox-ID", id)
}

/// A request to the E2B envd face for the fixture's sandbox, with the fixture's token
/// as its access token.
fn envd(f: &Files, method: reqwest::Method, route: &str) -> reqwest::RequestBuilder {
    let (origin, rest) = f.base.split_once("/v1/sandboxes/").unwrap();
    let id = rest.split('/').next().unwrap();
    f.http
        .request(method, format!("{origin}/e2b/envd/{route}"))
        .header("X-Access-Token", &f.token)
        .header("E2b-Sandbox-Id", id)
}

/// A path as the agent-sandbox SDK sends it: relative, each character percent-encoded
/// but for the unreserved ones.
fn relative(path: &str) -> String {
    path.trim_start_matches('/')
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A signed URL for `path` and `method`, minted with the fixture's token; none when
/// the daemon refuses to sign it.
async fn signed(f: &Files, path: &str, method: &str) -> Option<String> {
    let (status, url) = f.sign(path, method).await;
    assert!(status < 500, "signing {path}: {status}");
    url
}

/// Links inside the sandbox that point at the host sentinel, and the hostile paths that
/// use them.
async fn arm(daemon: &Daemon, id: &str, host: &str) -> Vec<(&'static str, String)> {
    let setup = format!(
        "ln -s {host} /workspace/abs; ln -s ../../../../../../../..{host} /workspace/rel; \
         ln -s {host}/secret /workspace/filelink; mkdir -p /workspace/nest && ln -s {host} /workspace/nest/deep"
    );
    assert_eq!(sh(&daemon.client(), id, &setup).await.exit_code, 0);
    vec![
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
    ]
}

fn assert_sentinel_untouched(sentinel: &HostSentinel, what: &str) {
    assert_eq!(
        std::fs::read_to_string(&sentinel.file).unwrap(),
        "host-secret",
        "{what} changed the host sentinel"
    );
    assert_eq!(
        std::fs::read_dir(sentinel.dir.path()).unwrap().count(),
        1,
        "{what} made something beside the host sentinel"
    );
}

#[tokio::test]
async fn every_route_against_every_path_attack() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let files = Files::new(&daemon, &id);
    let sentinel = HostSentinel::new();
    std::fs::write(&sentinel.file, "host-secret").unwrap();
    let host = sentinel.host.clone();
    let attacks = arm(&daemon, &id, &host).await;
    let mut cases = 0;
    let mut outcomes: std::collections::BTreeMap<u16, usize> = Default::default();
    let routes = routes();
    let route_count = routes.len();
    for (route, drive) in routes {
        for (attack, path) in &attacks {
            let status = drive(&files, path.clone()).await;
            cases += 1;
            *outcomes.entry(status).or_default() += 1;
            assert!(status < 500, "{route} × {attack}: server error {status}");
            assert_sentinel_untouched(&sentinel, &format!("{route} × {attack}"));
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
        "escape corpus: {cases} cases ({route_count} routes × {} attacks), outcomes by status: {outcomes:?}",
        attacks.len()
    );
    assert!(cases >= 40);
}

/// How one gRPC call is driven with one hostile path: its status code (Ok for success).
type Rpc =
    fn(grpc::FilesAuthed, String, String) -> futures_util::future::BoxFuture<'static, tonic::Code>;

fn code<T>(outcome: Result<T, tonic::Status>) -> tonic::Code {
    outcome.map_or_else(|s| s.code(), |_| tonic::Code::Ok)
}

fn upload(
    mut f: grpc::FilesAuthed,
    meta: pb::UploadFileMetadata,
    body: &'static [u8],
) -> futures_util::future::BoxFuture<'static, tonic::Code> {
    Box::pin(async move {
        code(
            f.upload_file(tokio_stream::iter(grpc::upload_messages(meta, body, 4)))
                .await,
        )
    })
}

fn rpcs() -> Vec<(&'static str, Rpc)> {
    vec![
        ("DownloadFile", |mut f, id, p| {
            Box::pin(async move { code(grpc::download(&mut f, grpc::get(&id, &p)).await) })
        }),
        ("DownloadFile archive paths", |mut f, id, p| {
            Box::pin(async move {
                let mut r = grpc::get(&id, "/");
                r.as_archive = true;
                r.paths = vec![p.trim_start_matches('/').to_owned()];
                match grpc::download(&mut f, r).await {
                    Ok((_, body)) => {
                        assert!(!String::from_utf8_lossy(&body).contains("host-secret"));
                        tonic::Code::Ok
                    }
                    Err(e) => e.code(),
                }
            })
        }),
        ("DownloadFile archive", |mut f, id, p| {
            Box::pin(async move {
                let mut r = grpc::get(&id, &p);
                r.as_archive = true;
                code(grpc::download(&mut f, r).await)
            })
        }),
        ("UploadFile", |f, id, p| {
            upload(f, grpc::meta(&id, &p), b"pwned")
        }),
        ("UploadFile parents", |f, id, p| {
            let mut m = grpc::meta(&id, &format!("{p}/new"));
            m.parents = Some(true);
            upload(f, m, b"pwned")
        }),
        ("UploadFile archive", |f, id, p| {
            let mut m = grpc::meta(&id, &p);
            m.is_archive = true;
            m.parents = Some(true);
            upload(f, m, PWNED_TAR.get().unwrap())
        }),
        ("CreateUpload + UploadFile", |mut f, id, p| {
            Box::pin(async move {
                let made = f
                    .create_upload(pb::CreateUploadRequest {
                        sandbox_id: id.clone(),
                        remote_path: p,
                        size_bytes: 5,
                        ..Default::default()
                    })
                    .await;
                let Ok(made) = made else { return code(made) };
                let mut m = grpc::meta(&id, "");
                m.upload_id = made.into_inner().upload_id;
                upload(f, m, b"pwned").await
            })
        }),
        ("Stat", |mut f, id, p| {
            Box::pin(async move {
                code(
                    f.stat(pb::StatRequest {
                        sandbox_id: id,
                        path: p,
                    })
                    .await,
                )
            })
        }),
        ("ListDir", |mut f, id, p| {
            Box::pin(async move {
                let r = pb::ListDirRequest {
                    sandbox_id: id,
                    path: p,
                    depth: Some(3),
                    checksum: true,
                    ..Default::default()
                };
                code(f.list_dir(r).await)
            })
        }),
        ("MakeDir", |mut f, id, p| {
            Box::pin(async move {
                let r = pb::MakeDirRequest {
                    sandbox_id: id,
                    path: format!("{p}/d"),
                    ..Default::default()
                };
                code(f.make_dir(r).await)
            })
        }),
        ("Move from", |mut f, id, p| {
            Box::pin(async move {
                let r = pb::MoveRequest {
                    sandbox_id: id,
                    source: p,
                    destination: "/workspace/moved".into(),
                    overwrite: None,
                };
                code(f.r#move(r).await)
            })
        }),
        ("Move onto", |mut f, id, p| {
            Box::pin(async move {
                let m = grpc::meta(&id, "/workspace/mover");
                let _ = f
                    .upload_file(tokio_stream::iter(grpc::upload_messages(m, b"m", 1)))
                    .await;
                let r = pb::MoveRequest {
                    sandbox_id: id,
                    source: "/workspace/mover".into(),
                    destination: p,
                    overwrite: Some(true),
                };
                code(f.r#move(r).await)
            })
        }),
        ("Remove", |mut f, id, p| {
            Box::pin(async move {
                let r = pb::RemoveRequest {
                    sandbox_id: id,
                    path: p,
                    recursive: true,
                };
                code(f.remove(r).await)
            })
        }),
        ("Compose source", |mut f, id, p| {
            Box::pin(async move {
                let r = pb::ComposeRequest {
                    sandbox_id: id,
                    sources: vec![p],
                    destination: "/workspace/composed".into(),
                    ..Default::default()
                };
                code(f.compose(r).await)
            })
        }),
        ("Compose destination", |mut f, id, p| {
            Box::pin(async move {
                let m = grpc::meta(&id, "/workspace/part");
                let _ = f
                    .upload_file(tokio_stream::iter(grpc::upload_messages(m, b"p", 1)))
                    .await;
                let r = pb::ComposeRequest {
                    sandbox_id: id,
                    sources: vec!["/workspace/part".into()],
                    destination: p,
                    ..Default::default()
                };
                code(f.compose(r).await)
            })
        }),
        ("WriteFiles", |mut f, id, p| {
            Box::pin(async move {
                use pb::write_files_request::Payload;
                let messages = [
                    Payload::Start(pb::WriteFilesStart {
                        sandbox_id: id,
                        ..Default::default()
                    }),
                    Payload::File(pb::WriteFilesFile {
                        path: p,
                        ..Default::default()
                    }),
                    Payload::Chunk(bytes::Bytes::from_static(b"pwned")),
                ]
                .map(|p| pb::WriteFilesRequest { payload: Some(p) });
                match f.write_files(tokio_stream::iter(messages)).await {
                    // The batch succeeds; its one file must have failed.
                    Ok(answer) if answer.get_ref().written == 0 => tonic::Code::InvalidArgument,
                    outcome => code(outcome),
                }
            })
        }),
        ("Watch", |mut f, id, p| {
            Box::pin(async move {
                let r = pb::WatchRequest {
                    sandbox_id: id,
                    path: p,
                    recursive: true,
                };
                code(f.watch(r).await)
            })
        }),
    ]
}

/// A tar stream of one file named `secret`, to extract at a hostile directory.
static PWNED_TAR: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

#[tokio::test]
async fn every_grpc_file_rpc_against_every_path_attack() {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(5);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "secret", &b"pwned"[..])
        .unwrap();
    let _ = PWNED_TAR.set(tar.into_inner().unwrap());
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let sentinel = HostSentinel::new();
    std::fs::write(&sentinel.file, "host-secret").unwrap();
    let host = sentinel.host.clone();
    let attacks = arm(&daemon, &id, &host).await;
    let files = grpc::files(&daemon).await;
    let mut outcomes: std::collections::BTreeMap<String, usize> = Default::default();
    let mut cases = 0;
    for (rpc, drive) in rpcs() {
        for (attack, path) in &attacks {
            let got = drive(files.clone(), id.clone(), path.clone()).await;
            cases += 1;
            *outcomes.entry(format!("{got:?}")).or_default() += 1;
            assert!(
                !matches!(
                    got,
                    tonic::Code::Internal | tonic::Code::Unknown | tonic::Code::Unavailable
                ),
                "{rpc} × {attack}: server error {got:?}"
            );
            assert_sentinel_untouched(&sentinel, &format!("{rpc} × {attack}"));
        }
    }
    // Tokens.SignUrl: a URL signed over gRPC for each hostile path, then used.
    let mut tokens = pb::tokens_client::TokensClient::with_interceptor(
        grpc::channel(&daemon).await,
        grpc::Bearer(daemon.token.clone()),
    );
    for (attack, path) in &attacks {
        for method in ["GET", "PUT"] {
            let signed = tokens
                .sign_url(pb::SignUrlRequest {
                    sandbox_id: id.clone(),
                    path: path.clone(),
                    method: method.into(),
                    ttl_secs: None,
                })
                .await;
            cases += 1;
            let Ok(signed) = signed else { continue };
            let url = signed.into_inner().url;
            let http = reqwest::Client::new();
            let response = if method == "GET" {
                http.get(&url).send().await.unwrap()
            } else {
                http.put(&url).body("pwned").send().await.unwrap()
            };
            let status = response.status().as_u16();
            let body = response.bytes().await.unwrap_or_default();
            assert!(status < 500, "SignUrl {method} × {attack}: {status}");
            assert!(!String::from_utf8_lossy(&body).contains("host-secret"));
            assert_sentinel_untouched(&sentinel, &format!("SignUrl {method} × {attack}"));
        }
    }
    let mut sandboxes = grpc::sandboxes(&daemon).await;
    let alive = sandboxes
        .get(pb::GetSandboxRequest { sandbox_id: id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(alive.state, pb::SandboxState::Running as i32);
    eprintln!(
        "gRPC escape corpus: {cases} cases (17 file RPCs × 7 attacks, and SignUrl GET and PUT × 7), outcomes: {outcomes:?}"
    );
}

/// Another tenant's token against every file route of a sandbox it does not own: each
/// answer is 404 (or 400 for a path refused before any lookup), never a result, and the
/// sandbox's files are unchanged.
#[tokio::test]
async fn every_route_with_another_tenants_token() {
    let daemon = Daemon::start();
    let admin = reqwest::Client::new();
    let mint = |tenant: &'static str| {
        admin
            .post(format!("{}/v1/tokens", daemon.url))
            .bearer_auth(&daemon.token)
            .json(&json!({"name": "escapes", "tenant": tenant}))
            .send()
    };
    let owner: Value = mint("owner").await.unwrap().json().await.unwrap();
    let stranger: Value = mint("stranger").await.unwrap().json().await.unwrap();
    let made: Value = admin
        .post(format!("{}/v1/sandboxes", daemon.url))
        .bearer_auth(owner["token"].as_str().unwrap())
        .json(&json!({"files": [{"path": "/workspace/secret", "content": "owner-secret"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = made["id"].as_str().unwrap();
    let mut files = Files::new(&daemon, id);
    files.token = stranger["token"].as_str().unwrap().to_owned();
    let sentinel = HostSentinel::new();
    let paths = ["/workspace/secret", "/workspace", "/workspace/new", "/"];
    let mut cases = 0;
    for (route, drive) in routes() {
        for path in paths {
            let status = drive(&files, path.to_owned()).await;
            cases += 1;
            assert!(
                status == 404 || status == 400,
                "{route} {path} with another tenant's token: {status}"
            );
        }
    }
    let mut owners = Files::new(&daemon, id);
    owners.token = owner["token"].as_str().unwrap().to_owned();
    assert_eq!(owners.bytes("/workspace/secret").await, b"owner-secret");
    sentinel.assert_untouched();
    eprintln!("cross-tenant escape corpus: {cases} cases, all 404 or 400");
}
