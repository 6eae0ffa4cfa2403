//! `airlock agent`: the confined file engine inside a pod, serving its own root to the
//! gateway over an internal protocol, so every face reaches a sandbox in a cluster through
//! the same `SandboxFs` calls as one on this machine.
//!
//! The protocol is HTTP/1.1: `POST /v1/fs/{call}`, the call's arguments as base64url JSON
//! in the `airlock-args` header, a body for calls that take a stream (a write, an unpack,
//! a chunk of a partial upload), and the answer as JSON, or, for calls that give a stream
//! (a read, a pack, a watch), the stream as the body with any small result in the
//! `airlock-result` header. A refused call answers 422 with the engine's error in its wire
//! form. Commands are `POST /v1/proc/{call}`: `spawn`, then each of the command's
//! streams (`stdin`, `stdout`, `stderr`) as its own request, `wait`, `signal`,
//! `kill_all`, `finish`, and `stop_all` for every command at once. Every request carries the sandbox's secret as a bearer token.

pub mod calls;
pub mod client;
mod commands;
pub mod commands_client;
mod reach;
pub mod server;

pub use reach::CONNECT_TIMEOUT;
