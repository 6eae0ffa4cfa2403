//! Changes that several gateways may make at once: each is a read, then a write
//! conditional on the resource version read. A write that finds the object changed
//! since (409) is tried again on what the other gateway stored.

use std::io;

/// Tries of a change that other gateways keep changing under it.
const TRIES: usize = 16;

/// Whether `err` is the API server refusing a write made on an older version.
pub(crate) fn conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409)
}

/// Runs `attempt` until it stores its change (`Some`) or fails; `None` is a write that
/// lost to another gateway's. After [`TRIES`] losses, fails with `kept_changing`.
pub(crate) fn until_stored<T>(
    kept_changing: impl FnOnce() -> String,
    mut attempt: impl FnMut() -> io::Result<Option<T>>,
) -> io::Result<T> {
    for _ in 0..TRIES {
        if let Some(stored) = attempt()? {
            return Ok(stored);
        }
    }
    Err(io::Error::other(kept_changing()))
}
