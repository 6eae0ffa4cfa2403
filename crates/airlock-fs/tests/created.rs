//! A write says whether it made its file, from the commit itself (a rename that may not
//! replace, then one that may): the REST face answers 201 or 200 by it. Hostile or odd
//! things at the name must still be refused or replaced exactly as before.
#![allow(clippy::unwrap_used)]

mod common;

use common::{me, scene};
use std::fs;
use std::os::unix::fs::symlink;

use airlock_fs::{Checks, FsErrorKind, Placement, Root, SandboxPath, WriteOptions, Written};

fn put(root: &Root, path: &str, body: &[u8], overwrite: bool) -> airlock_fs::FsResult<Written> {
    let opts = WriteOptions {
        overwrite,
        ..WriteOptions::new(0o644, me())
    };
    root.write_file(&SandboxPath::parse(path).unwrap(), &mut &body[..], opts)
}

/// Names in `dir` left by an unfinished write.
fn leftovers(dir: &std::path::Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".airlock-tmp-"))
        .collect()
}

#[test]
fn a_new_name_is_created_and_a_second_write_replaces_it() {
    let s = scene("workspace");
    let root = Root::open(&s.root_dir).unwrap();
    assert!(put(&root, "/workspace/f", b"one", true).unwrap().created);
    let again = put(&root, "/workspace/f", b"two", true).unwrap();
    assert!(!again.created);
    assert_eq!(again.entry.size, 3);
    assert_eq!(fs::read(s.root_dir.join("workspace/f")).unwrap(), b"two");
    assert!(leftovers(&s.root_dir.join("workspace")).is_empty());
}

#[test]
fn without_overwrite_an_existing_file_is_a_conflict_and_stays() {
    let s = scene("workspace");
    let root = Root::open(&s.root_dir).unwrap();
    put(&root, "/workspace/f", b"old", true).unwrap();
    let refused = put(&root, "/workspace/f", b"new", false).unwrap_err();
    assert_eq!(refused.kind(), FsErrorKind::Conflict, "{refused}");
    assert_eq!(fs::read(s.root_dir.join("workspace/f")).unwrap(), b"old");
    assert!(leftovers(&s.root_dir.join("workspace")).is_empty());
}

#[test]
fn a_directory_at_the_name_is_refused_and_kept() {
    let s = scene("workspace/d");
    fs::write(s.root_dir.join("workspace/d/inside"), b"keep").unwrap();
    let root = Root::open(&s.root_dir).unwrap();
    let refused = put(&root, "/workspace/d", b"file", true).unwrap_err();
    assert_eq!(refused.kind(), FsErrorKind::IsDirectory, "{refused}");
    assert_eq!(
        fs::read(s.root_dir.join("workspace/d/inside")).unwrap(),
        b"keep"
    );
    assert!(leftovers(&s.root_dir.join("workspace")).is_empty());
}

#[test]
fn a_symlink_at_the_name_counts_as_taken_and_is_replaced_not_followed() {
    let s = scene("workspace");
    // Dangling inside the sandbox, and pointing at the host's sentinel by its host path.
    symlink(
        s.outside.join("sentinel"),
        s.root_dir.join("workspace/link"),
    )
    .unwrap();
    let root = Root::open(&s.root_dir).unwrap();
    let written = put(&root, "/workspace/link", b"sandbox", true).unwrap();
    assert!(
        !written.created,
        "a name that was taken, if only by a symlink"
    );
    let at = s.root_dir.join("workspace/link");
    assert!(fs::symlink_metadata(&at).unwrap().is_file());
    assert_eq!(fs::read(&at).unwrap(), b"sandbox");
    s.sentinel_untouched();
}

#[test]
fn an_in_place_write_says_whether_it_made_the_file() {
    let s = scene("workspace");
    let root = Root::open(&s.root_dir).unwrap();
    let path = SandboxPath::parse("/workspace/log").unwrap();
    let append = |body: &[u8]| {
        root.write_in_place(
            &path,
            &mut &body[..],
            Placement::Append,
            me(),
            Checks::default(),
        )
        .unwrap()
    };
    assert!(append(b"ab").created);
    let second = append(b"cd");
    assert!(!second.created);
    assert_eq!(second.entry.size, 4);
}

/// Every permission bit lands as asked, new name or replaced, whether or not the umask
/// would take it from a new file: an unnamed file is born with the bits the umask
/// keeps whole (no `fchmod`), any other is given them.
#[test]
fn writes_get_exactly_the_mode_asked_whatever_the_umask() {
    // Set, not inherited: nextest runs each test in a process of its own.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let s = scene("workspace");
    let root = Root::open(&s.root_dir).unwrap();
    for round in 0..3 {
        for mode in [0o777, 0o666, 0o644, 0o640, 0o600, 0o444, 0o000, 0o751] {
            let path = format!("/workspace/m{mode:o}");
            let opts = WriteOptions {
                overwrite: true,
                ..WriteOptions::new(mode, me())
            };
            let sandbox_path = SandboxPath::parse(&path).unwrap();
            let written = root
                .write_file(&sandbox_path, &mut &b"data"[..], opts)
                .unwrap();
            assert_eq!(written.created, round == 0);
            let got = std::os::unix::fs::PermissionsExt::mode(
                &fs::metadata(s.root_dir.join(&path[1..]))
                    .unwrap()
                    .permissions(),
            );
            assert_eq!(got & 0o7777, mode, "{path}, round {round}");
        }
    }
}
