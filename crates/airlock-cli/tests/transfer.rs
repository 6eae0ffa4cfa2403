//! `airlock cp`, `sync`, `fs`, `watch` and `create --upload` end to end, as a user runs
//! them: the real binary against a real daemon.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::files::{crc_hex, random, sha_hex};
use common::{Daemon, sandbox, sh};
use serde_json::Value;

/// A local tree with what `cp` must keep.
fn local_tree(at: &Path) {
    std::fs::create_dir_all(at.join("src/empty")).unwrap();
    std::fs::create_dir_all(at.join("ünï/日本")).unwrap();
    std::fs::write(at.join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(at.join("ünï/日本/f.txt"), "unicode").unwrap();
    std::fs::write(at.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(at.join("run.sh"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::write(at.join("blob.bin"), random(300_000, 3)).unwrap();
    std::fs::write(at.join("debug.log"), "noise").unwrap();
    symlink("run.sh", at.join("link")).unwrap();
}

fn ok(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// `find` output describing a tree: path, type, mode, size, link target, content digest.
fn describe(daemon: &Daemon, id: &str, dir: &str) -> String {
    let client = daemon.client();
    let line = format!(
        "cd {dir} && find . -mindepth 1 | sort | while read -r p; do stat -c '%n %F %a %s' \"$p\"; \
         [ -L \"$p\" ] && readlink \"$p\"; [ -f \"$p\" ] && [ ! -L \"$p\" ] && sha256sum < \"$p\"; done"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt.block_on(sh(&client, id, &line));
    assert_eq!(out.exit_code, 0, "{}", out.stderr);
    out.stdout
}

fn describe_local(dir: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(
            "find . -mindepth 1 | sort | while read -r p; do stat -c '%n %F %a %s' \"$p\"; \
             [ -L \"$p\" ] && readlink \"$p\"; [ -f \"$p\" ] && [ ! -L \"$p\" ] && sha256sum < \"$p\"; done",
        )
        .current_dir(dir)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn cp_round_trips_a_tree_with_docker_cp_rules() {
    let daemon = Daemon::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt.block_on(sandbox(&daemon.client())).id;
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("proj");
    local_tree(&tree);
    let tree_arg = tree.display().to_string();

    // A directory onto an existing directory lands inside it, minus the excluded log.
    let json = ok(&daemon.cli(&[
        "cp",
        &tree_arg,
        &format!("{id}:/workspace"),
        "--exclude",
        "*.log",
        "--json",
    ]));
    let summary: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(summary["destination"], "/workspace/proj");
    std::fs::remove_file(tree.join("debug.log")).unwrap();
    assert_eq!(
        describe(&daemon, &id, "/workspace/proj"),
        describe_local(&tree)
    );

    // --gitignore leaves out what the tree's .gitignore names.
    std::fs::write(tree.join(".gitignore"), "*.tmp\nbuild/\n").unwrap();
    std::fs::create_dir(tree.join("build")).unwrap();
    std::fs::write(tree.join("build/out.o"), "obj").unwrap();
    std::fs::write(tree.join("scratch.tmp"), "tmp").unwrap();
    ok(&daemon.cli(&[
        "cp",
        "--gitignore",
        &tree_arg,
        &format!("{id}:/workspace/ignored"),
    ]));
    let listed = rt.block_on(sh(&daemon.client(), &id, "cd /workspace/ignored && ls -A"));
    assert_eq!(
        listed.stdout,
        ".gitignore\nblob.bin\nlink\nrun.sh\nsrc\nünï\n"
    );
    std::fs::remove_dir_all(tree.join("build")).unwrap();
    std::fs::remove_file(tree.join("scratch.tmp")).unwrap();
    std::fs::remove_file(tree.join(".gitignore")).unwrap();

    // SRC/. copies the contents into DST, which is made.
    ok(&daemon.cli(&[
        "cp",
        &format!("{tree_arg}/."),
        &format!("{id}:/workspace/contents"),
    ]));
    assert_eq!(
        describe(&daemon, &id, "/workspace/contents"),
        describe_local(&tree)
    );

    // Back again: a missing local DST becomes the copy; an existing one gets it inside.
    let back = work.path().join("back");
    ok(&daemon.cli(&[
        "cp",
        &format!("{id}:/workspace/proj"),
        &back.display().to_string(),
    ]));
    assert_eq!(describe_local(&back), describe_local(&tree));
    std::fs::create_dir(work.path().join("into")).unwrap();
    ok(&daemon.cli(&[
        "cp",
        &format!("{id}:/workspace/proj"),
        &work.path().join("into").display().to_string(),
    ]));
    assert_eq!(
        describe_local(&work.path().join("into/proj")),
        describe_local(&tree)
    );

    // Single files both ways; -a keeps the mtime.
    let old = filetime(&tree.join("run.sh"), 1_600_000_000);
    ok(&daemon.cli(&[
        "cp",
        "-a",
        &tree.join("run.sh").display().to_string(),
        &format!("{id}:/workspace/"),
    ]));
    let stat = rt.block_on(sh(
        &daemon.client(),
        &id,
        "stat -c '%a %Y' /workspace/run.sh",
    ));
    assert_eq!(stat.stdout, format!("750 {old}\n"));
    let fetched = work.path().join("fetched.sh");
    ok(&daemon.cli(&[
        "cp",
        "-a",
        &format!("{id}:/workspace/run.sh"),
        &fetched.display().to_string(),
    ]));
    let meta = std::fs::metadata(&fetched).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.mtime()), (0o750, old));

    // Errors say what is wrong and exit non-zero.
    let missing = daemon.cli(&["cp", &format!("{id}:/workspace/nope"), "/tmp/x"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such file"));
    let both_local = daemon.cli(&["cp", "/tmp/a", "/tmp/b"]);
    assert!(!both_local.status.success());
}

fn filetime(path: &Path, secs: i64) -> i64 {
    let t = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = rustix::fs::Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(rustix::fs::CWD, path, &times, rustix::fs::AtFlags::empty()).unwrap();
    secs
}

#[test]
fn sync_sends_exactly_what_changed() {
    let daemon = Daemon::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt.block_on(sandbox(&daemon.client())).id;
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("repo");
    for d in 0..10 {
        std::fs::create_dir_all(tree.join(format!("d{d}"))).unwrap();
        for f in 0..20 {
            std::fs::write(tree.join(format!("d{d}/f{f}")), format!("{d}/{f}")).unwrap();
        }
    }
    let local = tree.display().to_string();
    let remote = format!("{id}:/workspace/repo");
    let first: Value =
        serde_json::from_str(&ok(&daemon.cli(&["sync", &local, &remote, "--json"]))).unwrap();
    assert_eq!(first["sent"], 200);
    let inodes = "find /workspace/repo -type f | sort | xargs stat -c '%n %i'";
    let before = rt.block_on(sh(&daemon.client(), &id, inodes)).stdout;

    std::fs::write(tree.join("d3/f7"), "changed").unwrap();
    let second: Value =
        serde_json::from_str(&ok(&daemon.cli(&["sync", &local, &remote, "--json"]))).unwrap();
    assert_eq!(
        (second["sent"].as_u64(), second["bytes"].as_u64()),
        (Some(1), Some(7))
    );
    let after = rt.block_on(sh(&daemon.client(), &id, inodes)).stdout;
    let rewritten: Vec<_> = before
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(
        rewritten.len(),
        1,
        "exactly one file rewritten: {rewritten:?}"
    );
    assert!(rewritten[0].0.starts_with("/workspace/repo/d3/f7 "));
    let third: Value =
        serde_json::from_str(&ok(&daemon.cli(&["sync", &local, &remote, "--json"]))).unwrap();
    assert_eq!(third["sent"], 0, "nothing left to send");

    // Same size, same mtime, other content: only --checksum sees it.
    let mtime = std::fs::metadata(tree.join("d2/f2")).unwrap().mtime();
    std::fs::write(tree.join("d2/f2"), "X/Y").unwrap();
    filetime(&tree.join("d2/f2"), mtime);
    let blind: Value =
        serde_json::from_str(&ok(&daemon.cli(&["sync", &local, &remote, "--json"]))).unwrap();
    assert_eq!(blind["sent"], 0);
    let checked: Value = serde_json::from_str(&ok(&daemon.cli(&[
        "sync",
        &local,
        &remote,
        "--checksum",
        "--json",
    ])))
    .unwrap();
    assert_eq!(checked["sent"], 1);

    // --delete removes what is gone locally; --back pulls what the sandbox made.
    std::fs::remove_dir_all(tree.join("d9")).unwrap();
    let pruned: Value = serde_json::from_str(&ok(
        &daemon.cli(&["sync", &local, &remote, "--delete", "--json"])
    ))
    .unwrap();
    assert_eq!(pruned["deleted"], 1);
    rt.block_on(sh(
        &daemon.client(),
        &id,
        "echo made > /workspace/repo/d0/new && rm /workspace/repo/d1/f1",
    ));
    ok(&daemon.cli(&["sync", &local, &remote, "--back", "--delete"]));
    assert_eq!(
        std::fs::read_to_string(tree.join("d0/new")).unwrap(),
        "made\n"
    );
    assert!(!tree.join("d1/f1").exists());
    assert_eq!(
        describe_local(&tree),
        describe(&daemon, &id, "/workspace/repo")
    );
}

/// A tree deeper than a listing used to go (64 levels): its bottom was resent on every
/// push and never pulled, and `--back --delete` removed it locally.
#[test]
fn sync_reaches_the_bottom_of_a_deep_tree() {
    let daemon = Daemon::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt.block_on(sandbox(&daemon.client())).id;
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("deep");
    let bottom = tree.join("d/".repeat(150));
    std::fs::create_dir_all(&bottom).unwrap();
    std::fs::write(bottom.join("leaf"), "leaf").unwrap();
    let local = tree.display().to_string();
    let remote = format!("{id}:/workspace/deep");
    let sync = |extra: &[&str]| -> Value {
        let mut args = vec!["sync", &local, &remote, "--json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&ok(&daemon.cli(&args))).unwrap()
    };
    assert_eq!(sync(&[])["sent"], 1);
    assert_eq!(sync(&[])["sent"], 0, "the bottom was sent again");

    let there = format!("/workspace/deep/{}", "d/".repeat(150));
    rt.block_on(sh(
        &daemon.client(),
        &id,
        &format!("echo made > {there}new && rm {there}leaf"),
    ));
    let pulled = sync(&["--back", "--delete"]);
    assert_eq!(
        (pulled["sent"].as_u64(), pulled["deleted"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        std::fs::read_to_string(bottom.join("new")).unwrap(),
        "made\n"
    );
    assert!(!bottom.join("leaf").exists());
    assert_eq!(sync(&["--back", "--delete"])["sent"], 0);
}

#[test]
fn an_interrupted_cp_resumes_where_it_stopped() {
    let daemon = Daemon::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt.block_on(sandbox(&daemon.client())).id;
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let big = work.path().join("big.bin");
    let data = random(256 << 20, 11);
    std::fs::write(&big, &data).unwrap();
    let dest = format!("{id}:/workspace/big.bin");
    let cp = |json: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_airlock"));
        command
            .args(["cp", &big.display().to_string(), &dest])
            .env("AIRLOCK_URL", &daemon.url)
            .env("AIRLOCK_TOKEN", &daemon.token)
            .env("AIRLOCK_STATE_DIR", &state)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if json {
            command.arg("--json");
        }
        command
    };
    // Kill the first copy once the daemon holds some of the file.
    let mut first = cp(false).spawn().unwrap();
    let started = Instant::now();
    loop {
        if common::tus::partial_size(&daemon, &id) > 16 << 20 {
            break;
        }
        assert!(
            first.try_wait().unwrap().is_none(),
            "the copy finished before it could be interrupted"
        );
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(2));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let second = cp(true).output().unwrap();
    let summary: Value = serde_json::from_str(&ok(&second)).unwrap();
    let resumed = summary["resumed_from"].as_u64().unwrap();
    assert!(
        resumed > 0 && resumed < data.len() as u64,
        "resumed from {resumed}"
    );
    assert_eq!(summary["crc64nvme"], crc_hex(&data));
    let check = rt.block_on(sh(
        &daemon.client(),
        &id,
        "sha256sum < /workspace/big.bin; ls -A /workspace",
    ));
    assert_eq!(check.stdout, format!("{}  -\nbig.bin\n", sha_hex(&data)));
}

#[test]
fn create_uploads_before_start_and_fs_and_watch_work() {
    let daemon = Daemon::start();
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("seed");
    local_tree(&tree);
    let config = work.path().join("app.conf");
    std::fs::write(&config, "pinned").unwrap();
    let id = ok(&daemon.cli(&[
        "create",
        "--upload",
        &format!("{}:/workspace/seed", tree.display()),
        "--file",
        &format!("{}:/etc/app.conf:ro", config.display()),
    ]))
    .trim()
    .to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = rt.block_on(daemon.client().get(&id)).unwrap().state;
    assert_eq!(serde_json::to_value(state).unwrap(), "running");
    assert_eq!(
        describe(&daemon, &id, "/workspace/seed"),
        describe_local(&tree)
    );
    let write = rt.block_on(sh(&daemon.client(), &id, "echo x > /etc/app.conf"));
    assert_ne!(write.exit_code, 0, "the injected file is read-only");

    // fs verbs.
    let target = |p: &str| format!("{id}:{p}");
    ok(&daemon.cli(&["fs", "mkdir", &target("/workspace/a/b"), "--mode", "0700"]));
    let stat: Value = serde_json::from_str(&ok(&daemon.cli(&[
        "fs",
        "stat",
        &target("/workspace/a/b"),
        "--json",
    ])))
    .unwrap();
    assert_eq!(
        (stat["type"].as_str(), stat["mode"].as_str()),
        (Some("dir"), Some("0700"))
    );
    assert_eq!(
        ok(&daemon.cli(&["fs", "cat", &target("/workspace/seed/src/main.rs")])),
        "fn main() {}\n"
    );
    ok(&daemon.cli(&["fs", "mv", &target("/workspace/a"), "/workspace/z"]));
    let listing: Value = serde_json::from_str(&ok(&daemon.cli(&[
        "fs",
        "ls",
        &target("/workspace"),
        "--json",
    ])))
    .unwrap();
    let names: Vec<_> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["seed", "z"]);
    ok(&daemon.cli(&["fs", "rm", "-r", &target("/workspace/z")]));
    let gone = daemon.cli(&["fs", "stat", &target("/workspace/z")]);
    assert!(!gone.status.success());

    // watch prints one event a line.
    let mut watch = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["watch", &target("/workspace"), "--recursive"])
        .env("AIRLOCK_URL", &daemon.url)
        .env("AIRLOCK_TOKEN", &daemon.token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(watch.stderr.take().unwrap());
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut ready).unwrap();
    assert!(ready.starts_with("watching"), "{ready}");
    rt.block_on(sh(
        &daemon.client(),
        &id,
        "mkdir -p /workspace/n/m && echo > /workspace/n/m/f",
    ));
    let mut stdout = std::io::BufReader::new(watch.stdout.take().unwrap());
    let mut lines = Vec::new();
    while !lines
        .iter()
        .any(|l: &String| l.trim() == "create /workspace/n/m/f")
    {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(!line.is_empty(), "watch ended early: {lines:?}");
        lines.push(line);
    }
    watch.kill().unwrap();
    watch.wait().unwrap();
    assert_eq!(lines[0].trim(), "create /workspace/n");
}
