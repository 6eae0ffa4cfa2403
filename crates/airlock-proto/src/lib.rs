//! Airlock's gRPC API (package `airlock.v1`), generated from the `.proto` files in
//! `proto/airlock/v1`: message types, client stubs for Rust users, and the server traits
//! the daemon implements.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// Everything in package `airlock.v1`.
pub mod v1 {
    tonic::include_proto!("airlock.v1");
}

/// The encoded descriptors of every message and service, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/airlock_descriptor.bin"));

/// The encoded descriptors of envd's `filesystem` and `process` packages (`proto/envd`),
/// which the E2B face uses to read and write Connect's binary protobuf codec.
pub const ENVD_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/envd_descriptor.bin"));
