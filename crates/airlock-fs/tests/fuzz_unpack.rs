//! Property tests in the spirit of a fuzzer, runnable on stable Rust: mutated and truncated
//! archives must never panic the extractor, never write outside the target, and never
//! leave a staging directory; arbitrary strings must never panic the path parser nor
//! produce a path that climbs. `PROPTEST_CASES` raises the case count (CI: 256).
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;

use airlock_fs::{FileOwner, Root, SandboxPath, UnpackLimits};
use common::scene;
use proptest::prelude::*;

/// A small archive with every entry kind the extractor handles.
fn seed_archive() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        match link {
            Some(target) => builder.append_link(&mut header, name, target).unwrap(),
            None => builder.append_data(&mut header, name, data).unwrap(),
        }
    };
    add("dir", tar::EntryType::Directory, b"", None);
    add("dir/file", tar::EntryType::Regular, b"hello world", None);
    add("link", tar::EntryType::Symlink, b"", Some("dir"));
    add("hard", tar::EntryType::Link, b"", Some("dir/file"));
    add("other", tar::EntryType::Regular, &[7u8; 700], None);
    builder.into_inner().unwrap()
}

proptest! {
    #[test]
    fn mutated_archives_stay_inside(
        flips in proptest::collection::vec((0usize..4096, any::<u8>()), 0..24),
        cut in 0usize..5000,
    ) {
        let s = scene("dst");
        let mut archive = seed_archive();
        for (at, byte) in flips {
            let at = at % archive.len();
            archive[at] = byte;
        }
        archive.truncate(cut.max(512).min(archive.len()));
        let root = Root::open(&s.root_dir).unwrap();
        let limits = UnpackLimits { max_entries: 100, max_bytes: 1 << 20 };
        // As the daemon extracts: for the sandbox's user, so a root run acts as that user.
        let how = airlock_fs::Unpacking { owner: FileOwner::SANDBOX_USER, limits, mtimes: airlock_fs::Mtimes::FromArchive };
        let who = rustix::process::geteuid();
        let _ = root.unpack(&SandboxPath::parse("/dst").unwrap(), &archive[..], how);
        prop_assert_eq!(rustix::process::geteuid(), who, "the thread took back its own identity");
        s.sentinel_untouched();
        let top: Vec<String> = fs::read_dir(&s.root_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        prop_assert_eq!(top, vec!["dst".to_owned()], "nothing beside the target");
        for entry in fs::read_dir(s.root_dir.join("dst")).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            prop_assert!(!name.starts_with(".airlock-unpack"), "staging left behind");
        }
    }

    #[test]
    fn parsed_paths_never_climb(raw in "\\PC{0,64}|(/(\\.\\.|\\.|[a-z]{0,3}|)){0,8}") {
        if let Ok(path) = SandboxPath::parse(&raw) {
            let text = path.as_str();
            prop_assert!(text.starts_with('/'));
            prop_assert!(!text.contains('\0'));
            prop_assert!(!text.contains("//"));
            prop_assert!(text.split('/').all(|part| part != ".." && part != "."));
        }
    }
}
