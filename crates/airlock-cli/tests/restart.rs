//! The daemon's state survives it: after `kill -9` or SIGTERM every sandbox is listed
//! again with its files, running ones run again, and nothing of the old daemon lingers
//! (after a SIGTERM not even its cgroups, which the next daemon makes again).
#![allow(clippy::unwrap_used)]

mod common;

use airlock_api::{CreateSandbox, Limits, SandboxState};
use common::census::{CONTROLLERS, instance_cgroup};
use common::{Daemon, alive, children_of, sandbox_processes_of, sh};

/// How many of the daemon's own cgroups exist, one per hierarchy at most.
fn instance_cgroups(daemon: &Daemon) -> usize {
    CONTROLLERS
        .iter()
        .filter(|c| instance_cgroup(daemon, c).exists())
        .count()
}

#[tokio::test]
async fn kill_9_then_restart_brings_every_sandbox_back() {
    let mut daemon = Daemon::start();
    let client = daemon.client();
    let running = client.create(&CreateSandbox::default()).await.unwrap().id;
    let with_disk = client
        .create(&CreateSandbox {
            limits: Limits {
                disk_mb: Some(32),
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    let created = client
        .create(&CreateSandbox {
            start: Some(false),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    let stopped = client.create(&CreateSandbox::default()).await.unwrap().id;
    for id in [&running, &with_disk, &stopped] {
        sh(
            &client,
            id,
            &format!("echo {id} > /workspace/mine; sleep 1000 &"),
        )
        .await;
    }
    client.stop(&stopped).await.unwrap();
    assert_eq!(
        sandbox_processes_of(daemon.pid()).len(),
        2,
        "one init per running sandbox"
    );
    // The forker too: it must end with the daemon that started it.
    let old_processes = children_of(daemon.pid());

    daemon.kill9();
    daemon.restart();
    let client = daemon.client();
    for pid in old_processes {
        assert!(
            !alive(pid),
            "the crashed daemon's sandbox process {pid} was cleaned up"
        );
    }
    let states: Vec<(String, SandboxState)> = client
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.id, s.state))
        .collect();
    for (id, state) in [
        (&running, SandboxState::Running),
        (&with_disk, SandboxState::Running),
        (&created, SandboxState::Created),
        (&stopped, SandboxState::Stopped),
    ] {
        assert!(
            states.contains(&(id.clone(), state)),
            "{id} should be {state:?}: {states:?}"
        );
    }
    for id in [&running, &with_disk] {
        assert_eq!(
            sh(&client, id, "cat /workspace/mine").await.stdout,
            format!("{id}\n"),
            "files intact"
        );
        assert_eq!(
            sh(&client, id, "pgrep -c sleep || true").await.stdout,
            "0\n",
            "a fresh start, not the old processes"
        );
    }
    client.start(&stopped).await.unwrap();
    assert_eq!(
        sh(&client, &stopped, "cat /workspace/mine").await.stdout,
        format!("{stopped}\n")
    );
    client.start(&created).await.unwrap();
    assert_eq!(sh(&client, &created, "echo up").await.stdout, "up\n");
    let disk_mb: u64 = sh(&client, &with_disk, "df -m / | tail -1 | awk '{print $2}'")
        .await
        .stdout
        .trim()
        .parse()
        .unwrap();
    assert!(
        disk_mb <= 32,
        "disk limit kept after the restart: {disk_mb} MiB"
    );
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly_and_sandboxes_return() {
    let mut daemon = Daemon::start();
    let client = daemon.client();
    let id = client.create(&CreateSandbox::default()).await.unwrap().id;
    sh(&client, &id, "echo data > /home/user/f").await;
    sh(&client, &id, "sleep 60 >/dev/null 2>&1 &").await;
    assert_eq!(instance_cgroups(&daemon), 3, "the sandbox has its groups");
    let inits = children_of(daemon.pid());
    assert!(
        daemon.terminate(),
        "exit status 0 on SIGTERM:\n{}",
        daemon.log()
    );
    for pid in inits {
        assert!(!alive(pid), "sandbox processes end with the daemon");
    }
    assert_eq!(instance_cgroups(&daemon), 0, "the daemon's cgroups stayed");
    daemon.restart();
    let client = daemon.client();
    assert_eq!(client.get(&id).await.unwrap().state, SandboxState::Running);
    assert_eq!(sh(&client, &id, "cat /home/user/f").await.stdout, "data\n");
    assert_eq!(instance_cgroups(&daemon), 3, "made again by the restart");
}

#[tokio::test]
async fn sigterm_removes_the_groups_of_a_delete_the_janitor_had_not_reached() {
    let mut daemon = Daemon::start();
    let client = daemon.client();
    let id = client.create(&CreateSandbox::default()).await.unwrap().id;
    // Thousands of files for the janitor to remove first (it takes a deleted sandbox's
    // tree, then its groups, at the lowest priority), so the groups still wait for it
    // when the SIGTERM comes.
    let made = sh(
        &client,
        &id,
        "mkdir /home/user/many && cd /home/user/many && seq 40000 | xargs touch && ls | wc -l",
    )
    .await;
    assert_eq!(made.stdout, "40000\n", "{made:?}");
    client.delete(&id).await.unwrap();
    let waiting: Vec<_> = CONTROLLERS
        .iter()
        .map(|c| instance_cgroup(&daemon, c).join(&id))
        .filter(|group| group.exists())
        .collect();
    assert!(
        !waiting.is_empty(),
        "the janitor removed the groups before the SIGTERM: nothing left to test"
    );
    assert!(
        daemon.terminate(),
        "exit status 0 on SIGTERM:\n{}",
        daemon.log()
    );
    for group in waiting {
        assert!(!group.exists(), "{} stayed", group.display());
    }
    assert_eq!(instance_cgroups(&daemon), 0, "the daemon's cgroups stayed");
}

/// A supervisor may stop the daemon the moment it says where it listens (the `listen`
/// file): that SIGTERM must mean a clean shutdown, never the signal's default death.
#[test]
fn a_sigterm_the_moment_the_daemon_says_it_listens_stops_it_cleanly() {
    use std::time::{Duration, Instant};
    for _ in 0..10 {
        let dir = tempfile::Builder::new()
            .prefix("airlock-e2e-")
            .tempdir_in("/tmp")
            .unwrap();
        let home = dir.path().join("home");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(["serve", "--listen", "127.0.0.1:0", "--home"])
            .arg(&home)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while !home.join("listen").exists() {
            assert!(started.elapsed() < Duration::from_secs(30), "never ready");
            std::thread::sleep(Duration::from_micros(50));
        }
        // SAFETY: a plain signal to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        assert!(status.success(), "SIGTERM at readiness: {status}");
    }
}
