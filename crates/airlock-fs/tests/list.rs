//! Listing pages: every entry exactly once, whatever the page boundaries.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;

use airlock_fs::{Root, SandboxPath};
use common::scene;

#[test]
fn a_page_that_ends_on_a_directory_still_has_a_next_page() {
    let s = scene("etc");
    for dir in ["a", "b"] {
        fs::create_dir_all(s.root_dir.join("t").join(dir)).unwrap();
        for file in ["1", "2"] {
            fs::write(s.root_dir.join("t").join(dir).join(file), b"x").unwrap();
        }
    }
    let root = Root::open(&s.root_dir).unwrap();
    let dir = SandboxPath::parse("/t").unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = root.list(&dir, 8, 4, cursor.as_ref()).unwrap();
        seen.extend(page.entries.iter().map(|e| e.path.clone()));
        match page.next_cursor {
            Some(next) => cursor = Some(SandboxPath::parse(&next).unwrap()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["/t/a", "/t/a/1", "/t/a/2", "/t/b", "/t/b/1", "/t/b/2"]
    );
}

/// Work in progress under the engine's reserved names (an extraction's staging directory,
/// a resumable upload's partial file, a write's temp file) is in no listing and no
/// archive: a tree read meanwhile is the committed tree.
#[test]
fn the_engines_work_in_progress_is_neither_listed_nor_packed() {
    let s = scene("t/sub");
    let t = s.root_dir.join("t");
    fs::write(t.join("kept"), b"x").unwrap();
    fs::create_dir(t.join(".airlock-unpack-0123456789abcdef")).unwrap();
    fs::write(t.join(".airlock-unpack-0123456789abcdef/half"), b"x").unwrap();
    fs::write(t.join("sub/.airlock-upload-0123456789abcdef"), b"x").unwrap();
    fs::write(t.join("sub/.airlock-tmp-0123456789abcdef"), b"x").unwrap();
    // Not of the reserved form: the user's own.
    fs::write(t.join("sub/.airlock-tmp-mine"), b"x").unwrap();
    let root = Root::open(&s.root_dir).unwrap();
    let dir = SandboxPath::parse("/t").unwrap();
    let listed: Vec<String> = root
        .list(&dir, 8, 100, None)
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(listed, ["/t/kept", "/t/sub", "/t/sub/.airlock-tmp-mine"]);

    let mut archive = Vec::new();
    root.pack(&dir, &mut archive).unwrap();
    let mut packed: Vec<String> = tar::Archive::new(&archive[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    packed.sort();
    assert_eq!(packed, ["kept", "sub", "sub/.airlock-tmp-mine"]);
}
