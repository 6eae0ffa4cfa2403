//! Nothing left behind: 200 create/exec/delete cycles, then the daemon's mounts, its
//! child processes, our cgroups, loop devices and files under the home are as before.
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
