//! Wire types of the Airlock HTTP API, shared by the daemon and every Rust client.
//!
//! Everything here is plain data: it (de)serialises to the JSON documented in the README
//! and knows nothing of transports or of how sandboxes are built.

pub mod defaults;
pub mod error;
pub mod exec;
pub mod files;
pub mod mode;
pub mod process;
pub mod sandbox;
pub mod template;
pub mod token;

pub use defaults::{DEFAULT_PORT, default_home, default_url};
pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use exec::{ExecEvent, ExecRequest, ExecResult};
pub use files::{
    ArchiveResult, BatchItem, BatchResult, ComposeFiles, FileEntry, FileList, MakeDir, MoveFile,
    PackPaths, SkippedEntry, WatchEvent, WriteResult,
};
pub use mode::FileMode;
pub use process::{ProcessInfo, SignalProcess, TerminalSize};
pub use sandbox::{CreateSandbox, InjectedFile, Limits, PoolInfo, Sandbox, SandboxState};
pub use template::Template;
pub use token::{
    CreateSandboxToken, CreateToken, SandboxToken, SignUrl, SignedUrl, TokenCreated, TokenInfo,
};
