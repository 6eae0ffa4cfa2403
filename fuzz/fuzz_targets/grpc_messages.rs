//! The gRPC face's reading of client messages: arbitrary bytes decoded as protobuf
//! (upload metadata, download ranges, batch file headers) and read with the same rules
//! the face applies. None may panic; a range that is accepted must lie inside the file.
//! The first byte picks the message.
#![no_main]

use airlock_server::fuzz_api;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    fuzz_api::grpc_message(pick, rest);
});
