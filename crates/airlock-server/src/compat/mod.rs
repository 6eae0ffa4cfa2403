//! Faces that speak other products' protocols, each under its own prefix on the daemon's
//! port, each a thin layer over the same service: parse, call, encode.

pub mod agent_sandbox;
pub mod e2b;
