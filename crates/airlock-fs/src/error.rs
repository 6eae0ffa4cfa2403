//! Errors of the file engine, each naming the sandbox path it concerns.

use std::io;

/// A failed file operation.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The path itself is unacceptable (relative, NUL byte, `..`, too long).
    #[error("bad path {path:?}: {reason}")]
    BadPath {
        /// The path as given.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// No such file or directory inside the sandbox.
    #[error("{path}: no such file or directory")]
    NotFound {
        /// The sandbox path.
        path: String,
    },
    /// The target is on a read-only mount or otherwise refused by the kernel.
    #[error("{path}: read-only")]
    ReadOnly {
        /// The sandbox path.
        path: String,
    },
    /// The sandbox's disk quota ran out.
    #[error("{path}: sandbox disk quota exceeded")]
    NoSpace {
        /// The sandbox path.
        path: String,
    },
    /// Any other system error.
    #[error("{path}: {source}")]
    Io {
        /// The sandbox path.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
}

/// Result of a file engine operation.
pub type FsResult<T> = Result<T, FsError>;

impl FsError {
    /// Classifies an errno from an operation on `path`.
    pub(crate) fn from_errno(path: &str, err: rustix::io::Errno) -> Self {
        use rustix::io::Errno;
        let path = path.to_owned();
        match err {
            Errno::NOENT => Self::NotFound { path },
            Errno::ROFS | Errno::PERM | Errno::ACCESS | Errno::BUSY => Self::ReadOnly { path },
            Errno::NOSPC | Errno::DQUOT => Self::NoSpace { path },
            other => Self::Io {
                path,
                source: io::Error::from_raw_os_error(other.raw_os_error()),
            },
        }
    }

    pub(crate) fn from_io(path: &str, err: io::Error) -> Self {
        match err.raw_os_error() {
            Some(code) => Self::from_errno(path, rustix::io::Errno::from_raw_os_error(code)),
            None => Self::Io {
                path: path.to_owned(),
                source: err,
            },
        }
    }
}
