//! Nothing left behind: 200 create/exec/delete cycles, then the daemon's mounts, its
//! child processes, our cgroups, loop devices and files under the home are as before; and
//! a daemon that stops removes its own cgroups.
#![allow(clippy::unwrap_used)]

mod common;

use airlock_api::{CreateSandbox, InjectedFile, Limits};
use common::census::census;
use common::{Daemon, sh};

const CYCLES: usize = 200;

#[tokio::test]
async fn two_hundred_cycles_leave_nothing_behind() {
    let daemon = Daemon::start();
    let client = daemon.client();
    // Warm up once so lazily made directories (cgroup parents, views/) exist in both counts.
    let warm = client.create(&CreateSandbox::default()).await.unwrap();
    client.delete(&warm.id).await.unwrap();
    let before = census(&daemon);
    let mut during_loops = 0;
    for cycle in 0..CYCLES {
        let mut req = CreateSandbox::default();
        req.files.push(InjectedFile {
            path: "/etc/ro.conf".into(),
            content: Some("x".into()),
            content_b64: None,
            mode: None,
            readonly: true,
        });
        if cycle % 20 == 0 {
            req.limits = Limits {
                disk_mb: Some(16),
                ..Default::default()
            };
        }
        let id = client.create(&req).await.unwrap().id;
        let out = sh(&client, &id, "sleep 60 & echo $((1 + 1))").await;
        assert_eq!(out.stdout, "2\n", "cycle {cycle}: {out:?}");
        if cycle % 20 == 0 {
            during_loops = during_loops.max(census(&daemon).loops);
        }
        client.delete(&id).await.unwrap();
    }
    assert!(
        during_loops >= 1,
        "the disk-limited cycles really used a loop device"
    );
    // Loop devices detach asynchronously after the last unmount.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while census(&daemon) != before && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(census(&daemon), before);
}

/// This daemon's own cgroup directories that exist, one per v1 hierarchy.
fn instance_cgroups(daemon: &Daemon) -> Vec<std::path::PathBuf> {
    let instance = airlock_sandbox::instance_name(&daemon.home());
    ["memory", "pids", "cpu"]
        .iter()
        .map(|c| {
            std::path::Path::new("/sys/fs/cgroup")
                .join(c)
                .join("airlock")
                .join(&instance)
        })
        .filter(|p| p.exists())
        .collect()
}

#[tokio::test]
async fn a_stopped_daemon_leaves_no_cgroups_of_its_own() {
    let mut daemon = Daemon::start();
    let client = daemon.client();
    let id = client.create(&CreateSandbox::default()).await.unwrap().id;
    sh(&client, &id, "sleep 60 >/dev/null 2>&1 &").await;
    assert_eq!(
        instance_cgroups(&daemon).len(),
        3,
        "the sandbox has its groups"
    );
    assert!(daemon.terminate(), "the daemon exits cleanly");
    assert_eq!(instance_cgroups(&daemon), Vec::<std::path::PathBuf>::new());
    // The restarted daemon makes them again and starts the sandbox in them.
    daemon.restart();
    let client = daemon.client();
    let out = sh(&client, &id, "echo back").await;
    assert_eq!(out.stdout, "back\n", "{out:?}");
    assert_eq!(instance_cgroups(&daemon).len(), 3);
}
