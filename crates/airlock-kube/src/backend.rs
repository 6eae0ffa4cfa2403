//! Sandboxes as pods. Every answer comes from the cluster's API (the pod's IP, the
//! Secret's value), so any gateway can serve any sandbox. What it keeps of an agent (its
//! clients, with their connections) lasts until the sandbox is started again, which asks
//! the API anew, or deleted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use airlock_agent::client::RemoteFs;
use airlock_agent::commands_client::AgentCommands;
use airlock_fs::{FileOwner, FsErrorKind, SandboxFs, SandboxPath};
use airlock_sandbox::{
    HOST_TEMPLATE, SandboxConfig, SandboxError, SandboxResult, TemplateRoot, WRITABLE_DIRS,
};
use airlock_service::{ReadonlyFile, Running, SandboxBackend, new_secret};
use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, ListParams, PostParams};
use tokio::runtime::Handle;

use crate::KubeSettings;
use crate::block::wait;
use crate::holder::Holder;
use crate::objects::{self, MANAGED_BY, SANDBOX};
use crate::ready::{self, Standing};
use crate::running::KubeRunning;

/// The Kubernetes backend.
pub struct KubeBackend {
    settings: KubeSettings,
    /// What holds each sandbox: its pod, or an agent-sandbox `Sandbox`.
    holders: Api<DynamicObject>,
    holder: Holder,
    pods: Api<Pod>,
    secrets: Api<Secret>,
    runtime: Handle,
    /// Each sandbox's agent: its base URL and secret.
    agents: Mutex<HashMap<String, Agent>>,
    /// This gateway's own name among those sharing the cluster (random, per process).
    gateway: String,
}

impl std::fmt::Debug for KubeBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeBackend")
            .field("namespace", &self.settings.namespace)
            .field("holder", &self.holder)
            .finish()
    }
}

/// One sandbox's agent, as its clients: made once, so every file call and command
/// reuses their pooled connections.
#[derive(Clone)]
pub(crate) struct Agent {
    pub(crate) files: RemoteFs,
    pub(crate) commands: AgentCommands,
}

fn cluster(action: &'static str, err: kube::Error) -> SandboxError {
    match err {
        kube::Error::Api(status) if status.is_not_found() => SandboxError::new(
            action,
            std::io::Error::new(std::io::ErrorKind::NotFound, status.message.clone()),
        ),
        kube::Error::Api(status) => SandboxError::refused(action, status.message.clone()),
        other => SandboxError::new(action, std::io::Error::other(other)),
    }
}

impl KubeBackend {
    /// The backend over `client`, in `settings.namespace`, each sandbox held by a
    /// `holder`. Its calls run on `runtime`.
    pub fn new(
        client: kube::Client,
        settings: KubeSettings,
        holder: Holder,
        runtime: Handle,
    ) -> Self {
        Self {
            holders: holder.api(client.clone(), &settings.namespace),
            holder,
            pods: Api::namespaced(client.clone(), &settings.namespace),
            secrets: Api::namespaced(client, &settings.namespace),
            settings,
            runtime,
            agents: Mutex::new(HashMap::new()),
            gateway: new_secret().map(|s| s[..8].to_owned()).unwrap_or_default(),
        }
    }

    fn cached(&self, id: &str) -> Option<Agent> {
        let agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        agents.get(id).cloned()
    }

    /// Sandbox `id`'s agent, from the cache or the API.
    fn agent(&self, id: &str) -> SandboxResult<Agent> {
        if let Some(agent) = self.cached(id) {
            return Ok(agent);
        }
        let agent = wait(&self.runtime, self.find_agent(id))?;
        self.agents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), agent.clone());
        Ok(agent)
    }

    async fn find_agent(&self, id: &str) -> SandboxResult<Agent> {
        let name = objects::name(id);
        let pod = self
            .pods
            .get(&name)
            .await
            .map_err(|e| cluster("finding the sandbox's pod", e))?;
        let Standing::Ready(ip) = ready::standing(&pod) else {
            return Err(SandboxError::refused(
                "reaching the sandbox",
                "its pod is not running",
            ));
        };
        let secret = self
            .secrets
            .get(&name)
            .await
            .map_err(|e| cluster("reading the sandbox's secret", e))?;
        let value = secret
            .data
            .and_then(|mut d| d.remove(objects::secret_key()))
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .ok_or_else(|| SandboxError::refused("reading the sandbox's secret", "it is empty"))?;
        let base = format!("http://{}:{}", bracket(&ip), self.settings.agent_port);
        Ok(Agent {
            files: RemoteFs::new(&base, &value, self.runtime.clone()),
            commands: AgentCommands::new(&base, &value),
        })
    }

    /// Waits until sandbox `id`'s pod runs and its agent answers.
    async fn until_ready(&self, id: &str) -> SandboxResult<Agent> {
        let name = objects::name(id);
        let deadline = Instant::now() + self.settings.ready_timeout;
        let settled =
            kube::runtime::wait::await_condition(self.pods.clone(), &name, ready::settled);
        let pod = match tokio::time::timeout_at(deadline.into(), settled).await {
            Ok(Ok(Some(pod))) => pod,
            Ok(Ok(None)) => {
                return Err(SandboxError::refused(
                    "starting the sandbox",
                    "its pod was deleted",
                ));
            }
            Ok(Err(e)) => {
                return Err(SandboxError::new(
                    "watching the sandbox's pod",
                    std::io::Error::other(e),
                ));
            }
            Err(_) => {
                let why = match self.pods.get_opt(&name).await {
                    Ok(Some(pod)) => match ready::standing(&pod) {
                        Standing::Waiting(Some(why)) => why,
                        _ => "it is still pending".into(),
                    },
                    _ => "it is gone".into(),
                };
                return Err(SandboxError::refused(
                    "starting the sandbox",
                    format!(
                        "its pod did not run within {:?}: {why}",
                        self.settings.ready_timeout
                    ),
                ));
            }
        };
        if let Standing::Failed(why) = ready::standing(&pod) {
            return Err(SandboxError::refused("starting the sandbox", why));
        }
        let agent = self.find_agent(id).await?;
        while !agent.commands.alive(ready::AGENT_POLL * 10).await {
            if Instant::now() > deadline {
                return Err(SandboxError::refused(
                    "starting the sandbox",
                    "its pod runs but its agent does not answer",
                ));
            }
            tokio::time::sleep(ready::AGENT_POLL).await;
        }
        self.agents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), agent.clone());
        Ok(agent)
    }

    async fn create(&self, cfg: &SandboxConfig, readonly: &[ReadonlyFile]) -> SandboxResult<()> {
        let TemplateRoot::Image(image) = &cfg.template else {
            return Err(SandboxError::refused(
                "creating the sandbox",
                "the kubernetes backend runs images; templates name them",
            ));
        };
        let key = new_secret().map_err(|e| SandboxError::new("making the agent's secret", e))?;
        let secret = objects::secret(&cfg.id, &key, readonly);
        let post = PostParams::default();
        self.secrets
            .create(&post, &secret)
            .await
            .map_err(|e| cluster("creating the sandbox's secret", e))?;
        let pod = objects::pod(&self.settings, cfg, image, readonly);
        let holder: DynamicObject = serde_json::from_value(self.holder.object(&pod))
            .map_err(|e| SandboxError::new("describing the sandbox", e.into()))?;
        self.holders
            .create(&post, &holder)
            .await
            .map_err(|e| cluster("creating the sandbox's pod", e))
            .map(drop)
    }

    async fn remove(&self, id: &str) -> SandboxResult<()> {
        self.agents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        let name = objects::name(id);
        gone(self.holders.delete(&name, &DeleteParams::default()).await)
            .map_err(|e| cluster("deleting the sandbox's pod", e))?;
        gone(self.secrets.delete(&name, &DeleteParams::default()).await)
            .map_err(|e| cluster("deleting the sandbox's secret", e))
    }
}

/// A delete's result, where "already gone" is success.
fn gone<T>(deleted: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match deleted {
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        other => other.map(drop),
    }
}

/// An IPv6 address in a URL needs brackets.
fn bracket(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_owned()
    }
}

impl SandboxBackend for KubeBackend {
    fn template(&self, name: &str) -> Option<TemplateRoot> {
        if name == HOST_TEMPLATE {
            return Some(TemplateRoot::Image(self.settings.image.clone()));
        }
        self.settings
            .images
            .get(name)
            .cloned()
            .map(TemplateRoot::Image)
    }

    fn outlives_daemon(&self) -> bool {
        true
    }

    /// A pod takes a while to be scheduled and pull its image: a create answers once
    /// the pod exists, as `pending`.
    fn starts_pending(&self) -> bool {
        true
    }

    /// Waits for the pod and its agent, then makes the directories every sandbox has
    /// (the local engine's skeleton makes them; an image rarely has them): commands
    /// start in `/home/user` unless told otherwise.
    fn settle<'a>(&'a self, cfg: &'a SandboxConfig) -> BoxFuture<'a, SandboxResult<()>> {
        Box::pin(async move {
            let fs = self.until_ready(&cfg.id).await?.files;
            let made = tokio::task::spawn_blocking(move || {
                for dir in WRITABLE_DIRS {
                    let Ok(path) = SandboxPath::parse(dir) else {
                        continue;
                    };
                    match fs.mkdir(&path, 0o755, FileOwner::SANDBOX_USER, true) {
                        Err(e) if e.kind() != FsErrorKind::Conflict => return Err(e),
                        _ => {}
                    }
                }
                Ok(())
            })
            .await;
            match made {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(SandboxError::new(
                    "making the sandbox's directories",
                    std::io::Error::other(e.to_string()),
                )),
                Err(e) => Err(SandboxError::new(
                    "making the sandbox's directories",
                    std::io::Error::other(e),
                )),
            }
        })
    }

    /// Read-only files go into the sandbox's Secret and are mounted read-only in the pod:
    /// the kubelet's bind mount holds against the pod's root as the local one does.
    fn mounts_readonly_files(&self) -> bool {
        true
    }

    /// Creates the Secret and the pod, and returns without waiting for either.
    fn provision(&self, cfg: &SandboxConfig, readonly: &[ReadonlyFile]) -> SandboxResult<()> {
        wait(&self.runtime, self.create(cfg, readonly))
    }

    /// A gateway's restart leaves pods alone: their commands go on. A pod on its way
    /// out is already gone.
    fn restore(&self, cfg: &SandboxConfig) -> SandboxResult<()> {
        let name = objects::name(&cfg.id);
        match wait(&self.runtime, self.holders.get_opt(&name)) {
            Ok(Some(held)) if held.metadata.deletion_timestamp.is_none() => Ok(()),
            Ok(_) => Err(SandboxError::new(
                "finding the sandbox's pod",
                std::io::Error::new(std::io::ErrorKind::NotFound, "it is gone"),
            )),
            Err(e) => Err(cluster("finding the sandbox's pod", e)),
        }
    }

    fn fs(&self, id: &str) -> SandboxResult<Arc<dyn SandboxFs>> {
        Ok(Arc::new(self.agent(id)?.files))
    }

    /// Never asked: read-only files are mounted when the pod is made.
    fn make_readonly(&self, _id: &str, _path: &SandboxPath) -> SandboxResult<()> {
        Err(SandboxError::refused(
            "making a file read-only",
            "a pod's read-only files are mounted when it is made",
        ))
    }

    fn start<'a>(
        &'a self,
        cfg: &'a SandboxConfig,
    ) -> BoxFuture<'a, SandboxResult<Arc<dyn Running>>> {
        Box::pin(async move {
            // Just settled (a new sandbox starts right after): its agent answers already,
            // and the pod need not be watched for again.
            let known = self.cached(&cfg.id);
            let agent = match known {
                Some(agent) if agent.commands.alive(ready::AGENT_POLL * 10).await => agent,
                _ => self.until_ready(&cfg.id).await?,
            };
            let running = KubeRunning::new(agent.commands, self.runtime.clone(), &self.gateway);
            Ok(Arc::new(running) as Arc<dyn Running>)
        })
    }

    fn destroy(&self, id: &str) -> SandboxResult<()> {
        wait(&self.runtime, self.remove(id))
    }

    /// Secrets whose pod (or `Sandbox`) is gone: a create that failed between the two.
    fn strays(&self) -> Vec<String> {
        let listed = wait(&self.runtime, async {
            let params = ListParams::default().labels(MANAGED_BY);
            let secrets = self.secrets.list(&params).await?;
            let holders = self.holders.list(&params).await?;
            Ok::<_, kube::Error>((secrets, holders))
        });
        let Ok((secrets, holders)) = listed else {
            return Vec::new();
        };
        let sandbox = |labels: Option<&std::collections::BTreeMap<String, String>>| {
            labels.and_then(|l| l.get(SANDBOX)).cloned()
        };
        let with_pods: Vec<String> = holders
            .items
            .iter()
            .filter_map(|p| sandbox(p.metadata.labels.as_ref()))
            .collect();
        secrets
            .items
            .iter()
            .filter_map(|s| sandbox(s.metadata.labels.as_ref()))
            .filter(|id| !with_pods.contains(id))
            .collect()
    }

    fn remove_stray(&self, id: &str) -> SandboxResult<()> {
        wait(&self.runtime, self.remove(id))
    }

    /// Disk is the cluster's to give: the scheduler refuses what no node has.
    fn disk_free_mb(&self) -> u64 {
        1 << 30
    }
}
