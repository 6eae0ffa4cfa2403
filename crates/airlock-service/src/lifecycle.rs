//! Create, read, start, stop and delete, plus TTL expiry and shutdown.

use std::sync::Arc;
use std::time::Duration;

use airlock_api::{CreateSandbox, Sandbox, SandboxState};
use airlock_fs::{FileOwner, WriteOptions};
use airlock_sandbox::{HOST_TEMPLATE, Limits, SandboxConfig, TemplateRoot};

use crate::RecordStore;
use crate::backend::{ReadonlyFile, Running, SandboxBackend};

use super::record::{SandboxRecord, now_secs, random_hex};
use super::validate::{self, CheckedFile, DEFAULT_PIDS};
use super::{Entry, Service, blocking, settle};
use crate::ApiError;
use crate::{Need, Principal};

/// How long `stop` lets processes react to SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Shutdown is shorter: the sandboxes come back when the daemon does.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);
/// How often the TTL reaper looks for expired sandboxes.
const EXPIRY_TICK: Duration = Duration::from_millis(500);

impl Service {
    /// Creates a sandbox, writes its files, and starts it unless asked not to.
    pub async fn create(
        &self,
        caller: &Principal,
        req: CreateSandbox,
    ) -> Result<Sandbox, ApiError> {
        let mut audit = self.audit(caller, "sandbox.create", None);
        let result = async {
            caller.require_account("create sandboxes")?;
            validate::create(&req)?;
            let template_name = req.template.clone().unwrap_or_else(|| HOST_TEMPLATE.into());
            let template = self.template_root(&template_name)?;
            let limits = validate::limits(&req.limits, self.backend.disk_free_mb())?;
            let files = req
                .files
                .iter()
                .map(validate::injected_file)
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(id) = self.claim(caller, &req, &limits, &files).await? {
                return self.get(caller, &id);
            }
            let id = new_id();
            let now = now_secs();
            let config = SandboxConfig {
                id: id.clone(),
                template,
                limits: engine_limits(&limits),
                readonly: files
                    .iter()
                    .filter(|f| f.readonly)
                    .map(|f| f.path.clone())
                    .collect(),
            };
            // A backend whose sandboxes take a while to exist answers `pending` now and
            // finishes them off the request (see `settle`).
            let pending = self.backend.starts_pending();
            let record = SandboxRecord {
                id: id.clone(),
                template: template_name,
                state: if pending {
                    SandboxState::Pending
                } else {
                    SandboxState::Created
                },
                env: req.env,
                limits,
                labels: req.labels,
                owner: caller.owner().to_owned(),
                readonly_paths: config.readonly.iter().map(ToString::to_string).collect(),
                created_at: now,
                started_at: None,
                expires_at: req.ttl_secs.map(|ttl| now + ttl),
            };
            let (backend, records, setup_config, setup_record) = (
                self.backend.clone(),
                self.records.clone(),
                config.clone(),
                record.clone(),
            );
            let placed_now = if pending { Vec::new() } else { files.clone() };
            let all_files = files.clone();
            blocking(move || {
                let made = provision(
                    &*backend,
                    &*records,
                    &setup_config,
                    (&placed_now, &all_files),
                    &setup_record,
                );
                if made.is_err() {
                    let _ = backend.destroy(&setup_config.id);
                }
                made
            })
            .await??;
            let entry = Entry::new(record, config);
            self.sandboxes
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone(), entry);
            if pending {
                self.settling.queue(settle::Job {
                    id: id.clone(),
                    files,
                    start: req.start.unwrap_or(true),
                });
                return self.get(caller, &id);
            }
            if req.start.unwrap_or(true)
                && let Err(err) = self.start(caller, &id).await
            {
                let _ = self.delete(caller, &id).await;
                return Err(err);
            }
            self.get(caller, &id)
        }
        .await;
        if let Ok(value) = &result {
            audit.set_sandbox(&value.id);
        }
        audit.done(result)
    }

    /// Every sandbox the caller may reach, oldest first.
    pub fn list(&self, caller: &Principal) -> Result<Vec<Sandbox>, ApiError> {
        caller.require_account("list sandboxes")?;
        let mut all: Vec<Sandbox> = self
            .entries()
            .iter()
            .filter(|e| caller.reaches(&e.owner, &e.id))
            .map(|e| e.record().to_api())
            .collect();
        all.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        Ok(all)
    }

    /// One sandbox.
    pub fn get(&self, caller: &Principal, id: &str) -> Result<Sandbox, ApiError> {
        Ok(self.entry(caller, id, Need::Read)?.record().to_api())
    }

    /// Sets the sandbox to expire `secs` from now (E2B's `set_timeout`); 0 is refused.
    pub fn set_timeout(
        &self,
        caller: &Principal,
        id: &str,
        secs: u64,
    ) -> Result<Sandbox, ApiError> {
        let audit = self.audit(caller, "sandbox.timeout", Some(id));
        let result = (|| {
            if secs == 0 {
                return Err(ApiError::bad_request("a timeout is at least 1 second"));
            }
            let entry = self.entry(caller, id, Need::Manage)?;
            let at = now_secs().saturating_add(secs);
            entry.update(&*self.records, |record| record.expires_at = Some(at));
            Ok(entry.record().to_api())
        })();
        audit.done(result)
    }

    /// Starts a sandbox; starting a running one is a no-op.
    pub async fn start(&self, caller: &Principal, id: &str) -> Result<Sandbox, ApiError> {
        let audit = self.audit(caller, "sandbox.start", Some(id));
        let result = async {
            let entry = self.entry(caller, id, Need::Manage)?;
            if entry.record().state == SandboxState::Pending {
                return Err(ApiError::conflict(format!(
                    "sandbox {id} is still pending; it starts by itself once it can"
                )));
            }
            self.start_entry(&entry).await?;
            self.get(caller, id)
        }
        .await;
        audit.done(result)
    }

    /// Starts `entry` unless it runs already (whatever its state: a pending sandbox's
    /// settling starts it straight from pending).
    pub(super) async fn start_entry(&self, entry: &Arc<Entry>) -> Result<(), ApiError> {
        let mut life = entry.life.lock().await;
        if life.deleted {
            return Err(ApiError::not_found(format!("no sandbox {}", entry.id)));
        }
        if life.init.is_none() {
            let init = self.backend.start(&entry.config).await?;
            life.init = Some(init.clone());
            entry.update(&*self.records, |r| {
                r.state = SandboxState::Running;
                r.started_at = Some(now_secs());
            });
            tokio::spawn(watch_init(self.records.clone(), entry.clone(), init));
        }
        Ok(())
    }

    /// Stops a sandbox's processes; its files stay. Stopping a stopped one is a no-op.
    pub async fn stop(&self, caller: &Principal, id: &str) -> Result<Sandbox, ApiError> {
        let audit = self.audit(caller, "sandbox.stop", Some(id));
        let result = async {
            let entry = self.entry(caller, id, Need::Manage)?;
            let mut life = entry.life.lock().await;
            if let Some(init) = life.init.take() {
                init.stop(STOP_GRACE).await?;
                entry.update(&*self.records, |r| r.state = SandboxState::Stopped);
            }
            drop(life);
            self.get(caller, id)
        }
        .await;
        audit.done(result)
    }

    /// Deletes a sandbox: its processes, mounts, groups and files.
    pub async fn delete(&self, caller: &Principal, id: &str) -> Result<(), ApiError> {
        let audit = self.audit(caller, "sandbox.delete", Some(id));
        let result = async {
            let entry = self.entry(caller, id, Need::Manage)?;
            // Watches hold the sandbox's directories open; let them go first.
            entry.closed.cancel();
            let mut life = entry.life.lock().await;
            let killed = life.init.take();
            if let Some(init) = &killed {
                init.kill().await?;
            }
            let backend = self.backend.clone();
            let owned_id = id.to_owned();
            // The record is not rewritten as stopped on the way (a write of a file the
            // destroy removes a moment later): were the daemon to die between the two, the
            // next one restores the sandbox as it was, and the unanswered delete can be
            // made again. Only a sandbox that outlives a failed destroy is marked stopped.
            let destroyed = blocking(move || backend.destroy(&owned_id))
                .await
                .and_then(|d| d.map_err(ApiError::from));
            if let Err(err) = destroyed {
                if killed.is_some() {
                    entry.update(&*self.records, |r| r.state = SandboxState::Stopped);
                }
                return Err(err);
            }
            life.deleted = true;
            self.sandboxes
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(id);
            self.credentials.forget_sandbox(id);
            tracing::info!(id, "sandbox deleted");
            Ok(())
        }
        .await;
        audit.done(result)
    }

    /// Deletes sandboxes whose TTL has run out, forever.
    pub async fn expire_forever(self: Arc<Self>) {
        loop {
            tokio::time::sleep(EXPIRY_TICK).await;
            let now = now_secs();
            for entry in self.entries() {
                if entry.record().expires_at.is_some_and(|at| at <= now)
                    && self.still_expired(&entry, now).await
                {
                    tracing::info!(id = %entry.id, "TTL expired");
                    if let Err(err) = self.delete(&Principal::Admin, &entry.id).await {
                        tracing::error!(id = %entry.id, %err, "deleting expired sandbox");
                    }
                }
            }
        }
    }

    /// Whether `entry` is expired by its stored record too: where daemons share the
    /// records, another may have given it more time since this one last looked.
    async fn still_expired(&self, entry: &Arc<Entry>, now: u64) -> bool {
        if !self.backend.outlives_daemon() {
            return true;
        }
        let store = self.records.clone();
        let Ok(Ok(found)) = blocking(move || store.sandboxes()).await else {
            return false;
        };
        let stored = found
            .into_iter()
            .find(|(id, _)| *id == entry.id)
            .and_then(|(_, record)| record.ok());
        match stored {
            Some(record) => {
                entry.follow_expiry(record.expires_at);
                record.expires_at.is_some_and(|at| at <= now)
            }
            // Gone already: another daemon deleted it; forgetting it is the adopter's.
            None => false,
        }
    }

    /// Stops every running sandbox without changing its record, so that the next daemon
    /// starts it again.
    pub async fn shutdown(&self) {
        self.drain_pools().await;
        if self.backend.outlives_daemon() {
            // Another gateway (or this one, restarted) serves them on.
            return;
        }
        let stops = self.entries().into_iter().map(|entry| async move {
            let mut life = entry.life.lock().await;
            if let Some(init) = life.init.take()
                && let Err(err) = init.stop(SHUTDOWN_GRACE).await
            {
                tracing::error!(id = %entry.id, %err, "stopping sandbox at shutdown");
            }
        });
        futures_util::future::join_all(stops).await;
        let backend = self.backend.clone();
        let _ = blocking(move || backend.release()).await;
    }

    pub(super) fn template_root(&self, name: &str) -> Result<TemplateRoot, ApiError> {
        if let Some(root) = self.backend.template(name) {
            return Ok(root);
        }
        if name == HOST_TEMPLATE {
            return Ok(TemplateRoot::Host);
        }
        self.templates
            .rootfs(name)
            .map(TemplateRoot::Rootfs)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "no template {name:?}; `airlock template ls` lists them"
                ))
            })
    }
}

/// Makes a new sandbox's storage, writes its injected files (binding the read-only ones),
/// and saves its record last: a crash before that leaves storage without a record, which
/// the next daemon removes.
fn provision(
    backend: &dyn SandboxBackend,
    records: &dyn RecordStore,
    config: &SandboxConfig,
    (files_now, all_files): (&[CheckedFile], &[CheckedFile]),
    record: &SandboxRecord,
) -> Result<(), ApiError> {
    backend.provision(config, &mounted_files(backend, all_files))?;
    place_files(backend, &config.id, files_now)?;
    records
        .save_sandbox(record)
        .map_err(|e| ApiError::internal("saving record", e))
}

/// The read-only files a backend mounts itself, when it does.
fn mounted_files(backend: &dyn SandboxBackend, files: &[CheckedFile]) -> Vec<ReadonlyFile> {
    if !backend.mounts_readonly_files() {
        return Vec::new();
    }
    files
        .iter()
        .filter(|f| f.readonly)
        .map(|f| ReadonlyFile {
            path: f.path.clone(),
            content: f.content.clone(),
            mode: f.mode,
        })
        .collect()
}

/// Writes a sandbox's injected files: read-only ones as root and bound read-only (unless
/// the backend mounted them when it made the sandbox), the others as the sandbox's user.
/// Shared by a fresh create and a warm pool's claim.
pub(super) fn place_files(
    backend: &dyn SandboxBackend,
    id: &str,
    files: &[CheckedFile],
) -> Result<(), ApiError> {
    let mounted = backend.mounts_readonly_files();
    let files: Vec<&CheckedFile> = files.iter().filter(|f| !(f.readonly && mounted)).collect();
    if files.is_empty() {
        return Ok(());
    }
    let root = backend.fs(id)?;
    for file in files {
        let owner = if file.readonly {
            FileOwner::ROOT
        } else {
            FileOwner::SANDBOX_USER
        };
        root.write_file(
            &file.path,
            &mut file.content.as_slice(),
            WriteOptions::new(file.mode, owner),
        )?;
        if file.readonly {
            backend.make_readonly(id, &file.path)?;
        }
    }
    Ok(())
}

/// The engine's view of the limits (defaults already filled in by validation).
pub(super) fn engine_limits(limits: &airlock_api::Limits) -> Limits {
    Limits {
        memory_mb: limits.memory_mb,
        pids: limits.pids.unwrap_or(DEFAULT_PIDS),
        cpus: limits.cpus,
        disk_mb: limits.disk_mb,
    }
}

/// Notices a sandbox whose init ended on its own (killed from outside, say), marks it
/// stopped and clears its groups. A `stop` or `delete` takes the init first, so this
/// does nothing for them.
pub(super) async fn watch_init(
    records: Arc<dyn RecordStore>,
    entry: Arc<Entry>,
    init: Arc<dyn Running>,
) {
    init.exited().await;
    let mut life = entry.life.lock().await;
    if life
        .init
        .as_ref()
        .is_some_and(|current| Arc::ptr_eq(current, &init))
    {
        life.init = None;
        tracing::warn!(id = %entry.id, "sandbox init exited on its own; marking stopped");
        let _ = init.stop(Duration::ZERO).await;
        entry.update(&*records, |r| r.state = SandboxState::Stopped);
    }
}

pub(super) fn new_id() -> String {
    random_hex::<6>()
}
