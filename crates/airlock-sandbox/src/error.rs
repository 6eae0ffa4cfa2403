//! The engine's failures as kinds, not strings: what the daemon was doing, the kind of
//! failure, and the system's cause (kept for the log). The service maps a kind to an
//! answer once; nothing above the engine matches on message text.

use std::io;

/// What kind of failure an engine operation met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The sandbox, file or process is not there.
    NotFound,
    /// Something still uses it (a mount, a loop device, a process); try again.
    Busy,
    /// Out of a resource: disk, memory, descriptors, processes.
    Exhausted,
    /// The machine lacks what the operation needs (a kernel feature, a tool).
    Unsupported,
    /// The sandbox's own setup reported a failure, or anything else.
    Internal,
    /// What runs the sandboxes (a cluster) could not or would not: a bad image, no node
    /// that fits. Its words are fit to show the caller.
    Refused,
}

/// A failed engine operation.
#[derive(Debug, thiserror::Error)]
#[error("{action}: {source}")]
pub struct SandboxError {
    kind: FailureKind,
    action: &'static str,
    #[source]
    source: io::Error,
}

/// Result of an engine operation.
pub type SandboxResult<T> = Result<T, SandboxError>;

impl SandboxError {
    /// A failure while doing `action`, classified by the cause's errno or kind.
    pub fn new(action: &'static str, source: io::Error) -> Self {
        Self {
            kind: classify(&source),
            action,
            source,
        }
    }

    /// A refusal by what runs the sandboxes, whose words the caller may see.
    pub fn refused(action: &'static str, why: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Refused,
            action,
            source: io::Error::other(why.into()),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// What the engine was doing, fit to show a caller.
    pub fn action(&self) -> &'static str {
        self.action
    }
}

/// An errno's kind; errors without one (setup reports, odd states) are internal.
fn classify(err: &io::Error) -> FailureKind {
    match err.raw_os_error() {
        Some(libc::ENOENT | libc::ESRCH) => FailureKind::NotFound,
        Some(libc::EBUSY) => FailureKind::Busy,
        Some(
            libc::ENOSPC | libc::EDQUOT | libc::ENOMEM | libc::EMFILE | libc::ENFILE | libc::EAGAIN,
        ) => FailureKind::Exhausted,
        Some(libc::ENOSYS | libc::EOPNOTSUPP) => FailureKind::Unsupported,
        Some(_) => FailureKind::Internal,
        None if err.kind() == io::ErrorKind::NotFound => FailureKind::NotFound,
        None => FailureKind::Internal,
    }
}

/// Tags an `io::Result` with what the engine was doing.
pub(crate) trait Doing<T> {
    fn doing(self, action: &'static str) -> SandboxResult<T>;
}

impl<T> Doing<T> for io::Result<T> {
    fn doing(self, action: &'static str) -> SandboxResult<T> {
        self.map_err(|e| SandboxError::new(action, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classified_by_errno() {
        let kind = |errno| SandboxError::new("x", io::Error::from_raw_os_error(errno)).kind();
        assert_eq!(kind(libc::ENOSPC), FailureKind::Exhausted);
        assert_eq!(kind(libc::ENOENT), FailureKind::NotFound);
        assert_eq!(kind(libc::EBUSY), FailureKind::Busy);
        assert_eq!(kind(libc::ENOSYS), FailureKind::Unsupported);
        assert_eq!(kind(libc::EIO), FailureKind::Internal);
        let setup = SandboxError::new("starting", io::Error::other("setup failed"));
        assert_eq!(setup.kind(), FailureKind::Internal);
        assert_eq!(setup.to_string(), "starting: setup failed");
    }
}
