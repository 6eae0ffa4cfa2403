//! Sweeping a killed daemon's leftovers removes exactly the engine's own stale entries:
//! never a lookalike of the wrong kind or length, never anything through a symlink, never
//! a write begun after the cutoff or a partial upload still on record.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{chown, symlink};
use std::time::{Duration, SystemTime};

use airlock_fs::Root;
use common::scene;

const TEMP: &str = ".airlock-tmp-00000000000000aa";
const STAGING: &str = ".airlock-unpack-00000000000000bb";
const PARTIAL: &str = ".airlock-upload-00000000000000cc";
const KEPT_PARTIAL: &str = ".airlock-upload-00000000000000dd";

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn stale_leftovers_go_and_everything_else_stays() {
    if !is_root() {
        eprintln!("skipped: chown needs root");
        return;
    }
    let s = scene("work/deep/er");
    let r = &s.root_dir;
    fs::write(r.join("work").join(TEMP), b"half").unwrap();
    fs::write(r.join("work/deep/er").join(TEMP), b"half").unwrap();
    fs::create_dir_all(r.join("work").join(STAGING).join("a/b")).unwrap();
    fs::write(r.join("work").join(STAGING).join("a/b/f"), b"x").unwrap();
    fs::write(r.join("work").join(PARTIAL), b"orphan").unwrap();
    fs::write(r.join("work").join(KEPT_PARTIAL), b"resumable").unwrap();
    // A temp file already given its final owner when the crash came (seal, then rename).
    let sealed = r.join("work/deep").join(TEMP);
    fs::write(&sealed, b"sealed").unwrap();
    chown(&sealed, Some(1000), Some(1000)).unwrap();
    // Lookalikes: wrong length, a directory where a file is expected.
    fs::write(r.join("work/.airlock-tmp-abc"), b"keep").unwrap();
    fs::create_dir(r.join("work/.airlock-tmp-00000000000000ee")).unwrap();
    // The host sentinel's directory holds leftover-looking names, reachable by symlinks.
    fs::write(s.outside.join(TEMP), b"host").unwrap();
    fs::create_dir(s.outside.join(STAGING)).unwrap();
    symlink(&s.outside, r.join("work/escape")).unwrap();
    symlink(
        s.outside.join(STAGING),
        r.join("work/.airlock-unpack-00000000000000ff"),
    )
    .unwrap();
    symlink(
        s.outside.join(TEMP),
        r.join("work/.airlock-tmp-0000000000000011"),
    )
    .unwrap();

    let root = Root::open(r).unwrap();
    let keep = HashSet::from([KEPT_PARTIAL.to_owned()]);
    let later = SystemTime::now() + Duration::from_secs(1);
    assert_eq!(root.sweep_leftovers(later, &keep), 5);

    assert!(!r.join("work").join(TEMP).exists());
    assert!(!r.join("work/deep/er").join(TEMP).exists());
    assert!(!r.join("work").join(STAGING).exists());
    assert!(!r.join("work").join(PARTIAL).exists());
    assert!(!sealed.exists());
    for stays in [
        r.join("work").join(KEPT_PARTIAL),
        r.join("work/.airlock-tmp-abc"),
        r.join("work/.airlock-tmp-00000000000000ee"),
        s.outside.join(TEMP),
        s.outside.join(STAGING),
        r.join("work/escape"),
    ] {
        assert!(
            fs::symlink_metadata(&stays).is_ok(),
            "{} stays",
            stays.display()
        );
    }
    assert_eq!(fs::read(s.outside.join("sentinel")).unwrap(), b"host");
}

#[test]
fn writes_begun_after_the_cutoff_stay() {
    let s = scene("work");
    let cutoff = SystemTime::now() - Duration::from_secs(60);
    fs::write(s.root_dir.join("work").join(TEMP), b"in flight").unwrap();
    fs::create_dir(s.root_dir.join("work").join(STAGING)).unwrap();
    let root = Root::open(&s.root_dir).unwrap();
    assert_eq!(root.sweep_leftovers(cutoff, &HashSet::new()), 0);
    assert!(s.root_dir.join("work").join(TEMP).exists());
    assert!(s.root_dir.join("work").join(STAGING).exists());
}
