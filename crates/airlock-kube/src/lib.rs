//! The Kubernetes backend. Each sandbox is a pod whose entrypoint is `airlock agent`
//! (copied in by an init container, so any image works), reached by the gateway at the
//! pod's IP with a per-sandbox secret kept in a Kubernetes Secret and mounted into the
//! pod. Sandbox and upload records are the pod's annotations, so the gateway keeps no
//! state of its own: a new gateway, or another replica, finds every sandbox in the API,
//! and the tokens and signing key are one Secret that every replica shares.

mod backend;
mod block;
mod conditional;
mod holder;
mod objects;
mod ready;
mod records;
mod running;
mod secrets;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use backend::KubeBackend;
pub use holder::{Holder, Objects};
pub use records::KubeRecords;
pub use secrets::{GATEWAY_SECRET, KubeSecrets};

/// How the gateway runs sandboxes in a cluster.
#[derive(Debug, Clone)]
pub struct KubeSettings {
    /// The namespace sandboxes' pods and Secrets live in.
    pub namespace: String,
    /// The image of a sandbox made without a template.
    pub image: String,
    /// Templates by name: the image each names.
    pub images: BTreeMap<String, String>,
    /// An image holding the `airlock` binary at `/usr/local/bin/airlock`, copied into
    /// each pod by an init container.
    pub agent_image: String,
    /// The runtime class pods run under (gVisor's `gvisor`, Kata's `kata`), if any.
    pub runtime_class: Option<String>,
    /// The port the agent listens on in each pod.
    pub agent_port: u16,
    /// How long a new pod may take to run and answer.
    pub ready_timeout: Duration,
    /// A kubeconfig to use instead of the usual search (`KUBECONFIG`, then in-cluster).
    pub kubeconfig: Option<PathBuf>,
    /// Bare pods, agent-sandbox `Sandbox` objects, or whichever the cluster has.
    pub objects: Objects,
}

/// A client of the cluster `settings` names.
pub async fn connect(settings: &KubeSettings) -> Result<kube::Client, kube::Error> {
    let config = match &settings.kubeconfig {
        Some(path) => {
            let file =
                kube::config::Kubeconfig::read_from(path).map_err(kube::Error::InferKubeconfig)?;
            kube::Config::from_custom_kubeconfig(file, &Default::default())
                .await
                .map_err(kube::Error::InferKubeconfig)?
        }
        None => kube::Config::infer()
            .await
            .map_err(kube::Error::InferConfig)?,
    };
    kube::Client::try_from(config)
}

/// The backend, its records and the gateways' secrets over the cluster `settings`
/// names, on the current runtime.
pub async fn open(
    settings: &KubeSettings,
) -> std::io::Result<(KubeBackend, KubeRecords, KubeSecrets)> {
    let client = connect(settings)
        .await
        .map_err(|e| std::io::Error::other(format!("reaching the cluster: {e}")))?;
    let runtime = tokio::runtime::Handle::current();
    let holder = Holder::choose(&client, settings.objects).await;
    tracing::info!(?holder, namespace = %settings.namespace, "sandboxes are held in the cluster");
    let records = KubeRecords::new(client.clone(), &settings.namespace, holder, runtime.clone());
    let secrets = KubeSecrets::new(client.clone(), &settings.namespace, runtime.clone());
    let backend = KubeBackend::new(client, settings.clone(), holder, runtime);
    Ok((backend, records, secrets))
}
