//! Warm pools: started sandboxes kept ready per template, so a create that matches one
//! claims it in a few milliseconds instead of making one (agent-sandbox's
//! SandboxWarmPool, on one machine).
//!
//! A warm sandbox belongs to no one: it is outside the table every caller looks in, and
//! it has no record on disk, so a daemon that restarts removes it as a half-made
//! sandbox and fills its pools again. Nothing has ever run in it but its init, so a
//! claim makes it indistinguishable from a fresh sandbox by applying everything a create
//! asks for at that moment: owner, env, labels, files, TTL and the times. A create a warm
//! sandbox cannot serve as asked (a disk limit, other limits, read-only files, or
//! `start: false`) makes a fresh one as before.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_api::{CreateSandbox, Limits, PoolInfo, SandboxState};
use airlock_sandbox::SandboxConfig;

use crate::backend::Running;

use super::lifecycle::{engine_limits, new_id, place_files, watch_init};
use super::record::{SandboxRecord, now_secs};
use super::validate::CheckedFile;
use super::{Entry, Service, blocking};
use crate::{ApiError, Principal};

/// The most sandboxes one template's pool may keep.
pub const POOL_MAX: usize = 64;
/// How often the filler looks again when it has nothing to do or a fill failed.
const FILL_TICK: Duration = Duration::from_millis(250);

/// A sandbox made and started ahead of any create.
#[derive(Debug)]
struct Warm {
    config: SandboxConfig,
    init: Arc<dyn Running>,
}

#[derive(Debug, Default)]
struct Pool {
    size: usize,
    ready: VecDeque<Warm>,
    claimed: u64,
}

/// Every template's pool.
#[derive(Debug, Default)]
pub struct Pools {
    pools: Mutex<BTreeMap<String, Pool>>,
    wake: tokio::sync::Notify,
    /// Held while a sandbox is being made for a pool, until it is in the pool: the drain
    /// at shutdown waits for it, or the daemon would exit with that sandbox running and
    /// in no pool.
    filling: tokio::sync::Mutex<()>,
    /// Set by the drain; the filler makes nothing after it.
    closed: AtomicBool,
}

impl Pools {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Pool>> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Service {
    /// Sets how many started sandboxes of `template` to keep ready (0 empties the pool).
    /// Admin only: pools spend the machine's memory on no tenant's behalf.
    pub fn size_pool(
        &self,
        caller: &Principal,
        template: &str,
        size: usize,
    ) -> Result<PoolInfo, ApiError> {
        let audit = self
            .audit(caller, "pool.size", None)
            .target(&format!("{template}={size}"));
        let result = (|| {
            caller.require_admin("size warm pools")?;
            if size > POOL_MAX {
                return Err(ApiError::bad_request(format!(
                    "a warm pool keeps at most {POOL_MAX} sandboxes"
                )));
            }
            self.template_root(template)?;
            let mut pools = self.pools.lock();
            let pool = pools.entry(template.to_owned()).or_default();
            pool.size = size;
            let info = info(template, pool);
            drop(pools);
            self.pools.wake.notify_one();
            Ok(info)
        })();
        audit.done(result)
    }

    /// Every pool. Admin only.
    pub fn pools(&self, caller: &Principal) -> Result<Vec<PoolInfo>, ApiError> {
        caller.require_admin("see warm pools")?;
        let pools = self.pools.lock();
        Ok(pools.iter().map(|(t, p)| info(t, p)).collect())
    }

    /// Keeps every pool at its size, forever: makes what is missing one at a time (a
    /// burst of creates never waits on the filler), and removes what a shrunk pool no
    /// longer needs.
    pub async fn fill_pools_forever(self: Arc<Self>) {
        loop {
            let (short, excess) = {
                let mut pools = self.pools.lock();
                let short = pools
                    .iter()
                    .find(|(_, p)| p.ready.len() < p.size)
                    .map(|(t, _)| t.clone());
                let excess: Vec<Warm> = pools
                    .values_mut()
                    .flat_map(|p| {
                        let keep = p.size.min(p.ready.len());
                        p.ready.split_off(keep)
                    })
                    .collect();
                (short, excess)
            };
            for warm in excess {
                self.discard(warm).await;
            }
            let Some(template) = short else {
                let _ = tokio::time::timeout(FILL_TICK, self.pools.wake.notified()).await;
                continue;
            };
            let filling = self.pools.filling.lock().await;
            if self.pools.closed.load(Ordering::Acquire) {
                return;
            }
            match self.make_warm(&template).await {
                Ok(warm) => {
                    let mut pools = self.pools.lock();
                    pools.entry(template).or_default().ready.push_back(warm);
                }
                Err(err) => {
                    drop(filling);
                    tracing::error!(%template, %err, "filling a warm pool");
                    tokio::time::sleep(FILL_TICK).await;
                }
            }
        }
    }

    /// Makes and starts a sandbox with the defaults, and no record yet.
    async fn make_warm(&self, template_name: &str) -> Result<Warm, ApiError> {
        let template = self.template_root(template_name)?;
        let limits = pool_limits(self.backend.disk_free_mb())?;
        let config = SandboxConfig {
            id: new_id(),
            template,
            limits: engine_limits(&limits),
            readonly: Vec::new(),
        };
        let (backend, made) = (self.backend.clone(), config.clone());
        blocking(move || {
            let provisioned = backend.provision(&made, &[]);
            if provisioned.is_err() {
                let _ = backend.destroy(&made.id);
            }
            provisioned
        })
        .await??;
        match self.backend.start(&config).await {
            Ok(init) => Ok(Warm { config, init }),
            Err(err) => {
                let (backend, id) = (self.backend.clone(), config.id.clone());
                let _ = blocking(move || backend.destroy(&id)).await;
                Err(err.into())
            }
        }
    }

    async fn discard(&self, warm: Warm) {
        let id = warm.config.id.clone();
        if let Err(err) = warm.init.stop(Duration::ZERO).await {
            tracing::error!(%id, %err, "stopping a warm sandbox");
        }
        let backend = self.backend.clone();
        let _ = blocking(move || backend.destroy(&id)).await;
    }

    /// Serves a create from a warm pool when one can serve it exactly as asked: its
    /// sandbox, now the caller's, with the create's env, labels, files and TTL.
    pub(super) async fn claim(
        &self,
        caller: &Principal,
        req: &CreateSandbox,
        limits: &Limits,
        files: &[CheckedFile],
    ) -> Result<Option<String>, ApiError> {
        let template = req
            .template
            .clone()
            .unwrap_or_else(|| airlock_sandbox::HOST_TEMPLATE.into());
        let ready = |pools: &BTreeMap<String, Pool>| {
            pools.get(&template).is_some_and(|p| !p.ready.is_empty())
        };
        // The cheap refusals first: most creates meet no pool, and pay nothing more.
        if req.start == Some(false)
            || files.iter().any(|f| f.readonly)
            || !ready(&self.pools.lock())
        {
            return Ok(None);
        }
        if *limits != pool_limits(self.backend.disk_free_mb())? {
            return Ok(None);
        }
        let warm = {
            let mut pools = self.pools.lock();
            let Some(pool) = pools.get_mut(&template) else {
                return Ok(None);
            };
            let Some(warm) = pool.ready.pop_front() else {
                return Ok(None);
            };
            pool.claimed += 1;
            warm
        };
        self.pools.wake.notify_one();
        let now = now_secs();
        let record = SandboxRecord {
            id: warm.config.id.clone(),
            template,
            state: SandboxState::Running,
            env: req.env.clone(),
            limits: limits.clone(),
            labels: req.labels.clone(),
            owner: caller.owner().to_owned(),
            readonly_paths: Vec::new(),
            created_at: now,
            started_at: Some(now),
            expires_at: req.ttl_secs.map(|ttl| now + ttl),
        };
        let (backend, records, id, written, saved) = (
            self.backend.clone(),
            self.records.clone(),
            record.id.clone(),
            files.to_vec(),
            record.clone(),
        );
        let placed = blocking(move || -> Result<(), ApiError> {
            place_files(&*backend, &id, &written)?;
            records
                .save_sandbox(&saved)
                .map_err(|e| ApiError::internal("saving record", e))
        })
        .await?;
        if let Err(err) = placed {
            self.discard(warm).await;
            return Err(err);
        }
        let entry = Entry::new(record, warm.config);
        let init = warm.init;
        entry.life.lock().await.init = Some(init.clone());
        tokio::spawn(watch_init(self.records.clone(), entry.clone(), init));
        let id = entry.id.clone();
        self.sandboxes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), entry);
        Ok(Some(id))
    }

    /// Stops every warm sandbox (at shutdown); the next daemon removes them.
    pub(super) async fn drain_pools(&self) {
        self.pools.closed.store(true, Ordering::Release);
        // A sandbox being made now lands in its pool before this lock is ours.
        let _filling = self.pools.filling.lock().await;
        let all: Vec<Warm> = {
            let mut pools = self.pools.lock();
            pools.values_mut().flat_map(|p| p.ready.drain(..)).collect()
        };
        for warm in all {
            self.discard(warm).await;
        }
    }
}

/// The limits a warm sandbox has: the defaults.
fn pool_limits(disk_free_mb: u64) -> Result<Limits, ApiError> {
    super::validate::limits(&Limits::default(), disk_free_mb)
}

fn info(template: &str, pool: &Pool) -> PoolInfo {
    PoolInfo {
        template: template.to_owned(),
        size: pool.size,
        ready: pool.ready.len(),
        claimed: pool.claimed,
    }
}
