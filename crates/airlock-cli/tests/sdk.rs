//! The Rust SDK against a real daemon: streamed writes and reads, append, compose, batch,
//! typed errors.
#![allow(clippy::unwrap_used)]

mod common;

use airlock_api::{ComposeFiles, ErrorCode};
use airlock_client::{BatchFile, Error, WriteOptions};
use common::files::random;
use common::{Daemon, sandbox};
use futures_util::TryStreamExt;

#[tokio::test]
async fn the_sdk_streams_files_and_reports_typed_errors() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = sandbox(&client).await.id;
    let data = random(3 << 20, 5);

    let opts = WriteOptions {
        mode: Some(0o600),
        parents: true,
        ..WriteOptions::default()
    };
    let written = client
        .write(
            &id,
            "/workspace/sdk/data.bin",
            std::io::Cursor::new(data.clone()),
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(
        (written.entry.size, written.entry.mode.0),
        (data.len() as u64, 0o600)
    );
    let chunks: Vec<bytes::Bytes> = client
        .read(&id, "/workspace/sdk/data.bin")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(chunks.concat(), data);

    client
        .append(&id, "/workspace/sdk/log", "one\n")
        .await
        .unwrap();
    client
        .append(&id, "/workspace/sdk/log", "two\n")
        .await
        .unwrap();
    let composed = client
        .compose(
            &id,
            &ComposeFiles {
                sources: vec!["/workspace/sdk/log".into(), "/workspace/sdk/log".into()],
                destination: "/workspace/sdk/twice".into(),
                mode: None,
                overwrite: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(composed.entry.size, 16);

    let batch = client
        .write_batch(
            &id,
            vec![
                BatchFile {
                    path: "/workspace/sdk/b1".into(),
                    body: "first".into(),
                    mode: Some(0o755),
                },
                BatchFile {
                    path: "not/absolute".into(),
                    body: "x".into(),
                    mode: None,
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!((batch.written, batch.failed), (1, 1));
    let names: Vec<String> = client
        .list_files(&id, "/workspace/sdk", 1, true)
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{} {}", e.name, e.sha256.is_some()))
        .collect();
    assert_eq!(
        names,
        ["b1 true", "data.bin true", "log true", "twice true"]
    );

    match client.stat(&id, "/workspace/none").await {
        Err(Error::Api {
            status: 404, code, ..
        }) => assert_eq!(code, ErrorCode::NotFound),
        other => panic!("expected a typed 404, got {other:?}"),
    }
    let err = client.stat("nosuchbox", "/").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound));
}

#[tokio::test]
async fn write_file_sends_a_local_file_from_its_offset_with_its_length() {
    use std::io::{Seek, Write};
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = sandbox(&client).await.id;
    // Several of the reader's chunks and a short last one.
    let data = random((1 << 20) + 12345, 9);
    let mut local = tempfile::tempfile().unwrap();
    local.write_all(&data).unwrap();

    local.rewind().unwrap();
    let opts = WriteOptions::default();
    let whole = client
        .write_file(
            &id,
            "/workspace/whole.bin",
            local.try_clone().unwrap(),
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(whole.entry.size, data.len() as u64);
    assert_eq!(whole.crc64nvme, common::files::crc_hex(&data));

    local.seek(std::io::SeekFrom::Start(1000)).unwrap();
    let rest = client
        .write_file(&id, "/workspace/rest.bin", local, &opts)
        .await
        .unwrap();
    assert_eq!(rest.crc64nvme, common::files::crc_hex(&data[1000..]));
    let back: Vec<bytes::Bytes> = client
        .read(&id, "/workspace/rest.bin")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(back.concat(), &data[1000..]);

    // An empty file is an empty body of length 0, not a missing one.
    let empty = client
        .write_file(
            &id,
            "/workspace/empty",
            tempfile::tempfile().unwrap(),
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(empty.entry.size, 0);
}

#[tokio::test]
async fn read_to_file_saves_a_download_after_the_file_offset() {
    use std::io::{Read, Seek, Write};
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = sandbox(&client).await.id;
    let data = random((3 << 20) + 777, 11);
    client
        .write(
            &id,
            "/workspace/down.bin",
            std::io::Cursor::new(data.clone()),
            &WriteOptions {
                mode: Some(0o640),
                ..WriteOptions::default()
            },
        )
        .await
        .unwrap();
    let mut local = tempfile::tempfile().unwrap();
    local.write_all(b"kept:").unwrap();
    let got = client
        .read_to_file(&id, "/workspace/down.bin", local.try_clone().unwrap())
        .await
        .unwrap();
    assert_eq!((got.size, got.mode), (data.len() as u64, Some(0o640)));
    let mut back = Vec::new();
    local.rewind().unwrap();
    local.read_to_end(&mut back).unwrap();
    assert_eq!(&back[..5], b"kept:");
    assert!(
        back[5..] == data[..],
        "the download lands whole after what was there"
    );

    let missing = client
        .read_to_file(&id, "/workspace/none", tempfile::tempfile().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(missing, Error::Api { status: 404, .. }),
        "{missing:?}"
    );
}

/// A tar of `files` files of 4 KiB each (more than one body chunk), written by `tar`.
fn pack(out: &mut airlock_client::BodyWriter, files: usize) -> std::io::Result<()> {
    let mut builder = tar::Builder::new(out);
    for n in 0..files {
        let data = random(4096, n as u64);
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, format!("f{n}"), &data[..])?;
    }
    builder.finish()
}

#[tokio::test]
async fn a_written_body_uploads_a_tree_whole_and_a_failed_one_leaves_nothing() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = sandbox(&client).await.id;

    let (mut writer, body) = airlock_client::written_body(|_| {});
    let packing = tokio::task::spawn_blocking(move || {
        pack(&mut writer, 300)?;
        writer.finish()
    });
    let done = client
        .upload_archive_body(
            &id,
            "/workspace/whole",
            body,
            airlock_client::ArchiveFormat::Tar,
            airlock_client::Mtimes::FromArchive,
        )
        .await
        .unwrap();
    packing.await.unwrap().unwrap();
    assert_eq!(done.files, 300);
    let back: Vec<bytes::Bytes> = client
        .read(&id, "/workspace/whole/f299")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(back.concat(), random(4096, 299));

    // The packer fails after more than a chunk went out: the daemon sees a broken body
    // and extracts nothing, rather than a tree cut short.
    let (mut writer, body) = airlock_client::written_body(|_| {});
    let packing = tokio::task::spawn_blocking(move || {
        pack(&mut writer, 300)?;
        writer.fail(std::io::Error::other("a local file went away"));
        Ok::<_, std::io::Error>(())
    });
    let failed = client
        .upload_archive_body(
            &id,
            "/workspace/cut",
            body,
            airlock_client::ArchiveFormat::Tar,
            airlock_client::Mtimes::FromArchive,
        )
        .await;
    packing.await.unwrap().unwrap();
    assert!(failed.is_err(), "{failed:?}");
    // The client's request fails at once; the daemon notices the broken body, drops its
    // staging directory and leaves the destination (made first) empty.
    let mut landed = Vec::new();
    for _ in 0..100 {
        landed = client
            .list_files(&id, "/workspace/cut", 1, false)
            .await
            .unwrap();
        if landed.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(landed.is_empty(), "{landed:?}");
}
