//! The header and query parsers: `Range`, tus `Upload-Metadata` and `Upload-Checksum`,
//! and a write's mode, mtime and sha256. None may panic; what they accept must make
//! sense. The first byte picks the parser.
#![no_main]

use airlock_server::fuzz_api;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match pick % 4 {
        0 => {
            // A file size from the input too, so ranges meet sizes near their edges.
            let size = u64::from(pick) * 997;
            if let Some((start, len)) = fuzz_api::range(&text, size) {
                assert!(len >= 1 && start < size && start + len <= size, "{text:?}");
            }
        }
        1 => {
            if let Ok(path) = fuzz_api::tus_metadata(&text, 1) {
                assert!(!path.is_empty());
            }
        }
        2 => {
            fuzz_api::tus_checksum(&text);
        }
        _ => {
            let mut fields = text.splitn(3, '\n');
            fuzz_api::write_options(fields.next(), fields.next(), fields.next());
        }
    }
});
