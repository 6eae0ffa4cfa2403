//! A fake Kubernetes API server for the Kubernetes backend's tests: real HTTP on loopback,
//! speaking the parts of the core v1 API the gateway uses (create, get, list with label
//! and field selectors, merge patch, delete, and watch) for pods and Secrets. It records
//! every verb, and plays the kubelet: a created pod gets a real `airlock agent` process,
//! chrooted into a directory that stands in for the pod's root and serving `/` there as
//! it would in a pod, on its own loopback address, and reports that address as the
//! pod's IP. An image named `no-such-image:*` fails to
//! pull, as a real one would. Started with agent-sandbox's CRDs, it also serves
//! `Sandbox` objects (agents.x-k8s.io/v1alpha1) and plays their controller: a `Sandbox`
//! makes a pod of its `podTemplate`, named after it, and deleting it deletes the pod.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// The fake cluster: its API's address and what it holds.
pub struct FakeKube {
    pub url: String,
    /// The port every pod's agent listens on (each pod has its own address).
    pub agent_port: u16,
    state: Arc<Shared>,
    dir: tempfile::TempDir,
}

struct Shared {
    cluster: Mutex<Cluster>,
    changed: Notify,
    agent_port: u16,
    /// While set, new pods stay pending (not scheduled).
    held: std::sync::atomic::AtomicBool,
    /// 127.A.B.x: this fake's own corner of loopback, so tests running at once never meet.
    subnet: (u8, u8),
    roots: PathBuf,
}

#[derive(Default)]
struct Cluster {
    version: u64,
    /// (kind, name) → object.
    objects: BTreeMap<(String, String), Value>,
    /// (version, kind, event type, object).
    events: Vec<(u64, String, &'static str, Value)>,
    verbs: Vec<String>,
    agents: HashMap<String, Child>,
    /// Deleted pods whose agent has ended: whether SIGTERM was enough (or it was killed
    /// when the grace was over).
    ended: HashMap<String, bool>,
    /// The threads stopping deleted pods, joined when the fake goes.
    stopping: Vec<std::thread::JoinHandle<()>>,
    next_host: u8,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        let stopping = {
            let mut cluster = self.state.cluster.lock().unwrap();
            for (_, mut agent) in cluster.agents.drain() {
                let _ = agent.kill();
                let _ = agent.wait();
            }
            std::mem::take(&mut cluster.stopping)
        };
        // A deleted pod still in its grace ends within it: no agent outlives the test,
        // which would leave it running when the test's process exits.
        for stop in stopping {
            let _ = stop.join();
        }
    }
}

impl FakeKube {
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// A fake cluster with agent-sandbox's CRDs installed.
    pub async fn start_with_crds() -> Self {
        Self::start_with(true).await
    }

    async fn start_with(crds: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let seed = std::process::id() as u64
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64);
        let subnet = (10 + (seed % 240) as u8, ((seed >> 8) % 250) as u8);
        let agent_port = 20_000 + ((seed >> 16) % 40_000) as u16;
        let roots = dir.path().join("pods");
        std::fs::create_dir(&roots).unwrap();
        let state = Arc::new(Shared {
            cluster: Mutex::new(Cluster {
                next_host: 1,
                ..Default::default()
            }),
            changed: Notify::new(),
            held: std::sync::atomic::AtomicBool::new(false),
            agent_port,
            subnet,
            roots,
        });
        let mut app = Router::new();
        let mut prefixes = vec!["/api/v1"];
        if crds {
            prefixes.push(AGENT_SANDBOX);
            app = app.route(AGENT_SANDBOX, axum::routing::get(discovery));
        }
        for prefix in prefixes {
            app = app
                .route(
                    &format!("{prefix}/namespaces/{{ns}}/{{kind}}"),
                    axum::routing::get(list_or_watch).post(create),
                )
                .route(
                    &format!("{prefix}/namespaces/{{ns}}/{{kind}}/{{name}}"),
                    axum::routing::get(get).patch(patch).delete(delete),
                );
        }
        let app = app.with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            agent_port,
            state,
            dir,
        }
    }

    /// A kubeconfig that points at this fake.
    pub fn kubeconfig(&self) -> PathBuf {
        let path = self.dir.path().join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             users:\n- name: tester\n  user:\n    token: fake-token\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n    namespace: sandboxes\n\
             current-context: fake\n",
            self.url
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The `airlock serve` flags that point a gateway at this fake.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--backend".into(),
            "kubernetes".into(),
            "--kubeconfig".into(),
            self.kubeconfig().display().to_string(),
            "--kube-namespace".into(),
            "sandboxes".into(),
            "--kube-agent-port".into(),
            self.agent_port.to_string(),
            "--kube-ready-timeout".into(),
            "20s".into(),
        ]
    }

    /// Holds new pods pending (`true`) until released (`false`).
    pub fn hold_pods(&self, held: bool) {
        self.state
            .held
            .store(held, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every verb the API was asked, as `VERB kind` or `VERB kind/name`.
    pub fn verbs(&self) -> Vec<String> {
        self.state.cluster.lock().unwrap().verbs.clone()
    }

    /// An object, if it exists.
    pub fn object(&self, kind: &str, name: &str) -> Option<Value> {
        let cluster = self.state.cluster.lock().unwrap();
        cluster.objects.get(&(kind.into(), name.into())).cloned()
    }

    /// The directory standing in for sandbox `id`'s pod's root.
    pub fn root(&self, id: &str) -> PathBuf {
        self.state.roots.join(format!("airlock-{id}"))
    }

    /// The pid of the pod's agent process.
    pub fn agent_pid(&self, id: &str) -> Option<i32> {
        let cluster = self.state.cluster.lock().unwrap();
        cluster
            .agents
            .get(&format!("airlock-{id}"))
            .and_then(agent_of)
    }

    /// Whether sandbox `id`'s deleted pod ended on SIGTERM (`false`: killed when the
    /// grace was over); `None` until it has ended.
    pub fn pod_ended_on_sigterm(&self, id: &str) -> Option<bool> {
        let cluster = self.state.cluster.lock().unwrap();
        cluster.ended.get(&format!("airlock-{id}")).copied()
    }

    /// Whether the pod's agent process is still running.
    pub fn agent_running(&self, id: &str) -> bool {
        let mut cluster = self.state.cluster.lock().unwrap();
        cluster
            .agents
            .get_mut(&format!("airlock-{id}"))
            .is_some_and(|a| a.try_wait().unwrap().is_none())
    }
}

/// Where agent-sandbox's `Sandbox` objects are served.
const AGENT_SANDBOX: &str = "/apis/agents.x-k8s.io/v1alpha1";

async fn discovery() -> Response {
    axum::Json(json!({
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": "agents.x-k8s.io/v1alpha1",
        "resources": [{
            "name": "sandboxes", "singularName": "sandbox", "namespaced": true,
            "kind": "Sandbox",
            "verbs": ["create", "delete", "get", "list", "patch", "watch"],
        }],
    }))
    .into_response()
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

fn not_found(kind: &str, name: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{kind} \"{name}\" not found"),
    )
}

impl Shared {
    /// Stores `object` (new or changed), with a new resource version, and tells watchers.
    fn put(
        &self,
        cluster: &mut Cluster,
        kind: &str,
        kind_of_event: &'static str,
        mut object: Value,
    ) -> Value {
        cluster.version += 1;
        let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
        object["metadata"]["resourceVersion"] = json!(cluster.version.to_string());
        if kind_of_event == "DELETED" {
            cluster.objects.remove(&(kind.into(), name));
        } else {
            cluster.objects.insert((kind.into(), name), object.clone());
        }
        cluster
            .events
            .push((cluster.version, kind.into(), kind_of_event, object.clone()));
        self.changed.notify_waiters();
        object
    }
}

async fn create(
    State(state): State<Arc<Shared>>,
    UrlPath((ns, kind)): UrlPath<(String, String)>,
    axum::Json(mut object): axum::Json<Value>,
) -> Response {
    let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
    let mut cluster = state.cluster.lock().unwrap();
    cluster.verbs.push(format!("POST {kind}"));
    if cluster.objects.contains_key(&(kind.clone(), name.clone())) {
        return status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{kind} \"{name}\" already exists"),
        );
    }
    object["metadata"]["namespace"] = json!(ns);
    object["metadata"]["uid"] = json!(format!("uid-{name}"));
    if kind == "secrets"
        && let Some(plain) = object.get("stringData").cloned()
    {
        // `stringData` joins `data`, as the API server merges them.
        let mut data = object["data"].as_object().cloned().unwrap_or_default();
        for (key, value) in plain.as_object().unwrap() {
            let text = value.as_str().unwrap_or("");
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            data.insert(key.clone(), json!(encoded));
        }
        object["data"] = Value::Object(data);
        object.as_object_mut().unwrap().remove("stringData");
    }
    if kind == "pods" {
        object["status"] = json!({ "phase": "Pending" });
    }
    let stored = state.put(&mut cluster, &kind, "ADDED", object);
    if kind == "sandboxes" {
        // The controller's part: the pod of the Sandbox's template, named after it.
        let template = &stored["spec"]["podTemplate"];
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": name, "namespace": ns, "uid": format!("uid-pod-{name}"),
                          "labels": template["metadata"]["labels"] },
            "spec": template["spec"],
            "status": { "phase": "Pending" },
        });
        cluster.verbs.push("CONTROLLER POST pods".into());
        state.put(&mut cluster, "pods", "ADDED", pod);
    }
    drop(cluster);
    if kind == "pods" || kind == "sandboxes" {
        let state = state.clone();
        tokio::spawn(async move { run_pod(state, name).await });
    }
    (StatusCode::CREATED, axum::Json(stored)).into_response()
}

/// The kubelet's part: pull the image (or fail to), start the agent, report the pod ready.
async fn run_pod(state: Arc<Shared>, name: String) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    while state.held.load(std::sync::atomic::Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (pod, secret) = {
        let cluster = state.cluster.lock().unwrap();
        let pod = cluster.objects.get(&("pods".into(), name.clone())).cloned();
        let secret = cluster
            .objects
            .get(&("secrets".into(), name.clone()))
            .cloned();
        (pod, secret)
    };
    let Some(mut pod) = pod else { return };
    let image = pod["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    if image.starts_with("no-such-image") {
        pod["status"] = json!({
            "phase": "Pending",
            "containerStatuses": [{
                "name": "sandbox", "image": image, "imageID": "", "ready": false,
                "restartCount": 0,
                "state": { "waiting": { "reason": "ErrImagePull",
                    "message": format!("pull access denied for {image}") } },
            }],
        });
        let mut cluster = state.cluster.lock().unwrap();
        state.put(&mut cluster, "pods", "MODIFIED", pod);
        return;
    }
    let secret = secret
        .and_then(|s| s["data"]["secret"].as_str().map(str::to_owned))
        .map(|b| base64::engine::general_purpose::STANDARD.decode(b).unwrap())
        .unwrap_or_default();
    let root = state.roots.join(&name);
    for dir in ["workspace", "tmp", "run/airlock"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("run/airlock/secret"), &secret).unwrap();
    let host = {
        let mut cluster = state.cluster.lock().unwrap();
        cluster.next_host += 1;
        cluster.next_host
    };
    let ip = format!("127.{}.{}.{host}", state.subnet.0, state.subnet.1);
    let files = secret_files(&state, &pod, &name);
    let agent = start_agent(&ip, state.agent_port, &root, &files);
    let mut cluster = state.cluster.lock().unwrap();
    let Some(mut pod) = cluster.objects.get(&("pods".into(), name.clone())).cloned() else {
        drop(cluster);
        let mut agent = agent;
        let _ = agent.kill();
        let _ = agent.wait();
        return;
    };
    cluster.agents.insert(name, agent);
    pod["status"] = json!({
        "phase": "Running",
        "podIP": ip,
        "conditions": [
            { "type": "PodScheduled", "status": "True" },
            { "type": "Ready", "status": "True" },
        ],
    });
    state.put(&mut cluster, "pods", "MODIFIED", pod);
}

/// Sets up a pod's root and starts its agent as a pod would run it: in mount and PID
/// namespaces of its own (see [`start_agent`]), chrooted into the root, serving `/`.
/// The host's `/usr` and `/etc` (read-only) stand in for the image, with `/dev`, `/proc`
/// and the agent's binary; everything else in the root is the pod's own, and nothing
/// mounted there is seen outside the agent's namespace. A volume mount of one key of a
/// Secret (a `subPath`) is a read-only bind of that file, as the kubelet makes it.
const POD: &str = r#"
set -e
root="$1"; agent="$2"; listen="$3"
for dir in bin lib lib64 sbin; do
  if [ -L "/$dir" ]; then ln -sfn "$(readlink "/$dir")" "$root/$dir"; fi
done
for dir in usr etc; do
  mkdir -p "$root/$dir"
  mount --bind "/$dir" "$root/$dir"
  mount -o remount,bind,ro "$root/$dir"
done
mkdir -p "$root/dev" "$root/proc"
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
touch "$root/.airlock-agent"
mount --bind "$agent" "$root/.airlock-agent"
shift 3
for pair in "$@"; do
  source="${pair%%=*}"; target="$root${pair#*=}"
  mkdir -p "$(dirname "$target")"
  [ -e "$target" ] || touch "$target"
  mount --bind "$source" "$target"
  mount -o remount,bind,ro "$target"
done
exec chroot "$root" /.airlock-agent agent --listen "$listen" --root / --secret-file /run/airlock/secret
"#;

/// The files a pod mounts one key of a Secret at (`subPath`), written out for binding:
/// (the file, where it goes in the pod).
fn secret_files(state: &Shared, pod: &Value, name: &str) -> Vec<(PathBuf, String)> {
    let cluster = state.cluster.lock().unwrap();
    let dir = state.roots.join(format!("{name}.files"));
    let mut files = Vec::new();
    let spec = &pod["spec"];
    let mounts = spec["containers"][0]["volumeMounts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
    for mount in mounts {
        let (Some(key), Some(target)) = (mount["subPath"].as_str(), mount["mountPath"].as_str())
        else {
            continue;
        };
        let Some(volume) = volumes.iter().find(|v| v["name"] == mount["name"]) else {
            continue;
        };
        let secret_name = volume["secret"]["secretName"].as_str().unwrap_or("");
        let Some(secret) = cluster.objects.get(&("secrets".into(), secret_name.into())) else {
            continue;
        };
        let data = secret["data"][key].as_str().unwrap_or("");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let source = dir.join(key);
        std::fs::write(&source, bytes).unwrap();
        files.push((source, target.to_owned()));
    }
    files
}

/// How long a deleted pod's agent has to end after SIGTERM before it is killed: the
/// kubelet's grace period (30 s by default), shorter here because a test waits on it.
const GRACE: Duration = Duration::from_secs(5);

/// The pod's agent: `unshare`'s one child, the first process of the pod's PID namespace.
fn agent_of(pod: &Child) -> Option<i32> {
    crate::common::children_of(pod.id() as i32).first().copied()
}

/// Stops a pod as the kubelet does: SIGTERM to its first process, SIGKILL when the
/// grace is over. Answers whether SIGTERM was enough.
fn stop_pod(mut pod: Child) -> bool {
    if let Some(agent) = agent_of(&pod) {
        // SAFETY: a plain signal to a process this fake started.
        unsafe { libc::kill(agent, libc::SIGTERM) };
    }
    if crate::common::exited_within(&mut pod, GRACE).is_some() {
        return true;
    }
    let _ = pod.kill();
    let _ = pod.wait();
    false
}

/// Starts the pod's agent as its first process, in a PID namespace of its own, as a
/// container's entrypoint runs (`--kill-child`: killing `unshare` kills the pod).
fn start_agent(ip: &str, port: u16, root: &Path, files: &[(PathBuf, String)]) -> Child {
    let mut child = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--kill-child",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            POD,
            "pod",
        ])
        .arg(root)
        .arg(env!("CARGO_BIN_EXE_airlock"))
        .arg(format!("{ip}:{port}"))
        .args(
            files
                .iter()
                .map(|(source, target)| format!("{}={target}", source.display())),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let line = crate::common::first_line(&mut child);
    assert!(!line.is_empty(), "the agent did not start on {ip}:{port}");
    child
}

async fn get(
    State(state): State<Arc<Shared>>,
    UrlPath((_ns, kind, name)): UrlPath<(String, String, String)>,
) -> Response {
    let mut cluster = state.cluster.lock().unwrap();
    cluster.verbs.push(format!("GET {kind}/{name}"));
    match cluster.objects.get(&(kind.clone(), name.clone())) {
        Some(object) => axum::Json(object.clone()).into_response(),
        None => not_found(&kind, &name),
    }
}

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let object = target.as_object_mut().unwrap();
    for (key, value) in fields {
        if value.is_null() {
            object.remove(key);
        } else {
            merge(object.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

async fn patch(
    State(state): State<Arc<Shared>>,
    UrlPath((_ns, kind, name)): UrlPath<(String, String, String)>,
    body: Bytes,
) -> Response {
    let Ok(change) = serde_json::from_slice::<Value>(&body) else {
        return status(StatusCode::BAD_REQUEST, "BadRequest", "not JSON".into());
    };
    let mut cluster = state.cluster.lock().unwrap();
    cluster.verbs.push(format!("PATCH {kind}/{name}"));
    let Some(mut object) = cluster.objects.get(&(kind.clone(), name.clone())).cloned() else {
        return not_found(&kind, &name);
    };
    // A patch that names a resource version applies only to that version.
    let asked = &change["metadata"]["resourceVersion"];
    if asked.is_string() && *asked != object["metadata"]["resourceVersion"] {
        return status(
            StatusCode::CONFLICT,
            "Conflict",
            format!("{kind} \"{name}\" was changed meanwhile"),
        );
    }
    merge(&mut object, &change);
    let stored = state.put(&mut cluster, &kind, "MODIFIED", object);
    axum::Json(stored).into_response()
}

async fn delete(
    State(state): State<Arc<Shared>>,
    UrlPath((_ns, kind, name)): UrlPath<(String, String, String)>,
) -> Response {
    let mut cluster = state.cluster.lock().unwrap();
    cluster.verbs.push(format!("DELETE {kind}/{name}"));
    let Some(object) = cluster.objects.get(&(kind.clone(), name.clone())).cloned() else {
        return not_found(&kind, &name);
    };
    if let Some(pod) = cluster.agents.remove(&name) {
        // Stopped off the lock: the grace may be long, and the API keeps answering.
        let (shared, name) = (state.clone(), name.clone());
        let stop = std::thread::spawn(move || {
            let on_sigterm = stop_pod(pod);
            shared
                .cluster
                .lock()
                .unwrap()
                .ended
                .insert(name, on_sigterm);
        });
        cluster.stopping.push(stop);
    }
    if kind == "sandboxes"
        && let Some(pod) = cluster.objects.get(&("pods".into(), name.clone())).cloned()
    {
        // The controller's part: the Sandbox's pod goes with it.
        state.put(&mut cluster, "pods", "DELETED", pod);
    }
    let stored = state.put(&mut cluster, &kind, "DELETED", object);
    axum::Json(stored).into_response()
}

/// Whether `object` matches `labelSelector` and `fieldSelector` (equality terms only).
fn selected(object: &Value, query: &HashMap<String, String>) -> bool {
    let terms = |key: &str| -> Vec<(String, String)> {
        query
            .get(key)
            .map(|s| {
                s.split(',')
                    .filter_map(|t| t.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let labels_match = terms("labelSelector")
        .iter()
        .all(|(k, v)| object["metadata"]["labels"][k].as_str() == Some(v));
    let fields_match = terms("fieldSelector")
        .iter()
        .all(|(k, v)| match k.as_str() {
            "metadata.name" => object["metadata"]["name"].as_str() == Some(v),
            _ => false,
        });
    labels_match && fields_match
}

async fn list_or_watch(
    State(state): State<Arc<Shared>>,
    UrlPath((_ns, kind)): UrlPath<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if query.get("watch").map(String::as_str) == Some("true") {
        return watch(state, kind, query);
    }
    let mut cluster = state.cluster.lock().unwrap();
    cluster.verbs.push(format!("LIST {kind}"));
    let items: Vec<Value> = cluster
        .objects
        .iter()
        .filter(|((k, _), o)| *k == kind && selected(o, &query))
        .map(|(_, o)| o.clone())
        .collect();
    let list_kind = if kind == "pods" {
        "PodList"
    } else {
        "SecretList"
    };
    axum::Json(json!({
        "kind": list_kind, "apiVersion": "v1",
        "metadata": { "resourceVersion": cluster.version.to_string() },
        "items": items,
    }))
    .into_response()
}

/// Events after the asked-for version, as JSON lines, until the asked-for timeout.
fn watch(state: Arc<Shared>, kind: String, query: HashMap<String, String>) -> Response {
    state
        .cluster
        .lock()
        .unwrap()
        .verbs
        .push(format!("WATCH {kind}"));
    let since: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30u64);
    let until = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let stream = futures_util::stream::unfold(since, move |mut since| {
        let (state, kind, query) = (state.clone(), kind.clone(), query.clone());
        async move {
            loop {
                let notified = state.changed.notified();
                let lines: Vec<u8> = {
                    let cluster = state.cluster.lock().unwrap();
                    let mut lines = Vec::new();
                    for (version, k, type_, object) in &cluster.events {
                        if *version > since && *k == kind && selected(object, &query) {
                            let event = json!({ "type": type_, "object": object });
                            lines.extend(serde_json::to_vec(&event).unwrap());
                            lines.push(b'\n');
                        }
                    }
                    since = cluster.version;
                    lines
                };
                if !lines.is_empty() {
                    return Some((Ok::<_, std::io::Error>(Bytes::from(lines)), since));
                }
                if tokio::time::timeout_at(until, notified).await.is_err() {
                    return None;
                }
            }
        }
    });
    Body::from_stream(stream).into_response()
}
