//! An `UploadFile` request body as the gRPC face reads it, chunks handed on as slices of
//! the frames that carried them, against the plain reading (each message gathered whole,
//! then decoded by prost): neither may panic, both must fail alike, and when they succeed
//! they must say the same. The first byte is the size of the body's data frames.
#![no_main]

use airlock_server::fuzz_api;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&frame, body)) = data.split_first() else {
        return;
    };
    fuzz_api::grpc_upload_body(frame, body);
});
