//! The gRPC face end to end, with the generated tonic clients against a real daemon on
//! its one port: round trips of every size, trees as archives, resumable uploads begun
//! over gRPC or tus, batches, exec with streamed stdin, watch, lifecycle, honest status
//! codes, health and reflection.
#![allow(clippy::unwrap_used)]

mod common;

use airlock_proto::v1 as pb;
use common::files::{Files, crc_hex, random, sandbox_with, sha_hex};
use common::grpc::{self, download, get, meta, upload_messages};
use common::tus::Tus;
use common::{Daemon, sh};
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt;

async fn upload(
    files: &mut airlock_proto::v1::files_client::FilesClient<grpc::Authed>,
    messages: Vec<pb::UploadFileRequest>,
) -> Result<pb::UploadFileResponse, tonic::Status> {
    files
        .upload_file(tokio_stream::iter(messages))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn files_round_trip_at_every_size_with_modes_and_ranges() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let mut files = grpc::files(&daemon).await;
    for (name, size, chunk) in [("zero", 0, 1), ("one", 1, 1), ("mib", 3 << 20, 1 << 20)] {
        let data = random(size, size as u64);
        let path = format!("/workspace/{name}");
        let mut m = meta(&id, &path);
        m.mode = Some(0o600);
        m.mtime = Some("2024-05-06T07:08:09Z".into());
        m.sha256 = Some(sha_hex(&data));
        m.size_bytes = Some(size as u64);
        let done = upload(&mut files, upload_messages(m, &data, chunk))
            .await
            .unwrap();
        assert_eq!(done.bytes_written, size as u64);
        let result = done.result.unwrap();
        assert_eq!(result.sha256, Some(sha_hex(&data)));
        assert_eq!(result.crc64nvme, crc_hex(&data));
        assert_eq!(result.entry.unwrap().mode, 0o600);
        let (header, body) = download(&mut files, get(&id, &path)).await.unwrap();
        assert_eq!(body, data, "{name}");
        assert_eq!((header.size_bytes, header.mode), (size as u64, 0o600));
        assert!(
            header.mtime.starts_with("2024-05-06T07:08:09"),
            "{}",
            header.mtime
        );
    }
    // Binary bytes pass untouched, and a range reads only its window.
    let binary: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    upload(
        &mut files,
        upload_messages(meta(&id, "/workspace/bin"), &binary, 7),
    )
    .await
    .unwrap();
    let mut ranged = get(&id, "/workspace/bin");
    ranged.offset = 10;
    ranged.length = Some(20);
    let (header, body) = download(&mut files, ranged).await.unwrap();
    assert_eq!(body, &binary[10..30]);
    assert_eq!((header.offset, header.file_size), (10, 1000));
    // A declared size the stream does not carry commits nothing.
    let mut lying = meta(&id, "/workspace/lying");
    lying.size_bytes = Some(10);
    let refused = upload(&mut files, upload_messages(lying, b"12345", 5))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let gone = download(&mut files, get(&id, "/workspace/lying"))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

/// GiB moved by the flat-memory test: 1 in CI, 4 with `scripts/heavy grpc`.
fn stream_gib() -> usize {
    std::env::var("AIRLOCK_GRPC_STREAM_GIB")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

#[tokio::test]
async fn a_gibibyte_streams_both_ways_in_flat_memory() {
    let size: usize = stream_gib() << 30;
    const CHUNK: usize = 4 << 20;
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let mut files = grpc::files(&daemon).await;
    let block = bytes::Bytes::from(random(CHUNK, 7));
    let mut expected = <sha2::Sha256 as sha2::Digest>::new();
    for _ in 0..size / CHUNK {
        sha2::Digest::update(&mut expected, &block);
    }
    let expected: String = sha2::Digest::finalize(expected)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let pid = daemon.pid();
    let before = common::rss_kib(pid);
    let sampler = common::RssSampler::start(pid);
    let first = pb::UploadFileRequest {
        payload: Some(pb::upload_file_request::Payload::Metadata(
            pb::UploadFileMetadata {
                checksum: Some("sha256".into()),
                ..meta(&id, "/workspace/big")
            },
        )),
    };
    let chunks = (0..size / CHUNK).map(move |_| pb::UploadFileRequest {
        payload: Some(pb::upload_file_request::Payload::Chunk(block.clone())),
    });
    let stream = tokio_stream::iter(std::iter::once(first).chain(chunks));
    let done = files.upload_file(stream).await.unwrap().into_inner();
    assert_eq!(done.result.unwrap().sha256, Some(expected.clone()));
    let mut down = files
        .download_file(get(&id, "/workspace/big"))
        .await
        .unwrap()
        .into_inner();
    let mut got = <sha2::Sha256 as sha2::Digest>::new();
    let mut total = 0;
    while let Some(message) = down.message().await.unwrap() {
        if let Some(pb::download_file_response::Payload::Chunk(c)) = message.payload {
            total += c.len();
            sha2::Digest::update(&mut got, &c);
        }
    }
    assert_eq!(total, size);
    let got: String = sha2::Digest::finalize(got)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(got, expected);
    let growth = sampler.peak().saturating_sub(before);
    let gib = stream_gib();
    eprintln!("gRPC: {gib} GiB up and down; the daemon's RSS grew {growth} KiB");
    assert!(
        growth < 64 * 1024,
        "daemon RSS grew {growth} KiB moving {gib} GiB over gRPC"
    );
}

/// A Files client over a channel of its own, its flow-control windows as given (`None`:
/// h2's defaults of 64 KiB, with 16 KiB frames).
async fn files_windowed(daemon: &Daemon, windows: Option<(u32, u32)>) -> grpc::FilesAuthed {
    let mut endpoint = tonic::transport::Channel::from_shared(daemon.url.clone()).unwrap();
    if let Some((stream, connection)) = windows {
        endpoint = endpoint
            .initial_stream_window_size(stream)
            .initial_connection_window_size(connection);
    }
    let channel = endpoint.connect().await.unwrap();
    airlock_proto::v1::files_client::FilesClient::with_interceptor(
        channel,
        grpc::Bearer(daemon.token.clone()),
    )
    .max_decoding_message_size(16 << 20)
}

/// Large downloads leave by `sendfile` where the connection can follow them
/// (`h2_sendfile`): whatever frames the client's windows make h2 cut, several at once on
/// one connection, a range, and a download dropped half-read before another, each
/// arrives byte for byte.
#[tokio::test]
async fn large_downloads_arrive_whole_however_the_client_sizes_its_frames() {
    const SIZE: usize = (5 << 20) + 12_345;
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let mut files = grpc::files(&daemon).await;
    let mut contents = vec![];
    for n in 0..4 {
        let data = random(SIZE, 100 + n);
        let path = format!("/workspace/d{n}");
        upload(
            &mut files,
            upload_messages(meta(&id, &path), &data, 1 << 20),
        )
        .await
        .unwrap();
        contents.push((path, data));
    }
    let windows = [None, Some((2_000, 4_000)), Some((8 << 20, 16 << 20))];
    for windows in windows {
        let client = files_windowed(&daemon, windows).await;
        let downloads = contents.iter().map(|(path, data)| {
            let mut client = client.clone();
            let request = get(&id, path);
            async move {
                let (header, body) = download(&mut client, request).await.unwrap();
                assert_eq!(header.size_bytes, SIZE as u64);
                assert!(body == *data, "{path} with windows {windows:?}");
            }
        });
        futures_util::future::join_all(downloads).await;
        let mut client = client.clone();
        let mut ranged = get(&id, &contents[1].0);
        ranged.offset = 1_000_003;
        ranged.length = Some(3 << 20);
        let (_, body) = download(&mut client, ranged).await.unwrap();
        assert!(body == contents[1].1[1_000_003..1_000_003 + (3 << 20)]);
        // Half read, then dropped: the stream is reset, and the connection goes on.
        let mut half = client
            .download_file(get(&id, &contents[2].0))
            .await
            .unwrap()
            .into_inner();
        half.message().await.unwrap();
        half.message().await.unwrap();
        drop(half);
        let (_, body) = download(&mut client, get(&id, &contents[3].0))
            .await
            .unwrap();
        assert!(
            body == contents[3].1,
            "after a dropped download, {windows:?}"
        );
    }
}

#[tokio::test]
async fn trees_travel_as_archives_both_ways() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let mut files = grpc::files(&daemon).await;
    let mut tar = tar::Builder::new(Vec::new());
    for (path, body, mode) in [
        ("a.txt", &b"alpha"[..], 0o644),
        ("bin/run", b"#!/bin/sh\n", 0o755),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        tar.append_data(&mut header, path, body).unwrap();
    }
    let tar = tar.into_inner().unwrap();
    let mut m = meta(&id, "/workspace/tree");
    m.is_archive = true;
    m.parents = Some(true);
    let done = upload(&mut files, upload_messages(m, &tar, 100))
        .await
        .unwrap();
    assert_eq!(done.archive.unwrap().files, 2);
    let listed = sh(
        &daemon.client(),
        &id,
        "stat -c '%a %Y %n' /workspace/tree/bin/run",
    )
    .await;
    // The archive's mtime (its headers say 0) unless asked otherwise.
    assert_eq!(listed.stdout.trim(), "755 0 /workspace/tree/bin/run");
    let mut m = meta(&id, "/workspace/now");
    m.is_archive = true;
    m.parents = Some(true);
    m.mtimes = Some(false);
    upload(&mut files, upload_messages(m, &tar, 100))
        .await
        .unwrap();
    let now = sh(&daemon.client(), &id, "stat -c '%Y' /workspace/now/bin/run").await;
    let written: u64 = now.stdout.trim().parse().unwrap();
    assert!(written > 1_700_000_000, "{}", now.stdout);
    let mut request = get(&id, "/workspace/tree");
    request.as_archive = true;
    let (header, body) = download(&mut files, request).await.unwrap();
    assert!(header.is_archive);
    let mut names: Vec<String> = tar::Archive::new(&body[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.iter().any(|n| n.ends_with("bin/run")), "{names:?}");
    // A hostile entry is refused whole, as over REST.
    let mut evil = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(1);
    header.set_cksum();
    evil.append_data(&mut header, "ok", &b"x"[..]).unwrap();
    let mut bytes = evil.into_inner().unwrap();
    bytes[..3].copy_from_slice(b"../");
    let mut m = meta(&id, "/workspace/evil");
    m.is_archive = true;
    m.parents = Some(true);
    let refused = upload(&mut files, upload_messages(m, &bytes, 512))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
}

/// Starts a resumable upload of `size` bytes at `path`, mode 0640 and checked against
/// `whole`'s sha256 when given.
async fn create_upload(
    files: &mut grpc::FilesAuthed,
    id: &str,
    path: &str,
    size: usize,
    whole: Option<&[u8]>,
) -> pb::UploadStatus {
    files
        .create_upload(pb::CreateUploadRequest {
            sandbox_id: id.to_owned(),
            remote_path: path.into(),
            size_bytes: size as u64,
            mode: whole.map(|_| 0o640),
            sha256: whole.map(sha_hex),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// Sends `data[from..]` to the upload at offset `from`.
async fn upload_rest(
    files: &mut grpc::FilesAuthed,
    id: &str,
    upload_id: &str,
    data: &[u8],
    from: usize,
) -> pb::UploadFileResponse {
    let mut rest = meta(id, "");
    rest.upload_id = upload_id.to_owned();
    rest.offset = Some(from as u64);
    upload(files, upload_messages(rest, &data[from..], 1 << 20))
        .await
        .unwrap()
}

/// An `UploadFile` call on a connection of its own that sends `part` from offset 0 of a
/// resumable upload and stays open: the stream ends only when the sender is dropped.
async fn open_upload_call(
    daemon: &Daemon,
    id: &str,
    upload_id: &str,
    part: &[u8],
) -> (
    tokio::sync::mpsc::Sender<pb::UploadFileRequest>,
    tokio::task::JoinHandle<Result<tonic::Response<pb::UploadFileResponse>, tonic::Status>>,
) {
    let mut files = grpc::files(daemon).await;
    let mut m = meta(id, "");
    m.upload_id = upload_id.to_owned();
    m.offset = Some(0);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let call = tokio::spawn(async move {
        files
            .upload_file(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    for message in upload_messages(m, part, 256 * 1024) {
        tx.send(message).await.unwrap();
    }
    (tx, call)
}

/// Sends `data[..cut]` of a resumable upload, then drops the call mid-stream as a lost
/// connection would.
async fn cut_off(daemon: &Daemon, id: &str, upload_id: &str, data: &[u8], cut: usize) {
    let (tx, call) = open_upload_call(daemon, id, upload_id, &data[..cut]).await;
    // Give the daemon the bytes, then vanish without ending the stream.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    call.abort();
    drop(tx);
}

/// Where the upload stands, as `GetUpload` answers.
async fn upload_offset(files: &mut grpc::FilesAuthed, id: &str, upload_id: &str) -> u64 {
    files
        .get_upload(pb::GetUploadRequest {
            sandbox_id: id.into(),
            upload_id: upload_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .offset
}

async fn wait_for_offset(files: &mut grpc::FilesAuthed, id: &str, upload_id: &str, want: u64) {
    for _ in 0..100 {
        if upload_offset(files, id, upload_id).await == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the upload never stood at {want}");
}

/// The stream broke on the client's side only: the daemon still holds the call open.
/// Asking where the upload stands takes it over from that call at once (which keeps what
/// it received and ends with FAILED_PRECONDITION), rather than answering the offset from
/// before that call until the daemon's idle timeout.
#[tokio::test]
async fn asking_where_an_upload_stands_takes_it_over_from_a_call_left_open() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let mut files = grpc::files(&daemon).await;
    let data = random(2 << 20, 6);
    let made = create_upload(&mut files, &id, "/workspace/held", data.len(), None).await;
    let half = data.len() / 2;
    let (tx, call) = open_upload_call(&daemon, &id, &made.upload_id, &data[..half]).await;
    // Asked where it stands until the held call is over (the first asks may come before
    // that call reached the upload); `tx` stays open all the while.
    let mut at = 0;
    for _ in 0..200 {
        at = upload_offset(&mut files, &id, &made.upload_id).await as usize;
        if call.is_finished() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(call.is_finished(), "the held call was never taken over");
    let ended = call.await.unwrap().unwrap_err();
    assert_eq!(ended.code(), Code::FailedPrecondition, "{ended:?}");
    drop(tx);
    // It kept what it had received, up to all it was sent.
    assert!(at <= half, "stands at {at}");
    let done = upload_rest(&mut files, &id, &made.upload_id, &data, at).await;
    assert!(done.upload.unwrap().complete);
    let (_, body) = download(&mut files, get(&id, "/workspace/held"))
        .await
        .unwrap();
    assert_eq!(body, data);
}

#[tokio::test]
async fn a_cut_off_upload_resumes_by_offset_and_checks_the_whole_checksum() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let mut files = grpc::files(&daemon).await;
    let data = random(3 << 20, 5);
    let made = create_upload(
        &mut files,
        &id,
        "/workspace/resumed",
        data.len(),
        Some(&data),
    )
    .await;
    let half = data.len() / 2;
    cut_off(&daemon, &id, &made.upload_id, &data, half).await;
    wait_for_offset(&mut files, &id, &made.upload_id, half as u64).await;
    // Nothing is committed before the last byte.
    let early = download(&mut files, get(&id, "/workspace/resumed"))
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::NotFound);
    // A wrong offset is refused; the right one finishes the file.
    let mut wrong = meta(&id, "");
    wrong.upload_id = made.upload_id.clone();
    wrong.offset = Some(1);
    let refused = upload(&mut files, upload_messages(wrong, &data[half..], 1 << 20))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let done = upload_rest(&mut files, &id, &made.upload_id, &data, half).await;
    let status = done.upload.unwrap();
    assert!(status.complete);
    let result = done.result.unwrap();
    assert_eq!(result.crc64nvme, crc_hex(&data));
    assert_eq!(result.sha256, Some(sha_hex(&data)), "sent, so reported");
    let (header, body) = download(&mut files, get(&id, "/workspace/resumed"))
        .await
        .unwrap();
    assert_eq!((body == data, header.mode), (true, 0o640));

    // The whole-file checksum is the one given at creation: a different file is refused
    // and nothing is committed.
    let other = files
        .create_upload(pb::CreateUploadRequest {
            sandbox_id: id.clone(),
            remote_path: "/workspace/wrong".into(),
            size_bytes: 4,
            sha256: Some(sha_hex(b"good")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut bad = meta(&id, "");
    bad.upload_id = other.upload_id;
    let mismatch = upload(&mut files, upload_messages(bad, b"evil", 4))
        .await
        .unwrap_err();
    assert_eq!(mismatch.code(), Code::DataLoss, "{mismatch:?}");
    assert_eq!(
        mismatch.get_details_error_info().unwrap().reason,
        "checksum_mismatch"
    );
    assert_eq!(
        download(&mut files, get(&id, "/workspace/wrong"))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
}

/// A call refused while its client is still streaming, steadily over a few seconds, ends
/// in its status, not a transport error (the daemon drops the request stream unread, and
/// HTTP/2 ends just that stream), and the same connection goes on serving. Nothing of
/// it is kept.
#[tokio::test]
async fn a_refused_upload_still_streaming_gets_its_status() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let mut files = grpc::files(&daemon).await;
    let made = create_upload(&mut files, &id, "/workspace/steady", 32 << 20, None).await;
    let mut wrong = meta(&id, "");
    wrong.upload_id = made.upload_id.clone();
    wrong.offset = Some(5);
    let messages = upload_messages(wrong, &random(12 << 20, 9), 1 << 20);
    let steady = tokio_stream::StreamExt::throttle(
        tokio_stream::iter(messages),
        std::time::Duration::from_millis(250),
    );
    let refused = files.upload_file(steady).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    // The connection still serves, and the upload stands where it stood.
    let data = random(32 << 20, 10);
    let done = upload_rest(&mut files, &id, &made.upload_id, &data, 0).await;
    assert!(done.upload.unwrap().complete);
    assert_eq!(
        Files::new(&daemon, &id).bytes("/workspace/steady").await,
        data
    );
}

#[tokio::test]
async fn an_upload_begun_over_tus_finishes_over_grpc_and_back() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let tus = Tus::new(&daemon, &id);
    let mut files = grpc::files(&daemon).await;
    let data = random(2 << 20, 9);
    let half = data.len() / 2;
    let sum = sha_hex(&data);
    let location = tus
        .create(
            data.len() as u64,
            &[("path", "/workspace/crossed"), ("sha256", &sum)],
        )
        .await;
    assert_eq!(
        tus.patch(&location, 0, &data[..half], None).await.status(),
        204
    );
    let upload_id = location.rsplit('/').next().unwrap().to_owned();
    let mut rest = meta(&id, "");
    rest.upload_id = upload_id;
    let done = upload(&mut files, upload_messages(rest, &data[half..], 1 << 20))
        .await
        .unwrap();
    assert_eq!(done.result.unwrap().sha256, Some(sum));
    assert_eq!(
        Files::new(&daemon, &id).bytes("/workspace/crossed").await,
        data
    );

    // And the other way: begun over gRPC, finished with tus PATCH.
    let made = files
        .create_upload(pb::CreateUploadRequest {
            sandbox_id: id.clone(),
            remote_path: "/workspace/back".into(),
            size_bytes: data.len() as u64,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut first = meta(&id, "");
    first.upload_id = made.upload_id.clone();
    let part = upload(&mut files, upload_messages(first, &data[..half], 1 << 20))
        .await
        .unwrap();
    assert_eq!(part.upload.unwrap().offset, half as u64);
    let location = format!("/v1/sandboxes/{id}/uploads/{}", made.upload_id);
    assert_eq!(tus.offset(&location).await, Some(half as u64));
    assert_eq!(
        tus.patch(&location, half as u64, &data[half..], None)
            .await
            .status(),
        204
    );
    assert_eq!(
        Files::new(&daemon, &id).bytes("/workspace/back").await,
        data
    );
}

#[tokio::test]
async fn small_operations_batches_and_watch() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let mut files = grpc::files(&daemon).await;
    let dir = files
        .make_dir(pb::MakeDirRequest {
            sandbox_id: id.clone(),
            path: "/workspace/d/e".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dir.r#type, pb::FileType::Directory as i32);
    assert_eq!(dir.mode, 0o755);

    let mut watch = files
        .watch(pb::WatchRequest {
            sandbox_id: id.clone(),
            path: "/workspace/d".into(),
            recursive: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().r#type, "ready");

    use pb::write_files_request::Payload;
    let messages = vec![
        Payload::Start(pb::WriteFilesStart {
            sandbox_id: id.clone(),
            ..Default::default()
        }),
        Payload::File(pb::WriteFilesFile {
            path: "/workspace/d/one".into(),
            mode: Some(0o600),
            ..Default::default()
        }),
        Payload::Chunk(bytes::Bytes::from_static(b"first ")),
        Payload::Chunk(bytes::Bytes::from_static(b"file")),
        Payload::File(pb::WriteFilesFile {
            path: "relative/is/refused".into(),
            ..Default::default()
        }),
        Payload::Chunk(bytes::Bytes::from_static(b"lost")),
        Payload::File(pb::WriteFilesFile {
            path: "/workspace/d/new/parents/two".into(),
            sha256: Some(sha_hex(b"second")),
            ..Default::default()
        }),
        Payload::Chunk(bytes::Bytes::from_static(b"second")),
    ];
    let batch = files
        .write_files(tokio_stream::iter(
            messages
                .into_iter()
                .map(|p| pb::WriteFilesRequest { payload: Some(p) }),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((batch.written, batch.failed), (2, 1), "{batch:?}");
    assert_eq!(batch.results[1].error_code, "bad_request");
    let seen = watch.message().await.unwrap().unwrap();
    assert!(seen.path.starts_with("/workspace/d/"), "{seen:?}");

    let stat = files
        .stat(pb::StatRequest {
            sandbox_id: id.clone(),
            path: "/workspace/d/one".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((stat.size, stat.mode), (10, 0o600));
    let moved = files
        .r#move(pb::MoveRequest {
            sandbox_id: id.clone(),
            source: "/workspace/d/one".into(),
            destination: "/workspace/d/uno".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.path, "/workspace/d/uno");
    let composed = files
        .compose(pb::ComposeRequest {
            sandbox_id: id.clone(),
            sources: vec![
                "/workspace/d/uno".into(),
                "/workspace/d/new/parents/two".into(),
            ],
            destination: "/workspace/d/both".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(composed.crc64nvme, crc_hex(b"first filesecond"));
    // Paged listing: one entry a page until the last.
    let mut token = String::new();
    let mut names = Vec::new();
    loop {
        let page = files
            .list_dir(pb::ListDirRequest {
                sandbox_id: id.clone(),
                path: "/workspace/d".into(),
                page_size: Some(1),
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        names.extend(page.entries.into_iter().map(|e| e.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(names, ["both", "e", "new", "uno"]);
    let refused = files
        .remove(pb::RemoveRequest {
            sandbox_id: id.clone(),
            path: "/workspace/d/new".into(),
            recursive: false,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    files
        .remove(pb::RemoveRequest {
            sandbox_id: id.clone(),
            path: "/workspace/d/new".into(),
            recursive: true,
        })
        .await
        .unwrap();
    let exists = files
        .r#move(pb::MoveRequest {
            sandbox_id: id.clone(),
            source: "/workspace/d/uno".into(),
            destination: "/workspace/d/both".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(exists.code(), Code::AlreadyExists, "{exists:?}");
}

#[tokio::test]
async fn exec_streams_stdin_in_and_binary_output_out() {
    use pb::run_request::Payload as In;
    use pb::run_response::Payload as Out;
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let mut exec = grpc::exec(&daemon).await;
    let binary: Vec<u8> = (0..=255u8).collect();
    let messages = vec![
        In::Start(pb::ExecStart {
            sandbox_id: id.clone(),
            cmd: vec!["cat".into()],
            ..Default::default()
        }),
        In::Stdin(bytes::Bytes::copy_from_slice(&binary[..100])),
        In::Stdin(bytes::Bytes::copy_from_slice(&binary[100..])),
        In::CloseStdin(true),
    ];
    let mut events = exec
        .run(tokio_stream::iter(
            messages
                .into_iter()
                .map(|p| pb::RunRequest { payload: Some(p) }),
        ))
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    let mut exit = None;
    while let Some(event) = events.message().await.unwrap() {
        match event.payload {
            Some(Out::Stdout(b)) => out.extend_from_slice(&b),
            Some(Out::Exit(e)) => exit = Some(e.exit_code),
            _ => {}
        }
    }
    assert_eq!(out, binary);
    assert_eq!(exit, Some(0));
}

#[tokio::test]
async fn lifecycle_codes_health_and_reflection() {
    let daemon = Daemon::start();
    let mut sandboxes = grpc::sandboxes(&daemon).await;
    let made = sandboxes
        .create(pb::CreateSandboxRequest {
            files: vec![pb::InjectedFile {
                path: "/workspace/seed".into(),
                content: bytes::Bytes::from_static(b"\x00\xffseed"),
                readonly: true,
                ..Default::default()
            }],
            labels: [("team".to_owned(), "a".to_owned())].into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(made.state, pb::SandboxState::Running as i32);
    let listed = sandboxes
        .list(pb::ListSandboxesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(listed.sandboxes.iter().any(|s| s.id == made.id));
    let id = pb::GetSandboxRequest {
        sandbox_id: made.id.clone(),
    };
    let stopped = sandboxes.stop(id.clone()).await.unwrap().into_inner();
    assert_eq!(stopped.state, pb::SandboxState::Stopped as i32);

    let mut files = grpc::files(&daemon).await;
    let (_, seed) = download(&mut files, get(&made.id, "/workspace/seed"))
        .await
        .unwrap();
    assert_eq!(seed, b"\x00\xffseed");
    let readonly = upload(
        &mut files,
        upload_messages(meta(&made.id, "/workspace/seed"), b"x", 1),
    )
    .await
    .unwrap_err();
    assert_eq!(readonly.code(), Code::PermissionDenied);
    let bad_path = download(&mut files, get(&made.id, "relative"))
        .await
        .unwrap_err();
    assert_eq!(bad_path.code(), Code::InvalidArgument);
    let missing = download(&mut files, get(&made.id, "/nope"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let no_sandbox = download(&mut files, get("000000000000", "/x"))
        .await
        .unwrap_err();
    assert_eq!(no_sandbox.code(), Code::NotFound);
    let mut stranger = grpc::files_with(&daemon, "not-the-token").await;
    let refused = download(&mut stranger, get(&made.id, "/workspace/seed"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(
        refused.get_details_error_info().unwrap().reason,
        "unauthorized"
    );

    sandboxes.delete(id.clone()).await.unwrap();
    assert_eq!(sandboxes.get(id).await.unwrap_err().code(), Code::NotFound);

    // Health and reflection answer without a token, as probes and grpcurl expect.
    let channel = grpc::channel(&daemon).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "airlock.v1.Files".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(serving.status, 1, "SERVING");
    // The two reflection versions have the same shape in different modules.
    macro_rules! list_services {
        ($version:ident) => {{
            use tonic_reflection::pb::$version::*;
            let mut client = server_reflection_client::ServerReflectionClient::new(channel.clone());
            let ask = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(server_reflection_request::MessageRequest::ListServices(
                    String::new(),
                )),
            };
            let mut answers = client
                .server_reflection_info(tokio_stream::iter([ask]))
                .await
                .unwrap()
                .into_inner();
            match answers
                .message()
                .await
                .unwrap()
                .unwrap()
                .message_response
                .unwrap()
            {
                server_reflection_response::MessageResponse::ListServicesResponse(list) => {
                    list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
                }
                other => panic!("{other:?}"),
            }
        }};
    }
    for services in [list_services!(v1), list_services!(v1alpha)] {
        for name in [
            "airlock.v1.Files",
            "airlock.v1.Sandboxes",
            "airlock.v1.Exec",
        ] {
            assert!(services.iter().any(|s| s == name), "{name} in {services:?}");
        }
    }
    // REST still answers on the same port.
    assert_eq!(
        reqwest::get(format!("{}/healthz", daemon.url))
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_python_grpcio_client_generated_from_the_proto_streams_64_mib_both_ways() {
    let daemon = Daemon::start();
    let id = sandbox_with(&daemon, json!({})).await;
    let sha = common::grpc_roundtrip(&daemon, &id, 64).await;
    let stat = Files::new(&daemon, &id)
        .call(
            reqwest::Method::GET,
            "/stat",
            &[("path", "/workspace/py.bin")],
            None,
        )
        .await
        .1;
    assert_eq!(stat["size"], 64 << 20);
    assert_eq!(sha.len(), 64);
}

/// The two calls the daemon frames by hand (`UploadFile`, `DownloadFile`), sent bytes the
/// stubs never would: each bad body gets tonic's status, nothing is written, and the
/// daemon goes on serving. Good bodies cut into odd frames write what prost would read.
#[tokio::test]
async fn hand_framed_calls_refuse_bad_frames_and_read_odd_ones() {
    use prost::Message;
    const UPLOAD: &str = "/airlock.v1.Files/UploadFile";
    const DOWNLOAD: &str = "/airlock.v1.Files/DownloadFile";
    let daemon = Daemon::start();
    let id = grpc::sandboxes(&daemon)
        .await
        .create(pb::CreateSandboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .id;
    let metadata = |path: &str| {
        grpc::framed(
            &pb::UploadFileRequest {
                payload: Some(pb::upload_file_request::Payload::Metadata(meta(&id, path))),
            }
            .encode_to_vec(),
        )
    };
    let chunk = |bytes: &[u8]| {
        grpc::framed(
            &pb::UploadFileRequest {
                payload: Some(pb::upload_file_request::Payload::Chunk(
                    bytes::Bytes::copy_from_slice(bytes),
                )),
            }
            .encode_to_vec(),
        )
    };
    let mut files = grpc::files(&daemon).await;
    let absent = |files: &mut grpc::FilesAuthed, path: &'static str| {
        let mut files = files.clone();
        let id = id.clone();
        async move {
            let stat = files.stat(pb::StatRequest {
                sandbox_id: id,
                path: path.into(),
            });
            assert_eq!(
                stat.await.unwrap_err().code(),
                Code::NotFound,
                "{path} was written"
            );
        }
    };

    let mut compressed = chunk(b"data");
    compressed[0] = 1;
    let mut too_long = chunk(b"data");
    too_long[1..5].copy_from_slice(&(64u32 << 20).to_be_bytes());
    let cut = chunk(b"cut short");
    // Past the metadata, a broken stream interrupts the upload (INVALID_ARGUMENT, as
    // for any stream that breaks) and says why in tonic's words.
    let mut compressed_meta = metadata("/workspace/meta-compressed");
    compressed_meta[0] = 1;
    let bad_uploads = [
        (
            "/workspace/compressed",
            vec![metadata("/workspace/compressed"), compressed],
            &[][..],
            Code::InvalidArgument,
            "compressed-flag",
        ),
        (
            "/workspace/too-long",
            vec![metadata("/workspace/too-long"), too_long],
            &[],
            Code::InvalidArgument,
            "too large",
        ),
        (
            "/workspace/cut",
            vec![metadata("/workspace/cut"), cut[..cut.len() - 3].to_vec()],
            &[],
            Code::InvalidArgument,
            "Unexpected EOF",
        ),
        (
            "/workspace/garbage",
            vec![
                metadata("/workspace/garbage"),
                grpc::framed(&[0xff, 0xff, 0xff]),
            ],
            &[],
            Code::InvalidArgument,
            "decoding",
        ),
        (
            "/workspace/twice",
            vec![metadata("/workspace/twice"), metadata("/workspace/twice")],
            &[],
            Code::InvalidArgument,
            "only chunks",
        ),
        (
            "/workspace/meta-compressed",
            vec![compressed_meta],
            &[],
            Code::Internal,
            "compressed-flag",
        ),
        (
            "/workspace/gzip",
            vec![metadata("/workspace/gzip"), chunk(b"x")],
            &[("grpc-encoding", "gzip")],
            Code::Unimplemented,
            "gzip",
        ),
        (
            "/workspace/nothing",
            vec![],
            &[],
            Code::InvalidArgument,
            "metadata",
        ),
    ];
    for (path, frames, headers, code, words) in bad_uploads {
        let answer = grpc::raw_call(&daemon, UPLOAD, frames, headers).await;
        assert_eq!(answer.code, code, "{path}: {answer:?}");
        assert!(answer.message.contains(words), "{path}: {answer:?}");
        absent(&mut files, path).await;
    }

    // A good upload in frames that cut through prefixes, keys and lengths, with a chunk
    // whose field comes twice (prost keeps the last) and an empty chunk.
    let mut wire = metadata("/workspace/odd");
    let big = random(300_000, 16);
    wire.extend(chunk(&big));
    wire.extend(chunk(b""));
    let mut twice = vec![0x12, 2, b'n', b'o'];
    twice.extend([0x12, 3, b'y', b'e', b's']);
    wire.extend(grpc::framed(&twice));
    let frames: Vec<Vec<u8>> = wire.chunks(7).map(<[u8]>::to_vec).collect();
    let answer = grpc::raw_call(&daemon, UPLOAD, frames, &[]).await;
    assert_eq!(answer.code, Code::Ok, "{answer:?}");
    let (_, got) = download(&mut files, get(&id, "/workspace/odd"))
        .await
        .unwrap();
    let mut want = big.clone();
    want.extend_from_slice(b"yes");
    assert!(got == want, "the file differs from what was sent");

    let request = grpc::framed(&get(&id, "/workspace/odd").encode_to_vec());
    let mut compressed = request.clone();
    compressed[0] = 1;
    let bad_downloads = [
        (vec![], &[][..], Code::Internal),
        (vec![compressed], &[], Code::Internal),
        (vec![request[..4].to_vec()], &[], Code::Internal),
        (vec![grpc::framed(&[0xff, 0xff])], &[], Code::Internal),
        (
            vec![request.clone()],
            &[("grpc-encoding", "br")],
            Code::Unimplemented,
        ),
    ];
    for (frames, headers, code) in bad_downloads {
        let answer = grpc::raw_call(&daemon, DOWNLOAD, frames, headers).await;
        assert_eq!(answer.code, code, "{answer:?}");
        assert!(answer.data.is_empty());
    }
    // The request cut into one-byte frames still reads; the daemon serves on.
    let frames = request.iter().map(|b| vec![*b]).collect();
    let answer = grpc::raw_call(&daemon, DOWNLOAD, frames, &[]).await;
    assert_eq!(answer.code, Code::Ok, "{answer:?}");
    assert!(answer.data.len() > want.len());
}
