//! Sandboxes answered as `pending` (a cluster's pod not running yet) are finished here,
//! off the create request: wait for the backend, place the injected files, then start
//! the sandbox if asked. One that cannot be finished is deleted, and why is kept for a
//! while, so that its creator asking for it learns why it is gone.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_api::{Sandbox, SandboxState};
use tokio::sync::mpsc;

use super::lifecycle::place_files;
use super::validate::CheckedFile;
use super::{Service, blocking};
use crate::{ApiError, Need, Principal};

/// Failures remembered for callers who come asking.
const FAILURES_KEPT: usize = 256;
/// How often a caller waiting for a pending sandbox looks again.
const SETTLE_POLL: Duration = Duration::from_millis(100);

/// A pending sandbox to finish.
pub(crate) struct Job {
    pub id: String,
    pub files: Vec<CheckedFile>,
    pub start: bool,
}

/// The queue of pending sandboxes, and why recent ones failed.
#[derive(Debug)]
pub(crate) struct Settling {
    tx: mpsc::UnboundedSender<Job>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
    /// (sandbox, owner, why), newest last.
    failures: Mutex<VecDeque<(String, String, String)>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("id", &self.id).finish()
    }
}

impl Default for Settling {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            failures: Mutex::new(VecDeque::new()),
        }
    }
}

impl Settling {
    pub(crate) fn queue(&self, job: Job) {
        let _ = self.tx.send(job);
    }

    fn remember(&self, id: &str, owner: &str, why: String) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() == FAILURES_KEPT {
            failures.pop_front();
        }
        failures.push_back((id.to_owned(), owner.to_owned(), why));
    }

    /// Why sandbox `id` failed to be made, if it did lately and `caller` may know.
    pub(crate) fn failure(&self, caller: &Principal, id: &str) -> Option<String> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures
            .iter()
            .rev()
            .find(|(failed, owner, _)| failed == id && caller.reaches(owner, id))
            .map(|(_, _, why)| format!("sandbox {id} could not be made: {why}"))
    }
}

impl Service {
    /// Finishes pending sandboxes as they are created, forever.
    pub async fn settle_forever(self: Arc<Self>) {
        let taken = self
            .settling
            .rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(mut jobs) = taken else { return };
        while let Some(job) = jobs.recv().await {
            tokio::spawn(self.clone().settle(job));
        }
    }

    async fn settle(self: Arc<Self>, job: Job) {
        // Deleted while pending: nothing to finish.
        let Ok(entry) = self.entry(&Principal::Admin, &job.id, Need::Manage) else {
            return;
        };
        let done = async {
            self.backend.settle(&entry.config).await?;
            let (backend, id, files) = (self.backend.clone(), job.id.clone(), job.files);
            blocking(move || place_files(&*backend, &id, &files)).await??;
            // Straight from pending to running when asked to start, so no caller waiting
            // for the end of `pending` sees it `created` on the way.
            if job.start {
                self.start_entry(&entry).await?;
            } else {
                entry.update(&*self.records, |r| r.state = SandboxState::Created);
            }
            Ok::<(), ApiError>(())
        }
        .await;
        if let Err(err) = done {
            tracing::warn!(id = %job.id, %err, "a pending sandbox could not be made; deleting it");
            self.settling
                .remember(&job.id, &entry.owner, err.message.clone());
            if let Err(err) = self.delete(&Principal::Admin, &job.id).await {
                tracing::error!(id = %job.id, %err, "deleting a sandbox that could not be made");
            }
        }
    }

    /// Waits while sandbox `id` is pending, for faces whose protocol answers a create
    /// only once the sandbox can be used (E2B's, agent-sandbox's).
    pub async fn until_settled(&self, caller: &Principal, id: &str) -> Result<Sandbox, ApiError> {
        loop {
            let sandbox = self.get(caller, id)?;
            if sandbox.state != SandboxState::Pending {
                return Ok(sandbox);
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }
}
