//! Wire types of the Airlock HTTP API, shared by the daemon and every Rust client.
//!
//! Everything here is plain data: it (de)serialises to the JSON documented in the README
//! and knows nothing of transports or of how sandboxes are built.

pub mod error;
pub mod exec;
pub mod mode;
pub mod sandbox;
pub mod template;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use exec::{ExecEvent, ExecRequest, ExecResult};
pub use mode::FileMode;
pub use sandbox::{CreateSandbox, InjectedFile, Limits, Sandbox, SandboxState};
pub use template::Template;

/// The port the daemon listens on when none is given.
pub const DEFAULT_PORT: u16 = 7711;
