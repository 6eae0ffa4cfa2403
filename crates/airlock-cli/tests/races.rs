//! The race suite: a process inside the sandbox swaps a directory and a symlink with
//! `renameat2(RENAME_EXCHANGE)` in a tight loop while the API (every REST file route and
//! every gRPC file RPC) works through that path.
//! The symlink points at `/`, at `/tmp`, or at a host directory holding a sentinel. Every
//! answer must be a clean error or the right file inside the sandbox; the sentinel, a
//! host inotify watch on its directory, and the host's `/` and `/tmp` must show nothing.
//!
//! And a file the sandbox cuts short while the daemon sends it with `sendfile` (a REST
//! download over HTTP/1, a gRPC download of 1 MiB or more) must fail its download, never
//! end it as if whole or hang it, and leave the daemon serving.
//!
//! `AIRLOCK_RACE_ITERATIONS` sets the iterations per route (CI: 1,000 spread over the
//! three targets; `scripts/heavy races` runs 10,000).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use airlock_proto::v1 as pb;
use common::files::{Files, HostSentinel, random, sandbox_with};
use common::tus::{self, Tus};
use common::{Daemon, grpc, metrics, raw_body, sh};
use serde_json::json;

/// Swaps `/workspace/race/real` and `/workspace/race/link` forever (until killed).
const RACER: &str = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
RENAME_EXCHANGE = 2
a, b = b"/workspace/race/real", b"/workspace/race/link"
while True:
    libc.renameat2(-100, a, -100, b, RENAME_EXCHANGE)
"#;

fn iterations() -> usize {
    std::env::var("AIRLOCK_RACE_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}

/// Iterations between sweeps of what the routes leave in the racing directory.
const SWEEP_EVERY: usize = 50;

/// Removes, from inside the sandbox, what earlier iterations created in the racing
/// directory (under whichever name it has now; `find` does not follow the symlink). Left
/// there, every listing and archive of it reads them all again, so each iteration would
/// cost more than the one before.
async fn sweep(daemon: &Daemon, id: &str, token: &str) {
    let line = format!(
        "find /workspace/race -mindepth 2 -maxdepth 2 -name '*{token}*' -exec rm -rf {{}} + 2>/dev/null; true"
    );
    sh(&daemon.client(), id, &line).await;
}

/// Iterations between downloads of a file large enough to leave by `sendfile` on both
/// faces (`BIG_SIZE` bytes of `BIG_LINE` lines).
const BIG_EVERY: usize = 20;
const BIG_SIZE: usize = 2 << 20;
const BIG_LINE: &str = "airlock-race";

/// What the big file holds: `yes BIG_LINE | head -c BIG_SIZE`.
static BIG: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    format!("{BIG_LINE}\n")
        .into_bytes()
        .into_iter()
        .cycle()
        .take(BIG_SIZE)
        .collect()
});

/// What the small file read through the swap holds (`echo inside`).
const INSIDE: &[u8] = b"inside\n";

/// A read through the swapping path that answers must hold the sandbox's own file: never
/// the host's (`/secret`, `/tmp/secret`, the sentinel's), whatever the swap did.
fn only_the_sandboxs(status: u16, body: &[u8], route: &str) {
    holds(status, body, INSIDE, route);
}

/// An answer of 200 carries exactly `want`.
fn holds(status: u16, body: &[u8], want: &[u8], route: &str) {
    if status == 200 {
        assert!(
            body == want,
            "{route} answered with bytes that are not the sandbox's file: {} bytes, starting {:?}",
            body.len(),
            String::from_utf8_lossy(&body[..body.len().min(64)])
        );
    }
}

/// Outcomes per route: HTTP status → count.
type Tally = BTreeMap<&'static str, BTreeMap<u16, usize>>;

#[tokio::test]
async fn swapping_a_directory_for_a_symlink_never_reaches_the_host() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let files = Files::new(&daemon, &id);
    let mut rpc = grpc::files(&daemon).await;
    let sentinel = HostSentinel::new();
    let token = format!("airlock-race-{}", std::process::id());
    let watch = HostWatch::new(sentinel.dir.path());
    let per_target = iterations().div_ceil(3);
    let mut tally = Tally::new();
    for target in ["/", "/tmp", sentinel.host.as_str()] {
        let setup = format!(
            "rm -rf /workspace/race && mkdir -p /workspace/race/real && echo inside > /workspace/race/real/secret \
             && yes {BIG_LINE} | head -c {BIG_SIZE} > /workspace/race/real/big \
             && ln -s {target} /workspace/race/link && (python3 -c '{RACER}' > /dev/null 2>&1 &) && echo started"
        );
        let started = sh(&daemon.client(), &id, &setup).await;
        assert_eq!(started.stdout, "started\n", "{}", started.stderr);
        for i in 0..per_target {
            run_routes(&files, &token, i, &mut tally).await;
            run_rpcs(&mut rpc, &id, &token, i, &mut tally).await;
            if i % SWEEP_EVERY == SWEEP_EVERY - 1 {
                sweep(&daemon, &id, &token).await;
            }
        }
        sh(&daemon.client(), &id, "pkill -f renameat2; true").await;
    }
    // What the host must not show. The watch is read first: the checks below open the
    // sentinel themselves.
    assert_eq!(
        watch.events(),
        0,
        "something touched the sentinel's host directory"
    );
    sentinel.assert_untouched();
    for dir in ["/", "/tmp", sentinel.host.as_str()] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.contains(&token), "{dir}/{name} appeared on the host");
        }
    }
    assert!(!std::path::Path::new("/newdir-race").exists());
    eprintln!(
        "race outcomes per route (status: count), {} iterations each:",
        per_target * 3
    );
    for (route, outcomes) in &tally {
        eprintln!("  {route}: {outcomes:?}");
        assert!(
            outcomes.keys().all(|status| *status < 500),
            "{route} answered a server error under the race: {outcomes:?}"
        );
    }
}

/// One pass over every route through the racing path.
async fn run_routes(files: &Files, token: &str, i: usize, tally: &mut Tally) {
    let base = "/workspace/race/real";
    let name = format!("{base}/{token}-{i}");
    let mut count = |route: &'static str, status: u16| {
        *tally.entry(route).or_default().entry(status).or_default() += 1;
    };
    let (status, _) = files.put(&name, &[], "racing").await;
    count("PUT content", status);
    let (status, _, _) = raw_body::put(
        files,
        &format!("{name}-raw"),
        &[],
        &[],
        b"racing",
        raw_body::Send::Whole,
    )
    .await;
    count("PUT content, raw body", status);
    let status = match tus::create_at(files, &format!("{name}-tus"), 6).await {
        Ok(location) => {
            let sent = raw_body::Send::Whole;
            raw_body::patch(files, &location, 0, &[], b"racing", sent)
                .await
                .status
        }
        Err(status) => status,
    };
    count("tus upload, raw body", status);
    let response = files.get(&format!("{base}/secret"), None).await;
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap_or_default();
    only_the_sandboxs(status, &body, "GET content");
    count("GET content", status);
    if i.is_multiple_of(BIG_EVERY) {
        let response = files.get(&format!("{base}/big"), None).await;
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap_or_default();
        holds(status, &body, &BIG, "GET of the big file");
        count("GET content, 2 MiB (sendfile)", status);
    }
    let (status, _) = files.list(base, "2").await;
    count("GET list", status);
    let (status, _) = files
        .call(reqwest::Method::GET, "/stat", &[("path", &name)], None)
        .await;
    count("GET stat", status);
    let (status, _) = files
        .call(
            reqwest::Method::POST,
            "/mkdir",
            &[],
            Some(json!({"path": format!("{base}/newdir-{token}-{i}")})),
        )
        .await;
    count("POST mkdir", status);
    let (status, _) = files
        .call(
            reqwest::Method::POST,
            "/move",
            &[],
            Some(json!({"from": name, "to": format!("{name}-moved")})),
        )
        .await;
    count("POST move", status);
    let (status, _) = files
        .call(
            reqwest::Method::DELETE,
            "",
            &[("path", &format!("{name}-moved"))],
            None,
        )
        .await;
    count("DELETE", status);
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(6);
    header.set_mode(0o644);
    tar.append_data(&mut header, format!("{token}-x{i}"), &b"packed"[..])
        .unwrap();
    let (status, _) = files
        .send(
            reqwest::Method::PUT,
            "/archive",
            &[("path", base)],
            tar.into_inner().unwrap(),
        )
        .await;
    count("PUT archive", status);
    // Signed URLs: signed once, used while the path swaps under them.
    for method in ["GET", "PUT"] {
        let path = if method == "GET" {
            format!("{base}/secret")
        } else {
            format!("{name}-signed")
        };
        let (status, url) = files.sign(&path, method).await;
        count("POST signed-url", status);
        let Some(url) = url else {
            continue;
        };
        let used = if method == "GET" {
            files.http.get(url).send().await.unwrap()
        } else {
            files.http.put(url).body("racing").send().await.unwrap()
        };
        let status = used.status().as_u16();
        let body = used.bytes().await.unwrap_or_default();
        if method == "GET" {
            only_the_sandboxs(status, &body, "signed GET");
        }
        count(
            if method == "GET" {
                "signed GET"
            } else {
                "signed PUT"
            },
            status,
        );
    }
    // The agent-sandbox face: its paths come relative and percent-encoded.
    let (origin, rest) = files.base.split_once("/v1/sandboxes/").unwrap();
    let sandbox = rest.split('/').next().unwrap();
    let agent = |method: reqwest::Method, route: String| {
        files
            .http
            .request(method, format!("{origin}/agent-sandbox/{route}"))
            .bearer_auth(&files.token)
            .header("X-Sandbox-ID", sandbox)
    };
    let relative = |path: &str| path.trim_start_matches('/').replace('/', "%2F");
    let got = agent(
        reqwest::Method::GET,
        format!("download/{}", relative(&format!("{base}/secret"))),
    )
    .send()
    .await
    .unwrap();
    let status = got.status().as_u16();
    let body = got.bytes().await.unwrap_or_default();
    only_the_sandboxs(status, &body, "agent-sandbox download");
    count("agent-sandbox download", status);
    let put = agent(
        reqwest::Method::PUT,
        format!("v1/files/{}", relative(&format!("{name}-agent"))),
    );
    count(
        "agent-sandbox v1 PUT",
        put.body("racing").send().await.unwrap().status().as_u16(),
    );
    // The E2B envd face: absolute paths in a query, the token as its access token.
    let envd = |method: reqwest::Method, route: &str| {
        files
            .http
            .request(method, format!("{origin}/e2b/envd/{route}"))
            .header("X-Access-Token", &files.token)
            .header("E2b-Sandbox-Id", sandbox)
    };
    let secret = format!("{base}/secret");
    let got = envd(reqwest::Method::GET, "files").query(&[("path", &secret)]);
    let got = got.send().await.unwrap();
    let status = got.status().as_u16();
    let body = got.bytes().await.unwrap_or_default();
    only_the_sandboxs(status, &body, "e2b GET /files");
    count("e2b GET /files", status);
    let target = format!("{name}-e2b");
    let sent = envd(reqwest::Method::POST, "files")
        .query(&[("path", &target)])
        .header("content-type", "application/octet-stream")
        .body("racing");
    count(
        "e2b POST /files",
        sent.send().await.unwrap().status().as_u16(),
    );
    // Its Connect routes in the binary codec: MakeDirRequest{path = 1}, by hand.
    let dir = format!("{name}-e2b-dir");
    let message = common::protobuf_string(1, &dir);
    let made = envd(reqwest::Method::POST, "filesystem.Filesystem/MakeDir")
        .header("content-type", "application/proto")
        .body(message);
    count(
        "e2b Connect MakeDir, binary",
        made.send().await.unwrap().status().as_u16(),
    );
    if !i.is_multiple_of(10) {
        return;
    }
    // Swapped, the path may name the sandbox's whole root (host template: /usr and all),
    // so only the start of the stream is read; dropping the rest stops the packing.
    let mut packed = files.open("/archive", &[("path", base)]).await;
    let status = packed.status().as_u16();
    let _ = packed.chunk().await;
    drop(packed);
    count("GET archive", status);
    let chosen = files
        .http
        .post(files.url("/archive", &[]))
        .bearer_auth(&files.token)
        .json(&json!({"path": base, "paths": ["secret"]}))
        .send()
        .await
        .unwrap();
    let status = chosen.status().as_u16();
    let body = chosen.bytes().await.unwrap_or_default();
    if status == 200 {
        let mut archive = tar::Archive::new(&body[..]);
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut held = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut held).unwrap();
            only_the_sandboxs(200, &held, "POST archive paths");
        }
    }
    count("POST archive paths", status);
    {
        let watched = files
            .http
            .get(files.url("/watch", &[("path", base)]))
            .bearer_auth(&files.token)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        // The answer's head comes at once (a stream follows); no answer is a failure.
        count("GET watch", watched.unwrap().status().as_u16());
    }
}

/// A gRPC outcome as the HTTP status REST would answer, so one tally and one check serve
/// both faces (a server error stays 5xx).
fn as_status<T>(outcome: Result<T, tonic::Status>) -> u16 {
    use tonic::Code;
    match outcome.map_err(|s| s.code()) {
        Ok(_) => 200,
        Err(Code::InvalidArgument | Code::OutOfRange) => 400,
        Err(Code::PermissionDenied) => 403,
        Err(Code::NotFound) => 404,
        Err(Code::FailedPrecondition | Code::AlreadyExists) => 409,
        Err(Code::ResourceExhausted) => 413,
        Err(Code::Unavailable) => 503,
        Err(_) => 500,
    }
}

/// One pass over the gRPC file RPCs through the racing path.
async fn run_rpcs(f: &mut grpc::FilesAuthed, id: &str, token: &str, i: usize, tally: &mut Tally) {
    let base = "/workspace/race/real";
    let name = format!("{base}/{token}-g{i}");
    let mut count = |route: &'static str, status: u16| {
        *tally.entry(route).or_default().entry(status).or_default() += 1;
    };
    let put = grpc::upload_messages(grpc::meta(id, &name), b"racing", 3);
    count(
        "gRPC UploadFile",
        as_status(f.upload_file(tokio_stream::iter(put)).await),
    );
    let got = grpc::download(f, grpc::get(id, &format!("{base}/secret"))).await;
    if let Ok((_, body)) = &got {
        only_the_sandboxs(200, body, "gRPC DownloadFile");
    }
    count("gRPC DownloadFile", as_status(got));
    if i.is_multiple_of(BIG_EVERY) {
        let got = grpc::download(f, grpc::get(id, &format!("{base}/big"))).await;
        if let Ok((_, body)) = &got {
            holds(200, body, &BIG, "DownloadFile of the big file");
        }
        count("gRPC DownloadFile, 2 MiB (sendfile)", as_status(got));
    }
    let stat = f
        .stat(pb::StatRequest {
            sandbox_id: id.into(),
            path: name.clone(),
        })
        .await;
    count("gRPC Stat", as_status(stat));
    let list = f
        .list_dir(pb::ListDirRequest {
            sandbox_id: id.into(),
            path: base.into(),
            depth: Some(2),
            ..Default::default()
        })
        .await;
    count("gRPC ListDir", as_status(list));
    let made = f
        .make_dir(pb::MakeDirRequest {
            sandbox_id: id.into(),
            path: format!("{base}/newdir-{token}-g{i}"),
            ..Default::default()
        })
        .await;
    count("gRPC MakeDir", as_status(made));
    let moved = f
        .r#move(pb::MoveRequest {
            sandbox_id: id.into(),
            source: name.clone(),
            destination: format!("{name}-moved"),
            overwrite: None,
        })
        .await;
    count("gRPC Move", as_status(moved));
    let removed = f
        .remove(pb::RemoveRequest {
            sandbox_id: id.into(),
            path: format!("{name}-moved"),
            recursive: false,
        })
        .await;
    count("gRPC Remove", as_status(removed));
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(6);
    header.set_mode(0o644);
    tar.append_data(&mut header, format!("{token}-gx{i}"), &b"packed"[..])
        .unwrap();
    let mut meta = grpc::meta(id, base);
    meta.is_archive = true;
    let tar = grpc::upload_messages(meta, &tar.into_inner().unwrap(), 512);
    count(
        "gRPC UploadFile archive",
        as_status(f.upload_file(tokio_stream::iter(tar)).await),
    );
    if !i.is_multiple_of(10) {
        return;
    }
    // Only the head of the archive stream is read, as for REST.
    let mut packed = grpc::get(id, base);
    packed.as_archive = true;
    let opened = f.download_file(packed).await;
    let status = match opened {
        Ok(stream) => as_status(stream.into_inner().message().await),
        Err(e) => as_status::<()>(Err(e)),
    };
    count("gRPC DownloadFile archive", status);
    let watched = f
        .watch(pb::WatchRequest {
            sandbox_id: id.into(),
            path: base.into(),
            recursive: false,
        })
        .await;
    count("gRPC Watch", as_status(watched));
}

/// An inotify watch on a host directory, counting every event.
struct HostWatch {
    fd: std::os::fd::OwnedFd,
}

impl HostWatch {
    fn new(dir: &std::path::Path) -> Self {
        use rustix::fs::inotify;
        let fd =
            inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC).unwrap();
        inotify::add_watch(&fd, dir, inotify::WatchFlags::ALL_EVENTS).unwrap();
        Self { fd }
    }

    fn events(&self) -> usize {
        let mut buf = vec![std::mem::MaybeUninit::uninit(); 64 * 1024];
        let mut reader = rustix::fs::inotify::Reader::new(&self.fd, &mut buf);
        let mut count = 0;
        while reader.next().is_ok() {
            count += 1;
        }
        count
    }
}

/// Readers racing writers: while archives land in a directory over and over, a file in
/// it is replaced over and over, and a resumable upload waits half sent beside them,
/// listings, archive downloads and a recursive watch of that directory show committed
/// entries only: never a staging directory, a partial file or a temp file.
#[tokio::test]
async fn readers_never_see_the_engines_work_in_progress() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let files = Files::new(&daemon, &id);
    let base = "/workspace/wip";
    let (status, _) = files
        .call(
            reqwest::Method::POST,
            "/mkdir",
            &[],
            Some(json!({ "path": base })),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = files.put(&format!("{base}/replaced"), &[], "0").await;
    assert_eq!(status, 201);
    let tus = Tus::new(&daemon, &id);
    let location = tus
        .create(1000, &[("path", &format!("{base}/later"))])
        .await;
    assert_eq!(tus.patch(&location, 0, &[7; 100], None).await.status(), 204);
    let mut watch = files
        .open("/watch", &[("path", base), ("recursive", "true")])
        .await
        .bytes_stream();

    let rounds = iterations().div_ceil(20).max(10);
    let done = std::sync::atomic::AtomicBool::new(false);
    let writer = async {
        for i in 0..rounds {
            let (status, answer) = files
                .send(
                    reqwest::Method::PUT,
                    "/archive",
                    &[("path", base)],
                    small_tree(i),
                )
                .await;
            assert_eq!(status, 200, "{answer}");
            let (status, _) = files
                .put(&format!("{base}/replaced"), &[], i.to_string())
                .await;
            assert_eq!(status, 200);
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let reader = async {
        let mut reads = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) || reads == 0 {
            let (status, listing) = files.list(base, "8").await;
            assert_eq!(status, 200);
            assert!(!listing.to_string().contains(".airlock-"), "{listing}");
            let packed = files.open("/archive", &[("path", base)]).await;
            assert_eq!(packed.status(), 200);
            let packed = packed.bytes().await.unwrap();
            for entry in tar::Archive::new(&packed[..]).entries().unwrap() {
                let name = entry.unwrap().path().unwrap().display().to_string();
                assert!(!name.contains(".airlock-"), "packed {name}");
            }
            reads += 1;
        }
        reads
    };
    let ((), reads) = tokio::join!(writer, reader);

    // The watch saw every round; none of its events names the engine's own entries.
    let mut events = Vec::new();
    while let Ok(Some(chunk)) = tokio::time::timeout(
        Duration::from_millis(500),
        futures_util::StreamExt::next(&mut watch),
    )
    .await
    {
        events.extend_from_slice(&chunk.unwrap());
    }
    let events = String::from_utf8_lossy(&events);
    assert!(events.contains("/workspace/wip/t/d0/f0"), "{events}");
    assert!(!events.contains(".airlock-"), "{events}");
    eprintln!("{rounds} archive rounds, {reads} listing+download reads alongside");
}

/// A tree of 5 directories of 10 files each, its contents marked with `round`.
fn small_tree(round: usize) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for d in 0..5 {
        for f in 0..10 {
            let body = format!("{round}");
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            tar.append_data(&mut header, format!("t/d{d}/f{f}"), body.as_bytes())
                .unwrap();
        }
    }
    tar.into_inner().unwrap()
}

/// How long a cut-short download may take to fail: far more than sending what was left.
const CUT_SHORT_WITHIN: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_file_cut_short_inside_the_sandbox_fails_its_download_on_both_faces() {
    // Far more than the socket buffers and HTTP/2 windows hold, so the daemon is still
    // sending when the file shrinks.
    const SIZE: usize = 128 << 20;
    const LEFT: usize = 1 << 20;
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let files = Files::new(&daemon, &id);
    let mut rpc = grpc::files(&daemon).await;
    let data = random(SIZE, 16);
    let path = "/workspace/big";
    for face in ["REST", "gRPC"] {
        let (status, _) = files
            .put(path, &[("overwrite", "true")], data.clone())
            .await;
        assert!(
            status == 200 || status == 201,
            "{face}: PUT answered {status}"
        );
        let metric_face = face.to_lowercase();
        let before = metrics::sent_from_file(&daemon, &metric_face).await;
        let got = match face {
            "REST" => rest_cut_short(&files, &daemon, &id, path, LEFT).await,
            _ => grpc_cut_short(&mut rpc, &daemon, &id, path, LEFT).await,
        };
        let (received, ended) = got;
        // The race this test is for is the kernel's: the bytes must have gone by
        // `sendfile`, not through a read the cut would fail more simply.
        let from_file = metrics::sent_from_file(&daemon, &metric_face).await - before;
        assert!(
            from_file > 0.0,
            "{face}: the download sent nothing from the file"
        );
        assert!(
            ended.is_err(),
            "{face}: a download of a file cut to {LEFT} bytes ended cleanly after {} bytes",
            received.len()
        );
        assert!(received.len() < SIZE, "{face}: all {SIZE} bytes arrived");
        // What arrived is the file's bytes, never zeros or another file's.
        assert!(
            received == data[..received.len()],
            "{face}: bytes that are not the file's arrived"
        );
        eprintln!("{face}: {} bytes, then {:?}", received.len(), ended);
        // The daemon serves on, on both faces.
        assert!(
            files.bytes(path).await == data[..LEFT],
            "{face}: REST after the cut"
        );
        let (_, body) = grpc::download(&mut rpc, grpc::get(&id, path))
            .await
            .unwrap();
        assert!(body == data[..LEFT], "{face}: gRPC after the cut");
    }
}

/// Starts a REST download of `path`, takes its first chunk, cuts the file to `left`
/// bytes from inside the sandbox and reads on; answers what arrived and how it ended.
async fn rest_cut_short(
    files: &Files,
    daemon: &Daemon,
    id: &str,
    path: &str,
    left: usize,
) -> (Vec<u8>, Result<(), String>) {
    let mut response = files.get(path, None).await;
    assert_eq!(response.status(), 200);
    let mut received = response.chunk().await.unwrap().unwrap().to_vec();
    cut(daemon, id, path, left).await;
    let rest = async {
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            received.extend_from_slice(&chunk);
        }
        Ok(())
    };
    let ended = ends_within("REST", rest).await;
    (received, ended)
}

/// The same over gRPC's `DownloadFile`.
async fn grpc_cut_short(
    rpc: &mut grpc::FilesAuthed,
    daemon: &Daemon,
    id: &str,
    path: &str,
    left: usize,
) -> (Vec<u8>, Result<(), String>) {
    use pb::download_file_response::Payload;
    let mut stream = rpc
        .download_file(grpc::get(id, path))
        .await
        .unwrap()
        .into_inner();
    let mut received = Vec::new();
    // The header, then chunks until some bytes have arrived.
    while received.is_empty() {
        if let Some(Payload::Chunk(chunk)) = stream.message().await.unwrap().unwrap().payload {
            received.extend_from_slice(&chunk);
        }
    }
    cut(daemon, id, path, left).await;
    let rest = async {
        while let Some(message) = stream.message().await.map_err(|e| e.to_string())? {
            if let Some(Payload::Chunk(chunk)) = message.payload {
                received.extend_from_slice(&chunk);
            }
        }
        Ok(())
    };
    let ended = ends_within("gRPC", rest).await;
    (received, ended)
}

/// How the rest of a cut-short download ended; fails the test if it never did.
async fn ends_within(
    face: &str,
    rest: impl std::future::Future<Output = Result<(), String>>,
) -> Result<(), String> {
    tokio::time::timeout(CUT_SHORT_WITHIN, rest)
        .await
        .unwrap_or_else(|_| panic!("the {face} download hung after its file was cut short"))
}

/// Cuts `path` to `left` bytes in place, as a process in the sandbox would.
async fn cut(daemon: &Daemon, id: &str, path: &str, left: usize) {
    let done = sh(
        &daemon.client(),
        id,
        &format!("truncate -s {left} {path} && echo cut"),
    )
    .await;
    assert_eq!(done.stdout, "cut\n", "{}", done.stderr);
}
