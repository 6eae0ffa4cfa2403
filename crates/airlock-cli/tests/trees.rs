//! Directory trees through `/files/archive`: a faithful round trip of 10,000 files with
//! modes, mtimes, symlinks, empty directories, unicode and non-UTF-8 names; zstd both
//! ways; hostile archives against a host sentinel; quota.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read as _;
use std::os::unix::ffi::OsStrExt;

use common::files::{Files, HostSentinel, sandbox_with, sha_hex};
use common::{Daemon, sh};
use serde_json::{Value, json};

/// What a tar entry must keep: kind, mode, mtime, content digest, link target.
type Described = BTreeMap<Vec<u8>, (char, u32, u64, String, Vec<u8>)>;

fn describe(archive: &[u8]) -> Described {
    let mut out = BTreeMap::new();
    let mut reader = tar::Archive::new(archive);
    for entry in reader.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path_bytes().trim_ascii_end().to_vec();
        let name = name.strip_suffix(b"/").unwrap_or(&name).to_vec();
        let kind = match entry.header().entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            _ => 'f',
        };
        let mode = if kind == 'l' {
            0
        } else {
            entry.header().mode().unwrap()
        };
        let link = entry
            .link_name_bytes()
            .map(|l| l.to_vec())
            .unwrap_or_default();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
        let mtime = entry.header().mtime().unwrap();
        out.insert(name, (kind, mode, mtime, sha_hex(&content), link));
    }
    out
}

/// The test's own tree, built as a tar by the test: 10,000 small files in 100
/// directories and every special case.
fn source_tree() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |name: &[u8], kind: tar::EntryType, mode: u32, data: &[u8], link: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_mtime(1_600_000_000 + name.len() as u64);
        header.set_size(data.len() as u64);
        let path = OsStr::from_bytes(name);
        if kind == tar::EntryType::Symlink || kind == tar::EntryType::Link {
            builder
                .append_link(&mut header, path, OsStr::from_bytes(link))
                .unwrap();
        } else {
            builder.append_data(&mut header, path, data).unwrap();
        }
    };
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    for d in 0..100 {
        add(
            format!("many/d{d:02}").as_bytes(),
            Directory,
            0o755,
            b"",
            b"",
        );
        for f in 0..100 {
            let body = format!("file {d}/{f}\n").repeat(1 + f % 7);
            let name = format!("many/d{d:02}/f{f:03}");
            add(name.as_bytes(), Regular, 0o644, body.as_bytes(), b"");
        }
    }
    add(b"run.sh", Regular, 0o750, b"#!/bin/sh\necho hi\n", b"");
    add(b"secret", Regular, 0o600, b"only me", b"");
    add(b"private", Directory, 0o700, b"", b"");
    add(b"empty", Directory, 0o755, b"", b"");
    add(b"deep/a/b/c", Directory, 0o755, b"", b"");
    add(
        "ünïcødé/日本/ファイル.txt".as_bytes(),
        Regular,
        0o644,
        b"unicode",
        b"",
    );
    add(b"raw-\xff\xfe-name", Regular, 0o644, b"not utf-8", b"");
    add(b"abs-link", Symlink, 0o777, b"", b"/etc/hostname");
    add(b"rel-link", Symlink, 0o777, b"", b"./run.sh");
    add(b"dangling", Symlink, 0o777, b"", b"nowhere");
    add(b"hard", Link, 0o750, b"", b"run.sh");
    builder.into_inner().unwrap()
}

impl Files {
    async fn put_archive(&self, query: &[(&str, &str)], body: Vec<u8>) -> (u16, Value) {
        self.send(reqwest::Method::PUT, "/archive", query, body)
            .await
    }

    async fn get_archive(&self, query: &[(&str, &str)]) -> Vec<u8> {
        let response = self
            .http
            .get(self.url("/archive", query))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap().to_vec()
    }
}

#[tokio::test]
async fn ten_thousand_files_round_trip_with_everything_kept() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let files = Files::new(&daemon, &id);
    let source = source_tree();
    let (status, report) = files
        .put_archive(&[("path", "/workspace/tree")], source.clone())
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["files"], 10_000 + 4, "{report}");
    assert_eq!(
        (report["symlinks"].as_u64(), report["hardlinks"].as_u64()),
        (Some(3), Some(1))
    );

    let back = files.get_archive(&[("path", "/workspace/tree")]).await;
    let mut expected = describe(&source);
    // A hard link comes back as a file of its own with the same content.
    let original = expected[b"run.sh".as_slice()].clone();
    expected.insert(
        b"hard".to_vec(),
        (original.0, original.1, original.2, original.3, Vec::new()),
    );
    // Directories made only as parents carry the time they were made; compare the rest.
    let got = describe(&back);
    for name in [
        b"deep".as_slice(),
        b"deep/a",
        b"deep/a/b",
        "ünïcødé".as_bytes(),
        "ünïcødé/日本".as_bytes(),
        b"many",
    ] {
        assert_eq!(got[name].0, 'd', "{:?}", String::from_utf8_lossy(name));
    }
    let got: Described = got
        .into_iter()
        .filter(|(name, _)| expected.contains_key(name))
        .collect();
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);

    // zstd down gives the same tree, and zstd up (told by its magic bytes) too.
    let zst = files
        .get_archive(&[("path", "/workspace/tree"), ("format", "tar.zst")])
        .await;
    let unzstd = zstd::decode_all(zst.as_slice()).unwrap();
    assert_eq!(describe(&unzstd), describe(&back));
    let (status, report) = files.put_archive(&[("path", "/workspace/copy")], zst).await;
    assert_eq!(status, 200, "{report}");
    let copy = files.get_archive(&[("path", "/workspace/copy")]).await;
    assert_eq!(describe(&copy), describe(&back));

    // Inside the sandbox: owned by the sandbox user, names intact.
    let seen = sh(
        &daemon.client(),
        &id,
        "cd /workspace/tree && stat -c '%u %a' run.sh && ls | grep -c '^raw-' && find many -type f | wc -l && cat rel-link && find . ! -user 1000 -o ! -group 1000 | wc -l",
    )
    .await;
    assert_eq!(
        seen.stdout, "1000 750\n1\n10000\n#!/bin/sh\necho hi\n0\n",
        "{}",
        seen.stderr
    );
}

#[tokio::test]
async fn mtimes_false_leaves_every_entry_at_the_time_it_was_written() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let files = Files::new(&daemon, &id);
    let source = source_tree();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (status, report) = files
        .put_archive(
            &[("path", "/workspace/now"), ("mtimes", "false")],
            source.clone(),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["files"], 10_000 + 4, "{report}");

    // Kinds, modes, contents and link targets as sent; every mtime the upload's own.
    let sent = describe(&source);
    let back = describe(&files.get_archive(&[("path", "/workspace/now")]).await);
    for (name, (kind, mode, _, digest, link)) in &sent {
        let shown = String::from_utf8_lossy(name);
        let (got_kind, got_mode, got_mtime, got_digest, got_link) = &back[name];
        if name.as_slice() == b"hard" {
            // A hard link comes back as a file of its own.
            assert_eq!((got_kind, got_mode), (kind, mode), "{shown}");
        } else {
            assert_eq!(
                (got_kind, got_mode, got_digest),
                (kind, mode, digest),
                "{shown}"
            );
            assert_eq!(got_link, link, "{shown}");
        }
        assert!(
            *got_mtime + 1 >= before,
            "{shown}: mtime {got_mtime} before {before}"
        );
    }

    // Owned by the sandbox's user, as with the archive's mtimes.
    let seen = sh(
        &daemon.client(),
        &id,
        "cd /workspace/now && find . ! -user 1000 -o ! -group 1000 | wc -l",
    )
    .await;
    assert_eq!(seen.stdout, "0\n", "{}", seen.stderr);

    // A value that is not a boolean is refused, and nothing lands.
    let (status, report) = files
        .put_archive(&[("path", "/workspace/bad"), ("mtimes", "maybe")], source)
        .await;
    assert_eq!(status, 400, "{report}");
    let seen = sh(&daemon.client(), &id, "ls /workspace").await;
    assert!(!seen.stdout.contains("bad"), "{}", seen.stdout);
}

/// Name, kind, link target, content.
type RawEntry<'a> = (&'a [u8], tar::EntryType, &'a [u8], &'a [u8]);

/// One tar entry written byte for byte, so names can be as hostile as an attacker's.
fn raw_entry(out: &mut Vec<u8>, name: &[u8], kind: tar::EntryType, link: &[u8], data: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

#[tokio::test]
async fn hostile_archives_change_nothing() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({"limits": {"disk_mb": 16}})).await;
    let files = Files::new(&daemon, &id);
    // A host sentinel at the absolute path the archives aim at.
    let sentinel = HostSentinel::new();
    let host = sentinel.host.clone();
    let host_secret = format!("{host}/secret");
    let dotdot = format!("../../../../../../..{host_secret}");
    use tar::EntryType::{Char, Link, Regular, Symlink};
    let attacks: Vec<(&str, Vec<RawEntry>)> = vec![
        (
            "dot-dot name",
            vec![
                (b"ok", Regular, b"", b"x"),
                (dotdot.as_bytes(), Regular, b"", b"pwned"),
            ],
        ),
        (
            "file through a symlink",
            vec![
                (b"esc", Symlink, host.as_bytes(), b""),
                (b"esc/secret", Regular, b"", b"pwned"),
            ],
        ),
        (
            "file through a climbing symlink",
            vec![
                (b"up", Symlink, b"../../../../../../..", b""),
                (b"up/etc/x", Regular, b"", b"pwned"),
            ],
        ),
        (
            "hard link to the host path",
            vec![(b"grab", Link, host_secret.as_bytes(), b"")],
        ),
        (
            "hard link climbing out",
            vec![(b"grab", Link, dotdot.as_bytes(), b"")],
        ),
    ];
    for (what, entries) in attacks {
        let mut archive = Vec::new();
        for (name, kind, link, data) in entries {
            raw_entry(&mut archive, name, kind, link, data);
        }
        archive.resize(archive.len() + 1024, 0);
        let (status, body) = files
            .put_archive(&[("path", "/workspace/t")], archive)
            .await;
        assert_eq!(status, 422, "{what}: {body}");
        assert_eq!(body["error"]["code"], "bad_archive", "{what}");
    }
    sentinel.assert_untouched();
    let listing = sh(&daemon.client(), &id, "ls -A /workspace/t").await;
    assert_eq!(listing.stdout, "", "nothing partial, no staging left");

    // A symlink the sandbox planted in the target is replaced, never followed.
    sh(
        &daemon.client(),
        &id,
        &format!("mkdir -p /workspace/p && ln -s {host} /workspace/p/esc"),
    )
    .await;
    let mut archive = Vec::new();
    raw_entry(&mut archive, b"esc/secret", Regular, b"", b"inside");
    raw_entry(&mut archive, b"dev", Char, b"", b"");
    archive.resize(archive.len() + 1024, 0);
    let (status, body) = files
        .put_archive(&[("path", "/workspace/p")], archive)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["skipped"][0]["reason"], "device nodes are refused");
    sentinel.assert_untouched();
    assert_eq!(files.bytes("/workspace/p/esc/secret").await, b"inside");

    // A zstd frame that asks for a 128 MiB window (`--long`) is refused, not allocated.
    let mut small = Vec::new();
    raw_entry(&mut small, b"w", Regular, b"", b"window");
    small.resize(small.len() + 1024, 0);
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    encoder.window_log(27).unwrap();
    encoder.long_distance_matching(true).unwrap();
    std::io::Write::write_all(&mut encoder, &small).unwrap();
    let (status, body) = files
        .put_archive(&[("path", "/workspace/z")], encoder.finish().unwrap())
        .await;
    assert_eq!(status, 422, "{body}");

    // A zstd bomb: about 130 KB (32 frames of 4 KB) that inflate to a 4 GiB file. It is read as a stream, so the
    // byte limit (413) or the disk quota (507) stops it, and nothing is left.
    let bomb = zstd_bomb(4 << 30);
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let (status, body) = files
        .put_archive(
            &[("path", "/workspace/b"), ("max_bytes", "1048576")],
            bomb.clone(),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("too_large"))
    );
    let (status, body) = files.put_archive(&[("path", "/workspace/b")], bomb).await;
    assert_eq!(status, 507, "{body}");
    let left = sh(&daemon.client(), &id, "ls -A /workspace/b").await;
    assert_eq!(left.stdout, "", "nothing partial, no staging left");

    // Truncated, garbage and over-limit archives.
    let mut whole = Vec::new();
    raw_entry(&mut whole, b"a", Regular, b"", &[1u8; 3000]);
    raw_entry(&mut whole, b"b", Regular, b"", &[2u8; 3000]);
    whole.resize(whole.len() + 1024, 0);
    let (status, _) = files
        .put_archive(&[("path", "/workspace/t")], whole[..1024].to_vec())
        .await;
    assert_eq!(status, 422, "truncated");
    let (status, _) = files
        .put_archive(&[("path", "/workspace/t")], vec![0x41; 4096])
        .await;
    assert_eq!(status, 422, "garbage");
    let (status, body) = files
        .put_archive(
            &[("path", "/workspace/t"), ("max_entries", "1")],
            whole.clone(),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("too_large"))
    );

    // Over the disk quota: 507, nothing partial, and the sandbox keeps working.
    let mut big = Vec::new();
    for name in [b"one".as_slice(), b"two", b"three"] {
        raw_entry(&mut big, name, Regular, b"", &vec![7u8; 8 << 20]);
    }
    big.resize(big.len() + 1024, 0);
    let (status, body) = files.put_archive(&[("path", "/workspace/q")], big).await;
    assert_eq!(status, 507, "{body}");
    let left = sh(
        &daemon.client(),
        &id,
        "ls -A /workspace/q; echo ok > /workspace/after && cat /workspace/after",
    )
    .await;
    assert_eq!(left.stdout, "ok\n", "{}", left.stderr);
    let (status, _) = files.put_archive(&[("path", "/workspace/t")], whole).await;
    assert_eq!(status, 200);
}

/// A tar.zst whose single file inflates to `size` zero bytes: one frame for the header,
/// then the same 128 MiB frame of zeros repeated (zstd readers run frames together).
fn zstd_bomb(size: u64) -> Vec<u8> {
    const BLOCK: u64 = 128 << 20;
    let mut header = tar::Header::new_gnu();
    header.set_path("zeros").unwrap();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    let mut out = zstd::encode_all(header.as_bytes().as_slice(), 1).unwrap();
    let zeros = zstd::encode_all(std::io::repeat(0).take(BLOCK), 19).unwrap();
    for _ in 0..size / BLOCK {
        out.extend_from_slice(&zeros);
    }
    out.extend_from_slice(&zstd::encode_all(&[0u8; 1024][..], 1).unwrap());
    out
}

#[tokio::test]
async fn chosen_paths_come_back_in_one_stream() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, serde_json::json!({})).await;
    let setup = "mkdir -p /workspace/t/sub/deep && echo a > /workspace/t/a && echo b > /workspace/t/sub/b \
                 && echo c > /workspace/t/sub/deep/c && ln -s a /workspace/t/link";
    assert_eq!(sh(&daemon.client(), &id, setup).await.exit_code, 0);
    let files = Files::new(&daemon, &id);
    let ask = |paths: serde_json::Value| {
        files
            .http
            .post(files.url("/archive", &[]))
            .bearer_auth(&files.token)
            .json(&serde_json::json!({"path": "/workspace/t", "paths": paths}))
            .send()
    };
    let answer = ask(serde_json::json!(["sub/b", "link", "sub/deep", "gone"]))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let tar = answer.bytes().await.unwrap();
    let names: Vec<String> = tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    // A directory comes alone, without what is in it; what is gone is left out.
    assert_eq!(names, ["sub/b", "link", "sub/deep"]);
    for bad in [serde_json::json!(["../etc/passwd"]), serde_json::json!([])] {
        assert_eq!(ask(bad).await.unwrap().status(), 400);
    }
}

/// A daemon that answers `stat` with a directory and then sends that directory's archive
/// cut off between two entries: one whole file, then the connection closed with the
/// chunked body unfinished. A tar cut there reads like a whole one.
fn daemon_breaking_off_an_archive() -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut first_entry = Vec::new();
    let mut header = tar::Header::new_ustar();
    header.set_path("kept.txt").unwrap();
    header.set_size(5);
    header.set_mode(0o644);
    header.set_cksum();
    first_entry.extend_from_slice(header.as_bytes());
    first_entry.extend_from_slice(b"hello");
    first_entry.resize(1024, 0);
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            loop {
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                    break;
                }
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 2 {
                    line.clear();
                }
                if request_line.contains("/files/stat") {
                    let entry = json!({"name": "tree", "path": "/workspace/tree", "type": "dir",
                        "size": 0, "mode": "0755", "mtime": "2026-01-01T00:00:00Z", "uid": 0, "gid": 0});
                    let body = entry.to_string();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    stream.write_all(head.as_bytes()).unwrap();
                    stream.write_all(body.as_bytes()).unwrap();
                } else {
                    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/x-tar\r\ntransfer-encoding: chunked\r\n\r\n";
                    stream.write_all(head.as_bytes()).unwrap();
                    write!(stream, "{:x}\r\n", first_entry.len()).unwrap();
                    stream.write_all(&first_entry).unwrap();
                    stream.write_all(b"\r\n").unwrap();
                    // No last chunk: the body breaks off here.
                    break;
                }
            }
        }
    });
    url
}

#[test]
fn a_tree_download_that_breaks_off_leaves_nothing_behind() {
    let url = daemon_breaking_off_an_archive();
    let local = tempfile::tempdir().unwrap();
    let run = |dest: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(["cp", "-q", "sbx:/workspace/tree"])
            .arg(dest)
            .env("AIRLOCK_URL", &url)
            .env("AIRLOCK_TOKEN", "token")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    // Into a directory that does not exist yet: it is not left behind, empty or not.
    let fresh = local.path().join("fresh");
    let out = run(&fresh);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        !fresh.exists(),
        "a broken download left {}",
        fresh.display()
    );
    // Into one that exists: what was there stays, and nothing of the tree is added.
    let existing = local.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    std::fs::write(existing.join("mine.txt"), b"mine").unwrap();
    let out = run(&existing);
    assert!(!out.status.success(), "{out:?}");
    let names: Vec<_> = std::fs::read_dir(&existing)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        ["mine.txt"],
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
