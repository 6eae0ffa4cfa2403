//! The recursive watcher: new nested directories are followed, renames paired, writes
//! coalesced, and symlinks to directories outside never followed.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::time::{Duration, Instant};

use airlock_fs::{Root, SandboxPath, WatchEvent, WatchKind, Watcher};
use common::{Scene, scene};

/// Collects events until `done` says so or two seconds pass.
fn collect(watcher: &mut Watcher, done: impl Fn(&[WatchEvent]) -> bool) -> Vec<WatchEvent> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && !done(&seen) {
        let fd = watcher.fd();
        let mut fds = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        let wait = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 50_000_000,
        };
        let _ = rustix::event::poll(&mut fds, Some(&wait));
        watcher.read(&mut seen).unwrap();
    }
    seen
}

/// A fresh scene with a directory `/w`, watched recursively.
fn watching_w() -> (Scene, Root, Watcher) {
    let s = scene("w");
    let root = Root::open(&s.root_dir).unwrap();
    let watcher = root
        .watch(&SandboxPath::parse("/w").unwrap(), true)
        .unwrap();
    (s, root, watcher)
}

fn has(events: &[WatchEvent], kind: WatchKind, path: &str) -> bool {
    events.iter().any(|e| e.kind == kind && e.path == path)
}

#[test]
fn follows_new_nested_directories_and_pairs_renames() {
    let (s, _root, mut watcher) = watching_w();
    let w = s.root_dir.join("w");
    fs::create_dir_all(w.join("a/b/c")).unwrap();
    fs::write(w.join("a/b/c/f"), b"1").unwrap();
    let events = collect(&mut watcher, |e| has(e, WatchKind::Create, "/w/a/b/c/f"));
    assert!(has(&events, WatchKind::Create, "/w/a"), "{events:?}");
    assert!(has(&events, WatchKind::Create, "/w/a/b/c/f"), "{events:?}");

    // Now fully watched: writes (coalesced), chmod, rename, remove deep inside.
    let f = w.join("a/b/c/f");
    for _ in 0..5 {
        fs::OpenOptions::new()
            .append(true)
            .open(&f)
            .and_then(|mut h| std::io::Write::write_all(&mut h, b"x"))
            .unwrap();
    }
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    fs::rename(w.join("a/b"), w.join("a/renamed")).unwrap();
    fs::remove_file(w.join("a/renamed/c/f")).unwrap();
    let events = collect(&mut watcher, |e| {
        has(e, WatchKind::Remove, "/w/a/renamed/c/f")
    });
    let writes = events.iter().filter(|e| e.kind == WatchKind::Write).count();
    assert_eq!(writes, 1, "consecutive writes coalesce: {events:?}");
    assert!(has(&events, WatchKind::Chmod, "/w/a/b/c/f"), "{events:?}");
    let rename = events.iter().find(|e| e.kind == WatchKind::Rename).unwrap();
    assert_eq!(
        (rename.from.as_deref(), rename.path.as_str()),
        (Some("/w/a/b"), "/w/a/renamed")
    );
    assert!(rename.is_dir);
    assert!(
        has(&events, WatchKind::Remove, "/w/a/renamed/c/f"),
        "paths follow the rename: {events:?}"
    );
}

#[test]
fn symlinked_directories_are_not_followed() {
    let s = scene("w");
    symlink(&s.outside, s.root_dir.join("w/out")).unwrap();
    let root = Root::open(&s.root_dir).unwrap();
    let mut watcher = root
        .watch(&SandboxPath::parse("/w").unwrap(), true)
        .unwrap();
    fs::write(s.outside.join("host-file"), b"x").unwrap();
    fs::write(s.root_dir.join("w/marker"), b"x").unwrap();
    let events = collect(&mut watcher, |e| has(e, WatchKind::Create, "/w/marker"));
    assert!(has(&events, WatchKind::Create, "/w/marker"));
    assert!(
        events.iter().all(|e| !e.path.contains("host-file")),
        "{events:?}"
    );
}

#[test]
fn a_flat_watch_ignores_subdirectories() {
    let s = scene("w/sub");
    let root = Root::open(&s.root_dir).unwrap();
    let mut watcher = root
        .watch(&SandboxPath::parse("/w").unwrap(), false)
        .unwrap();
    fs::write(s.root_dir.join("w/sub/deep"), b"x").unwrap();
    fs::write(s.root_dir.join("w/top"), b"x").unwrap();
    let events = collect(&mut watcher, |e| has(e, WatchKind::Create, "/w/top"));
    assert!(has(&events, WatchKind::Create, "/w/top"));
    assert!(
        !has(&events, WatchKind::Create, "/w/sub/deep"),
        "{events:?}"
    );
}

#[test]
fn a_tree_too_big_to_follow_is_reported_not_silently_cut() {
    let s = scene("w");
    for i in 0..8200 {
        fs::create_dir(s.root_dir.join(format!("w/d{i}"))).unwrap();
    }
    let root = Root::open(&s.root_dir).unwrap();
    let mut watcher = root
        .watch(&SandboxPath::parse("/w").unwrap(), true)
        .unwrap();
    let mut events = Vec::new();
    watcher.read(&mut events).unwrap();
    let errors: Vec<_> = events
        .iter()
        .filter(|e| e.kind == WatchKind::Error)
        .collect();
    assert!(
        !errors.is_empty(),
        "no error event for the directories left out"
    );
    assert!(
        errors[0].message.as_deref().unwrap().contains("8192"),
        "{errors:?}"
    );
}

#[test]
fn a_chain_too_deep_to_follow_is_reported_and_the_stack_holds() {
    let s = scene("w");
    // What a process in a sandbox makes in a second: `mkdir d; cd d`, 5,000 times (a
    // walk recursing per level would overflow the small stack below).
    let mut dir = fs::File::open(s.root_dir.join("w")).unwrap();
    for _ in 0..5_000 {
        rustix::fs::mkdirat(&dir, "d", rustix::fs::Mode::from_raw_mode(0o755)).unwrap();
        dir = fs::File::from(
            rustix::fs::openat(
                &dir,
                "d",
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
                rustix::fs::Mode::empty(),
            )
            .unwrap(),
        );
    }
    let root = Root::open(&s.root_dir).unwrap();
    let events = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let mut watcher = root
                .watch(&SandboxPath::parse("/w").unwrap(), true)
                .unwrap();
            let mut events = Vec::new();
            watcher.read(&mut events).unwrap();
            events
        })
        .unwrap()
        .join()
        .expect("the watch overflowed its stack");
    let errors: Vec<_> = events
        .iter()
        .filter(|e| e.kind == WatchKind::Error)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].message.as_deref().unwrap().contains("256 levels"),
        "{errors:?}"
    );
    assert_eq!(
        errors[0].path.matches("/d").count(),
        257,
        "{}",
        errors[0].path
    );
}

/// The engine's own steps stay out of a watch: a replacing write (temp file renamed over
/// the target) is the file's create and write, an archive extracted into the tree is its
/// entries' creates, and an entry renamed to a reserved name is removed.
#[test]
fn the_engines_work_in_progress_is_never_seen() {
    let (s, root, mut watcher) = watching_w();
    let w = s.root_dir.join("w");
    fs::write(w.join("f"), b"old").unwrap();
    fs::write(w.join("gone"), b"x").unwrap();
    let _ = collect(&mut watcher, |e| has(e, WatchKind::Create, "/w/gone"));

    let opts = airlock_fs::WriteOptions::new(0o644, common::me());
    let f = SandboxPath::parse("/w/f").unwrap();
    root.write_file(&f, &mut &b"new"[..], opts).unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(1);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, "t/inner/g", &b"g"[..])
        .unwrap();
    let archive = builder.into_inner().unwrap();
    let dir = SandboxPath::parse("/w").unwrap();
    root.unpack(&dir, &archive[..], airlock_fs::Unpacking::by(common::me()))
        .unwrap();
    fs::rename(w.join("gone"), w.join(".airlock-tmp-0123456789abcdef")).unwrap();
    fs::write(w.join("marker"), b"x").unwrap();

    let events = collect(&mut watcher, |e| has(e, WatchKind::Create, "/w/marker"));
    assert!(
        events.iter().all(|e| {
            !e.path.contains(".airlock-")
                && !e.from.as_ref().is_some_and(|f| f.contains(".airlock-"))
        }),
        "{events:?}"
    );
    assert!(has(&events, WatchKind::Create, "/w/f"), "{events:?}");
    assert!(has(&events, WatchKind::Write, "/w/f"), "{events:?}");
    assert!(has(&events, WatchKind::Create, "/w/t"), "{events:?}");
    assert!(
        has(&events, WatchKind::Create, "/w/t/inner/g"),
        "{events:?}"
    );
    assert!(has(&events, WatchKind::Remove, "/w/gone"), "{events:?}");
}
