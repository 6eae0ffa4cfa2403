//! Crash safety: `kill -9` of the daemon at a random moment while 25 uploads of every kind
//! (plain PUT, tus, archive, batch) and three sandbox creations are in flight, round after
//! round. After each restart:
//! - every file holds its old or its new content by sha256, and the new one wherever the
//!   daemon had answered success;
//! - every tus upload resumes from the offset the daemon reports and finishes;
//! - the sandboxes are back and work, the old daemon's processes are gone;
//! - no temp file, staging directory or orphan partial upload remains.
//!
//! At the end, deleting everything leaves the host as it was before the first sandbox.
//! `AIRLOCK_CRASH_ROUNDS` sets the rounds (4 by default, 100 uploads of each kind);
//! `AIRLOCK_CRASH_SEED` replays a run.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use airlock_api::{CreateSandbox, SandboxState};
use common::census::census;
use common::files::{Files, random, sha_hex};
use common::tus::{Tus, b64};
use common::{Daemon, alive, children_of, sh};
use futures_util::StreamExt;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

const PER_KIND: usize = 25;
const CREATES: usize = 3;
/// Files per archive and per batch request.
const NAMES: [&str; 3] = ["a", "b", "c"];
/// tus uploads go in chunks of this size.
const TUS_CHUNK: usize = 256 << 10;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Plain,
    Tus,
    Archive,
    Batch,
}

const KINDS: [Kind; 4] = [Kind::Plain, Kind::Tus, Kind::Archive, Kind::Batch];

/// One file's content before the round and the content the round tries to write.
#[derive(Clone)]
struct Versions {
    path: String,
    old: Vec<u8>,
    new: Vec<u8>,
}

/// One upload of the round: a single file (plain, tus) or three (archive, batch).
#[derive(Clone)]
struct Upload {
    kind: Kind,
    dir: String,
    files: Vec<Versions>,
}

/// What the client heard back before the kill.
#[derive(Debug, Default)]
struct Heard {
    /// Paths the daemon reported written.
    acked: HashSet<String>,
    /// Where a tus upload lives, once created.
    location: Option<String>,
}

#[derive(Debug, Default)]
struct Tally {
    uploads: usize,
    files_acked: usize,
    files_new_unacked: usize,
    files_old: usize,
    tus_resumed: usize,
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test]
async fn kill_9_mid_upload_loses_nothing_and_leaves_nothing() {
    let rounds = env_or("AIRLOCK_CRASH_ROUNDS", 4) as usize;
    let seed = env_or("AIRLOCK_CRASH_SEED", {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.unwrap().as_nanos() as u64 | 1
    });
    eprintln!("crash suite: {rounds} rounds, AIRLOCK_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let mut daemon = Daemon::start();
    let warm = daemon.client().create(&CreateSandbox::default()).await;
    daemon.client().delete(&warm.unwrap().id).await.unwrap();
    let before = census(&daemon);

    let id = daemon
        .client()
        .create(&CreateSandbox::default())
        .await
        .unwrap()
        .id;
    sh(&daemon.client(), &id, "echo alive > /workspace/marker").await;
    let mut tallies: Vec<(Kind, Tally)> = KINDS.iter().map(|k| (*k, Tally::default())).collect();
    let (mut creates_acked, mut creates_unacked_kept, mut creates_gone) = (0, 0, 0);
    let mut kills = Vec::new();
    for round in 0..rounds {
        let uploads = plan(&mut rng);
        prepare(&daemon, &id, &uploads).await;
        let before_ids: HashSet<String> = ids(&daemon).await;
        let old_processes = children_of(daemon.pid());

        let mut tasks = Vec::new();
        for upload in &uploads {
            let (url, token, id, upload) = (
                daemon.url.clone(),
                daemon.token.clone(),
                id.clone(),
                upload.clone(),
            );
            tasks.push(tokio::spawn(async move {
                send(&url, &token, &id, &upload).await
            }));
        }
        let creates: Vec<_> = (0..CREATES)
            .map(|_| {
                let client = daemon.client();
                tokio::spawn(async move {
                    client
                        .create(&CreateSandbox::default())
                        .await
                        .ok()
                        .map(|s| s.id)
                })
            })
            .collect();
        let kill_at = rng.below(400);
        kills.push(kill_at);
        tokio::time::sleep(Duration::from_millis(kill_at)).await;
        daemon.kill9();
        let mut heard = Vec::new();
        for task in tasks {
            heard.push(task.await.unwrap());
        }
        let mut acked_creates = Vec::new();
        for task in creates {
            acked_creates.extend(task.await.unwrap());
        }

        daemon.restart();
        for pid in &old_processes {
            assert!(
                !alive(*pid),
                "round {round}: old sandbox process {pid} is gone"
            );
        }
        let client = daemon.client();
        let marker = sh(&client, &id, "cat /workspace/marker").await;
        assert_eq!(
            marker.stdout, "alive\n",
            "round {round}: the sandbox is back"
        );
        for (upload, heard) in uploads.iter().zip(&heard) {
            let tally = &mut tallies
                .iter_mut()
                .find(|(k, _)| *k == upload.kind)
                .unwrap()
                .1;
            tally.uploads += 1;
            if upload.kind == Kind::Tus {
                finish_tus(&daemon, &id, upload, heard, tally).await;
            }
            check_files(&daemon, &id, upload, heard, tally).await;
        }

        // Sandboxes whose creation the kill interrupted: each is gone, or back and usable;
        // every one the daemon confirmed is back.
        let mut made = Vec::new();
        for sandbox in client.list().await.unwrap() {
            if before_ids.contains(&sandbox.id) {
                continue;
            }
            made.push(sandbox.id.clone());
            if acked_creates.contains(&sandbox.id) {
                creates_acked += 1;
            } else {
                creates_unacked_kept += 1;
            }
            if sandbox.state != SandboxState::Running {
                client.start(&sandbox.id).await.unwrap();
            }
            let out = sh(&client, &sandbox.id, "echo ok").await;
            assert_eq!(out.stdout, "ok\n", "round {round}: {} works", sandbox.id);
            client.delete(&sandbox.id).await.unwrap();
        }
        for acked in &acked_creates {
            assert!(
                made.contains(acked),
                "round {round}: acknowledged sandbox {acked} came back"
            );
        }
        creates_gone += CREATES - made.len();
        assert_no_leftovers(&daemon, &id, round).await;
    }

    daemon.client().delete(&id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while census(&daemon) != before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(census(&daemon), before, "nothing leaked");
    eprintln!("kills at (ms after launch): {kills:?}");
    for (kind, t) in &tallies {
        eprintln!(
            "{kind:?}: {} uploads; files acknowledged and new {}, unacknowledged but new {}, \
             old {}; tus resumed after restart {}",
            t.uploads, t.files_acked, t.files_new_unacked, t.files_old, t.tus_resumed
        );
    }
    eprintln!(
        "creates: {} acknowledged and back, {} unacknowledged but usable, {} never made",
        creates_acked, creates_unacked_kept, creates_gone
    );
}

/// This round's uploads: sizes vary so kills land at every stage of a request.
fn plan(rng: &mut Rng) -> Vec<Upload> {
    let mut uploads = Vec::new();
    for kind in KINDS {
        for i in 0..PER_KIND {
            let dir = format!("/workspace/crash/{kind:?}/{i}");
            let (names, max): (&[&str], u64) = match kind {
                Kind::Plain | Kind::Tus => (&["f"], 1536 << 10),
                Kind::Archive | Kind::Batch => (&NAMES, 192 << 10),
            };
            let files = names
                .iter()
                .map(|name| Versions {
                    path: format!("{dir}/{name}"),
                    old: random(rng.below(max) as usize, rng.below(u64::MAX)),
                    new: random(1 + rng.below(max) as usize, rng.below(u64::MAX)),
                })
                .collect();
            uploads.push(Upload { kind, dir, files });
        }
    }
    uploads
}

/// Writes every file's old content, in one batch.
async fn prepare(daemon: &Daemon, id: &str, uploads: &[Upload]) {
    let mut form = Form::new();
    for file in uploads.iter().flat_map(|u| &u.files) {
        form = form.part(
            "f",
            Part::bytes(file.old.clone()).file_name(file.path.clone()),
        );
    }
    let files = Files::new(daemon, id);
    let response = files
        .http
        .post(files.url("/batch", &[("parents", "true")]))
        .bearer_auth(&files.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["failed"], 0, "{body}");
}

/// A body that trickles out in 64 KiB pieces, so that a kill lands mid-stream.
fn trickle(data: Vec<u8>) -> reqwest::Body {
    let pieces: Vec<bytes::Bytes> = data
        .chunks(64 << 10)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let stream = futures_util::stream::iter(pieces).then(|piece| async move {
        tokio::time::sleep(Duration::from_millis(2)).await;
        Ok::<_, std::io::Error>(piece)
    });
    reqwest::Body::wrap_stream(stream)
}

/// Sends one upload; whatever the kill does to it, reports what the daemon confirmed.
async fn send(url: &str, token: &str, id: &str, upload: &Upload) -> Heard {
    let http = reqwest::Client::new();
    let base = format!("{url}/v1/sandboxes/{id}");
    let mut heard = Heard::default();
    let file = &upload.files[0];
    match upload.kind {
        Kind::Plain => {
            let response = http
                .put(format!("{base}/files/content"))
                .query(&[("path", file.path.as_str())])
                .bearer_auth(token)
                .body(trickle(file.new.clone()))
                .send()
                .await;
            if response.is_ok_and(|r| r.status().is_success()) {
                heard.acked.insert(file.path.clone());
            }
        }
        Kind::Archive => {
            let response = http
                .put(format!("{base}/files/archive"))
                .query(&[("path", upload.dir.as_str())])
                .bearer_auth(token)
                .body(trickle(tar_of(&upload.files)))
                .send()
                .await;
            if response.is_ok_and(|r| r.status().is_success()) {
                heard
                    .acked
                    .extend(upload.files.iter().map(|f| f.path.clone()));
            }
        }
        Kind::Batch => {
            let mut form = Form::new();
            for file in &upload.files {
                let body = trickle(file.new.clone());
                form = form.part("f", Part::stream(body).file_name(file.path.clone()));
            }
            let response = http
                .post(format!("{base}/files/batch"))
                .bearer_auth(token)
                .multipart(form)
                .send()
                .await;
            if let Ok(response) = response
                && let Ok(body) = response.json::<Value>().await
            {
                for item in body["results"].as_array().into_iter().flatten() {
                    if item.get("result").is_some() {
                        heard
                            .acked
                            .insert(item["path"].as_str().unwrap().to_owned());
                    }
                }
            }
        }
        Kind::Tus => {
            let tus = Tus {
                http,
                daemon_url: url.to_owned(),
                id: id.to_owned(),
                token: token.to_owned(),
            };
            heard.location = tus_create(&tus, file).await;
            if let Some(location) = &heard.location
                && tus_push(&tus, location, 0, &file.new).await
            {
                heard.acked.insert(file.path.clone());
            }
        }
    }
    heard
}

/// Creates a tus upload for `file`; None when the daemon did not confirm it.
async fn tus_create(tus: &Tus, file: &Versions) -> Option<String> {
    let response = tus
        .request(
            reqwest::Method::POST,
            &format!("/v1/sandboxes/{}/uploads", tus.id),
        )
        .header("Upload-Length", file.new.len().to_string())
        .header("Upload-Metadata", format!("path {}", b64(&file.path)))
        .send()
        .await
        .ok()?;
    (response.status() == 201).then(|| response.headers()["location"].to_str().unwrap().into())
}

/// Sends `data[offset..]` in chunks; true when the last chunk was confirmed.
async fn tus_push(tus: &Tus, location: &str, mut offset: usize, data: &[u8]) -> bool {
    while offset < data.len() {
        let end = (offset + TUS_CHUNK).min(data.len());
        let response = tus
            .request(reqwest::Method::PATCH, location)
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset.to_string())
            .body(data[offset..end].to_vec())
            .send()
            .await;
        match response {
            Ok(r) if r.status() == 204 => offset = end,
            _ => return false,
        }
    }
    true
}

/// A tus upload the kill interrupted resumes from where the daemon stands and finishes.
async fn finish_tus(daemon: &Daemon, id: &str, upload: &Upload, heard: &Heard, tally: &mut Tally) {
    let Some(location) = &heard.location else {
        return;
    };
    let tus = Tus::new(daemon, id);
    let file = &upload.files[0];
    if let Some(offset) = tus.offset(location).await
        && (offset as usize) < file.new.len()
    {
        assert!(
            tus_push(&tus, location, offset as usize, &file.new).await,
            "{}: resumed at {offset}",
            file.path
        );
        tally.tus_resumed += 1;
    }
}

/// Every file of an upload is old or new by sha256, new where acknowledged, and new for
/// every tus upload that was created.
async fn check_files(daemon: &Daemon, id: &str, upload: &Upload, heard: &Heard, tally: &mut Tally) {
    let files = Files::new(daemon, id);
    for file in &upload.files {
        let got = sha_hex(&files.bytes(&file.path).await);
        let (old, new) = (sha_hex(&file.old), sha_hex(&file.new));
        let must_be_new = heard.acked.contains(&file.path) || heard.location.is_some();
        if got == new {
            if heard.acked.contains(&file.path) {
                tally.files_acked += 1;
            } else {
                tally.files_new_unacked += 1;
            }
        } else if got == old && !must_be_new {
            tally.files_old += 1;
        } else {
            panic!(
                "{:?} {}: sha256 {got} is neither old {old} nor new {new} (acked: {}, tus \
                 created: {})",
                upload.kind,
                file.path,
                heard.acked.contains(&file.path),
                heard.location.is_some()
            );
        }
    }
}

fn tar_of(files: &[Versions]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for file in files {
        let name = Path::new(&file.path).file_name().unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(file.new.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, name, file.new.as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap()
}

async fn ids(daemon: &Daemon) -> HashSet<String> {
    let list = daemon.client().list().await.unwrap();
    list.into_iter().map(|s| s.id).collect()
}

/// The sweep that follows a restart leaves no temp file, staging directory or partial
/// upload that no record names. It runs in the background, so this waits a little.
async fn assert_no_leftovers(daemon: &Daemon, id: &str, round: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let found = leftovers(daemon, id);
        if found.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "round {round}: leftovers remain: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn leftovers(daemon: &Daemon, id: &str) -> Vec<PathBuf> {
    let home = daemon.home();
    let records: HashSet<String> =
        std::fs::read_dir(home.join("sandboxes").join(id).join("uploads"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<Value>(&b).ok())
            .filter_map(|r| r["partial"].as_str().map(str::to_owned))
            .collect();
    // The sandbox's files as the daemon sees them, through its own mount namespace.
    let view = PathBuf::from(format!("/proc/{}/root", daemon.pid()))
        .join(home.strip_prefix("/").unwrap())
        .join("views")
        .join(id)
        .join("workspace/crash");
    assert!(view.is_dir(), "{} is visible to the test", view.display());
    let mut found = Vec::new();
    let mut stack = vec![view];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let half_made = name.starts_with(".airlock-tmp-")
                || name.starts_with(".airlock-unpack-")
                || (name.starts_with(".airlock-upload-") && !records.contains(&name));
            if half_made {
                found.push(entry.path());
            } else if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
        }
    }
    found
}
