//! Any byte stream, extracted as a tar archive into a sandbox root, must leave the host
//! untouched: nothing outside the root's target directory, no staging directory left
//! behind, and either a clean error or a finished extraction, never a panic.
#![no_main]

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use airlock_fs::{FileOwner, Root, SandboxPath, UnpackLimits};
use libfuzzer_sys::fuzz_target;

/// One scratch directory per fuzzing process: `root/` is the sandbox, `outside/sentinel`
/// is what an escape would reach.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("airlock-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("root")).unwrap();
        std::fs::create_dir_all(dir.join("outside")).unwrap();
        std::fs::write(dir.join("outside/sentinel"), b"host").unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = scratch();
    let root_dir = dir.join("root");
    let root = Root::open(&root_dir).unwrap();
    let target = SandboxPath::parse("/t").unwrap();
    // Files are given to whoever runs the fuzzer, so it can always clean up.
    let me = std::fs::metadata(&root_dir).unwrap();
    let owner = FileOwner {
        uid: me.uid(),
        gid: me.gid(),
    };
    let limits = UnpackLimits {
        max_entries: 1000,
        max_bytes: 16 << 20,
    };
    let how = airlock_fs::Unpacking {
        owner,
        limits,
        mtimes: airlock_fs::Mtimes::FromArchive,
    };
    let _ = root.unpack(&target, data, how);

    // Only the target may exist in the root, and no staging directory inside it.
    let top: Vec<_> = std::fs::read_dir(&root_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(top.len() <= 1 && top.iter().all(|n| n == "t"), "{top:?}");
    if let Ok(entries) = std::fs::read_dir(root_dir.join("t")) {
        for entry in entries {
            let name = entry.unwrap().file_name();
            assert!(
                !name.to_string_lossy().starts_with(".airlock-unpack-"),
                "staging left behind"
            );
        }
    }
    assert_eq!(
        std::fs::read(dir.join("outside/sentinel")).unwrap(),
        b"host"
    );
    assert_eq!(std::fs::read_dir(dir.join("outside")).unwrap().count(), 1);
    let _ = std::fs::remove_dir_all(root_dir.join("t"));
});
