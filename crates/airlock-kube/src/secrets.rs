//! The gateways' own secrets (the admin token, the signing key, the minted tokens'
//! records) in one Kubernetes Secret, so every replica answers the same tokens. Changes
//! are merge patches conditional on the Secret's resource version: of two gateways
//! changing it at once, the second retries on what the first stored.

use std::collections::BTreeMap;
use std::io;

use airlock_service::{SecretChange, SecretStore};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::runtime::Handle;

use crate::block::wait;
use crate::conditional::{conflict, until_stored};

/// The Secret's name, in the sandboxes' namespace.
pub const GATEWAY_SECRET: &str = "airlock-gateway";

/// The gateways' secrets in the Secret [`GATEWAY_SECRET`].
pub struct KubeSecrets {
    secrets: Api<Secret>,
    runtime: Handle,
}

impl std::fmt::Debug for KubeSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeSecrets")
    }
}

impl KubeSecrets {
    pub fn new(client: kube::Client, namespace: &str, runtime: Handle) -> Self {
        Self {
            secrets: Api::namespaced(client, namespace),
            runtime,
        }
    }

    async fn try_update(
        &self,
        name: &str,
        change: &mut SecretChange<'_>,
    ) -> io::Result<Option<Vec<u8>>> {
        let held = self
            .secrets
            .get_opt(GATEWAY_SECRET)
            .await
            .map_err(io::Error::other)?;
        let Some(held) = held else {
            let next = change(None)?;
            let mut secret = Secret::default();
            secret.metadata.name = Some(GATEWAY_SECRET.into());
            secret.metadata.labels = Some(BTreeMap::from([(
                "app.kubernetes.io/component".to_owned(),
                "airlock-gateway".to_owned(),
            )]));
            secret.data = Some(BTreeMap::from([(
                name.to_owned(),
                ByteString(next.clone()),
            )]));
            return match self.secrets.create(&PostParams::default(), &secret).await {
                Ok(_) => Ok(Some(next)),
                Err(e) if conflict(&e) => Ok(None),
                Err(e) => Err(io::Error::other(e)),
            };
        };
        let current = held
            .data
            .as_ref()
            .and_then(|d| d.get(name))
            .map(|b| &b.0[..]);
        let next = change(current)?;
        if current == Some(&next[..]) {
            return Ok(Some(next));
        }
        let patch = json!({
            "metadata": { "resourceVersion": held.metadata.resource_version },
            "data": { name: ByteString(next.clone()) },
        });
        let patched = self
            .secrets
            .patch(
                GATEWAY_SECRET,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await;
        match patched {
            Ok(_) => Ok(Some(next)),
            Err(e) if conflict(&e) => Ok(None),
            Err(e) => Err(io::Error::other(e)),
        }
    }
}

impl SecretStore for KubeSecrets {
    fn load(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        let held =
            wait(&self.runtime, self.secrets.get_opt(GATEWAY_SECRET)).map_err(io::Error::other)?;
        Ok(held
            .and_then(|s| s.data)
            .and_then(|mut d| d.remove(name))
            .map(|b| b.0))
    }

    fn update(&self, name: &str, change: &mut SecretChange<'_>) -> io::Result<Vec<u8>> {
        until_stored(
            || format!("the Secret {GATEWAY_SECRET} kept changing under this gateway"),
            || wait(&self.runtime, self.try_update(name, &mut *change)),
        )
    }
}
