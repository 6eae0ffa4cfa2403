//! Any string either is refused or parses to a normalised absolute path that parses to
//! itself again, with no `..`, `.`, empty component or NUL.
#![no_main]

use airlock_fs::SandboxPath;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &str| {
    let Ok(path) = SandboxPath::parse(raw) else {
        return;
    };
    let text = path.as_str();
    assert!(text.starts_with('/'), "{text:?}");
    assert!(!text.contains('\0'), "{text:?}");
    if !path.is_root() {
        for part in text[1..].split('/') {
            assert!(!matches!(part, "" | "." | ".."), "{text:?} from {raw:?}");
        }
    }
    assert_eq!(
        SandboxPath::parse(text).unwrap(),
        path,
        "parsing is idempotent"
    );
});
