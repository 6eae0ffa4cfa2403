//! Airlock's service layer: the one place that owns sandbox records and every rule and
//! default about them. It knows no transport: faces (REST, gRPC, the compatibility
//! adapters) resolve the caller to a [`Principal`], parse, call and encode.

mod archive;
mod audit;
mod backend;
mod batch;
mod body;
mod caps;
mod credentials;
mod envd_tokens;
mod error;
mod exec;
#[cfg(test)]
mod fake_backend;
mod files;
mod leftovers;
mod lifecycle;
mod local_backend;
mod metrics;
mod oidc;
mod options;
mod packed_stream;
mod pool;
mod principal;
mod processes;
mod put_file;
mod read_pump;
mod record;
mod records;
mod recovery;
#[cfg(test)]
mod rules_tests;
mod save_lock;
mod secrets;
mod settings;
mod settle;
mod signing;
mod templates;
mod token;
mod tokens;
mod upload_append;
mod upload_claims;
mod upload_new;
mod upload_record;
mod uploads;
mod validate;
mod watch;
mod watchers;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use airlock_sandbox::{Engine, Layout, SandboxConfig, TemplateStore};

pub use archive::{ArchiveFormat, ArchiveUpload, TarStream};
pub use audit::{AuditSettings, Counted, Receipt};
pub use backend::{Command, CommandTerminal, ReadonlyFile, Running, SandboxBackend, Spawned};
pub use batch::{BatchDefaults, BatchPart, batch_broken, batch_result};
pub use body::{ByteStream, byte_stream, bytes_body};
pub use caps::TenantCaps;
pub use envd_tokens::EnvdSignature;
pub use error::ApiError;
pub use exec::{ExecEvents, ProcessEvent, ProcessInput};
pub use files::{FileBody, FileWindow, ListFiles, SendsFiles, byte_window, mtime_text, to_api};
pub use local_backend::LocalBackend;
pub use metrics::{ByteCounter, FaceBytes, Metrics};
pub use oidc::{Fetch, OidcSettings};
pub use options::{
    ChecksumText, PatchFile, PutFile, parse_crc64nvme, parse_mode, parse_mtime, parse_sha256,
};
pub use packed_stream::PackedStream;
pub use pool::POOL_MAX;
pub use principal::{Access, Need, Principal};
pub use processes::{ProcessEvents, Selector, StartOptions};
pub use put_file::{AdmittedPut, PutBody};
pub use record::{SandboxRecord, replace_file};
pub use records::{FileRecords, RecordStore};
pub use secrets::{HomeSecrets, SecretChange, SecretStore, new_secret};
pub use settings::Settings;
pub use signing::{SignedMethod, SignedRequest};
pub use upload_append::{AdmittedAppend, AppendBody};
pub use upload_new::CHUNK_CHECKSUMS;
pub use upload_record::UploadRecord;
pub use uploads::{ChunkChecksum, NewUpload, UploadState};
pub use watch::WatchEvents;

/// Who created a sandbox when the admin token is used.
pub const ADMIN_OWNER: &str = "admin";

/// The daemon's state and every operation on it.
#[derive(Debug)]
pub struct Service {
    /// What runs the sandboxes and holds their files.
    backend: Arc<dyn SandboxBackend>,
    /// Where sandbox and upload records live.
    records: Arc<dyn RecordStore>,
    /// The admin token and every minted one.
    credentials: credentials::Credentials,
    /// The key signed URLs are signed with.
    signer: signing::Signer,
    templates: TemplateStore,
    sandboxes: RwLock<BTreeMap<String, Arc<Entry>>>,
    /// Resumable uploads with a request in progress.
    upload_claims: upload_claims::UploadClaims,
    /// How long an upload may sit untouched before it is removed.
    upload_expiry: std::time::Duration,
    /// What each tenant's sandboxes hold of their caps now.
    counts: caps::Counts,
    /// One line per mutating call and per transfer.
    audit_log: Arc<audit::AuditLog>,
    /// What `GET /metrics` shows.
    metrics: metrics::Metrics,
    /// Validates OIDC bearers, when an issuer is configured.
    oidc: Option<oidc::Oidc>,
    /// Started sandboxes kept ready per template.
    pools: pool::Pools,
    /// Pending sandboxes to finish, and why recent ones could not be.
    settling: settle::Settling,
}

/// One sandbox in memory.
#[derive(Debug)]
struct Entry {
    id: String,
    /// Who may reach it; fixed at creation.
    owner: String,
    /// What clients read; saved on every change. Its lock is held only to read or swap
    /// it, never while the store is written (which may be a cluster's API).
    record: Mutex<SandboxRecord>,
    /// One change of the record at a time, held across the save.
    saving: Mutex<()>,
    /// What the engine needs; fixed at creation.
    config: SandboxConfig,
    /// Lifecycle lock: start, stop, delete and exec spawning take it, so they never
    /// interleave on one sandbox.
    life: tokio::sync::Mutex<Life>,
    /// Numbers exec cgroup leaves.
    exec_seq: AtomicU64,
    /// Cancelled when the sandbox is deleted: long-lived streams (watches) end then.
    closed: tokio_util::sync::CancellationToken,
    /// Processes that outlive their requests.
    processes: Arc<processes::Registry>,
    /// Watches polled instead of held open.
    watchers: Arc<watchers::Watchers>,
}

#[derive(Debug, Default)]
struct Life {
    init: Option<Arc<dyn Running>>,
    deleted: bool,
}

impl Service {
    /// Opens the daemon home and brings every recorded sandbox back. Resumable uploads
    /// left untouched for `settings.upload_expiry` are removed.
    pub async fn open(home: &Path, settings: Settings) -> std::io::Result<Self> {
        let backend = Arc::new(LocalBackend::new(Engine::new(home)?));
        let records = Arc::new(FileRecords::new(Layout::new(home)));
        let secrets = Arc::new(HomeSecrets::new(home));
        Self::open_with(home, settings, backend, records, secrets).await
    }

    /// Like [`Service::open`], with sandboxes run by `backend`, records kept in
    /// `records`, and tokens and the signing key kept in `secrets`. The home still holds
    /// templates and the audit log.
    pub async fn open_with(
        home: &Path,
        settings: Settings,
        backend: Arc<dyn SandboxBackend>,
        records: Arc<dyn RecordStore>,
        secrets: Arc<dyn SecretStore>,
    ) -> std::io::Result<Self> {
        let service = Self {
            signer: signing::Signer::open_in(&*secrets)?,
            credentials: credentials::Credentials::open_in(secrets, home)?,
            backend,
            templates: TemplateStore::new(Layout::new(home)),
            records,
            sandboxes: RwLock::new(BTreeMap::new()),
            upload_claims: upload_claims::UploadClaims::default(),
            upload_expiry: settings.upload_expiry,
            counts: caps::Counts::new(settings.caps),
            audit_log: Arc::new(audit::AuditLog::open(home, &settings.audit)?),
            metrics: metrics::Metrics::default(),
            oidc: settings.oidc.map(oidc::Oidc::new),
            pools: pool::Pools::default(),
            settling: settle::Settling::default(),
        };
        service.recover().await?;
        for (template, size) in &settings.warm_pools {
            service
                .size_pool(&Principal::Admin, template, *size)
                .map_err(|e| {
                    std::io::Error::other(format!("--warm-pool {template}={size}: {e}"))
                })?;
        }
        Ok(service)
    }

    /// Succeeds when the sandbox exists for this caller (404 otherwise) and the caller
    /// may do `need` there (403 otherwise), whatever its state.
    pub fn require(&self, caller: &Principal, id: &str, need: Need) -> Result<(), ApiError> {
        self.entry(caller, id, need).map(drop)
    }

    /// The one door to a sandbox: every operation on one comes through here, so the
    /// caller's reach and rights are checked in one place. A sandbox the caller may not
    /// reach is "not found", never "forbidden": its existence is not the caller's to
    /// learn. One it reaches but may not do `need` in is "forbidden".
    fn entry(&self, caller: &Principal, id: &str, need: Need) -> Result<Arc<Entry>, ApiError> {
        let entry = self
            .sandboxes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(id)
            .filter(|entry| caller.reaches(&entry.owner, &entry.id))
            .cloned()
            .ok_or_else(|| {
                let why = self.settling.failure(caller, id);
                ApiError::not_found(why.unwrap_or_else(|| format!("no sandbox {id}")))
            })?;
        caller.allows(need)?;
        Ok(entry)
    }

    /// The tenant sandbox `id` belongs to, for the daemon's own bookkeeping (audit,
    /// caps, checked signatures): no caller's reach is checked here.
    fn owner_of(&self, id: &str) -> Result<String, ApiError> {
        self.sandboxes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|entry| entry.owner.clone())
            .ok_or_else(|| ApiError::not_found(format!("no sandbox {id}")))
    }

    /// Starts the audit line of a call by `caller`; its tenant is the sandbox's when
    /// there is one, else the caller's.
    fn audit(
        &self,
        caller: &Principal,
        action: &'static str,
        sandbox: Option<&str>,
    ) -> audit::Pending {
        let tenant = sandbox
            .and_then(|id| self.owner_of(id).ok())
            .unwrap_or_else(|| caller.owner().to_owned());
        audit::Pending::new(self.audit_log.clone(), caller, tenant, sandbox, action)
    }

    /// Takes one of the sandbox's tenant's slots for `work` (429 past its cap).
    fn slot(&self, id: &str, work: caps::Work) -> Result<caps::Slot, ApiError> {
        let mut slot = self.counts.take(&self.owner_of(id)?, work)?;
        if work == caps::Work::Upload {
            slot.in_flight = Some(self.metrics.transfer());
        }
        Ok(slot)
    }

    /// One sandbox's resumable upload records.
    fn uploads_of(&self, id: &str) -> records::SandboxUploads {
        records::SandboxUploads::new(self.records.clone(), id)
    }

    fn entries(&self) -> Vec<Arc<Entry>> {
        self.sandboxes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

impl Entry {
    fn new(record: SandboxRecord, config: SandboxConfig) -> Arc<Self> {
        Arc::new(Self {
            id: record.id.clone(),
            owner: record.owner.clone(),
            record: Mutex::new(record),
            saving: Mutex::new(()),
            config,
            life: tokio::sync::Mutex::new(Life::default()),
            exec_seq: AtomicU64::new(0),
            closed: tokio_util::sync::CancellationToken::new(),
            processes: Arc::default(),
            watchers: Arc::default(),
        })
    }

    fn record(&self) -> SandboxRecord {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Takes the expiry another daemon sharing the records set (it is only read, never
    /// saved back).
    fn follow_expiry(&self, expires_at: Option<u64>) {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .expires_at = expires_at;
    }

    /// Changes the record as the store holds it (keeping what another daemon sharing
    /// the store changed) and saves it; a failed save is logged, and the change stays
    /// on this daemon's copy.
    fn update(&self, records: &dyn RecordStore, mut change: impl FnMut(&mut SandboxRecord)) {
        let _one_at_a_time = save_lock::lock_for_save(&self.saving);
        let next = match records.change_sandbox(&self.record(), &mut change) {
            Ok(saved) => saved,
            Err(err) => {
                tracing::error!(id = %self.id, %err, "saving sandbox record");
                let mut next = self.record();
                change(&mut next);
                next
            }
        };
        *self.record.lock().unwrap_or_else(|p| p.into_inner()) = next;
    }
}

/// Runs blocking engine work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal("background task", e))
}
