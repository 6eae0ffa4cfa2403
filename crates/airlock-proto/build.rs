//! Generates the gRPC code from `proto/airlock/v1` with protox, a protobuf compiler in
//! Rust, so building needs no `protoc` on the machine. The descriptor set is kept too:
//! server reflection serves it, so grpcurl needs no proto files.

use std::path::PathBuf;

use prost::Message;

/// envd's services as the E2B SDKs speak them: only their descriptors are kept, for the
/// E2B face's binary protobuf codec (it handles messages dynamically, so no code).
const ENVD_PROTOS: [&str; 2] = ["envd/filesystem.proto", "envd/process.proto"];

const PROTOS: [&str; 5] = [
    "airlock/v1/files.proto",
    "airlock/v1/sandboxes.proto",
    "airlock/v1/exec.proto",
    "airlock/v1/tokens.proto",
    "airlock/v1/processes.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    for proto in PROTOS.iter().chain(&ENVD_PROTOS) {
        println!("cargo:rerun-if-changed={}", root.join(proto).display());
    }
    let descriptors = protox::compile(PROTOS, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("airlock_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    let envd = protox::compile(ENVD_PROTOS, [&root])?;
    std::fs::write(out.join("envd_descriptor.bin"), envd.encode_to_vec())?;
    // `bytes` fields as `Bytes`: chunks are sliced from the received buffer, not copied.
    tonic_prost_build::configure()
        .bytes(".")
        .compile_fds(descriptors)?;
    Ok(())
}
