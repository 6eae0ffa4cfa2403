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
