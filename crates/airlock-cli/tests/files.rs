//! The file API end to end: byte-exact streaming round trips, atomic writes and their
//! options, ranges, append/offset, listing pages, mkdir/move/delete, quota, read-only
//! files, and attacks that must leave a host sentinel untouched.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use airlock_fs::{Checks, Hasher};
use common::files::{Files, HostSentinel, crc_hex, random, sandbox_with, sha_hex};
use common::{Daemon, sh};
use serde_json::Value;

#[tokio::test]
async fn byte_exact_round_trips_with_metadata() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, serde_json::json!({})).await;
    let files = Files::new(&daemon, &id);
    for (i, size) in [0usize, 1, 65_535, 65_536, 65_537, 8 << 20]
        .into_iter()
        .enumerate()
    {
        let data = random(size, i as u64 + 7);
        let path = format!("/workspace/round/{size}.bin");
        let (status, written) = files
            .put(
                &path,
                &[("parents", "true"), ("mode", "0640")],
                data.clone(),
            )
            .await;
        assert_eq!(status, 201, "{written}");
        assert_eq!(written["size"], size as u64);
        assert_eq!(written["crc64nvme"], crc_hex(&data));
        assert!(written.get("sha256").is_none(), "a SHA-256 only when asked");
        assert_eq!(written["mode"], "0640");
        let response = files.get(&path, None).await;
        assert_eq!(
            response.headers()["content-length"],
            size.to_string().as_str()
        );
        assert_eq!(response.headers()["x-airlock-mode"], "0640");
        assert!(
            response.headers().contains_key("etag")
                && response.headers().contains_key("last-modified")
        );
        assert_eq!(
            response.bytes().await.unwrap().as_ref(),
            data.as_slice(),
            "{size} bytes come back exactly"
        );
    }
    let inside = sh(&daemon.client(), &id, "sha256sum /workspace/round/65537.bin | cut -d' ' -f1; stat -c '%U %a' /workspace/round/65537.bin").await;
    assert_eq!(
        inside.stdout,
        format!("{}\nuser 640\n", sha_hex(&random(65_537, 10))),
        "the sandbox sees the same file"
    );
}

#[tokio::test]
async fn write_options_are_honoured_and_failures_commit_nothing() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, serde_json::json!({})).await;
    let files = Files::new(&daemon, &id);
    let (status, w) = files
        .put(
            "/workspace/tool",
            &[("mode", "4755"), ("mtime", "1700000000.5")],
            "v1",
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(w["mode"], "0755", "setuid is stripped");
    assert_eq!(w["mtime"], "2023-11-14T22:13:20.500000000Z");
    assert_eq!(
        files.put("/workspace/tool", &[], "v2").await.0,
        200,
        "replacing answers 200"
    );
    assert_eq!(
        files
            .put("/workspace/tool", &[("overwrite", "false")], "v3")
            .await
            .0,
        409
    );
    assert_eq!(
        files.put("/workspace/missing/dir/f", &[], "x").await.0,
        404,
        "parents are not made unless asked"
    );
    let wrong = "0".repeat(64);
    let (status, body) = files
        .put("/workspace/tool", &[("sha256", &wrong)], "v4")
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was written")
    );
    assert_eq!(
        files
            .put("/workspace/tool", &[("sha256", &sha_hex(b"v5"))], "v5")
            .await
            .0,
        200
    );
    assert_eq!(files.bytes("/workspace/tool").await, b"v5");
    // The CRC-64/NVME is checked the same way; `checksum=sha256` reports a SHA-256 too.
    let (status, body) = files
        .put("/workspace/tool", &[("crc64nvme", &"0".repeat(16))], "v6")
        .await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("crc64nvme") && message.contains("nothing was written"));
    for refused in ["0", "g".repeat(16).as_str(), "md5"] {
        let (status, body) = files
            .put(
                "/workspace/tool",
                &[("crc64nvme", refused), ("checksum", refused)],
                "v6",
            )
            .await;
        assert_eq!(status, 400, "{refused}: {body}");
    }
    assert_eq!(files.bytes("/workspace/tool").await, b"v5");
    let (status, body) = files
        .put(
            "/workspace/summed",
            &[("crc64nvme", &crc_hex(b"v7")), ("checksum", "sha256")],
            "v7",
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["crc64nvme"], crc_hex(b"v7"));
    assert_eq!(body["sha256"], sha_hex(b"v7"));
    sh(&daemon.client(), &id, "rm /workspace/summed").await;

    // A client that dies mid-upload: the old file stays, no temporary file is left.
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
        Ok(bytes::Bytes::from(vec![b'x'; 1 << 20])),
        Err(std::io::Error::other("client vanished")),
    ];
    let broken = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let failed = files
        .http
        .put(files.url("/content", &[("path", "/workspace/tool")]))
        .bearer_auth(&files.token)
        .body(broken)
        .send()
        .await;
    assert!(failed.is_err() || failed.unwrap().status() != 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(files.bytes("/workspace/tool").await, b"v5");
    let listing = sh(&daemon.client(), &id, "ls -A /workspace").await.stdout;
    assert_eq!(listing, "tool\n", "no stray temporary file");
    for (path, want) in [
        ("relative", 400),
        ("/a/../b", 400),
        ("/workspace/\u{0}x", 400),
    ] {
        assert_eq!(files.put(path, &[], "x").await.0, want, "{path:?}");
    }
}

#[tokio::test]
async fn ranges_append_and_offset() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, serde_json::json!({})).await;
    let files = Files::new(&daemon, &id);
    files.put("/workspace/log", &[], "0123456789").await;
    let part = files.get("/workspace/log", Some("bytes=2-4")).await;
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 2-4/10");
    assert_eq!(part.bytes().await.unwrap().as_ref(), b"234");
    assert_eq!(
        files
            .get("/workspace/log", Some("bytes=-3"))
            .await
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        b"789"
    );
    let bad = files.get("/workspace/log", Some("bytes=50-60")).await;
    assert_eq!(bad.status(), 416);
    assert_eq!(bad.headers()["content-range"], "bytes */10");

    let post = |query: Vec<(&'static str, &'static str)>, body: &'static str| {
        let req = files
            .http
            .post(files.url("/content", &query))
            .bearer_auth(&files.token)
            .body(body);
        async move {
            let response = req.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, appended) = post(vec![("path", "/workspace/log"), ("append", "true")], "ab").await;
    assert_eq!(status, 200);
    assert_eq!(appended["size"], 12);
    assert_eq!(appended["crc64nvme"], crc_hex(b"0123456789ab"));
    post(vec![("path", "/workspace/log"), ("offset", "1")], "XY").await;
    assert_eq!(files.bytes("/workspace/log").await, b"0XY3456789ab");
    post(
        vec![("path", "/workspace/new.log"), ("append", "true")],
        "first",
    )
    .await;
    assert_eq!(
        files.bytes("/workspace/new.log").await,
        b"first",
        "append creates"
    );
    assert_eq!(
        post(vec![("path", "/workspace/log")], "x").await.0,
        400,
        "append or offset must be given"
    );
}

#[tokio::test]
async fn listing_pages_stat_mkdir_move_delete() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, serde_json::json!({})).await;
    let files = Files::new(&daemon, &id);
    sh(&daemon.client(), &id, "mkdir -p /workspace/many && cd /workspace/many && for i in $(seq 1050); do : > f$i; done && mkdir sub && : > sub/inner && ln -s /etc sub/link").await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![
            ("path", "/workspace/many"),
            ("limit", "400"),
            ("depth", "2"),
        ];
        if let Some(c) = &cursor {
            query.push(("cursor", c));
        }
        let (status, page) = files.call(reqwest::Method::GET, "", &query, None).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["path"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 1050 + 3, "every entry once, across pages");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "no duplicates between pages");
    let (_, link) = files
        .call(
            reqwest::Method::GET,
            "/stat",
            &[("path", "/workspace/many/sub/link")],
            None,
        )
        .await;
    assert_eq!(
        (link["type"].as_str(), link["symlink_target"].as_str()),
        (Some("symlink"), Some("/etc")),
        "symlinks reported, not followed"
    );

    let cases = [
        (
            "/mkdir",
            serde_json::json!({"path": "/workspace/a/b/c"}),
            201,
        ),
        (
            "/mkdir",
            serde_json::json!({"path": "/workspace/a", "parents": false}),
            409,
        ),
        (
            "/move",
            serde_json::json!({"from": "/workspace/many/sub", "to": "/workspace/a/moved"}),
            200,
        ),
        (
            "/move",
            serde_json::json!({"from": "/workspace/many/f1", "to": "/workspace/many/f2"}),
            409,
        ),
        (
            "/move",
            serde_json::json!({"from": "/workspace/a", "to": "/workspace/a/b/x"}),
            400,
        ),
    ];
    for (route, body, want) in cases {
        let (status, answer) = files
            .call(reqwest::Method::POST, route, &[], Some(body.clone()))
            .await;
        assert_eq!(status, want, "{route} {body}: {answer}");
    }
    let (_, moved) = files
        .call(
            reqwest::Method::GET,
            "/stat",
            &[("path", "/workspace/a/moved/link")],
            None,
        )
        .await;
    assert_eq!(moved["type"], "symlink");
    assert_eq!(
        files.delete("/workspace/many", "false").await.0,
        409,
        "not empty"
    );
    assert_eq!(files.delete("/workspace/many", "true").await.0, 204);
    assert_eq!(files.delete("/workspace/many", "true").await.0, 404);
    assert_eq!(
        files.delete("/usr", "true").await.0,
        403,
        "the host's system directories are read-only"
    );
    assert!(std::path::Path::new("/usr/bin/env").exists());
}

#[tokio::test]
async fn attacks_leave_the_host_untouched() {
    let daemon = Daemon::start();
    let id = sandbox_with(
        &daemon,
        serde_json::json!({
            "limits": {"disk_mb": 32},
            "files": [{"path": "/home/user/ro.conf", "content": "pinned", "readonly": true}]
        }),
    )
    .await;
    // On its disk image too, so the FIFO below meets the direct open.
    assert_view_is_nodev(&daemon, &id);
    let files = Files::new(&daemon, &id);
    // A host sentinel at the very absolute path the sandbox's symlinks name.
    let sentinel = HostSentinel::new();
    let host = sentinel.host.clone();
    let setup = format!(
        "ln -s {host} /workspace/abs; ln -s ../../../../../../../..{host} /workspace/rel; mkdir -p /tmp/real; ln -s /tmp/real /workspace/dirlink; \
         mkfifo /workspace/fifo; mkdir -p /workspace/tree; ln -s {host} /workspace/tree/out; ln -s /usr /workspace/tree/usr"
    );
    sh(&daemon.client(), &id, &setup).await;
    let client_paths = [
        "/workspace/abs/secret".to_string(),
        "/workspace/rel/secret".to_string(),
        format!("{host}/secret"),
    ];
    for path in &client_paths {
        assert_eq!(
            files.get(path, None).await.status(),
            404,
            "GET {path} must not reach the host"
        );
        let (status, _) = files.put(path, &[], "sandbox").await;
        assert!(status == 404 || status == 409, "PUT {path}: {status}");
        assert_eq!(
            files
                .call(reqwest::Method::DELETE, "", &[("path", path)], None)
                .await
                .0,
            404
        );
    }
    // Through a symlinked parent that exists inside the sandbox: lands inside.
    assert_eq!(files.put("/workspace/dirlink/f", &[], "in").await.0, 201);
    assert_eq!(
        sh(&daemon.client(), &id, "cat /tmp/real/f").await.stdout,
        "in"
    );
    // Recursive delete removes links, never what they point at.
    assert_eq!(
        files
            .call(
                reqwest::Method::DELETE,
                "",
                &[("path", "/workspace/tree"), ("recursive", "true")],
                None
            )
            .await
            .0,
        204
    );
    // FIFOs are refused at once rather than blocking.
    let started = std::time::Instant::now();
    assert_eq!(files.get("/workspace/fifo", None).await.status(), 400);
    assert_eq!(
        files.put("/workspace/fifo", &[], "x").await.0,
        200,
        "a PUT replaces the FIFO entry atomically"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // The read-only injected file cannot be changed through the API either.
    assert_eq!(files.put("/home/user/ro.conf", &[], "changed").await.0, 403);
    let append = files
        .http
        .post(files.url(
            "/content",
            &[("path", "/home/user/ro.conf"), ("append", "true")],
        ))
        .bearer_auth(&files.token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(append.status(), 403);
    assert_eq!(
        files
            .call(
                reqwest::Method::DELETE,
                "",
                &[("path", "/home/user/ro.conf")],
                None
            )
            .await
            .0,
        403
    );
    assert_eq!(
        files
            .call(
                reqwest::Method::POST,
                "/move",
                &[],
                Some(serde_json::json!({"from": "/home/user/ro.conf", "to": "/home/user/x"}))
            )
            .await
            .0,
        403
    );
    assert_eq!(files.bytes("/home/user/ro.conf").await, b"pinned");
    // Over the disk quota: 507, nothing partial.
    let (status, _) = files.put("/workspace/huge", &[], vec![0u8; 64 << 20]).await;
    assert_eq!(status, 507);
    assert_eq!(files.get("/workspace/huge", None).await.status(), 404);
    assert_eq!(
        sh(
            &daemon.client(),
            &id,
            "ls -A /workspace | grep -c airlock-tmp || true"
        )
        .await
        .stdout,
        "0\n"
    );

    sentinel.assert_untouched();
    assert!(std::path::Path::new("/usr/bin/env").exists());
}

/// The daemon's view of sandbox `id` is mounted `nodev`, which lets its reads open files
/// directly (`Root::open_read`): without it every read still works, the slow way.
fn assert_view_is_nodev(daemon: &Daemon, id: &str) {
    let view = daemon.home().join("views").join(id);
    let mounts = std::fs::read_to_string(format!("/proc/{}/mountinfo", daemon.pid())).unwrap();
    // Fields: id, parent, dev, root, mount point, mount options, ...
    let options = mounts
        .lines()
        .map(|line| line.split(' ').collect::<Vec<_>>())
        .find(|fields| std::path::Path::new(fields[4]) == view)
        .map(|fields| fields[5].to_owned());
    let options = options.unwrap_or_else(|| panic!("no mount at {}", view.display()));
    assert!(options.split(',').any(|o| o == "nodev"), "{options}");
}

/// A sandbox process that takes a lease on its file and ignores the break notice made a
/// daemon's blocking open of that file wait until it let go, up to `lease-break-time`
/// (45 s), on the connection's thread, holding every request there. Now the open fails at
/// once: busy, try again, over REST and gRPC alike.
#[tokio::test]
async fn a_lease_on_a_file_answers_busy_at_once() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, serde_json::json!({})).await;
    assert_view_is_nodev(&daemon, &id);
    let files = Files::new(&daemon, &id);
    let holder = "import fcntl, os, signal, time\n\
        signal.signal(signal.SIGIO, signal.SIG_IGN)\n\
        w = os.open('/workspace/w', os.O_RDWR)\n\
        fcntl.fcntl(w, fcntl.F_SETLEASE, fcntl.F_WRLCK)\n\
        r = os.open('/workspace/r', os.O_RDONLY)\n\
        fcntl.fcntl(r, fcntl.F_SETLEASE, fcntl.F_RDLCK)\n\
        open('/workspace/leased', 'w').close()\n\
        time.sleep(40)\n";
    for (path, content) in [
        ("/workspace/hold.py", holder),
        ("/workspace/w", "leased"),
        ("/workspace/r", "leased"),
    ] {
        assert_eq!(files.put(path, &[], content).await.0, 201);
    }
    let client = daemon.client();
    let sandbox = id.clone();
    let holding =
        tokio::spawn(async move { sh(&client, &sandbox, "python3 /workspace/hold.py").await });
    let waited = std::time::Instant::now();
    while files.get("/workspace/leased", None).await.status() != 200 {
        assert!(waited.elapsed() < Duration::from_secs(30), "no lease taken");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = std::time::Instant::now();
    let read = files.get("/workspace/w", None).await;
    assert_eq!(read.status(), 503, "a read under a write lease");
    let append = files
        .http
        .post(files.url("/content", &[("path", "/workspace/r"), ("append", "true")]))
        .bearer_auth(&files.token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(append.status(), 503, "an append under a read lease");
    // The same door for every face: gRPC's download answers UNAVAILABLE (busy).
    let mut grpc = common::grpc::files(&daemon).await;
    let outcome = common::grpc::download(&mut grpc, common::grpc::get(&id, "/workspace/w")).await;
    assert_eq!(
        outcome.map(|_| ()).unwrap_err().code(),
        tonic::Code::Unavailable,
        "a gRPC download under a write lease"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "waited on the leases: {:?}",
        started.elapsed()
    );
    assert_eq!(files.bytes("/workspace/hold.py").await, holder.as_bytes());
    holding.abort();
}

#[tokio::test]
async fn archive_streams_a_tree_as_tar() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, serde_json::json!({})).await;
    let files = Files::new(&daemon, &id);
    let setup = "mkdir -p /workspace/proj/src /workspace/proj/empty && cd /workspace/proj && printf 'fn main() {}' > src/main.rs \
        && printf '#!/bin/sh\necho hi\n' > run.sh && chmod 750 run.sh && ln -s /etc/passwd src/abs-link && ln -s ../run.sh src/rel-link \
        && mkfifo pipe && touch -d @1700000000 run.sh && for i in $(seq 200); do echo $i > src/f$i; done";
    let ready = sh(&daemon.client(), &id, setup).await;
    assert_eq!(ready.exit_code, 0, "{}", ready.stderr);
    let response = files
        .http
        .get(files.url("/archive", &[("path", "/workspace/proj")]))
        .bearer_auth(&files.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-tar");
    let bytes = response.bytes().await.unwrap();
    let mut archive = tar::Archive::new(bytes.as_ref());
    let mut seen = std::collections::BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let kind = entry.header().entry_type();
        let link = entry.link_name().unwrap().map(|l| l.display().to_string());
        let (mode, mtime) = (
            entry.header().mode().unwrap(),
            entry.header().mtime().unwrap(),
        );
        let mut content = String::new();
        std::io::Read::read_to_string(&mut entry, &mut content).unwrap();
        seen.insert(path, (kind, link, mode, mtime, content));
    }
    assert_eq!(
        seen.len(),
        2 + 2 + 2 + 200,
        "dirs, files and links; the FIFO is left out: {:?}",
        seen.keys().take(8).collect::<Vec<_>>()
    );
    assert_eq!(seen["run.sh"].4, "#!/bin/sh\necho hi\n");
    assert_eq!(
        (seen["run.sh"].2, seen["run.sh"].3),
        (0o750, 1_700_000_000),
        "mode and mtime kept"
    );
    assert_eq!(
        seen["src/abs-link"].0,
        tar::EntryType::Symlink,
        "symlinks stay symlinks"
    );
    assert_eq!(
        seen["src/abs-link"].1.as_deref(),
        Some("/etc/passwd"),
        "and are not followed to any file"
    );
    assert_eq!(seen["src/rel-link"].1.as_deref(), Some("../run.sh"));
    assert_eq!(
        seen["empty"].0,
        tar::EntryType::Directory,
        "empty directories are kept"
    );
    assert_eq!(seen["src/f200"].4, "200\n");
    assert!(!seen.contains_key("pipe"));
    let missing = files
        .http
        .get(files.url("/archive", &[("path", "/workspace/none")]))
        .bearer_auth(&files.token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let not_dir = files
        .http
        .get(files.url("/archive", &[("path", "/workspace/proj/run.sh")]))
        .bearer_auth(&files.token)
        .send()
        .await
        .unwrap();
    assert_eq!(not_dir.status(), 409);
}

#[tokio::test]
async fn one_gib_streams_in_constant_memory() {
    const SIZE: u64 = 1 << 30;
    const BLOCK: usize = 1 << 20;
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, serde_json::json!({})).await;
    let files = Files::new(&daemon, &id);
    let block = random(BLOCK, 99);
    let mut expected = Hasher::new(&Checks::default());
    for _ in 0..SIZE / BLOCK as u64 {
        expected.update(&block);
    }
    let expected = expected.finish().crc64nvme_hex();
    let source = futures_util::stream::iter(
        (0..SIZE / BLOCK as u64)
            .map(move |_| Ok::<_, std::io::Error>(bytes::Bytes::from(block.clone()))),
    );
    let pid = daemon.pid();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(common::rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let before = common::rss_kib(pid);
    let (status, written) = files
        .put("/workspace/big", &[], reqwest::Body::wrap_stream(source))
        .await;
    assert_eq!(status, 201, "{written}");
    assert_eq!(written["crc64nvme"], expected);
    let mut response = files.get("/workspace/big", None).await;
    let mut got = Hasher::new(&Checks::default());
    let mut total = 0u64;
    while let Some(chunk) = response.chunk().await.unwrap() {
        total += chunk.len() as u64;
        got.update(&chunk);
    }
    sampler.abort();
    assert_eq!(total, SIZE);
    assert_eq!(got.finish().crc64nvme_hex(), expected);
    let growth = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(before);
    assert!(
        growth < 64 * 1024,
        "daemon RSS grew {growth} KiB while moving 1 GiB"
    );
}

/// Downloads over HTTP/1 are sent by the kernel (`sendfile`) from a queue the connection
/// keeps; one keep-alive connection mixing ranges that start and end mid-window, a
/// `HEAD`, a small file read whole, and whole big files must get every byte in order.
#[tokio::test]
async fn one_connection_mixes_ranges_heads_and_whole_files() {
    use std::io::{BufRead, BufReader, Read, Write};
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, serde_json::json!({})).await;
    let files = Files::new(&daemon, &id);
    let big = random(3 * 1024 * 1024 + 5, 7);
    let small = random(10_000, 8);
    assert_eq!(files.put("/workspace/big", &[], big.clone()).await.0, 201);
    assert_eq!(
        files.put("/workspace/small", &[], small.clone()).await.0,
        201
    );
    let address = daemon.url.trim_start_matches("http://").to_owned();
    let socket = std::net::TcpStream::connect(&address).unwrap();
    let mut writer = socket.try_clone().unwrap();
    let mut reader = BufReader::new(socket);
    let request = |method: &str, path: &str, range: Option<&str>| {
        let range = range.map(|r| format!("Range: {r}\r\n")).unwrap_or_default();
        format!(
            "{method} /v1/sandboxes/{id}/files/content?path={path} HTTP/1.1\r\nHost: x\r\n\
             Authorization: Bearer {}\r\n{range}\r\n",
            daemon.token
        )
    };
    let mut answer = |method: &str| {
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; if method == "HEAD" { 0 } else { length }];
        reader.read_exact(&mut body).unwrap();
        (status.split(' ').nth(1).unwrap().to_owned(), length, body)
    };
    let mut ask = |method: &str, path: &str, range: Option<&str>| {
        writer
            .write_all(request(method, path, range).as_bytes())
            .unwrap();
        answer(method)
    };
    let (status, _, body) = ask("GET", "/workspace/big", Some("bytes=1000-2600000"));
    assert_eq!(status, "206");
    assert!(body == big[1000..=2_600_000], "a range across two windows");
    let (status, length, _) = ask("HEAD", "/workspace/big", None);
    assert_eq!((status.as_str(), length), ("200", big.len()));
    let (_, _, body) = ask("GET", "/workspace/small", None);
    assert!(body == small, "a small file after a HEAD");
    for _ in 0..2 {
        let (status, _, body) = ask("GET", "/workspace/big", None);
        assert_eq!(status, "200");
        assert!(body == big, "the whole file, twice");
    }
    let (_, _, body) = ask("GET", "/workspace/big", Some("bytes=-5"));
    assert_eq!(body, big[big.len() - 5..]);
    // Pipelined: three requests sent before any answer is read.
    let three = [
        request("GET", "/workspace/big", Some("bytes=5-1048580")),
        request("HEAD", "/workspace/small", None),
        request("GET", "/workspace/big", None),
    ];
    writer.write_all(three.concat().as_bytes()).unwrap();
    assert!(answer("GET").2 == big[5..=1_048_580]);
    assert_eq!(answer("HEAD").1, small.len());
    assert!(answer("GET").2 == big, "pipelined answers in order");
}

/// A small body is read whole before it is written; a client that leaves partway leaves
/// the old file as it was and no temporary file.
#[tokio::test]
async fn a_small_upload_cut_off_changes_nothing() {
    use std::io::Write;
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, serde_json::json!({})).await;
    let files = Files::new(&daemon, &id);
    let (status, _) = files.put("/workspace/kept.txt", &[], b"old".to_vec()).await;
    assert_eq!(status, 201);
    let address = daemon.url.trim_start_matches("http://").to_owned();
    let mut socket = std::net::TcpStream::connect(&address).unwrap();
    write!(
        socket,
        "PUT /v1/sandboxes/{id}/files/content?path=/workspace/kept.txt HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {}\r\nContent-Length: 1024\r\n\r\n",
        daemon.token
    )
    .unwrap();
    socket.write_all(&[b'n'; 500]).unwrap();
    drop(socket);
    let client = daemon.client();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let read = files.get("/workspace/kept.txt", None).await;
        assert_eq!(read.bytes().await.unwrap().as_ref(), b"old");
    }
    let left = sh(&client, &id, "ls -A /workspace").await.stdout;
    assert_eq!(left, "kept.txt\n", "nothing but the old file");
}
