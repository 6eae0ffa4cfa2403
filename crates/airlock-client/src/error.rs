//! Errors a client call can end in.

use airlock_api::ErrorCode;

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The daemon answered with an error.
    #[error("{message} ({code:?}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// The daemon's error code.
        code: ErrorCode,
        /// The daemon's message.
        message: String,
    },
    /// The daemon could not be reached or the connection broke.
    #[error("cannot reach the Airlock daemon: {0}")]
    Transport(#[from] reqwest::Error),
    /// The answer was not what the API promises.
    #[error("{0}")]
    Protocol(String),
    /// A local file could not be read or written.
    #[error("local I/O: {0}")]
    Local(std::io::Error),
    /// No token was found.
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The daemon's error code, when it sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}
