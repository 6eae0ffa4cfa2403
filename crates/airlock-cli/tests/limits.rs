//! Limits and injected files: pids, memory, disk, and read-only files that nothing inside
//! can change.
#![allow(clippy::unwrap_used)]

mod common;

use airlock_api::{CreateSandbox, InjectedFile, Limits};
use base64::Engine as _;
use common::{Daemon, sh};

/// Forks sleeping children until the kernel refuses, prints how many and the errno.
const FORKER: &str = "python3 - <<'EOF'
import os, time
children = []
errno = 0
for _ in range(500):
    try:
        pid = os.fork()
    except OSError as e:
        errno = e.errno
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    children.append(pid)
print(len(children), errno)
for pid in children:
    os.kill(pid, 9)
EOF";

fn with_limits(limits: Limits) -> CreateSandbox {
    CreateSandbox {
        limits,
        ..Default::default()
    }
}

#[tokio::test]
async fn fork_storm_meets_the_pids_limit() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = client
        .create(&with_limits(Limits {
            pids: Some(32),
            ..Default::default()
        }))
        .await
        .unwrap()
        .id;
    let storm = sh(&client, &id, FORKER).await;
    let mut words = storm.stdout.split_whitespace();
    let (forked, errno) = (
        words.next().unwrap_or("").parse::<u64>().unwrap_or(0),
        words.next(),
    );
    assert_eq!(
        errno,
        Some("11"),
        "fork fails with EAGAIN at the limit: {storm:?}"
    );
    assert!(
        forked > 5 && forked < 32,
        "processes capped by the limit, forked {forked}"
    );
    assert_eq!(
        sh(&client, &id, "echo alive").await.stdout,
        "alive\n",
        "the sandbox recovers"
    );
}

#[tokio::test]
async fn memory_hog_is_killed_and_everything_else_lives() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = client
        .create(&with_limits(Limits {
            memory_mb: Some(64),
            ..Default::default()
        }))
        .await
        .unwrap()
        .id;
    let hog = sh(
        &client,
        &id,
        "python3 -c 'b = bytearray(512 * 1024 * 1024); print(\"survived\")'",
    )
    .await;
    assert_eq!(hog.exit_code, 137, "killed by the OOM killer: {hog:?}");
    assert!(!hog.stdout.contains("survived"));
    assert_eq!(
        sh(&client, &id, "echo alive").await.stdout,
        "alive\n",
        "the sandbox itself lives"
    );
    assert_eq!(
        client.get(&id).await.unwrap().state,
        airlock_api::SandboxState::Running
    );
}

#[tokio::test]
async fn disk_limit_gives_enospc_inside() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = client
        .create(&with_limits(Limits {
            disk_mb: Some(32),
            ..Default::default()
        }))
        .await
        .unwrap()
        .id;
    let fill = sh(
        &client,
        &id,
        "dd if=/dev/zero of=/home/user/big bs=1M count=64",
    )
    .await;
    assert_ne!(fill.exit_code, 0);
    assert!(
        fill.stderr.contains("No space left on device"),
        "{}",
        fill.stderr
    );
    let others = sh(&client, &id, "rm /home/user/big && echo freed && dd if=/dev/zero of=/tmp/x bs=1M count=8 2>/dev/null && echo written").await;
    assert_eq!(
        others.stdout, "freed\nwritten\n",
        "space comes back after deleting"
    );
    // The image's loop device writes straight to it (direct I/O), so the sandbox's
    // blocks are not cached a second time as the image's.
    let home = daemon.home().to_string_lossy().into_owned();
    let loops: Vec<String> = std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            std::fs::read_to_string(p.join("loop/backing_file"))
                .is_ok_and(|b| b.starts_with(&home) && b.contains(&id))
        })
        .map(|p| std::fs::read_to_string(p.join("loop/dio")).unwrap())
        .collect();
    assert_eq!(loops, ["1\n"], "the sandbox's loop devices and their dio");
}

#[tokio::test]
async fn readonly_injected_files_cannot_be_changed_from_inside() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let file = |path: &str, readonly: bool| InjectedFile {
        path: path.into(),
        content: None,
        content_b64: Some(base64::engine::general_purpose::STANDARD.encode(b"token=abc\n\x00\xff")),
        mode: None,
        readonly,
    };
    let req = CreateSandbox {
        start: Some(false),
        files: vec![
            file("/home/user/.config/app/secret.conf", true),
            file("/workspace/data.bin", false),
        ],
        ..Default::default()
    };
    let made = client.create(&req).await.unwrap();
    assert_eq!(made.readonly_paths, ["/home/user/.config/app/secret.conf"]);
    client.start(&made.id).await.unwrap();
    let script = "cd /home/user/.config/app
(echo x >> secret.conf) 2>/dev/null || echo append-refused
(: > secret.conf) 2>/dev/null || echo truncate-refused
rm -f secret.conf 2>/dev/null || echo remove-refused
mv secret.conf moved 2>/dev/null || echo rename-refused
chmod 666 secret.conf 2>/dev/null || echo chmod-refused
python3 -c 'import os; os.truncate(\"secret.conf\", 0)' 2>/dev/null || echo os-truncate-refused
ln secret.conf hardlink 2>/dev/null || echo link-refused
od -c secret.conf | head -1
stat -c '%a %U' secret.conf /workspace/data.bin";
    let out = sh(&client, &made.id, script).await;
    assert_eq!(
        out.stdout,
        "append-refused\ntruncate-refused\nremove-refused\nrename-refused\nchmod-refused\nos-truncate-refused\nlink-refused\n0000000   t   o   k   e   n   =   a   b   c  \\n  \\0 377\n444 root\n644 user\n",
        "{}",
        out.stderr
    );
    // After a restart of the sandbox the protection still holds.
    client.stop(&made.id).await.unwrap();
    client.start(&made.id).await.unwrap();
    let again = sh(
        &client,
        &made.id,
        "rm -f /home/user/.config/app/secret.conf 2>/dev/null || echo still-refused",
    )
    .await;
    assert_eq!(again.stdout, "still-refused\n");
}
