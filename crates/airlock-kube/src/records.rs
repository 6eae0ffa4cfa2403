//! Records in the cluster: a sandbox's record and its uploads' are annotations on what
//! holds it (its pod, or its agent-sandbox `Sandbox`), so they go when it goes, and a
//! save cannot bring back a deleted sandbox (patching a missing object fails).

use std::io;

use airlock_service::{RecordStore, SandboxRecord, UploadRecord};
use kube::Api;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use serde_json::json;
use tokio::runtime::Handle;

use crate::block::wait;
use crate::conditional::{conflict, until_stored};
use crate::holder::Holder;
use crate::objects::{self, MANAGED_BY, RECORD, SANDBOX, UPLOAD};

/// Records as annotations on sandboxes' holders.
pub struct KubeRecords {
    holders: Api<DynamicObject>,
    runtime: Handle,
}

impl std::fmt::Debug for KubeRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeRecords")
    }
}

fn io_error(err: kube::Error) -> io::Error {
    match err {
        kube::Error::Api(status) if status.is_not_found() => {
            io::Error::new(io::ErrorKind::NotFound, status.message.clone())
        }
        other => io::Error::other(other),
    }
}

impl KubeRecords {
    /// The records of sandboxes in `namespace`, each held by a `holder`.
    pub fn new(client: kube::Client, namespace: &str, holder: Holder, runtime: Handle) -> Self {
        Self {
            holders: holder.api(client, namespace),
            runtime,
        }
    }

    /// Sets (or, with `null`, removes) annotation `key` on sandbox `id`'s pod.
    fn annotate(&self, id: &str, key: &str, value: serde_json::Value) -> io::Result<()> {
        let patch = json!({ "metadata": { "annotations": { key: value } } });
        let name = objects::name(id);
        wait(
            &self.runtime,
            self.holders
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .map(drop)
        .map_err(io_error)
    }

    fn annotations(&self, id: &str) -> io::Result<std::collections::BTreeMap<String, String>> {
        let pod = wait(&self.runtime, self.holders.get(&objects::name(id))).map_err(io_error)?;
        Ok(pod.metadata.annotations.unwrap_or_default())
    }

    /// One try of `change` on the sandbox's record as stored; `None` when another
    /// gateway wrote the holder since it was read.
    async fn try_change(
        &self,
        held: &SandboxRecord,
        change: &mut dyn FnMut(&mut SandboxRecord),
    ) -> io::Result<Option<SandboxRecord>> {
        let name = objects::name(&held.id);
        let holder = self.holders.get(&name).await.map_err(io_error)?;
        // The record another gateway saved, if it reads; this gateway's copy if not.
        let mut next = holder
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(RECORD))
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_else(|| held.clone());
        change(&mut next);
        // Conditional on the version read: a change saved since is read again.
        let patch = json!({ "metadata": {
            "resourceVersion": holder.metadata.resource_version,
            "annotations": { RECORD: serde_json::to_string(&next)? },
        } });
        let patched = self
            .holders
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        match patched {
            Ok(_) => Ok(Some(next)),
            Err(e) if conflict(&e) => Ok(None),
            Err(e) => Err(io_error(e)),
        }
    }
}

fn upload_key(id: &str) -> String {
    format!("{UPLOAD}{id}")
}

impl RecordStore for KubeRecords {
    fn save_sandbox(&self, record: &SandboxRecord) -> io::Result<()> {
        let text = serde_json::to_string(record)?;
        self.annotate(&record.id, RECORD, json!(text))
    }

    fn change_sandbox(
        &self,
        held: &SandboxRecord,
        change: &mut dyn FnMut(&mut SandboxRecord),
    ) -> io::Result<SandboxRecord> {
        until_stored(
            || {
                format!(
                    "sandbox {}'s record kept changing under this gateway",
                    held.id
                )
            },
            || wait(&self.runtime, self.try_change(held, &mut *change)),
        )
    }

    fn sandboxes(&self) -> io::Result<Vec<(String, io::Result<SandboxRecord>)>> {
        let params = ListParams::default().labels(MANAGED_BY);
        let held = wait(&self.runtime, self.holders.list(&params)).map_err(io_error)?;
        let mut found = Vec::new();
        for holder in held.items {
            let Some(id) = holder.metadata.labels.as_ref().and_then(|l| l.get(SANDBOX)) else {
                continue;
            };
            let record = match holder
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(RECORD))
            {
                Some(text) => serde_json::from_str(text).map_err(io::Error::from),
                None => Err(io::Error::new(io::ErrorKind::NotFound, "no record yet")),
            };
            found.push((id.clone(), record));
        }
        Ok(found)
    }

    fn save_upload(&self, sandbox: &str, record: &UploadRecord) -> io::Result<()> {
        let text = serde_json::to_string(record)?;
        self.annotate(sandbox, &upload_key(&record.id), json!(text))
    }

    fn load_upload(&self, sandbox: &str, id: &str) -> io::Result<Option<UploadRecord>> {
        let annotations = match self.annotations(sandbox) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            other => other?,
        };
        annotations
            .get(&upload_key(id))
            .map(|text| serde_json::from_str(text).map_err(io::Error::from))
            .transpose()
    }

    fn remove_upload(&self, sandbox: &str, id: &str) -> io::Result<()> {
        match self.annotate(sandbox, &upload_key(id), serde_json::Value::Null) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn uploads(&self, sandbox: &str) -> Vec<UploadRecord> {
        self.annotations(sandbox)
            .unwrap_or_default()
            .iter()
            .filter(|(key, _)| key.starts_with(UPLOAD))
            .filter_map(|(_, text)| serde_json::from_str(text).ok())
            .collect()
    }
}
