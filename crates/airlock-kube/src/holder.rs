//! What holds a sandbox in the cluster: a bare pod, or, where agent-sandbox's CRDs are
//! installed, a `Sandbox` object (agents.x-k8s.io/v1alpha1) whose controller makes the
//! pod from the same spec, named after it. Either way the holder carries the labels and
//! the records, and deleting it deletes the pod.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ApiResource, DynamicObject};
use kube::{Api, Client};
use serde_json::json;

/// agent-sandbox's API group and version.
const AGENT_SANDBOX: &str = "agents.x-k8s.io/v1alpha1";

/// Which object holds a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    Pod,
    /// agent-sandbox's `Sandbox`.
    AgentSandbox,
}

/// Which holder to use: decided at start, or fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Objects {
    /// `Sandbox` objects when agent-sandbox's CRDs are installed, else pods.
    #[default]
    Auto,
    Pods,
    Sandboxes,
}

impl Holder {
    /// The holder `objects` means on the cluster `client` reaches.
    pub async fn choose(client: &Client, objects: Objects) -> Holder {
        match objects {
            Objects::Pods => Holder::Pod,
            Objects::Sandboxes => Holder::AgentSandbox,
            Objects::Auto => {
                let found = client.list_api_group_resources(AGENT_SANDBOX).await;
                let installed =
                    found.is_ok_and(|list| list.resources.iter().any(|r| r.name == "sandboxes"));
                if installed {
                    Holder::AgentSandbox
                } else {
                    Holder::Pod
                }
            }
        }
    }

    fn resource(self) -> ApiResource {
        match self {
            Holder::Pod => ApiResource::erase::<Pod>(&()),
            Holder::AgentSandbox => ApiResource {
                group: "agents.x-k8s.io".into(),
                version: "v1alpha1".into(),
                api_version: AGENT_SANDBOX.into(),
                kind: "Sandbox".into(),
                plural: "sandboxes".into(),
            },
        }
    }

    /// The holders in `namespace`.
    pub(crate) fn api(self, client: Client, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(client, namespace, &self.resource())
    }

    /// The object that makes `pod` exist.
    pub(crate) fn object(self, pod: &Pod) -> serde_json::Value {
        let pod = serde_json::to_value(pod).unwrap_or_default();
        match self {
            Holder::Pod => pod,
            Holder::AgentSandbox => json!({
                "apiVersion": AGENT_SANDBOX,
                "kind": "Sandbox",
                "metadata": pod["metadata"],
                "spec": {
                    "podTemplate": {
                        "metadata": { "labels": pod["metadata"]["labels"] },
                        "spec": pod["spec"],
                    },
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_sandbox_object_carries_the_pod_spec_and_labels() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": { "name": "airlock-0123456789ab", "labels": { "airlock.dev/sandbox": "0123456789ab" } },
            "spec": { "containers": [{ "name": "sandbox", "image": "debian:12-slim" }] },
        }))
        .unwrap();
        let object = Holder::AgentSandbox.object(&pod);
        assert_eq!(object["kind"], "Sandbox");
        assert_eq!(object["metadata"]["name"], "airlock-0123456789ab");
        let template = &object["spec"]["podTemplate"];
        assert_eq!(
            template["metadata"]["labels"]["airlock.dev/sandbox"],
            "0123456789ab"
        );
        assert_eq!(template["spec"]["containers"][0]["image"], "debian:12-slim");
        assert_eq!(
            Holder::Pod.object(&pod)["metadata"]["name"],
            "airlock-0123456789ab"
        );
    }
}
