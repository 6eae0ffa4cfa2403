//! Resumable uploads over tus 1.0 end to end: an upload interrupted halfway resumes to the
//! same sha256; offsets, chunk checksums, whole-file checksums, length overruns,
//! termination and expiry behave as the protocol says.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::time::Duration;

use base64::Engine as _;
use common::files::{Files, crc_hex, random, sandbox_with, sha_hex};
use common::tus::{Tus, b64};
use common::{Daemon, sh};
use serde_json::json;
use sha2::Digest;

/// A `PATCH` of `chunk` at `offset` on a raw connection, of which only the first half is
/// sent; the connection is left open.
fn half_a_patch(
    daemon: &Daemon,
    location: &str,
    offset: usize,
    chunk: &[u8],
) -> std::net::TcpStream {
    let address = daemon.url.trim_start_matches("http://");
    let mut socket = std::net::TcpStream::connect(address).unwrap();
    write!(
        socket,
        "PATCH {location} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\nContent-Length: {}\r\n\r\n",
        daemon.token,
        chunk.len()
    )
    .unwrap();
    socket.write_all(&chunk[..chunk.len() / 2]).unwrap();
    socket
}

/// The first line of the answer on a raw connection (what came within 30 s).
fn status_line(socket: &mut std::net::TcpStream) -> String {
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match std::io::Read::read(socket, &mut byte) {
            Ok(1) => line.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&line).into_owned()
}

fn sha1_b64(data: &[u8]) -> String {
    format!(
        "sha1 {}",
        base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(data))
    )
}

#[tokio::test]
async fn an_interrupted_upload_resumes_to_the_same_sha256() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let tus = Tus::new(&daemon, &id);
    let files = Files::new(&daemon, &id);
    let data = random(3 << 20, 42);
    let mib = 1 << 20;

    let discovery = tus
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/sandboxes/{id}/uploads", daemon.url),
        )
        .bearer_auth(&daemon.token)
        .send()
        .await
        .unwrap();
    assert_eq!(discovery.status(), 204);
    assert_eq!(discovery.headers()["tus-version"], "1.0.0");
    assert!(
        discovery.headers()["tus-extension"]
            .to_str()
            .unwrap()
            .contains("termination")
    );
    let no_version = tus
        .http
        .post(format!("{}/v1/sandboxes/{id}/uploads", daemon.url))
        .bearer_auth(&daemon.token)
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.status(), 412);

    let location = tus
        .create(
            data.len() as u64,
            &[
                ("path", "/workspace/up/big.bin"),
                ("mode", "0640"),
                ("filename", "big.bin"),
            ],
        )
        .await;
    let first = tus
        .patch(&location, 0, &data[..mib], Some(sha1_b64(&data[..mib])))
        .await;
    assert_eq!(first.status(), 204);
    assert_eq!(first.headers()["upload-offset"], mib.to_string().as_str());
    assert!(first.headers().contains_key("upload-expires"));

    // The client vanishes halfway through its second chunk.
    let mut socket = half_a_patch(&daemon, &location, mib, &data[mib..mib + mib]);
    // It stops sending (its half of the connection closed, as a dying client's is); the
    // daemon answers the broken request once it sees that.
    socket.shutdown(std::net::Shutdown::Write).unwrap();
    let answer = status_line(&mut socket);
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    // Every byte that arrived was kept.
    let kept = tus.offset(&location).await.unwrap();
    assert_eq!(kept, (mib + mib / 2) as u64);

    // Wrong offset: 409. Wrong chunk checksum: 460, nothing kept.
    assert_eq!(tus.patch(&location, 0, b"x", None).await.status(), 409);
    let rest = &data[kept as usize..];
    let bad = tus
        .patch(&location, kept, rest, Some(sha1_b64(b"other")))
        .await;
    assert_eq!(bad.status(), 460);
    assert_eq!(tus.offset(&location).await, Some(kept));
    // Not yet there: the destination does not exist.
    assert_eq!(files.get("/workspace/up/big.bin", None).await.status(), 404);

    let last = tus.patch(&location, kept, rest, Some(sha1_b64(rest))).await;
    assert_eq!(last.status(), 204);
    assert_eq!(
        last.headers()["upload-offset"],
        data.len().to_string().as_str()
    );
    assert_eq!(
        last.headers()["x-airlock-crc64nvme"],
        crc_hex(&data).as_str()
    );
    assert!(last.headers().get("x-airlock-sha256").is_none());
    assert_eq!(files.bytes("/workspace/up/big.bin").await, data);
    assert_eq!(
        tus.offset(&location).await,
        None,
        "a finished upload is gone"
    );
    let seen = sh(
        &daemon.client(),
        &id,
        "stat -c '%a %u' /workspace/up/big.bin; ls -A /workspace/up",
    )
    .await;
    assert_eq!(seen.stdout, "640 1000\nbig.bin\n", "no partial file left");
}

/// The client learns its connection broke before the daemon does: it asks where the upload
/// stands and sends the rest while the broken request is still open on the daemon's side.
/// The newer request takes the upload over at once (the old one keeps what it had and
/// ends) instead of being refused as busy until the daemon's idle timeout.
#[tokio::test]
async fn a_resume_takes_over_from_a_broken_request_the_daemon_still_holds() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let tus = Tus::new(&daemon, &id);
    let files = Files::new(&daemon, &id);
    let data = random(3 << 20, 7);
    let mib = 1 << 20;
    let location = tus
        .create(data.len() as u64, &[("path", "/workspace/up/taken.bin")])
        .await;
    assert_eq!(
        tus.patch(&location, 0, &data[..mib], None).await.status(),
        204
    );

    // Half of a 1 MiB chunk, and then silence: the socket stays open.
    let mut broken = half_a_patch(&daemon, &location, mib, &data[mib..2 * mib]);

    // Asked where the upload stands, the daemon stops the broken request (it keeps the
    // bytes it had at hand) and answers the offset it left. Asked before that request
    // reached the upload, it answers the offset before it: ask until the broken request
    // is over, as a client retrying would.
    broken.set_nonblocking(true).unwrap();
    let mut at = 0;
    for _ in 0..200 {
        at = tus.offset(&location).await.unwrap() as usize;
        let mut peek = [0u8; 1];
        let answered =
            !matches!(broken.peek(&mut peek), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        if answered {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    broken.set_nonblocking(false).unwrap();
    let answer = status_line(&mut broken);
    assert!(
        answer.starts_with("HTTP/1.1 409"),
        "the broken request is answered as taken over, not left to the idle timeout: {answer:?}"
    );
    assert!((mib..=mib + mib / 2).contains(&at), "stands at {at}");
    let rest = tus.patch(&location, at as u64, &data[at..], None).await;
    assert_eq!(rest.status(), 204);
    assert_eq!(files.bytes("/workspace/up/taken.bin").await, data);
}

/// Several clients resume one upload at once, each asking where it stands and sending the
/// rest from there, so that each request takes the upload over from another mid-chunk.
/// Whatever the interleaving, the file that comes out is the data byte for byte: no
/// request's bytes land at an offset that another request moved.
#[tokio::test]
async fn clients_resuming_one_upload_at_once_never_interleave_their_bytes() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let files = Files::new(&daemon, &id);
    let data = random(8 << 20, 11);
    let location = Tus::new(&daemon, &id)
        .create(
            data.len() as u64,
            &[("path", "/workspace/up/contended.bin")],
        )
        .await;
    let resumer = |_| {
        let (tus, location, data) = (Tus::new(&daemon, &id), &location, &data);
        async move {
            let mut statuses = Vec::new();
            for _ in 0..200 {
                // Gone once the last byte is in: the upload is finished.
                let Some(at) = tus.offset(location).await else {
                    break;
                };
                let at = at as usize;
                let answer = tus.patch(location, at as u64, &data[at..], None).await;
                statuses.push(answer.status().as_u16());
            }
            statuses
        }
    };
    let statuses = futures_util::future::join_all((0..4).map(resumer)).await;
    let all: Vec<u16> = statuses.into_iter().flatten().collect();
    assert!(
        all.iter().all(|s| [204, 404, 409].contains(s)),
        "answers: {all:?}"
    );
    assert!(all.contains(&204));
    assert_eq!(files.bytes("/workspace/up/contended.bin").await, data);
}

/// Sends `head` and a 12 MiB body steadily over about 3 s on a raw connection, as a
/// client that writes its whole request before reading (urllib3, say) does, then reads
/// the answer's first line. Every write must go through.
fn send_steadily_then_read(daemon: &Daemon, head: String) -> String {
    let address = daemon.url.trim_start_matches("http://");
    let mut socket = std::net::TcpStream::connect(address).unwrap();
    let mebibytes = 12;
    write!(socket, "{head}Content-Length: {}\r\n\r\n", mebibytes << 20).unwrap();
    for _ in 0..mebibytes {
        std::thread::sleep(Duration::from_millis(250));
        socket
            .write_all(&[7u8; 1 << 20])
            .expect("the daemon reads what the client sends");
    }
    status_line(&mut socket)
}

/// A client still sending when its request is refused reads the refusal, not a reset,
/// however long the rest takes to send: refused by the engine (a PATCH at the wrong
/// offset) or before it (a sandbox that is not there). Nothing of the body is kept.
#[tokio::test]
async fn a_refused_body_still_being_sent_gets_its_answer_not_a_reset() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let tus = Tus::new(&daemon, &id);
    let location = tus
        .create(32 << 20, &[("path", "/workspace/steady.bin")])
        .await;
    let auth = format!("Host: x\r\nAuthorization: Bearer {}\r\n", daemon.token);
    let at_wrong_offset = format!(
        "PATCH {location} HTTP/1.1\r\n{auth}Tus-Resumable: 1.0.0\r\n\
         Content-Type: application/offset+octet-stream\r\nUpload-Offset: 5\r\n"
    );
    let nowhere = format!(
        "PUT /v1/sandboxes/no-such-sandbox/files/content?path=/workspace/x HTTP/1.1\r\n{auth}"
    );
    let answers = std::thread::scope(|scope| {
        let sends = [at_wrong_offset, nowhere].map(|head| {
            let daemon = &daemon;
            scope.spawn(move || send_steadily_then_read(daemon, head))
        });
        sends.map(|send| send.join().unwrap())
    });
    assert!(answers[0].starts_with("HTTP/1.1 409"), "{answers:?}");
    assert!(answers[1].starts_with("HTTP/1.1 404"), "{answers:?}");
    // The daemon still serves the upload, from where it stood.
    assert_eq!(tus.offset(&location).await, Some(0));
    let rest = random(32 << 20, 3);
    assert_eq!(tus.patch(&location, 0, &rest, None).await.status(), 204);
    let files = Files::new(&daemon, &id);
    assert_eq!(files.bytes("/workspace/steady.bin").await, rest);
}

#[tokio::test]
async fn checksums_limits_termination_and_expiry() {
    let daemon = Daemon::start_with(&["--upload-expiry", "2s"]);
    let id = sandbox_with(&daemon, json!({"limits": {"disk_mb": 16}})).await;
    let tus = Tus::new(&daemon, &id);
    let files = Files::new(&daemon, &id);

    // creation-with-upload finishes a small file in one request; length 0 needs none.
    let response = tus
        .request(
            reqwest::Method::POST,
            &format!("/v1/sandboxes/{id}/uploads"),
        )
        .header("Upload-Length", "5")
        .header("Upload-Metadata", format!("path {}", b64("/workspace/one")))
        .header("Content-Type", "application/offset+octet-stream")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["upload-offset"], "5");
    assert_eq!(files.bytes("/workspace/one").await, b"hello");
    tus.create(0, &[("path", "/workspace/empty")]).await;
    assert_eq!(files.bytes("/workspace/empty").await, b"");

    // A whole-file sha256 that does not match: 460 and nothing committed.
    let location = tus
        .create(
            4,
            &[("path", "/workspace/sum"), ("sha256", &"0".repeat(64))],
        )
        .await;
    assert_eq!(tus.patch(&location, 0, b"data", None).await.status(), 460);
    assert_eq!(files.get("/workspace/sum", None).await.status(), 404);
    // The same for a CRC-64/NVME, over two requests (the second reads the file whole).
    let location = tus
        .create(
            4,
            &[("path", "/workspace/sum"), ("crc64nvme", &crc_hex(b"DATA"))],
        )
        .await;
    assert_eq!(tus.patch(&location, 0, b"da", None).await.status(), 204);
    assert_eq!(tus.patch(&location, 2, b"ta", None).await.status(), 460);
    assert_eq!(files.get("/workspace/sum", None).await.status(), 404);
    // Right ones commit; `checksum: sha256` reports a SHA-256 beside the CRC.
    let location = tus
        .create(
            4,
            &[
                ("path", "/workspace/sum"),
                ("crc64nvme", &crc_hex(b"data")),
                ("checksum", "sha256"),
            ],
        )
        .await;
    let done = tus.patch(&location, 0, b"data", None).await;
    assert_eq!(done.status(), 204);
    assert_eq!(
        done.headers()["x-airlock-crc64nvme"],
        crc_hex(b"data").as_str()
    );
    assert_eq!(
        done.headers()["x-airlock-sha256"],
        sha_hex(b"data").as_str()
    );
    let refused = tus
        .request(
            reqwest::Method::POST,
            &format!("/v1/sandboxes/{id}/uploads"),
        )
        .header("Upload-Length", "4")
        .header(
            "Upload-Metadata",
            format!("path {},checksum {}", b64("/workspace/x"), b64("md5")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);

    // More than Upload-Length: 413, nothing kept. Over the disk quota: 507.
    let location = tus.create(4, &[("path", "/workspace/long")]).await;
    assert_eq!(
        tus.patch(&location, 0, b"too long", None).await.status(),
        413
    );
    assert_eq!(tus.offset(&location).await, Some(0));
    let location = tus.create(32 << 20, &[("path", "/workspace/huge")]).await;
    assert_eq!(
        tus.patch(&location, 0, &vec![1u8; 32 << 20], None)
            .await
            .status(),
        507
    );

    // Termination removes the partial file at once.
    assert_eq!(
        tus.request(reqwest::Method::DELETE, &location)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(tus.offset(&location).await, None);

    // Abandoned uploads expire, partial files and all.
    let abandoned = tus.create(10, &[("path", "/workspace/later/x")]).await;
    assert_eq!(tus.patch(&abandoned, 0, b"12345", None).await.status(), 204);
    let mut gone = false;
    for _ in 0..80 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let left = sh(&daemon.client(), &id, "ls -A /workspace/later")
            .await
            .stdout;
        if left.is_empty() {
            gone = true;
            break;
        }
    }
    assert!(gone, "the abandoned partial file was removed");
    assert_eq!(tus.offset(&abandoned).await, None);
    let left = sh(&daemon.client(), &id, "ls -A /workspace").await.stdout;
    assert_eq!(left, "empty\nlater\none\nsum\n");
}

#[tokio::test]
async fn the_unmodified_tus_python_client_uploads_and_resumes() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let files = Files::new(&daemon, &id);
    let data = random((5 << 20) + 123, 9);
    let local = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(local.path(), &data).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/tus_resume.py");
    let out = tokio::process::Command::new(common::python())
        .arg(script)
        .args([&daemon.url, &daemon.token, &id])
        .arg(local.path())
        .arg("/workspace/from-tuspy.bin")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "tuspy failed (scripts/setup installs it):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(files.bytes("/workspace/from-tuspy.bin").await, data);
    let mode = sh(
        &daemon.client(),
        &id,
        "stat -c %a /workspace/from-tuspy.bin",
    )
    .await;
    assert_eq!(mode.stdout, "600\n");
}

#[tokio::test]
async fn uploads_through_planted_symlinks_stay_inside() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let tus = Tus::new(&daemon, &id);
    let sentinel = common::files::HostSentinel::new();
    let host = &sentinel.host;
    sh(
        &daemon.client(),
        &id,
        &format!("mkdir -p /workspace/d && ln -s {host} /workspace/abs"),
    )
    .await;
    // The destination's directory is a symlink to the host path: resolved inside the
    // sandbox, where that path does not exist.
    let refused = tus
        .request(
            reqwest::Method::POST,
            &format!("/v1/sandboxes/{id}/uploads"),
        )
        .header("Upload-Length", "5")
        .header(
            "Upload-Metadata",
            format!("path {}", b64("/workspace/abs/secret/x")),
        )
        .send()
        .await
        .unwrap();
    assert!(
        matches!(refused.status().as_u16(), 404 | 409),
        "{}",
        refused.status()
    );
    // The destination itself becomes a symlink to the host file mid-upload: the rename
    // replaces the link, never writes through it.
    let location = tus.create(5, &[("path", "/workspace/d/f")]).await;
    sh(
        &daemon.client(),
        &id,
        &format!("ln -s {host}/secret /workspace/d/f"),
    )
    .await;
    assert_eq!(tus.patch(&location, 0, b"pwned", None).await.status(), 204);
    sentinel.assert_untouched();
    let seen = sh(
        &daemon.client(),
        &id,
        "cat /workspace/d/f; ls -A /workspace/d",
    )
    .await;
    assert_eq!(seen.stdout, "pwnedf\n");
}

/// A kill between saving "all bytes in" and committing the file leaves a complete record
/// beside its partial file. The next HEAD commits it, so a client told "complete" finds
/// its file. The crash is staged by editing the record while the daemon is down.
#[tokio::test]
async fn an_upload_complete_at_the_crash_is_committed_after_restart() {
    let mut daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let tus = Tus::new(&daemon, &id);
    let location = tus.create(8, &[("path", "/workspace/stranded")]).await;
    assert_eq!(tus.patch(&location, 0, b"abcd", None).await.status(), 204);
    daemon.kill9();

    let storage = daemon.home().join("sandboxes").join(&id);
    let uploads = storage.join("uploads");
    let record_file = std::fs::read_dir(&uploads)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record_file).unwrap()).unwrap();
    record["offset"] = json!(8);
    std::fs::write(&record_file, record.to_string()).unwrap();
    let partial = find_named(&storage.join("data"), record["partial"].as_str().unwrap());
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(partial)
        .unwrap();
    file.write_all(b"efgh").unwrap();

    daemon.restart();
    let tus = Tus::new(&daemon, &id);
    assert_eq!(tus.offset(&location).await, Some(8), "reported complete");
    let files = Files::new(&daemon, &id);
    assert_eq!(files.bytes("/workspace/stranded").await, b"abcdefgh");
    assert_eq!(tus.offset(&location).await, None, "and then over");
}

fn find_named(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.file_name() == name {
                return entry.path();
            }
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
        }
    }
    panic!("{name} not found below {}", dir.display())
}
