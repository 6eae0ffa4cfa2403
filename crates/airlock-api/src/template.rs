//! Templates: the root filesystems sandboxes are made from.

use serde::{Deserialize, Serialize};

/// A template as `GET /v1/templates` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// Name used in `create`.
    pub name: String,
    /// `host` (built in) or `rootfs` (registered).
    pub kind: String,
    /// RFC 3339 time of registration; absent for the built-in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}
