//! The objects a sandbox is made of: a Secret holding the agent's secret, and a pod whose
//! entrypoint is the agent. Names, labels and annotation keys are the only schema the
//! gateway relies on when it reads the cluster back.

use airlock_sandbox::{Limits, SandboxConfig};
use airlock_service::ReadonlyFile;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret};
use serde_json::json;

use crate::KubeSettings;

/// Marks every object the gateway made, so it lists only its own.
pub(crate) const MANAGED_BY: &str = "app.kubernetes.io/managed-by=airlock";
/// The label that names a pod's or Secret's sandbox.
pub(crate) const SANDBOX: &str = "airlock.dev/sandbox";
/// The annotation that holds a sandbox's record.
pub(crate) const RECORD: &str = "airlock.dev/record";
/// The prefix of annotations that hold resumable uploads' records.
pub(crate) const UPLOAD: &str = "upload.airlock.dev/";
/// The key in the Secret, and the file in the pod, that hold the agent's secret.
const SECRET_KEY: &str = "secret";
/// Where the Secret is mounted in the pod.
const SECRET_DIR: &str = "/run/airlock";
/// The volume of a sandbox's read-only files.
const FILES_VOLUME: &str = "airlock-files";
/// Where the init container puts the agent's binary.
const AGENT_DIR: &str = "/airlock-agent";

/// The name of sandbox `id`'s pod and Secret.
pub(crate) fn name(id: &str) -> String {
    format!("airlock-{id}")
}

/// The key in a Secret's data that holds the agent's secret.
pub(crate) fn secret_key() -> &'static str {
    SECRET_KEY
}

fn labels(id: &str) -> serde_json::Value {
    json!({ "app.kubernetes.io/managed-by": "airlock", SANDBOX: id })
}

/// The key in the Secret that holds read-only file `index`.
fn file_key(index: usize) -> String {
    format!("file-{index}")
}

/// The Secret that holds sandbox `id`'s agent secret and its read-only files, which the
/// pod mounts read-only where they belong.
pub(crate) fn secret(id: &str, value: &str, readonly: &[ReadonlyFile]) -> Secret {
    let files: serde_json::Map<String, serde_json::Value> = readonly
        .iter()
        .enumerate()
        .map(|(i, f)| (file_key(i), json!(ByteString(f.content.clone()))))
        .collect();
    let object = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": name(id), "labels": labels(id) },
        "type": "Opaque",
        "stringData": { SECRET_KEY: value },
        "data": files,
    });
    serde_json::from_value(object).unwrap_or_default()
}

/// The pod of sandbox `cfg`, running `image`, with its `readonly` files mounted
/// read-only from its Secret (each a file of its own, so nothing else of the Secret is
/// seen there).
pub(crate) fn pod(
    settings: &KubeSettings,
    cfg: &SandboxConfig,
    image: &str,
    readonly: &[ReadonlyFile],
) -> Pod {
    let listen = format!("0.0.0.0:{}", settings.agent_port);
    let agent = format!("{AGENT_DIR}/airlock");
    let resources = resources(&cfg.limits);
    let mut object = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name(&cfg.id), "labels": labels(&cfg.id) },
        "spec": {
            "restartPolicy": "Never",
            "runtimeClassName": settings.runtime_class,
            // The sandbox has no business with the cluster's API or its services.
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "hostname": format!("sandbox-{}", cfg.id),
            "initContainers": [{
                "name": "airlock-agent",
                "image": settings.agent_image,
                "command": ["cp", "/usr/local/bin/airlock", agent],
                "volumeMounts": [{ "name": "airlock-agent", "mountPath": AGENT_DIR }],
            }],
            "containers": [{
                "name": "sandbox",
                "image": image,
                "command": [agent, "agent", "--listen", listen, "--root", "/",
                            "--secret-file", format!("{SECRET_DIR}/{SECRET_KEY}")],
                "ports": [{ "name": "agent", "containerPort": settings.agent_port }],
                "readinessProbe": {
                    "tcpSocket": { "port": settings.agent_port },
                    "periodSeconds": 1,
                },
                "resources": resources,
                "volumeMounts": [
                    { "name": "airlock-agent", "mountPath": AGENT_DIR, "readOnly": true },
                    { "name": "airlock-secret", "mountPath": SECRET_DIR, "readOnly": true },
                ],
            }],
            "volumes": [
                { "name": "airlock-agent", "emptyDir": {} },
                { "name": "airlock-secret",
                  "secret": { "secretName": name(&cfg.id), "defaultMode": 0o400,
                              "items": [{ "key": SECRET_KEY, "path": SECRET_KEY }] } },
            ],
        },
    });
    if !readonly.is_empty() {
        let items: Vec<_> = readonly
            .iter()
            .enumerate()
            .map(|(i, f)| json!({ "key": file_key(i), "path": file_key(i), "mode": f.mode }))
            .collect();
        if let Some(volumes) = object["spec"]["volumes"].as_array_mut() {
            volumes.push(json!({ "name": FILES_VOLUME,
                                 "secret": { "secretName": name(&cfg.id), "items": items } }));
        }
        let mounts = object["spec"]["containers"][0]["volumeMounts"].as_array_mut();
        if let Some(mounts) = mounts {
            for (i, file) in readonly.iter().enumerate() {
                mounts.push(
                    json!({ "name": FILES_VOLUME, "mountPath": file.path.as_str(),
                                    "subPath": file_key(i), "readOnly": true }),
                );
            }
        }
    }
    serde_json::from_value(object).unwrap_or_default()
}

/// A sandbox's limits as a container's: memory, CPU and disk (ephemeral storage) are
/// both requested and capped, so the scheduler places the pod where they fit.
fn resources(limits: &Limits) -> serde_json::Value {
    let mut wanted = serde_json::Map::new();
    if let Some(mb) = limits.memory_mb {
        wanted.insert("memory".into(), json!(format!("{mb}Mi")));
    }
    if let Some(cpus) = limits.cpus {
        let millis = (cpus * 1000.0).ceil().max(1.0) as u64;
        wanted.insert("cpu".into(), json!(format!("{millis}m")));
    }
    if let Some(mb) = limits.disk_mb {
        wanted.insert("ephemeral-storage".into(), json!(format!("{mb}Mi")));
    }
    json!({ "limits": wanted, "requests": wanted })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::PathBuf;

    use airlock_sandbox::TemplateRoot;

    use super::*;

    fn settings(runtime_class: Option<&str>) -> KubeSettings {
        KubeSettings {
            namespace: "sandboxes".into(),
            image: "debian:12".into(),
            images: Default::default(),
            agent_image: "airlock:dev".into(),
            runtime_class: runtime_class.map(str::to_owned),
            agent_port: 7712,
            ready_timeout: std::time::Duration::from_secs(5),
            kubeconfig: None::<PathBuf>,
            objects: Default::default(),
        }
    }

    fn config() -> SandboxConfig {
        SandboxConfig {
            id: "0123456789ab".into(),
            template: TemplateRoot::Image("python:3.12".into()),
            limits: Limits {
                memory_mb: Some(512),
                pids: 256,
                cpus: Some(0.5),
                disk_mb: Some(2048),
            },
            readonly: Vec::new(),
        }
    }

    #[test]
    fn a_pod_runs_the_agent_as_its_entrypoint_with_the_sandbox_limits() {
        let policy = ReadonlyFile {
            path: airlock_fs::SandboxPath::parse("/etc/policy.json").unwrap(),
            content: b"{}".to_vec(),
            mode: 0o444,
        };
        let pod = pod(
            &settings(Some("gvisor")),
            &config(),
            "python:3.12",
            &[policy],
        );
        let spec = pod.spec.unwrap();
        assert_eq!(spec.runtime_class_name.as_deref(), Some("gvisor"));
        assert_eq!(spec.automount_service_account_token, Some(false));
        let container = &spec.containers[0];
        assert_eq!(container.image.as_deref(), Some("python:3.12"));
        let command = container.command.clone().unwrap();
        assert_eq!(command[1..3], ["agent".to_owned(), "--listen".to_owned()]);
        assert!(command.contains(&"/run/airlock/secret".to_owned()));
        let limits = container.resources.clone().unwrap().limits.unwrap();
        assert_eq!(limits["memory"].0, "512Mi");
        assert_eq!(limits["cpu"].0, "500m");
        assert_eq!(limits["ephemeral-storage"].0, "2048Mi");
        let mounts = container.volume_mounts.clone().unwrap();
        let policy = mounts
            .iter()
            .find(|m| m.mount_path == "/etc/policy.json")
            .unwrap();
        assert_eq!(policy.read_only, Some(true));
        assert_eq!(policy.sub_path.as_deref(), Some("file-0"));
        let labels = pod.metadata.labels.unwrap();
        assert_eq!(labels[SANDBOX], "0123456789ab");
        assert_eq!(pod.metadata.name.as_deref(), Some("airlock-0123456789ab"));
    }

    #[test]
    fn without_a_runtime_class_the_pod_names_none() {
        let pod = pod(&settings(None), &config(), "python:3.12", &[]);
        assert_eq!(pod.spec.unwrap().runtime_class_name, None);
    }

    #[test]
    fn the_secret_is_mounted_from_the_sandbox_secret() {
        let secret = secret("0123456789ab", "s3cret-value-long-enough", &[]);
        assert_eq!(
            secret.metadata.name.as_deref(),
            Some("airlock-0123456789ab")
        );
        assert_eq!(
            secret.string_data.unwrap()["secret"],
            "s3cret-value-long-enough"
        );
    }
}
