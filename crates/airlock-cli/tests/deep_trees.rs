//! A sandbox decides how deep its trees go. A process inside makes a chain of 25,000
//! directories in seconds, and every walk the daemon makes over it must answer or fail
//! cleanly: a walk that recursed once per level overflowed its thread's stack, which
//! aborts the daemon for every user, and a deleted sandbox's chain left in the trash
//! aborted each daemon that started after it.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use airlock_client::{ArchiveFormat, Mtimes};
use common::{Daemon, sandbox, sh};
use futures_util::StreamExt;

/// Levels of each chain: well past any thread's stack and past PATH_MAX.
const DEPTH: usize = 25_000;

fn chain_in(dir: &str) -> String {
    format!(
        "python3 -c '\nimport os\nos.mkdir(\"{dir}\"); os.chdir(\"{dir}\")\nfor _ in range({DEPTH}):\n  os.mkdir(\"d\"); os.chdir(\"d\")\nopen(\"leaf\", \"w\").write(\"bottom\")\nprint(\"made\")'"
    )
}

async fn alive(daemon: &Daemon) {
    daemon
        .client()
        .list()
        .await
        .expect("the daemon stopped answering");
}

#[tokio::test]
async fn every_walk_over_a_chain_deeper_than_any_stack_answers_and_the_daemon_lives() {
    let mut daemon = Daemon::start();
    let client = daemon.client();
    let id = sandbox(&client).await.id;
    for dir in ["/workspace/deep", "/workspace/gone"] {
        let made = sh(&client, &id, &chain_in(dir)).await;
        assert_eq!(made.stdout.trim(), "made", "{made:?}");
    }

    // A download of the tree fails (no extractor takes a name past PATH_MAX), and says so
    // by breaking off: never a smaller tree that looks whole.
    let mut tar = Vec::new();
    let downloaded = client
        .download_archive(&id, "/workspace/deep", ArchiveFormat::Tar, &mut tar)
        .await;
    assert!(downloaded.is_err(), "a cut archive passed for whole");
    alive(&daemon).await;

    // So does a listing that goes as deep as a listing can, with a 413 naming the limit.
    let listed = client.list_files(&id, "/workspace/deep", 2048, false).await;
    match listed {
        Err(airlock_client::Error::Api {
            status, message, ..
        }) => {
            assert_eq!(status, 413, "{message}");
            assert!(message.contains("PATH_MAX"), "{message}");
        }
        other => panic!("a listing past PATH_MAX: {other:?}"),
    }
    alive(&daemon).await;

    // A recursive watch follows what it can and says where it stopped.
    let mut watch = Box::pin(client.watch(&id, "/workspace", true).await.unwrap());
    let stopped = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = watch.next().await {
            let event = event.unwrap();
            if event.kind == "error" {
                return event.message.unwrap_or_default();
            }
        }
        String::new()
    })
    .await
    .expect("no word of where the watch stopped");
    assert!(stopped.contains("256 levels"), "{stopped}");
    drop(watch);
    alive(&daemon).await;

    // A recursive delete removes all of it.
    client.remove(&id, "/workspace/gone", true).await.unwrap();
    assert!(client.stat(&id, "/workspace/gone").await.is_err());
    alive(&daemon).await;

    // The sandbox's delete moves its files (the first chain among them) to the trash and
    // answers; the daemon is killed before the janitor is done, and the next one removes
    // them as it starts.
    client.delete(&id).await.unwrap();
    daemon.kill9();
    daemon.restart();
    let trash = daemon.home().join("trash");
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read_dir(&trash).unwrap().next().is_some() {
        assert!(Instant::now() < deadline, "the trash was never emptied");
        assert!(
            common::alive(daemon.pid()),
            "the daemon died emptying the trash"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    alive(&daemon).await;
}

/// An archive as deep as names allow (2,000 levels, a file at each), uploaded over its
/// own copy: the second upload merges every level into the first. The merge recursed
/// once a level, and this aborted the daemon with a stack overflow.
#[tokio::test]
async fn an_archive_as_deep_as_names_allow_merges_over_its_own_copy() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = sandbox(&client).await.id;
    let mut tar = tar::Builder::new(Vec::new());
    let mut rel = String::new();
    for _ in 0..2_000 {
        rel.push_str("d/");
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        tar.append_data(&mut header, &rel, &b""[..]).unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(1);
        tar.append_data(&mut header, format!("{rel}f"), &b"x"[..])
            .unwrap();
    }
    let tar = tar.into_inner().unwrap();
    for round in 0..2 {
        let landed = client
            .upload_archive_body(
                &id,
                "/workspace/deep",
                tar.clone(),
                ArchiveFormat::Tar,
                Mtimes::FromArchive,
            )
            .await
            .unwrap_or_else(|e| panic!("upload {round}: {e}"));
        assert_eq!((landed.dirs, landed.files), (2_000, 2_000));
        alive(&daemon).await;
    }
    let bottom = format!("/workspace/deep/{rel}f");
    assert_eq!(client.stat(&id, &bottom).await.unwrap().size, 1);
}
