//! Sandbox lifecycle over REST against a real daemon: create, list, get, stop, start,
//! delete, TTL expiry, and a registered rootfs template.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use airlock_api::{CreateSandbox, ErrorCode, SandboxState};
use common::{Daemon, sh};

#[tokio::test]
async fn create_stop_start_delete() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let mut req = CreateSandbox::default();
    req.labels.insert("team".into(), "infra".into());
    req.env.insert("GREETING".into(), "hello".into());
    let made = client.create(&req).await.unwrap();
    assert_eq!(made.state, SandboxState::Running);
    assert_eq!(made.id.len(), 12);
    assert_eq!(made.template, "host");
    assert_eq!(made.labels["team"], "infra");
    assert!(
        made.limits.memory_mb.is_some() && made.limits.pids.is_some(),
        "defaults are shown"
    );
    assert_eq!(
        sh(&client, &made.id, "echo $GREETING").await.stdout,
        "hello\n"
    );

    assert_eq!(client.list().await.unwrap().len(), 1);
    assert_eq!(client.get(&made.id).await.unwrap(), made);

    sh(&client, &made.id, "echo kept > /workspace/file").await;
    let stopped = client.stop(&made.id).await.unwrap();
    assert_eq!(stopped.state, SandboxState::Stopped);
    let err = client.exec(&made.id, &exec("true")).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(ErrorCode::Conflict),
        "exec needs a running sandbox"
    );

    let started = client.start(&made.id).await.unwrap();
    assert_eq!(started.state, SandboxState::Running);
    assert_eq!(
        sh(&client, &made.id, "cat /workspace/file").await.stdout,
        "kept\n",
        "files survive stop/start"
    );
    assert_eq!(
        client.start(&made.id).await.unwrap().state,
        SandboxState::Running,
        "start is idempotent"
    );

    client.delete(&made.id).await.unwrap();
    assert_eq!(
        client.get(&made.id).await.unwrap_err().code(),
        Some(ErrorCode::NotFound)
    );
    assert!(client.list().await.unwrap().is_empty());
    assert!(
        !daemon.home().join("sandboxes").join(&made.id).exists(),
        "storage is gone"
    );
}

#[tokio::test]
async fn no_start_leaves_it_created_until_started() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let made = client
        .create(&CreateSandbox {
            start: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(made.state, SandboxState::Created);
    assert!(
        common::sandbox_processes_of(daemon.pid()).is_empty(),
        "no sandbox process runs before start"
    );
    assert_eq!(
        client.stop(&made.id).await.unwrap().state,
        SandboxState::Created,
        "stopping a created one changes nothing"
    );
    client.start(&made.id).await.unwrap();
    assert_eq!(sh(&client, &made.id, "id -u").await.stdout, "1000\n");
}

/// On ext4 the daemon marks the directories holding its sandboxes and its spare
/// skeletons as tops of hierarchies, so each sandbox's inodes land in a block group of
/// their own rather than among those the last deletes freed (airlock-sandbox's
/// `spread.rs`); the sandboxes' own directories are left unmarked.
#[tokio::test]
async fn a_daemon_spreads_its_sandboxes_over_ext4s_groups() {
    use rustix::fs::{IFlags, Mode, OFlags};
    let flags = |dir: &std::path::Path| {
        let handle =
            rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        rustix::fs::ioctl_getflags(&handle).unwrap()
    };
    let daemon = Daemon::start();
    let made = daemon
        .client()
        .create(&CreateSandbox::default())
        .await
        .unwrap();
    let home = daemon.home();
    const EXT4_MAGIC: i64 = 0xEF53;
    if rustix::fs::statfs(&home).unwrap().f_type as i64 != EXT4_MAGIC {
        eprintln!("the daemon's home is not on ext4 here: nothing to check");
        return;
    }
    for dir in ["sandboxes", "skeletons"] {
        assert!(flags(&home.join(dir)).contains(IFlags::TOPDIR), "{dir}");
    }
    let own = home.join("sandboxes").join(&made.id);
    assert!(!flags(&own).contains(IFlags::TOPDIR));
    assert!(!flags(&home).contains(IFlags::TOPDIR));
}

#[tokio::test]
async fn ttl_expiry_deletes_the_sandbox() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let made = client
        .create(&CreateSandbox {
            ttl_secs: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(made.expires_at.is_some());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while client.get(&made.id).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "TTL did not expire the sandbox"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        common::sandbox_processes_of(daemon.pid()).is_empty(),
        "its processes are gone"
    );
}

#[tokio::test]
async fn registered_rootfs_template_from_a_busybox_tarball() {
    let busybox = std::path::Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "install busybox-static (the test suite's setup does) to build the test rootfs"
    );
    let daemon = Daemon::start();
    let client = daemon.client();
    let tarball = busybox_rootfs_tar(busybox);
    let template = client
        .register_template("busybox", tarball.clone())
        .await
        .unwrap();
    assert_eq!(template.kind, "rootfs");
    assert_eq!(
        client
            .register_template("busybox", tarball)
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::Conflict)
    );

    let made = client
        .create(&CreateSandbox {
            template: Some("busybox".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let out = sh(
        &client,
        &made.id,
        "id -u; ls /bin/busybox; echo hi > /home/user/x; cat /home/user/x",
    )
    .await;
    assert_eq!(out.stdout, "1000\n/bin/busybox\nhi\n", "{out:?}");
    let other = client
        .create(&CreateSandbox {
            template: Some("busybox".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        sh(&client, &other.id, "ls /home/user").await.stdout,
        "",
        "sandboxes do not share writes"
    );

    assert_eq!(
        client.delete_template("busybox").await.unwrap_err().code(),
        Some(ErrorCode::Conflict),
        "in use"
    );
    client.delete(&made.id).await.unwrap();
    client.delete(&other.id).await.unwrap();
    client.delete_template("busybox").await.unwrap();
    let names: Vec<String> = client
        .templates()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["host"]);
}

fn exec(line: &str) -> airlock_api::ExecRequest {
    airlock_api::ExecRequest {
        shell: Some(line.into()),
        ..Default::default()
    }
}

/// A minimal root filesystem: busybox and a few applet links, as a tar in memory.
fn busybox_rootfs_tar(busybox: &std::path::Path) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let header = |kind: tar::EntryType, mode: u32| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        header
    };
    let mut dir = header(tar::EntryType::Directory, 0o755);
    builder
        .append_data(&mut dir.clone(), "bin", std::io::empty())
        .unwrap();
    builder
        .append_data(&mut dir, "etc", std::io::empty())
        .unwrap();
    builder
        .append_path_with_name(busybox, "bin/busybox")
        .unwrap();
    for applet in ["sh", "id", "ls", "cat", "echo"] {
        let mut link = header(tar::EntryType::Symlink, 0o777);
        builder
            .append_link(&mut link, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    builder.into_inner().unwrap()
}
