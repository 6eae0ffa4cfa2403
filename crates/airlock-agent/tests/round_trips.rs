//! The gateway's client against a real agent on loopback, serving a directory that stands
//! in for a pod's root: every kind of call, errors in their own kinds, streams both ways,
//! and the confinement of the engine behind it.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use airlock_agent::client::RemoteFs;
use airlock_fs::{
    Checks, FileOwner, FsErrorKind, Root, SandboxFs, SandboxPath, Unpacking, WatchKind,
    WriteOptions,
};

const SECRET: &str = "a-sandbox-secret";

/// An agent serving `dir`, and a client of it.
async fn agent(dir: &Path, secret: &str) -> RemoteFs {
    let root: Arc<dyn SandboxFs> = Arc::new(Root::open(dir).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = airlock_agent::server::router(root, dir, SECRET);
    tokio::spawn(async move { axum::serve(listener, app).await });
    RemoteFs::new(
        &format!("http://{addr}"),
        secret,
        tokio::runtime::Handle::current(),
    )
}

fn p(text: &str) -> SandboxPath {
    SandboxPath::parse(text).unwrap()
}

fn opts() -> WriteOptions {
    WriteOptions::new(0o640, FileOwner::SANDBOX_USER)
}

/// Runs the blocking client calls off the runtime, as the service does.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_goes_through_the_agent_and_back_whole_and_from_any_offset() {
    let dir = tempfile::tempdir().unwrap();
    let fs = agent(dir.path(), SECRET).await;
    let content: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let expected = content.clone();
    blocking(move || {
        let written = fs
            .write_file(&p("/workspace/big.bin"), &mut content.as_slice(), opts())
            .unwrap();
        assert_eq!(written.entry.size, expected.len() as u64);
        assert_eq!(written.entry.mode, 0o640);
        let (mut file, entry) = fs.open_read(&p("/workspace/big.bin")).unwrap();
        assert_eq!(entry.size, expected.len() as u64);
        let mut back = Vec::new();
        file.read_to_end(&mut back).unwrap();
        assert!(back == expected, "the file came back different");
        file.seek(SeekFrom::Start(1 << 20)).unwrap();
        let mut tail = Vec::new();
        file.read_to_end(&mut tail).unwrap();
        assert!(
            tail == expected[1 << 20..],
            "the window came back different"
        );
        let sums = fs
            .checksums(&p("/workspace/big.bin"), Checks::default())
            .unwrap();
        assert_eq!(sums.crc64nvme, written.checksums.crc64nvme);
    })
    .await;
    let on_disk = std::fs::read(dir.path().join("workspace/big.bin")).unwrap();
    assert_eq!(on_disk.len(), 3 * 1024 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_cross_in_their_own_kinds_and_a_wrong_secret_gets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kept"), b"mine").unwrap();
    let fs = agent(dir.path(), SECRET).await;
    let stranger = agent(dir.path(), "not-the-secret").await;
    blocking(move || {
        fn kind<T>(r: Result<T, airlock_fs::FsError>) -> FsErrorKind {
            r.map(drop).unwrap_err().kind()
        }
        assert_eq!(kind(fs.stat(&p("/nope"))), FsErrorKind::NotFound);
        assert_eq!(
            kind(fs.open_read(&p("/")).map(drop)),
            FsErrorKind::IsDirectory
        );
        let mut no_overwrite = opts();
        no_overwrite.overwrite = false;
        let again = fs.write_file(&p("/kept"), &mut &b"theirs"[..], no_overwrite);
        assert_eq!(kind(again), FsErrorKind::Conflict);
        let mut wrong = opts();
        wrong.checks.expect_crc64nvme = Some(1);
        let mismatch = fs.write_file(&p("/new"), &mut &b"data"[..], wrong);
        assert_eq!(kind(mismatch), FsErrorKind::ChecksumMismatch);
        // A wrong secret reads nothing and writes nothing.
        assert_eq!(kind(stranger.stat(&p("/kept"))), FsErrorKind::Io);
        let denied = stranger.write_file(&p("/kept"), &mut &b"theirs"[..], opts());
        assert_eq!(kind(denied), FsErrorKind::Io);
    })
    .await;
    assert_eq!(std::fs::read(dir.path().join("kept")).unwrap(), b"mine");
    assert!(!dir.path().join("new").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_keeps_every_path_inside_its_root() {
    let host = tempfile::tempdir().unwrap();
    let outside = host.path().join("outside");
    let root = host.path().join("root");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(outside.join("secret"), b"host").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
    std::os::unix::fs::symlink("../../..", root.join("climb")).unwrap();
    let fs = agent(&root, SECRET).await;
    blocking(move || {
        for path in ["/escape/secret", "/climb/outside/secret"] {
            assert!(fs.open_read(&p(path)).is_err(), "{path} was read");
        }
        for path in ["/escape/owned", "/climb/outside/owned"] {
            let _ = fs.write_file(&p(path), &mut &b"x"[..], opts());
        }
        let _ = fs.remove(&p("/escape/secret"), false);
    })
    .await;
    assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"host");
    assert!(!outside.join("owned").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_upload_through_the_agent_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fs = agent(dir.path(), SECRET).await;
    /// Gives 1 MiB, then fails as a client that went away would.
    struct Breaks(usize);
    impl Read for Breaks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 >= 1 << 20 {
                return Err(std::io::ErrorKind::ConnectionAborted.into());
            }
            let n = buf.len().min((1 << 20) - self.0);
            buf[..n].fill(b'z');
            self.0 += n;
            Ok(n)
        }
    }
    let failed = blocking(move || {
        fs.write_file(&p("/half"), &mut std::io::BufReader::new(Breaks(0)), opts())
    })
    .await;
    assert!(failed.is_err());
    // The client's error comes back as soon as it cuts the request; the agent removes its
    // temporary file once it sees the cut.
    let mut left = Vec::new();
    for _ in 0..200 {
        left = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trees_partial_uploads_and_the_rest_of_the_calls_work_through_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let fs = agent(dir.path(), SECRET).await;
    blocking(move || {
        let owner = FileOwner::SANDBOX_USER;
        fs.mkdir(&p("/t/a/b"), 0o755, owner, true).unwrap();
        for name in ["/t/a/one", "/t/a/b/two"] {
            fs.write_file(&p(name), &mut name.as_bytes(), opts())
                .unwrap();
        }
        let page = fs.list(&p("/t"), 3, 10, None).unwrap();
        assert_eq!(page.entries.len(), 4);
        // A tree out as tar and back in elsewhere.
        let mut tar = Vec::new();
        fs.pack(&p("/t"), &mut tar).unwrap();
        let unpacked = fs
            .unpack(&p("/copy"), &mut tar.as_slice(), Unpacking::by(owner))
            .unwrap();
        assert_eq!(unpacked.files, 2);
        let (mut two, _) = fs.open_read(&p("/copy/a/b/two")).unwrap();
        let mut text = String::new();
        two.read_to_string(&mut text).unwrap();
        assert_eq!(text, "/t/a/b/two");
        // Compose, rename, remove.
        let both = [p("/t/a/one"), p("/t/a/b/two")];
        let joined = fs.compose(&both, &p("/joined"), opts()).unwrap();
        assert_eq!(joined.entry.size, 18);
        fs.rename(&p("/joined"), &p("/moved"), false).unwrap();
        fs.remove(&p("/copy"), true).unwrap();
        assert_eq!(
            fs.stat(&p("/copy")).unwrap_err().kind(),
            FsErrorKind::NotFound
        );
        // A resumable upload's partial file: writes, a cut, more writes, the commit.
        let name = fs.create_partial(&p("/up/file"), true, owner).unwrap();
        let mut part = fs.open_partial(&p("/up/file"), &name).unwrap();
        part.write_all(b"hello").unwrap();
        part.flush().unwrap();
        part.cut_to(3).unwrap();
        part.write_all(b"p!").unwrap();
        part.flush().unwrap();
        drop(part);
        let done = fs.commit_partial(&p("/up/file"), &name, opts()).unwrap();
        assert_eq!(done.entry.size, 5);
        let (mut file, _) = fs.open_read(&p("/up/file")).unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "help!");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_through_the_agent_sees_a_file_appear() {
    let dir = tempfile::tempdir().unwrap();
    let fs = agent(dir.path(), SECRET).await;
    let seen = blocking(move || {
        let mut feed = fs.watch(&p("/"), true).unwrap();
        fs.write_file(&p("/fresh"), &mut &b"new"[..], opts())
            .unwrap();
        let mut events = Vec::new();
        for _ in 0..20 {
            feed.next_events(&mut events, Duration::from_millis(100))
                .unwrap();
            if events.iter().any(|e| e.path == "/fresh") {
                break;
            }
        }
        events
    })
    .await;
    assert!(
        seen.iter()
            .any(|e| e.path == "/fresh" && matches!(e.kind, WatchKind::Rename | WatchKind::Create)),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_a_directory_for_a_symlink_under_the_agent_never_reaches_the_host() {
    let host = tempfile::tempdir().unwrap();
    let (outside, root) = (host.path().join("outside"), host.path().join("root"));
    std::fs::create_dir_all(root.join("race/real")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"host").unwrap();
    std::fs::write(root.join("race/real/secret"), b"inside").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("race/link")).unwrap();
    let fs = agent(&root, SECRET).await;
    // A racer swaps the directory and the symlink to the host, as fast as it can.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let racer = {
        let (stop, race) = (stop.clone(), root.join("race"));
        std::thread::spawn(move || {
            let dir = rustix::fs::open(&race, rustix::fs::OFlags::PATH, rustix::fs::Mode::empty())
                .unwrap();
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let flags = rustix::fs::RenameFlags::EXCHANGE;
                if rustix::fs::renameat_with(&dir, "real", &dir, "link", flags).is_ok() {
                    swaps += 1;
                }
            }
            swaps
        })
    };
    // The call in flight, so that a call the agent never answers fails the test by its
    // name instead of running into the harness's timeout unexplained (seen once in CI).
    // The calls run on a thread of their own, not the runtime's blocking pool, whose
    // shutdown would wait for a stuck call forever.
    let in_flight = Arc::new(std::sync::Mutex::new(String::new()));
    let (done, calls) = tokio::sync::oneshot::channel();
    std::thread::spawn({
        let in_flight = in_flight.clone();
        move || {
            let mut engine_failures = Vec::new();
            let mut note =
                |call: &str, i: usize, run: &mut dyn FnMut() -> Result<(), airlock_fs::FsError>| {
                    *in_flight.lock().unwrap() = format!("{call} #{i}");
                    // The agent's engine must never fail (its failures cross as "the engine
                    // failed"); a request that could not be sent is the transport's, counted
                    // below.
                    if let Err(e) = run()
                        && e.kind() == FsErrorKind::Io
                    {
                        engine_failures.push(e.to_string());
                    }
                };
            for i in 0..300 {
                let name = p(&format!("/race/real/owned-{i}"));
                note("write_file", i, &mut || {
                    fs.write_file(&name, &mut &b"x"[..], opts()).map(drop)
                });
                note("open_read", i, &mut || {
                    fs.open_read(&p("/race/real/secret")).map(drop)
                });
                note("stat", i, &mut || {
                    fs.stat(&p("/race/real/secret")).map(drop)
                });
                note("list", i, &mut || {
                    fs.list(&p("/race/real"), 1, 10, None).map(drop)
                });
                note("mkdir", i, &mut || {
                    let dir = p(&format!("/race/real/dir-{i}"));
                    fs.mkdir(&dir, 0o755, FileOwner::SANDBOX_USER, false)
                        .map(drop)
                });
                // A pack whose tree is swapped under it is cut, as a local archive
                // download is once its answer has started: that may fail, but never
                // reach the host.
                note("pack", i, &mut || {
                    let _ = fs.pack(&p("/race/real"), &mut std::io::sink());
                    Ok(())
                });
                note("remove", i, &mut || fs.remove(&name, false));
            }
            let _ = done.send(engine_failures);
        }
    });
    let Ok(Ok(failures)) = tokio::time::timeout(Duration::from_secs(150), calls).await else {
        panic!(
            "the calls did not finish within 150 s (or their thread panicked); the call in flight: {}",
            in_flight.lock().unwrap()
        );
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = racer.join().unwrap();
    assert!(swaps > 0, "the racer never swapped");
    let (transport, engine): (Vec<_>, Vec<_>) = failures
        .iter()
        .partition(|f| f.contains("error sending request"));
    assert!(
        engine.is_empty(),
        "engine failures under the race: {engine:?}"
    );
    // A request that failed to be sent is the transport's, not the engine's: RemoteFs
    // sends a read-only call again; what is left is reported, not failed on.
    eprintln!("{} of 1,800 calls could not be sent", transport.len());
    let mut names: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["secret"], "something appeared outside the root");
    assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"host");
}

/// An agent whose address drops connections unanswered (a dead pod's, whose SYNs go
/// nowhere; here, a listener whose backlog is full) fails a call after the connect
/// timeout instead of leaving it waiting on the kernel's retries for minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_never_answers_the_connect_is_an_error_in_time() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    // Kept open, never accepting, to the end of the test.
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    // Fill the accept queue (never accepted) until a connect goes unanswered.
    let mut held = Vec::new();
    loop {
        let connect = tokio::net::TcpStream::connect(addr);
        match tokio::time::timeout(Duration::from_millis(500), connect).await {
            Ok(stream) => held.push(stream.unwrap()),
            Err(_) => break,
        }
        assert!(held.len() < 64, "the listener's backlog never filled");
    }
    let fs = RemoteFs::new(
        &format!("http://{addr}"),
        SECRET,
        tokio::runtime::Handle::current(),
    );
    let started = std::time::Instant::now();
    let asked = blocking(move || fs.stat(&p("/workspace"))).await;
    assert!(asked.is_err(), "a call through a dead connect answered");
    let took = started.elapsed();
    assert!(
        took >= airlock_agent::CONNECT_TIMEOUT && took < airlock_agent::CONNECT_TIMEOUT * 2,
        "failed after {took:?}"
    );
}

/// An agent that takes connections and reads every request but never answers one: a
/// stopped process, or one stuck on a hung mount in its pod. Counts the calls it saw.
async fn silent_agent() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = vec![0u8; 64 * 1024];
                while let Ok(n) = socket.read(&mut head).await {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&head[..n]);
                    let posts = text.matches("POST /v1/fs/").count();
                    seen.fetch_add(posts, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    (format!("http://{addr}"), calls)
}

type QuickCall = fn(&RemoteFs) -> airlock_fs::FsResult<()>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_call_to_an_agent_that_never_answers_fails_once_in_time() {
    let (base, calls) = silent_agent().await;
    let bound = Duration::from_millis(500);
    let fs = RemoteFs::answering_within(&base, SECRET, tokio::runtime::Handle::current(), bound);
    let quick: [(&str, QuickCall); 5] = [
        ("stat", |fs| fs.stat(&p("/workspace")).map(drop)),
        ("require_dir", |fs| fs.require_dir(&p("/workspace"))),
        ("list", |fs| {
            fs.list(&p("/workspace"), 1, 100, None).map(drop)
        }),
        ("mkdir", |fs| {
            fs.mkdir(&p("/workspace/d"), 0o755, FileOwner::SANDBOX_USER, true)
                .map(drop)
        }),
        ("rename", |fs| {
            fs.rename(&p("/workspace/a"), &p("/workspace/b"), false)
                .map(drop)
        }),
    ];
    for (n, (name, call)) in quick.into_iter().enumerate() {
        let fs = fs.clone();
        let started = std::time::Instant::now();
        let err = blocking(move || call(&fs)).await.unwrap_err();
        let took = started.elapsed();
        // Far above the bound, so a loaded machine cannot fail it; a hang would.
        assert!(
            took >= bound && took < bound * 10,
            "{name} failed after {took:?}"
        );
        assert_eq!(err.kind(), FsErrorKind::Io, "{name}: {err}");
        assert!(
            err.to_string().contains("no answer within 0.5 s"),
            "{name}: {err}"
        );
        // Sent once: a call that changes nothing is retried after a failed send, but
        // not after its bound ran out (that would double the wait on a stuck agent).
        tokio::time::sleep(Duration::from_millis(100)).await;
        let seen = calls.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(seen, n + 1, "{name}: the agent saw {seen} calls in all");
    }
}
