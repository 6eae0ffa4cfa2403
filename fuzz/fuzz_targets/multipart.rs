//! A batch request's multipart stream, read exactly as the batch route reads it. Every
//! body must end as parts or an error, never a panic or a hang.
#![no_main]

use airlock_server::fuzz_api;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let read = fuzz_api::multipart("XyZ", data.to_vec());
    assert!(read <= data.len(), "no part holds more than the body");
});
