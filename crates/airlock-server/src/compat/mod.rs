//! Faces that speak other products' protocols, each under its own prefix on the daemon's
//! port, each a thin layer over the same service: parse, call, encode.

pub mod agent_sandbox;
pub mod e2b;

/// A request header as text, when it is there and is text.
pub fn header(request: &axum::extract::Request, name: &str) -> Option<String> {
    let value = request.headers().get(name)?;
    value.to_str().ok().map(str::to_owned)
}
