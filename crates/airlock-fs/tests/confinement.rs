//! Adversarial tests: a root full of planted symlinks must never let a write land outside.
#![allow(clippy::unwrap_used)]

mod common;

use common::{me, scene};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

use airlock_fs::{FsError, Root, SandboxPath, WriteOptions};

fn opts() -> WriteOptions {
    WriteOptions::new(0o644, me())
}

fn write(root: &Root, path: &str, body: &[u8]) -> Result<(), FsError> {
    root.write_file(&SandboxPath::parse(path).unwrap(), &mut &body[..], opts())
        .map(drop)
}

#[test]
fn absolute_symlink_means_the_sandbox_path() {
    let s = scene("etc");
    // A symlink whose host meaning is the sentinel's directory.
    symlink(&s.outside, s.root_dir.join("escape")).unwrap();
    let inside_dir = s.root_dir.join(s.outside.strip_prefix("/").unwrap());
    fs::create_dir_all(&inside_dir).unwrap();
    let root = Root::open(&s.root_dir).unwrap();
    write(&root, "/escape/sentinel", b"sandbox").unwrap();
    s.sentinel_untouched();
    assert_eq!(fs::read(inside_dir.join("sentinel")).unwrap(), b"sandbox");
}

#[test]
fn dangling_symlink_to_a_host_directory_fails_cleanly() {
    let s = scene("etc");
    symlink(&s.outside, s.root_dir.join("escape")).unwrap();
    let root = Root::open(&s.root_dir).unwrap();
    let err = write(&root, "/escape/sentinel", b"sandbox").unwrap_err();
    assert!(matches!(err, FsError::NotFound { .. }), "{err}");
    s.sentinel_untouched();
}

#[test]
fn relative_symlink_climbing_out_stops_at_the_root() {
    let s = scene("etc");
    symlink("../../../../../../outside", s.root_dir.join("etc/up")).unwrap();
    fs::create_dir(s.root_dir.join("outside")).unwrap();
    let root = Root::open(&s.root_dir).unwrap();
    write(&root, "/etc/up/sentinel", b"sandbox").unwrap();
    s.sentinel_untouched();
    assert_eq!(
        fs::read(s.root_dir.join("outside/sentinel")).unwrap(),
        b"sandbox"
    );
}

#[test]
fn symlink_as_final_component_is_replaced_not_followed() {
    let s = scene("etc");
    symlink(s.outside.join("sentinel"), s.root_dir.join("etc/link")).unwrap();
    let root = Root::open(&s.root_dir).unwrap();
    write(&root, "/etc/link", b"sandbox").unwrap();
    s.sentinel_untouched();
    let meta = fs::symlink_metadata(s.root_dir.join("etc/link")).unwrap();
    assert!(
        meta.is_file(),
        "the link itself is replaced by a regular file"
    );
}

#[test]
fn proc_magic_links_never_lead_to_the_host() {
    let s = scene("etc");
    // Resolved in the host's context this would name the host's sentinel directory.
    let through_proc = format!("/proc/self/root{}", s.outside.display());
    symlink(&through_proc, s.root_dir.join("magic")).unwrap();
    let root = Root::open(&s.root_dir).unwrap();
    let err = write(&root, "/magic/sentinel", b"sandbox").unwrap_err();
    assert!(matches!(err, FsError::NotFound { .. }), "{err}");
    assert!(
        root.open_read(&SandboxPath::parse("/magic/sentinel").unwrap())
            .is_err()
    );
    s.sentinel_untouched();
}

#[test]
fn atomic_write_sets_mode_and_strips_setuid() {
    let s = scene("etc");
    let root = Root::open(&s.root_dir).unwrap();
    let path = SandboxPath::parse("/a/b/c.txt").unwrap();
    root.write_file(
        &path,
        &mut &b"one"[..],
        WriteOptions {
            mode: 0o4755,
            ..opts()
        },
    )
    .unwrap();
    let meta = fs::metadata(s.root_dir.join("a/b/c.txt")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    assert_eq!(meta.uid(), rustix::process::getuid().as_raw());
    let leftovers: Vec<_> = fs::read_dir(s.root_dir.join("a/b")).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left behind");
}

#[test]
fn a_failed_write_keeps_the_old_file() {
    let s = scene("etc");
    fs::write(s.root_dir.join("etc/keep"), b"old").unwrap();
    let root = Root::open(&s.root_dir).unwrap();
    struct Broken;
    impl std::io::Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("client vanished"))
        }
    }
    let err = root.write_file(
        &SandboxPath::parse("/etc/keep").unwrap(),
        &mut std::io::BufReader::new(Broken),
        opts(),
    );
    assert!(err.is_err());
    assert_eq!(fs::read(s.root_dir.join("etc/keep")).unwrap(), b"old");
    assert_eq!(fs::read_dir(s.root_dir.join("etc")).unwrap().count(), 1);
}

#[test]
fn writing_without_parents_needs_the_directory() {
    let s = scene("etc");
    let root = Root::open(&s.root_dir).unwrap();
    let path = SandboxPath::parse("/missing/file").unwrap();
    let err = root
        .write_file(
            &path,
            &mut &b"x"[..],
            WriteOptions {
                parents: false,
                ..opts()
            },
        )
        .unwrap_err();
    assert!(matches!(err, FsError::NotFound { .. }), "{err}");
}
