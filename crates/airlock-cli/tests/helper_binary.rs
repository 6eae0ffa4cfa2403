//! Which binary runs the sandbox helpers: `airlock-helper` beside the daemon when it is
//! there and from the same build, the daemon's own binary otherwise, and commands run
//! either way.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Daemon, children_of, sandbox, sh};

/// The daemon's children (sandbox inits, exec helpers) and what binary each runs.
fn children_with_binaries(daemon: &Daemon) -> Vec<(i32, PathBuf, String)> {
    children_of(daemon.pid())
        .into_iter()
        .filter_map(|pid| {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            Some((
                pid,
                exe,
                String::from_utf8_lossy(&cmdline).replace('\0', " "),
            ))
        })
        .collect()
}

#[tokio::test]
async fn commands_run_from_the_small_helper_beside_the_daemon() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = sandbox(&client).await.id;
    let small = Path::new(env!("CARGO_BIN_EXE_airlock-helper"))
        .canonicalize()
        .unwrap();
    let running = {
        let client = client.clone();
        let id = id.clone();
        tokio::spawn(async move { sh(&client, &id, "sleep 2; echo done").await })
    };
    // The forker, the sandbox's init and the command's helper (both forked by the
    // forker, so their command lines are its own): all of them the small binary.
    let deadline = Instant::now() + Duration::from_secs(10);
    let children = loop {
        let children = children_with_binaries(&daemon);
        if children.len() >= 3 {
            break children;
        }
        assert!(
            Instant::now() < deadline,
            "no exec helper appeared: {children:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        children.iter().any(|(pid, _, _)| common::is_forker(*pid)),
        "{children:?}"
    );
    for (pid, exe, _) in &children {
        assert_eq!(exe, &small, "child {pid} runs {exe:?}");
    }
    assert_eq!(running.await.unwrap().stdout, "done\n");
}

#[tokio::test]
async fn a_helper_from_another_build_is_never_run() {
    // The daemon's binary beside an `airlock-helper` that is not its build's: `true`,
    // which would "run" every command by doing nothing, were it used.
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let binary = dir.path().join("airlock");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_airlock"), &binary).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_airlock"), &binary).unwrap();
    }
    std::fs::copy("/bin/true", dir.path().join("airlock-helper")).unwrap();
    let daemon = Daemon::start_binary(&binary, &[]);
    let client = daemon.client();
    let id = sandbox(&client).await.id;
    let out = sh(&client, &id, "echo from the command; exit 3").await;
    assert_eq!(out.stdout, "from the command\n");
    assert_eq!(out.exit_code, 3);
    for (pid, exe, _) in children_with_binaries(&daemon) {
        assert!(
            !exe.ends_with("airlock-helper"),
            "child {pid} runs the stale helper"
        );
    }
    assert!(
        daemon.log().contains("another build"),
        "the daemon did not say why it passed the helper over:\n{}",
        daemon.log()
    );
}
