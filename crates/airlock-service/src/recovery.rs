//! Bringing the daemon's sandboxes back after a restart, including after `kill -9`.

use std::collections::BTreeSet;

use airlock_api::SandboxState;
use airlock_fs::SandboxPath;
use airlock_sandbox::SandboxConfig;

use super::lifecycle::engine_limits;
use super::record::SandboxRecord;
use super::{Entry, Service, blocking};
use crate::Principal;

/// How often a gateway whose sandboxes outlive it looks for ones other gateways made or
/// deleted.
const ADOPT_TICK: std::time::Duration = std::time::Duration::from_secs(2);

impl Service {
    /// For a backend whose sandboxes outlive the daemon (a cluster's, which several
    /// gateways share): forever, serve the sandboxes another gateway created, forget
    /// those another deleted, and reread the tokens. The stores are the truth; this
    /// gateway's copies follow them.
    pub async fn adopt_forever(self: std::sync::Arc<Self>) {
        if !self.backend.outlives_daemon() {
            return;
        }
        loop {
            tokio::time::sleep(ADOPT_TICK).await;
            // Tokens minted or revoked through another gateway hold here too.
            if let Err(err) = self.credentials.refresh().await {
                tracing::warn!(%err, "rereading the tokens");
            }
            // Known before listing: an entry is only added once its record is saved, so
            // one added after this line is never taken for deleted.
            let known: BTreeSet<String> = self.entries().iter().map(|e| e.id.clone()).collect();
            let store = self.records.clone();
            let Ok(Ok(found)) = blocking(move || store.sandboxes()).await else {
                continue;
            };
            let listed: BTreeSet<String> = found.iter().map(|(id, _)| id.clone()).collect();
            for (id, record) in found {
                // A record not yet written is a create still under way somewhere.
                let Ok(record) = record else { continue };
                match self.held(&id) {
                    None if !known.contains(&id) => {
                        tracing::info!(%id, "serving a sandbox another gateway created");
                        self.restore(record).await;
                    }
                    Some(entry) => {
                        // A timeout set through another gateway holds here too.
                        entry.follow_expiry(record.expires_at);
                        if entry.record().state == SandboxState::Pending
                            && record.state != SandboxState::Pending
                        {
                            // Another gateway finished it: take it up as it is now.
                            self.forget(&id).await;
                            self.restore(record).await;
                        }
                    }
                    // Deleted here since the listing.
                    None => {}
                }
            }
            for id in known.difference(&listed) {
                self.forget(id).await;
            }
        }
    }

    /// Sandbox `id`, if this daemon holds it.
    fn held(&self, id: &str) -> Option<std::sync::Arc<super::Entry>> {
        self.sandboxes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Drops a sandbox another gateway deleted: its streams end, nothing is asked of
    /// the backend.
    async fn forget(&self, id: &str) {
        let entry = self
            .sandboxes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        if let Some(entry) = entry {
            tracing::info!(%id, "another gateway deleted this sandbox");
            entry.closed.cancel();
            let mut life = entry.life.lock().await;
            life.init = None;
            life.deleted = true;
        }
    }

    /// Loads every record, clears what a crashed daemon left half-made, remounts every
    /// sandbox's view, and starts again those that were running.
    pub(super) async fn recover(&self) -> std::io::Result<()> {
        let mut records = Vec::new();
        let store = self.records.clone();
        let found = blocking(move || store.sandboxes())
            .await
            .map_err(std::io::Error::other)??;
        for (id, record) in found {
            match record {
                Ok(record) => records.push(record),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    // A create that never finished: nothing was promised to anyone.
                    tracing::warn!(%id, "removing a half-created sandbox");
                    let backend = self.backend.clone();
                    blocking(move || backend.destroy(&id))
                        .await
                        .map_err(std::io::Error::other)?
                        .map_err(std::io::Error::other)?;
                }
                Err(err) => {
                    tracing::error!(%id, %err, "unreadable sandbox record; leaving it alone")
                }
            }
        }
        let known: BTreeSet<String> = records.iter().map(|r| r.id.clone()).collect();
        for stray in self
            .backend
            .strays()
            .into_iter()
            .filter(|id| !known.contains(id))
        {
            let backend = self.backend.clone();
            blocking(move || backend.remove_stray(&stray))
                .await
                .map_err(std::io::Error::other)?
                .map_err(std::io::Error::other)?;
        }
        for record in records {
            self.restore(record).await;
        }
        Ok(())
    }

    async fn restore(&self, record: SandboxRecord) {
        let id = record.id.clone();
        let template = match self.template_root(&record.template) {
            Ok(template) => template,
            Err(err) => {
                tracing::error!(%id, %err, "template of sandbox is gone; it cannot be restored");
                return;
            }
        };
        let readonly = record
            .readonly_paths
            .iter()
            .filter_map(|p| SandboxPath::parse(p).ok())
            .collect();
        let config = SandboxConfig {
            id: id.clone(),
            template,
            limits: engine_limits(&record.limits),
            readonly,
        };
        let backend = self.backend.clone();
        let restore_config = config.clone();
        let restored = blocking(move || backend.restore(&restore_config))
            .await
            .and_then(|done| done.map_err(|e| crate::ApiError::internal("remounting sandbox", e)));
        if let Err(err) = restored {
            tracing::error!(%id, %err, "sandbox cannot be restored");
            return;
        }
        let was_running = record.state == SandboxState::Running;
        let entry = Entry::new(record, config);
        self.sandboxes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), entry.clone());
        if was_running && let Err(err) = self.start(&Principal::Admin, &id).await {
            tracing::error!(%id, %err, "restarting sandbox failed; it is stopped");
            entry.update(&*self.records, |r| r.state = SandboxState::Stopped);
        }
        tracing::info!(%id, "sandbox restored");
    }
}
