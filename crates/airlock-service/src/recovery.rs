//! Bringing the daemon's sandboxes back after a restart, including after `kill -9`.

use std::collections::BTreeSet;

use airlock_api::SandboxState;
use airlock_fs::SandboxPath;
use airlock_sandbox::SandboxConfig;

use super::lifecycle::engine_limits;
use super::record::SandboxRecord;
use super::{Entry, Service, blocking};
use crate::Principal;

impl Service {
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
