//! Every route and every RPC × every kind of caller: no token, a wrong one, an expired
//! one, a revoked one, a read-only sandbox token, a token for another sandbox, another
//! tenant's token, the right tenant's token, and the admin. Each gets what the auth
//! model says (README, "Who may touch what"), on REST and on gRPC alike.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use airlock_proto::v1 as pb;
use common::{Daemon, grpc};
use reqwest::Method;
use tonic::Code;

/// What a route needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Class {
    /// Reads in one sandbox.
    Read,
    /// Writes or runs commands in one sandbox.
    Write,
    /// Governs one sandbox: start, stop, delete, mint its tokens.
    Manage,
    /// A tenant's own business: create and list sandboxes, list templates.
    Account,
    /// The admin's alone: API tokens, templates.
    Admin,
}

/// What a caller must get.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Unauthenticated,
    Forbidden,
    NotFound,
    /// Past the auth check: anything but the three above.
    Passes,
}

const CALLERS: [&str; 9] = [
    "none",
    "wrong",
    "expired",
    "revoked",
    "read-only",
    "other-sandbox",
    "other-tenant",
    "admin",
    "right",
];

fn expected(caller: &str, class: Class) -> Outcome {
    use Class::*;
    use Outcome::*;
    let in_sandbox = matches!(class, Read | Write | Manage);
    match caller {
        "none" | "wrong" | "expired" | "revoked" => Unauthenticated,
        "admin" => Passes,
        "right" if class == Admin => Forbidden,
        "right" => Passes,
        "other-tenant" if in_sandbox => NotFound,
        "other-tenant" if class == Account => Passes,
        "other-sandbox" if in_sandbox => NotFound,
        "read-only" if class == Read => Passes,
        _ => Forbidden,
    }
}

/// The door's own "not found" names the sandbox; a 404 past the door (an unknown
/// upload or token id) means the caller got through.
fn door_not_found(message: &str) -> bool {
    message.contains("no sandbox")
}

fn rest_outcome(status: u16, body: &str) -> Outcome {
    match status {
        401 => Outcome::Unauthenticated,
        403 => Outcome::Forbidden,
        404 if door_not_found(body) => Outcome::NotFound,
        _ => Outcome::Passes,
    }
}

fn grpc_outcome(status: &tonic::Status) -> Outcome {
    match status.code() {
        Code::Unauthenticated => Outcome::Unauthenticated,
        Code::PermissionDenied => Outcome::Forbidden,
        Code::NotFound if door_not_found(status.message()) => Outcome::NotFound,
        _ => Outcome::Passes,
    }
}

/// Every caller's token (none for "none").
struct Tokens(Vec<(&'static str, Option<String>)>);

impl Tokens {
    fn of(&self, caller: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| *name == caller)
            .and_then(|(_, t)| t.as_deref())
    }
}

/// One REST request, with `{s}` for the sandbox and `{tag}` for the caller's name (so
/// each caller writes its own files).
struct Rest {
    class: Class,
    method: Method,
    route: &'static str,
    body: Body,
    /// Ends the sandbox's usefulness (stop, delete): only the right tenant's call runs
    /// it, last of all.
    last: bool,
}

enum Body {
    None,
    Json(&'static str),
    Raw,
    Tar,
    Multipart,
    Tus,
}

fn rest(class: Class, method: Method, route: &'static str, body: Body) -> Rest {
    Rest {
        class,
        method,
        route,
        body,
        last: false,
    }
}

fn rest_routes() -> Vec<Rest> {
    use Class::*;
    let mut routes = vec![
        rest(Read, Method::GET, "/sandboxes/{s}", Body::None),
        rest(
            Read,
            Method::GET,
            "/sandboxes/{s}/files?path=/workspace",
            Body::None,
        ),
        rest(
            Read,
            Method::GET,
            "/sandboxes/{s}/files/?path=/workspace",
            Body::None,
        ),
        rest(
            Read,
            Method::GET,
            "/sandboxes/{s}/files/stat?path=/workspace/f",
            Body::None,
        ),
        rest(
            Read,
            Method::GET,
            "/sandboxes/{s}/files/content?path=/workspace/f",
            Body::None,
        ),
        rest(
            Read,
            Method::GET,
            "/sandboxes/{s}/files/archive?path=/workspace",
            Body::None,
        ),
        rest(
            Read,
            Method::POST,
            "/sandboxes/{s}/files/archive",
            Body::Json(r#"{"path": "/workspace", "paths": ["f"]}"#),
        ),
        rest(
            Read,
            Method::GET,
            "/sandboxes/{s}/files/watch?path=/workspace",
            Body::None,
        ),
        rest(
            Read,
            Method::POST,
            "/sandboxes/{s}/files/signed-url",
            Body::Json(r#"{"path": "/workspace/f"}"#),
        ),
        rest(
            Write,
            Method::POST,
            "/sandboxes/{s}/files/signed-url",
            Body::Json(r#"{"path": "/workspace/f", "method": "PUT"}"#),
        ),
        rest(
            Write,
            Method::PUT,
            "/sandboxes/{s}/files/content?path=/workspace/{tag}.put",
            Body::Raw,
        ),
        rest(
            Write,
            Method::POST,
            "/sandboxes/{s}/files/content?path=/workspace/{tag}.log&append=true",
            Body::Raw,
        ),
        rest(
            Write,
            Method::PUT,
            "/sandboxes/{s}/files/archive?path=/workspace/{tag}",
            Body::Tar,
        ),
        rest(
            Write,
            Method::POST,
            "/sandboxes/{s}/files/batch",
            Body::Multipart,
        ),
        rest(Write, Method::POST, "/sandboxes/{s}/uploads", Body::Tus),
        rest(
            Write,
            Method::POST,
            "/sandboxes/{s}/files/mkdir",
            Body::Json(r#"{"path": "/workspace/{tag}.dir"}"#),
        ),
        rest(
            Write,
            Method::POST,
            "/sandboxes/{s}/files/move",
            Body::Json(r#"{"from": "/workspace/{tag}.mv", "to": "/workspace/{tag}.moved"}"#),
        ),
        rest(
            Write,
            Method::POST,
            "/sandboxes/{s}/files/compose",
            Body::Json(r#"{"sources": ["/workspace/f"], "destination": "/workspace/{tag}.cat"}"#),
        ),
        rest(
            Write,
            Method::DELETE,
            "/sandboxes/{s}/files?path=/workspace/{tag}.del",
            Body::None,
        ),
        rest(
            Write,
            Method::POST,
            "/sandboxes/{s}/exec",
            Body::Json(r#"{"shell": "true"}"#),
        ),
        rest(
            Write,
            Method::POST,
            "/sandboxes/{s}/processes",
            Body::Json(r#"{"cmd": ["true"]}"#),
        ),
        rest(Read, Method::GET, "/sandboxes/{s}/processes", Body::None),
        rest(Read, Method::GET, "/sandboxes/{s}/processes/1", Body::None),
        rest(
            Read,
            Method::GET,
            "/sandboxes/{s}/processes/1/events",
            Body::None,
        ),
        rest(
            Write,
            Method::POST,
            "/sandboxes/{s}/processes/1/stdin",
            Body::Raw,
        ),
        rest(
            Write,
            Method::POST,
            "/sandboxes/{s}/processes/1/signal",
            Body::Json(r#"{"signal": "SIGTERM"}"#),
        ),
        rest(
            Write,
            Method::POST,
            "/sandboxes/{s}/processes/1/resize",
            Body::Json(r#"{"cols": 100, "rows": 30}"#),
        ),
        rest(
            Write,
            Method::DELETE,
            "/sandboxes/{s}/processes/1",
            Body::None,
        ),
        rest(Manage, Method::POST, "/sandboxes/{s}/start", Body::None),
        rest(
            Manage,
            Method::POST,
            "/sandboxes/{s}/tokens",
            Body::Json(r#"{"access": "read"}"#),
        ),
        rest(Account, Method::GET, "/sandboxes", Body::None),
        rest(
            Account,
            Method::POST,
            "/sandboxes",
            Body::Json(r#"{"start": false}"#),
        ),
        rest(Account, Method::GET, "/templates", Body::None),
        rest(Admin, Method::GET, "/tokens", Body::None),
        rest(Admin, Method::GET, "/metrics", Body::None),
        rest(
            Admin,
            Method::POST,
            "/tokens",
            Body::Json(r#"{"name": "n", "tenant": "team-z"}"#),
        ),
        rest(Admin, Method::DELETE, "/tokens/0123456789ab", Body::None),
        rest(
            Admin,
            Method::PUT,
            "/templates/t-{tag}",
            Body::Json(r#"{"rootfs": "/nonexistent"}"#),
        ),
        rest(Admin, Method::DELETE, "/templates/t-{tag}", Body::None),
        rest(Admin, Method::GET, "/warm-pools", Body::None),
        rest(
            Admin,
            Method::PUT,
            "/warm-pools/host",
            Body::Json(r#"{"size": 0}"#),
        ),
    ];
    for (method, route) in [
        (Method::POST, "/sandboxes/{s}/stop"),
        (Method::DELETE, "/sandboxes/{s}"),
    ] {
        let mut r = rest(Class::Manage, method, route, Body::None);
        r.last = true;
        routes.push(r);
    }
    routes
}

/// Routes are under `/v1`, but for the metrics.
fn url(daemon: &Daemon, route: &str) -> String {
    if route == "/metrics" {
        format!("{}{route}", daemon.url)
    } else {
        format!("{}/v1{route}", daemon.url)
    }
}

fn one_file_tar(name: &str) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(4);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, name, &b"data"[..]).unwrap();
    tar.into_inner().unwrap()
}

async fn send_rest(
    daemon: &Daemon,
    token: Option<&str>,
    route: &Rest,
    s: &str,
    tag: &str,
) -> (u16, String) {
    let fill = |text: &str| text.replace("{s}", s).replace("{tag}", tag);
    let http = reqwest::Client::new();
    let mut request = http
        .request(route.method.clone(), url(daemon, &fill(route.route)))
        .timeout(Duration::from_secs(30));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request = match &route.body {
        Body::None => request,
        Body::Json(text) => request
            .header("content-type", "application/json")
            .body(fill(text)),
        Body::Raw => request.body("data"),
        Body::Tar => request.body(one_file_tar("a.txt")),
        Body::Multipart => request.multipart(
            reqwest::multipart::Form::new().part(
                "f",
                reqwest::multipart::Part::bytes(b"data".to_vec())
                    .file_name(format!("/workspace/{tag}.batch")),
            ),
        ),
        Body::Tus => {
            use base64::Engine as _;
            let path = format!("/workspace/{tag}.tus");
            request
                .header("Tus-Resumable", "1.0.0")
                .header("Upload-Length", "4")
                .header(
                    "Upload-Metadata",
                    format!(
                        "path {}",
                        base64::engine::general_purpose::STANDARD.encode(path)
                    ),
                )
        }
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    // A watch answers its head at once and streams after: its first line is enough.
    let body = match tokio::time::timeout(Duration::from_secs(5), response.text()).await {
        Ok(text) => text.unwrap_or_default(),
        Err(_) => String::new(),
    };
    (status, body)
}

/// The daemon, its two tenants' sandboxes, and every caller's token.
async fn world(daemon: &Daemon) -> (String, Tokens) {
    let admin = daemon.client();
    let right = admin
        .create_token("right", "team-a", None)
        .await
        .unwrap()
        .token;
    let other_tenant = admin
        .create_token("other", "team-b", None)
        .await
        .unwrap()
        .token;
    let expired = admin
        .create_token("brief", "team-a", Some(1))
        .await
        .unwrap()
        .token;
    let revoked = admin.create_token("gone", "team-a", None).await.unwrap();
    admin.revoke_token(&revoked.id).await.unwrap();
    let as_right = airlock_client::Client::new(daemon.url.clone(), right.clone());
    let s = common::sandbox(&as_right).await.id;
    let other = common::sandbox(&as_right).await.id;
    let read_only = as_right
        .create_sandbox_token(&s, "read", None)
        .await
        .unwrap()
        .token;
    let other_sandbox = as_right
        .create_sandbox_token(&other, "write", None)
        .await
        .unwrap()
        .token;
    // Files each caller may move or delete; created by the admin.
    let mut line = String::from("echo data > /workspace/f");
    for tag in CALLERS {
        line.push_str(&format!(
            " && echo x > /workspace/{tag}.mv && echo x > /workspace/{tag}.del"
        ));
    }
    assert_eq!(common::sh(&admin, &s, &line).await.exit_code, 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let tokens = Tokens(vec![
        ("none", None),
        ("wrong", Some(format!("alk_{}", "0".repeat(64)))),
        ("expired", Some(expired)),
        ("revoked", Some(revoked.token)),
        ("read-only", Some(read_only)),
        ("other-sandbox", Some(other_sandbox)),
        ("other-tenant", Some(other_tenant)),
        ("admin", Some(daemon.token.clone())),
        ("right", Some(right)),
    ]);
    (s, tokens)
}

#[tokio::test]
async fn every_rest_route_answers_every_caller_as_the_model_says() {
    let daemon = Daemon::start();
    let (s, tokens) = world(&daemon).await;
    let mut wrong = Vec::new();
    let mut cases = 0;
    for route in rest_routes() {
        for caller in CALLERS {
            if route.last && matches!(caller, "admin") {
                continue;
            }
            let (status, body) = send_rest(&daemon, tokens.of(caller), &route, &s, caller).await;
            let want = expected(caller, route.class);
            cases += 1;
            if rest_outcome(status, &body) != want || status >= 500 {
                wrong.push(format!(
                    "{} {} as {caller}: {status}, expected {want:?}",
                    route.method, route.route
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    eprintln!("REST auth matrix: {cases} cases");
    scan_log_for_secrets(&daemon, &tokens);
}

/// One gRPC call against sandbox `s` as a caller tagged `tag`: its status code.
type Rpc = fn(
    tonic::transport::Channel,
    Option<String>,
    String,
    String,
) -> futures_util::future::BoxFuture<'static, Result<(), tonic::Status>>;

fn code<T>(outcome: Result<T, tonic::Status>) -> Result<(), tonic::Status> {
    outcome.map(drop)
}

/// An interceptor that sends the token when there is one.
#[derive(Clone)]
struct MaybeBearer(Option<String>);

impl tonic::service::Interceptor for MaybeBearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            let value = format!("Bearer {token}").parse().unwrap();
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

type Authed =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, MaybeBearer>;

fn files(
    ch: tonic::transport::Channel,
    t: Option<String>,
) -> pb::files_client::FilesClient<Authed> {
    pb::files_client::FilesClient::with_interceptor(ch, MaybeBearer(t))
}

fn sandboxes(
    ch: tonic::transport::Channel,
    t: Option<String>,
) -> pb::sandboxes_client::SandboxesClient<Authed> {
    pb::sandboxes_client::SandboxesClient::with_interceptor(ch, MaybeBearer(t))
}

fn tokens_rpc(
    ch: tonic::transport::Channel,
    t: Option<String>,
) -> pb::tokens_client::TokensClient<Authed> {
    pb::tokens_client::TokensClient::with_interceptor(ch, MaybeBearer(t))
}

fn processes(
    ch: tonic::transport::Channel,
    t: Option<String>,
) -> pb::processes_client::ProcessesClient<Authed> {
    pb::processes_client::ProcessesClient::with_interceptor(ch, MaybeBearer(t))
}

/// Process 1, which may or may not exist: past the door, either answer passes.
fn first_process() -> Option<pb::ProcessSelector> {
    Some(pb::ProcessSelector {
        selector: Some(pb::process_selector::Selector::Pid(1)),
    })
}

fn sandbox_id(s: &str) -> pb::GetSandboxRequest {
    pb::GetSandboxRequest {
        sandbox_id: s.to_owned(),
    }
}

fn rpcs() -> Vec<(&'static str, Class, bool, Rpc)> {
    use Class::*;
    vec![
        ("Files.DownloadFile", Read, false, |ch, t, s, _| {
            Box::pin(async move {
                let mut stream = match files(ch, t)
                    .download_file(grpc::get(&s, "/workspace/f"))
                    .await
                {
                    Ok(answer) => answer.into_inner(),
                    Err(e) => return Err(e),
                };
                while stream.message().await?.is_some() {}
                Ok(())
            })
        }),
        ("Files.Stat", Read, false, |ch, t, s, _| {
            Box::pin(async move {
                let r = pb::StatRequest {
                    sandbox_id: s,
                    path: "/workspace/f".into(),
                };
                code(files(ch, t).stat(r).await)
            })
        }),
        ("Files.ListDir", Read, false, |ch, t, s, _| {
            Box::pin(async move {
                let r = pb::ListDirRequest {
                    sandbox_id: s,
                    path: "/workspace".into(),
                    ..Default::default()
                };
                code(files(ch, t).list_dir(r).await)
            })
        }),
        ("Files.Watch", Read, false, |ch, t, s, _| {
            Box::pin(async move {
                let r = pb::WatchRequest {
                    sandbox_id: s,
                    path: "/workspace".into(),
                    recursive: false,
                };
                match files(ch, t).watch(r).await {
                    Ok(answer) => {
                        // The first event (ready) or the refusal.
                        let mut stream = answer.into_inner();
                        code(stream.message().await)
                    }
                    Err(e) => Err(e),
                }
            })
        }),
        ("Files.GetUpload", Write, false, |ch, t, s, _| {
            Box::pin(async move {
                let r = pb::GetUploadRequest {
                    sandbox_id: s,
                    upload_id: "0123456789abcdef".into(),
                };
                code(files(ch, t).get_upload(r).await)
            })
        }),
        ("Files.UploadFile", Write, false, |ch, t, s, tag| {
            Box::pin(async move {
                let m = grpc::meta(&s, &format!("/workspace/{tag}.grpc"));
                code(
                    files(ch, t)
                        .upload_file(tokio_stream::iter(grpc::upload_messages(m, b"data", 2)))
                        .await,
                )
            })
        }),
        ("Files.CreateUpload", Write, false, |ch, t, s, tag| {
            Box::pin(async move {
                let r = pb::CreateUploadRequest {
                    sandbox_id: s,
                    remote_path: format!("/workspace/{tag}.resumable"),
                    size_bytes: 4,
                    ..Default::default()
                };
                code(files(ch, t).create_upload(r).await)
            })
        }),
        ("Files.CancelUpload", Write, false, |ch, t, s, _| {
            Box::pin(async move {
                let r = pb::GetUploadRequest {
                    sandbox_id: s,
                    upload_id: "0123456789abcdef".into(),
                };
                code(files(ch, t).cancel_upload(r).await)
            })
        }),
        ("Files.MakeDir", Write, false, |ch, t, s, tag| {
            Box::pin(async move {
                let r = pb::MakeDirRequest {
                    sandbox_id: s,
                    path: format!("/workspace/{tag}.gdir"),
                    ..Default::default()
                };
                code(files(ch, t).make_dir(r).await)
            })
        }),
        ("Files.Move", Write, false, |ch, t, s, tag| {
            Box::pin(async move {
                let r = pb::MoveRequest {
                    sandbox_id: s,
                    source: "/workspace/f".into(),
                    destination: format!("/workspace/{tag}.never"),
                    overwrite: Some(false),
                };
                // Moves the shared file away and back, so every caller finds it.
                let mut client = files(ch, t);
                let moved = client.r#move(r.clone()).await;
                if moved.is_ok() {
                    let back = pb::MoveRequest {
                        source: r.destination,
                        destination: r.source,
                        ..r
                    };
                    client.r#move(back).await.unwrap();
                }
                code(moved)
            })
        }),
        ("Files.Remove", Write, false, |ch, t, s, tag| {
            Box::pin(async move {
                let r = pb::RemoveRequest {
                    sandbox_id: s,
                    path: format!("/workspace/{tag}.grpc"),
                    recursive: false,
                };
                code(files(ch, t).remove(r).await)
            })
        }),
        ("Files.Compose", Write, false, |ch, t, s, tag| {
            Box::pin(async move {
                let r = pb::ComposeRequest {
                    sandbox_id: s,
                    sources: vec!["/workspace/f".into()],
                    destination: format!("/workspace/{tag}.gcat"),
                    ..Default::default()
                };
                code(files(ch, t).compose(r).await)
            })
        }),
        ("Files.WriteFiles", Write, false, |ch, t, s, tag| {
            Box::pin(async move {
                use pb::write_files_request::Payload;
                let messages = [
                    Payload::Start(pb::WriteFilesStart {
                        sandbox_id: s,
                        ..Default::default()
                    }),
                    Payload::File(pb::WriteFilesFile {
                        path: format!("/workspace/{tag}.gbatch"),
                        ..Default::default()
                    }),
                    Payload::Chunk(bytes::Bytes::from_static(b"data")),
                ]
                .map(|p| pb::WriteFilesRequest { payload: Some(p) });
                code(files(ch, t).write_files(tokio_stream::iter(messages)).await)
            })
        }),
        ("Exec.Run", Write, false, |ch, t, s, _| {
            Box::pin(async move {
                use pb::run_request::Payload;
                let start = pb::RunRequest {
                    payload: Some(Payload::Start(pb::ExecStart {
                        sandbox_id: s,
                        shell: Some("true".into()),
                        ..Default::default()
                    })),
                };
                let mut client = pb::exec_client::ExecClient::with_interceptor(ch, MaybeBearer(t));
                match client.run(tokio_stream::iter([start])).await {
                    Ok(answer) => {
                        let mut stream = answer.into_inner();
                        while stream.message().await?.is_some() {}
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            })
        }),
        ("Processes.Start", Write, false, |ch, t, s, _| {
            Box::pin(async move {
                let r = pb::StartProcessRequest {
                    start: Some(pb::ExecStart {
                        sandbox_id: s,
                        cmd: vec!["true".into()],
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                code(processes(ch, t).start(r).await)
            })
        }),
        ("Processes.List", Read, false, |ch, t, s, _| {
            Box::pin(async move {
                let r = pb::ListProcessesRequest { sandbox_id: s };
                code(processes(ch, t).list(r).await)
            })
        }),
        ("Processes.Attach", Read, false, |ch, t, s, _| {
            Box::pin(async move {
                let r = pb::AttachProcessRequest {
                    sandbox_id: s,
                    process: first_process(),
                    replay: false,
                };
                code(processes(ch, t).attach(r).await)
            })
        }),
        ("Processes.SendInput", Write, false, |ch, t, s, _| {
            Box::pin(async move {
                let r = pb::SendInputRequest {
                    sandbox_id: s,
                    process: first_process(),
                    data: bytes::Bytes::from_static(b"x"),
                    close: false,
                };
                code(processes(ch, t).send_input(r).await)
            })
        }),
        ("Processes.SendSignal", Write, false, |ch, t, s, _| {
            Box::pin(async move {
                let r = pb::SendSignalRequest {
                    sandbox_id: s,
                    process: first_process(),
                    signal: "SIGTERM".into(),
                };
                code(processes(ch, t).send_signal(r).await)
            })
        }),
        ("Processes.Resize", Write, false, |ch, t, s, _| {
            Box::pin(async move {
                let r = pb::ResizeRequest {
                    sandbox_id: s,
                    process: first_process(),
                    size: Some(pb::TerminalSize {
                        cols: 100,
                        rows: 30,
                    }),
                };
                code(processes(ch, t).resize(r).await)
            })
        }),
        ("Tokens.SignUrl GET", Read, false, |ch, t, s, _| {
            Box::pin(async move {
                let r = pb::SignUrlRequest {
                    sandbox_id: s,
                    path: "/workspace/f".into(),
                    ..Default::default()
                };
                code(tokens_rpc(ch, t).sign_url(r).await)
            })
        }),
        ("Tokens.SignUrl PUT", Write, false, |ch, t, s, _| {
            Box::pin(async move {
                let r = pb::SignUrlRequest {
                    sandbox_id: s,
                    path: "/workspace/f".into(),
                    method: "PUT".into(),
                    ..Default::default()
                };
                code(tokens_rpc(ch, t).sign_url(r).await)
            })
        }),
        ("Sandboxes.Get", Read, false, |ch, t, s, _| {
            Box::pin(async move { code(sandboxes(ch, t).get(sandbox_id(&s)).await) })
        }),
        ("Sandboxes.Start", Manage, false, |ch, t, s, _| {
            Box::pin(async move { code(sandboxes(ch, t).start(sandbox_id(&s)).await) })
        }),
        ("Tokens.CreateSandboxToken", Manage, false, |ch, t, s, _| {
            Box::pin(async move {
                let r = pb::CreateSandboxTokenRequest {
                    sandbox_id: s,
                    access: "read".into(),
                    ttl_secs: None,
                };
                code(tokens_rpc(ch, t).create_sandbox_token(r).await)
            })
        }),
        ("Sandboxes.List", Account, false, |ch, t, _, _| {
            Box::pin(async move { code(sandboxes(ch, t).list(pb::ListSandboxesRequest {}).await) })
        }),
        ("Sandboxes.Create", Account, false, |ch, t, _, _| {
            Box::pin(async move {
                let r = pb::CreateSandboxRequest {
                    start: Some(false),
                    ..Default::default()
                };
                code(sandboxes(ch, t).create(r).await)
            })
        }),
        ("Tokens.CreateToken", Admin, false, |ch, t, _, _| {
            Box::pin(async move {
                let r = pb::CreateTokenRequest {
                    name: "n".into(),
                    tenant: "team-z".into(),
                    ttl_secs: None,
                };
                code(tokens_rpc(ch, t).create_token(r).await)
            })
        }),
        ("Tokens.ListTokens", Admin, false, |ch, t, _, _| {
            Box::pin(async move {
                code(
                    tokens_rpc(ch, t)
                        .list_tokens(pb::ListTokensRequest {})
                        .await,
                )
            })
        }),
        ("Tokens.RevokeToken", Admin, false, |ch, t, _, _| {
            Box::pin(async move {
                let r = pb::RevokeTokenRequest {
                    id: "0123456789ab".into(),
                };
                code(tokens_rpc(ch, t).revoke_token(r).await)
            })
        }),
        ("Sandboxes.Stop", Manage, true, |ch, t, s, _| {
            Box::pin(async move { code(sandboxes(ch, t).stop(sandbox_id(&s)).await) })
        }),
        ("Sandboxes.Delete", Manage, true, |ch, t, s, _| {
            Box::pin(async move { code(sandboxes(ch, t).delete(sandbox_id(&s)).await) })
        }),
    ]
}

#[tokio::test]
async fn every_rpc_answers_every_caller_as_the_model_says() {
    let daemon = Daemon::start();
    let (s, tokens) = world(&daemon).await;
    let channel = grpc::channel(&daemon).await;
    let mut wrong = Vec::new();
    let mut cases = 0;
    for (name, class, last, rpc) in rpcs() {
        for caller in CALLERS {
            if last && caller == "admin" {
                continue;
            }
            let token = tokens.of(caller).map(str::to_owned);
            let got = rpc(channel.clone(), token, s.clone(), caller.to_owned()).await;
            let want = expected(caller, class);
            cases += 1;
            let outcome = got.as_ref().map_or_else(grpc_outcome, |()| Outcome::Passes);
            let failed = got.as_ref().is_err_and(|e| {
                matches!(e.code(), Code::Internal | Code::Unknown | Code::Unavailable)
            });
            if outcome != want || failed {
                wrong.push(format!("{name} as {caller}: {got:?}, expected {want:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    eprintln!("gRPC auth matrix: {cases} cases");
    scan_log_for_secrets(&daemon, &tokens);
}

/// No token, of any kind, reaches the daemon's log or its audit log.
fn scan_log_for_secrets(daemon: &Daemon, tokens: &Tokens) {
    let mut logs = daemon.log();
    if let Ok(audit) = std::fs::read_to_string(daemon.home().join("audit.log")) {
        logs.push_str(&audit);
    }
    for (caller, token) in &tokens.0 {
        if let Some(token) = token {
            assert!(
                !logs.contains(token.as_str()),
                "{caller}'s token is in a log"
            );
        }
    }
}
