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
    /// Something is in the way: the target exists (no-replace), a directory is not
    /// empty, a path component is not a directory, a move crosses mounts.
    #[error("{path}: {reason}")]
    Conflict {
        /// The sandbox path.
        path: String,
        /// What is in the way.
        reason: &'static str,
    },
    /// A directory where a file was expected.
    #[error("{path}: is a directory")]
    IsDirectory {
        /// The sandbox path.
        path: String,
    },
    /// A FIFO, socket or device, refused without being opened.
    #[error("{path}: is a {kind}, not a regular file")]
    NotRegular {
        /// The sandbox path.
        path: String,
        /// What it is.
        kind: &'static str,
    },
    /// The content's checksum was not the one the client expected; nothing was committed.
    #[error("{path}: content {algorithm} is {actual}, expected {expected}; nothing was written")]
    ChecksumMismatch {
        /// The sandbox path.
        path: String,
        /// Which checksum (`crc64nvme`, `sha256`).
        algorithm: &'static str,
        /// Hex digest the client sent.
        expected: String,
        /// Hex digest of what arrived.
        actual: String,
    },
    /// An archive that cannot be extracted safely or is malformed; nothing was extracted.
    #[error("{path}: {reason}; nothing was extracted")]
    BadArchive {
        /// The sandbox path of the offending entry (or the target directory).
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Over a size or count limit.
    #[error("{path}: {reason}")]
    TooLarge {
        /// The sandbox path concerned.
        path: String,
        /// Which limit.
        reason: String,
    },
    /// The client's stream broke or went quiet; nothing was committed.
    #[error("{path}: upload interrupted: {reason}")]
    Interrupted {
        /// The sandbox path being written.
        path: String,
        /// What happened to the stream.
        reason: String,
        /// Whether the client went quiet (rather than away).
        stalled: bool,
    },
    /// A concurrent rename kept racing the lookup past the retry bound; try again.
    #[error("{path}: the path kept changing while it was looked up; try again")]
    Busy {
        /// The sandbox path.
        path: String,
    },
    /// An error an engine in another process reported (an agent in a pod), as it said
    /// it: its kind decides the answer here as the original's would have.
    #[error("{message}")]
    Remote {
        /// What kind of error it was.
        kind: FsErrorKind,
        /// The sandbox path concerned.
        path: String,
        /// Its text, as the engine that made it wrote it.
        message: String,
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

/// The kinds of [`FsError`], which is what decides how a caller is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsErrorKind {
    /// [`FsError::BadPath`].
    BadPath,
    /// [`FsError::NotFound`].
    NotFound,
    /// [`FsError::ReadOnly`].
    ReadOnly,
    /// [`FsError::NoSpace`].
    NoSpace,
    /// [`FsError::Conflict`].
    Conflict,
    /// [`FsError::IsDirectory`].
    IsDirectory,
    /// [`FsError::NotRegular`].
    NotRegular,
    /// [`FsError::ChecksumMismatch`].
    ChecksumMismatch,
    /// [`FsError::BadArchive`].
    BadArchive,
    /// [`FsError::TooLarge`].
    TooLarge,
    /// [`FsError::Interrupted`] by a client that went away.
    Interrupted,
    /// [`FsError::Interrupted`] by a client that went quiet.
    Stalled,
    /// [`FsError::Busy`].
    Busy,
    /// [`FsError::Io`]: the engine's own failure, never the caller's.
    Io,
}

/// An [`FsError`] as it crosses a process boundary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WireError {
    /// Its kind.
    pub kind: FsErrorKind,
    /// The sandbox path concerned.
    pub path: String,
    /// Its text.
    pub message: String,
}

impl FsError {
    /// What kind of error this is.
    pub fn kind(&self) -> FsErrorKind {
        match self {
            Self::BadPath { .. } => FsErrorKind::BadPath,
            Self::NotFound { .. } => FsErrorKind::NotFound,
            Self::ReadOnly { .. } => FsErrorKind::ReadOnly,
            Self::NoSpace { .. } => FsErrorKind::NoSpace,
            Self::Conflict { .. } => FsErrorKind::Conflict,
            Self::IsDirectory { .. } => FsErrorKind::IsDirectory,
            Self::NotRegular { .. } => FsErrorKind::NotRegular,
            Self::ChecksumMismatch { .. } => FsErrorKind::ChecksumMismatch,
            Self::BadArchive { .. } => FsErrorKind::BadArchive,
            Self::TooLarge { .. } => FsErrorKind::TooLarge,
            Self::Interrupted { stalled: true, .. } => FsErrorKind::Stalled,
            Self::Interrupted { .. } => FsErrorKind::Interrupted,
            Self::Busy { .. } => FsErrorKind::Busy,
            Self::Remote { kind, .. } => *kind,
            Self::Io { .. } => FsErrorKind::Io,
        }
    }

    /// The sandbox path the error concerns.
    pub fn path(&self) -> &str {
        match self {
            Self::BadPath { path, .. }
            | Self::NotFound { path }
            | Self::ReadOnly { path }
            | Self::NoSpace { path }
            | Self::Conflict { path, .. }
            | Self::IsDirectory { path }
            | Self::NotRegular { path, .. }
            | Self::ChecksumMismatch { path, .. }
            | Self::BadArchive { path, .. }
            | Self::TooLarge { path, .. }
            | Self::Interrupted { path, .. }
            | Self::Busy { path }
            | Self::Remote { path, .. }
            | Self::Io { path, .. } => path,
        }
    }

    /// The error as it crosses to another process. An I/O failure's text names the
    /// engine's own host paths, so only its sandbox path goes.
    pub fn to_wire(&self) -> WireError {
        let message = match self {
            Self::Io { path, .. } => format!("{path}: the engine failed"),
            other => other.to_string(),
        };
        WireError {
            kind: self.kind(),
            path: self.path().to_owned(),
            message,
        }
    }

    /// An error another process sent.
    pub fn from_wire(wire: WireError) -> Self {
        Self::Remote {
            kind: wire.kind,
            path: wire.path,
            message: wire.message,
        }
    }

    /// Classifies an errno from an operation on `path`.
    pub(crate) fn from_errno(path: &str, err: rustix::io::Errno) -> Self {
        use rustix::io::Errno;
        let path = path.to_owned();
        match err {
            Errno::NOENT => Self::NotFound { path },
            Errno::ROFS | Errno::PERM | Errno::ACCESS | Errno::BUSY => Self::ReadOnly { path },
            Errno::NOSPC | Errno::DQUOT => Self::NoSpace { path },
            Errno::EXIST => Self::Conflict {
                path,
                reason: "already exists",
            },
            Errno::NOTEMPTY => Self::Conflict {
                path,
                reason: "directory is not empty",
            },
            Errno::NOTDIR => Self::Conflict {
                path,
                reason: "a path component is not a directory",
            },
            Errno::XDEV => Self::Conflict {
                path,
                reason: "crosses a mount",
            },
            Errno::LOOP => Self::Conflict {
                path,
                reason: "a symlink is in the way",
            },
            Errno::ISDIR => Self::IsDirectory { path },
            Errno::AGAIN => Self::Busy { path },
            other => Self::Io {
                path,
                source: io::Error::from_raw_os_error(other.raw_os_error()),
            },
        }
    }

    /// Classifies an I/O error from an operation on `path`: by errno when it has one,
    /// else as an interrupted client stream or a plain I/O error.
    pub fn from_io(path: &str, err: io::Error) -> Self {
        match err.raw_os_error() {
            Some(code) => Self::from_errno(path, rustix::io::Errno::from_raw_os_error(code)),
            // Errors without an errno come from the client's stream, not the disk.
            None if is_transport(&err) => Self::Interrupted {
                path: path.to_owned(),
                reason: err.to_string(),
                stalled: err.kind() == io::ErrorKind::TimedOut,
            },
            None => Self::Io {
                path: path.to_owned(),
                source: err,
            },
        }
    }
}

/// True for the errors an upload's reader reports when the client vanishes or stalls.
pub(crate) fn is_transport(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::TimedOut
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
    )
}
