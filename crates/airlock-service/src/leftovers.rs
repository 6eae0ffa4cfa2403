//! After a restart: removing what a killed daemon had half made. Temp files, staging
//! directories and partial files that no upload record names go from every sandbox.
//! (An upload whose last byte was in stays on record: the client's next `HEAD` commits it
//! and answers "complete", and so does the expiry reaper if the client never returns.)

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use super::{Service, blocking};

impl Service {
    /// Sweeps every sandbox once. `started` is when this daemon began: anything the engine
    /// made since then belongs to a request in flight and stays.
    pub async fn sweep_leftovers(self: Arc<Self>, started: SystemTime) {
        for entry in self.entries() {
            let keep: HashSet<String> = self
                .uploads_of(&entry.id)
                .all()
                .into_iter()
                .map(|r| r.partial)
                .collect();
            let Ok(root) = self.root_unchecked(&entry.id) else {
                continue;
            };
            let removed = blocking(move || root.sweep_leftovers(started, &keep))
                .await
                .unwrap_or(0);
            if removed > 0 {
                tracing::warn!(id = %entry.id, removed, "removed what a killed daemon left half made");
            }
        }
    }
}
