//! Per-tenant caps on long-lived work (watches, commands, uploads), so one tenant cannot
//! starve another of threads, pipes and inotify instances. The count belongs to the
//! sandbox's tenant, whoever calls (its API token, a sandbox token, a signed URL), and
//! a slot is held as long as the work lasts: a watch until its stream is dropped, a
//! command until it exits, an upload until its body is in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use airlock_api::ErrorCode;

use crate::ApiError;

/// What a cap counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Work {
    /// A watch stream.
    Watch,
    /// A running command.
    Exec,
    /// An upload in progress (any write that streams a body).
    Upload,
}

impl Work {
    fn name(self) -> &'static str {
        match self {
            Self::Watch => "watches",
            Self::Exec => "running commands",
            Self::Upload => "uploads in progress",
        }
    }
}

/// How much of each kind of work one tenant may have at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantCaps {
    /// Concurrent watches.
    pub watches: usize,
    /// Concurrent commands.
    pub execs: usize,
    /// Concurrent uploads.
    pub uploads: usize,
}

impl Default for TenantCaps {
    fn default() -> Self {
        Self {
            watches: 64,
            execs: 64,
            uploads: 64,
        }
    }
}

impl TenantCaps {
    fn of(&self, work: Work) -> usize {
        match work {
            Work::Watch => self.watches,
            Work::Exec => self.execs,
            Work::Upload => self.uploads,
        }
    }
}

/// What every tenant holds now.
#[derive(Debug, Default)]
pub struct Counts {
    caps: TenantCaps,
    held: Arc<Mutex<HashMap<(String, Work), usize>>>,
}

/// A held slot; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    /// An upload's slot also counts it as a transfer in flight.
    pub(crate) in_flight: Option<crate::metrics::InFlight>,
    key: (String, Work),
    held: Arc<Mutex<HashMap<(String, Work), usize>>>,
}

/// How long a refused client is told to wait before trying again.
const RETRY_AFTER_SECS: u64 = 1;

impl Counts {
    pub fn new(caps: TenantCaps) -> Self {
        Self {
            caps,
            held: Arc::default(),
        }
    }

    /// Takes a slot of `work` for `tenant`, or answers 429 with a `Retry-After`.
    pub fn take(&self, tenant: &str, work: Work) -> Result<Slot, ApiError> {
        let key = (tenant.to_owned(), work);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let count = held.entry(key.clone()).or_insert(0);
        let cap = self.caps.of(work);
        if *count >= cap {
            return Err(ApiError::new(
                ErrorCode::TooManyRequests,
                format!(
                    "tenant {tenant} has {cap} {} already, its cap; try again when one ends",
                    work.name()
                ),
            )
            .retry_after(RETRY_AFTER_SECS));
        }
        *count += 1;
        Ok(Slot {
            in_flight: None,
            key,
            held: self.held.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = held.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_at_its_cap_is_refused_and_others_are_not() {
        let counts = Counts::new(TenantCaps {
            watches: 2,
            execs: 1,
            uploads: 1,
        });
        let a1 = counts.take("a", Work::Watch).unwrap();
        let _a2 = counts.take("a", Work::Watch).unwrap();
        let refused = counts.take("a", Work::Watch).unwrap_err();
        assert_eq!(refused.code, ErrorCode::TooManyRequests);
        assert_eq!(refused.retry_after, Some(RETRY_AFTER_SECS));
        // Another tenant, and another kind of work, are counted apart.
        let _b = counts.take("b", Work::Watch).unwrap();
        let _e = counts.take("a", Work::Exec).unwrap();
        // A slot given back is free again.
        drop(a1);
        assert!(counts.take("a", Work::Watch).is_ok());
    }
}
