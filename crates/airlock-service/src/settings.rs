//! How the daemon's operator tunes the service (`airlock serve` flags).

use std::time::Duration;

use crate::audit::AuditSettings;
use crate::caps::TenantCaps;
use crate::oidc::OidcSettings;

/// Everything [`crate::Service::open`] takes besides its home.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a resumable upload may sit untouched before it is removed.
    pub upload_expiry: Duration,
    /// Per-tenant caps on concurrent watches, commands and uploads.
    pub caps: TenantCaps,
    /// Where the audit log goes and when it rotates.
    pub audit: AuditSettings,
    /// Accept OIDC bearers from this issuer.
    pub oidc: Option<OidcSettings>,
    /// Started sandboxes to keep ready, per template (`--warm-pool TEMPLATE=N`).
    pub warm_pools: Vec<(String, usize)>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            upload_expiry: Duration::from_secs(24 * 3600),
            caps: TenantCaps::default(),
            audit: AuditSettings::default(),
            oidc: None,
            warm_pools: Vec::new(),
        }
    }
}
