//! The Kubernetes backend end to end: a real gateway (`airlock serve --backend
//! kubernetes`) against a fake API server that reports a real `airlock agent` as each
//! pod, driven through the public REST API. What a real cluster adds (scheduling, image
//! pulls, runtime classes, network policy) is not here; see docs/kubernetes.md.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use airlock_api::{CreateSandbox, ExecRequest};
use airlock_client::{Client, WriteOptions};
use common::Daemon;
use common::fake_kube::FakeKube;

fn gateway(fake: &FakeKube, extra: &[&str]) -> Daemon {
    let mut flags = fake.flags();
    flags.extend(extra.iter().map(|f| f.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Daemon::start_with(&flags)
}

async fn write(client: &Client, id: &str, path: &str, text: &str) {
    let opts = WriteOptions {
        parents: true,
        ..Default::default()
    };
    client
        .write(
            id,
            path,
            std::io::Cursor::new(text.as_bytes().to_vec()),
            &opts,
        )
        .await
        .unwrap();
}

async fn read(client: &Client, id: &str, path: &str) -> Result<String, airlock_client::Error> {
    let mut out = Vec::new();
    client.read_to(id, path, &mut out).await?;
    Ok(String::from_utf8(out).unwrap())
}

async fn run(client: &Client, id: &str, line: &str) -> airlock_api::ExecResult {
    let req = ExecRequest {
        shell: Some(line.into()),
        cwd: Some("/workspace".into()),
        ..Default::default()
    };
    client.exec(id, &req).await.unwrap()
}

/// (resource, verb) pairs the gateway's Role in `deploy/kubernetes/rbac.yaml` grants.
fn granted() -> Vec<(String, String)> {
    let rbac = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/kubernetes/rbac.yaml"
    );
    let text = std::fs::read_to_string(rbac).unwrap();
    let list = |line: &str| -> Vec<String> {
        let inner = line.split_once('[').unwrap().1.split_once(']').unwrap().0;
        inner
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_owned())
            .collect()
    };
    let mut pairs = Vec::new();
    let mut resources = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("resources:") {
            resources = list(line);
        } else if line.starts_with("verbs:") {
            for verb in list(line) {
                pairs.extend(resources.iter().map(|r| (r.clone(), verb.clone())));
            }
        }
    }
    pairs
}

/// Every verb the fake API was asked, as RBAC names it, must be one the Role grants.
fn assert_within_rbac(fake: &FakeKube) {
    let granted = granted();
    // The fake's own controller acts with its own rights, not the gateway's.
    for asked in fake.verbs().iter().filter(|v| !v.starts_with("CONTROLLER")) {
        let (verb, object) = asked.split_once(' ').unwrap();
        let resource = object.split('/').next().unwrap();
        let verb = match verb {
            "POST" => "create".to_owned(),
            other => other.to_lowercase(),
        };
        assert!(
            granted.contains(&(resource.to_owned(), verb.clone())),
            "the gateway asked {asked:?}, which deploy/kubernetes/rbac.yaml does not grant"
        );
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < Duration::from_secs(20), "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_is_a_pod_whose_agent_serves_its_files_and_commands() {
    let fake = FakeKube::start().await;
    let daemon = gateway(&fake, &["--runtime-class", "gvisor"]);
    let client = daemon.client();
    let mut req = CreateSandbox::default();
    req.limits.memory_mb = Some(256);
    let sandbox = client.create(&req).await.unwrap();
    assert_eq!(sandbox.state, airlock_api::SandboxState::Running);
    let id = sandbox.id.clone();
    let pod = fake.object("pods", &format!("airlock-{id}")).unwrap();
    assert_eq!(pod["spec"]["runtimeClassName"], "gvisor");
    assert_eq!(pod["spec"]["containers"][0]["image"], "debian:12-slim");
    assert_eq!(
        pod["spec"]["containers"][0]["resources"]["limits"]["memory"],
        "256Mi"
    );
    let verbs = fake.verbs();
    assert!(verbs.contains(&"POST secrets".to_owned()), "{verbs:?}");
    assert!(verbs.contains(&"POST pods".to_owned()), "{verbs:?}");
    assert!(
        verbs.contains(&"WATCH pods".to_owned()),
        "the gateway watches for readiness"
    );

    // Files cross into the pod's root and back.
    write(&client, &id, "/workspace/notes/hello.txt", "hello, pod").await;
    let on_disk = fake.root(&id).join("workspace/notes/hello.txt");
    assert_eq!(std::fs::read_to_string(on_disk).unwrap(), "hello, pod");
    assert_eq!(
        read(&client, &id, "/workspace/notes/hello.txt")
            .await
            .unwrap(),
        "hello, pod"
    );

    // Commands run in the pod, with input, output and exit codes.
    let done = run(&client, &id, "cat notes/hello.txt; echo oops >&2; exit 4").await;
    assert_eq!(done.stdout, "hello, pod");
    assert_eq!(done.stderr, "oops\n");
    assert_eq!(done.exit_code, 4);

    // A symlink inside the pod that names a directory of the host's (outside the pod's
    // root) leads nowhere: the agent resolves it inside the pod.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("host-secret"), "the host's").unwrap();
    let escape = fake.root(&id).join("workspace/escape");
    std::os::unix::fs::symlink(outside.path(), escape).unwrap();
    let escaped = read(&client, &id, "/workspace/escape/host-secret").await;
    assert!(
        escaped.is_err(),
        "a symlink out of the pod's root was followed"
    );
    let planted = std::io::Cursor::new(b"x".to_vec());
    let opts = WriteOptions {
        parents: true,
        ..Default::default()
    };
    let _ = client
        .write(&id, "/workspace/escape/planted", planted, &opts)
        .await;
    assert!(
        !outside.path().join("planted").exists(),
        "a write went out of the pod"
    );

    // Listing goes through the agent too.
    let listed = client
        .list_files(&id, "/workspace/notes", 1, false)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);

    client.delete(&id).await.unwrap();
    let verbs = fake.verbs();
    assert!(
        verbs.contains(&format!("DELETE pods/airlock-{id}")),
        "{verbs:?}"
    );
    assert!(
        verbs.contains(&format!("DELETE secrets/airlock-{id}")),
        "{verbs:?}"
    );
    assert!(fake.object("pods", &format!("airlock-{id}")).is_none());
    // The fake kubelet sends the agent SIGTERM, as a real one does, and kills it only
    // after a grace: the pod must end on the SIGTERM.
    let deleted = Instant::now();
    let ended = loop {
        if let Some(ended) = fake.pod_ended_on_sigterm(&id) {
            break ended;
        }
        assert!(
            deleted.elapsed() < Duration::from_secs(10),
            "the pod never ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        ended,
        "the pod's agent was killed after its grace, not ended by SIGTERM"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_restarted_with_an_empty_home_finds_every_sandbox_in_the_api() {
    let fake = FakeKube::start().await;
    let mut daemon = gateway(&fake, &[]);
    let client = daemon.client();
    let mut req = CreateSandbox::default();
    req.labels.insert("team".into(), "blue".into());
    let id = client.create(&req).await.unwrap().id;
    write(&client, &id, "/workspace/kept.txt", "still here").await;
    let record = fake.object("pods", &format!("airlock-{id}")).unwrap();
    assert!(
        record["metadata"]["annotations"]["airlock.dev/record"].is_string(),
        "the record is the pod's annotation"
    );

    let home = daemon.home();
    assert!(daemon.terminate());
    assert!(
        fake.agent_running(&id),
        "stopping the gateway leaves pods alone"
    );
    std::fs::remove_dir_all(&home).unwrap();
    std::fs::create_dir(&home).unwrap();
    daemon.restart();

    let client = daemon.client();
    let all = client.list().await.unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].id, id);
    assert_eq!(all[0].labels["team"], "blue");
    assert_eq!(all[0].state, airlock_api::SandboxState::Running);
    assert_eq!(
        read(&client, &id, "/workspace/kept.txt").await.unwrap(),
        "still here"
    );
    assert_eq!(run(&client, &id, "cat kept.txt").await.stdout, "still here");
    client.delete(&id).await.unwrap();
    assert!(client.list().await.unwrap().is_empty());
    assert_within_rbac(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_sandbox_pod_is_deleted() {
    let fake = FakeKube::start().await;
    let daemon = gateway(&fake, &[]);
    let client = daemon.client();
    let req = CreateSandbox {
        ttl_secs: Some(1),
        ..Default::default()
    };
    let id = client.create(&req).await.unwrap().id;
    let name = format!("airlock-{id}");
    eventually("the expired sandbox's pod was not deleted", || {
        fake.object("pods", &name).is_none() && fake.object("secrets", &name).is_none()
    })
    .await;
    // The delete forgets the sandbox once its objects are gone, a moment after the pod.
    eventually_async("the expired sandbox is still listed", || async {
        client.list().await.unwrap().is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_cannot_be_pulled_is_a_clear_error_and_leaves_nothing() {
    let fake = FakeKube::start().await;
    let daemon = gateway(&fake, &["--kube-template", "broken=no-such-image:1"]);
    let client = daemon.client();
    let req = CreateSandbox {
        template: Some("broken".into()),
        ..Default::default()
    };
    // The create answers pending; the client's wait learns why the sandbox is gone.
    let err = client.create(&req).await.unwrap_err().to_string();
    assert!(err.contains("could not be made"), "{err}");
    assert!(err.contains("cannot be pulled"), "{err}");
    assert!(err.contains("no-such-image:1"), "{err}");
    let verbs = fake.verbs();
    assert!(
        verbs.iter().any(|v| v.starts_with("DELETE pods/")),
        "{verbs:?}"
    );
    assert!(
        verbs.iter().any(|v| v.starts_with("DELETE secrets/")),
        "{verbs:?}"
    );
    assert!(client.list().await.unwrap().is_empty());
    // The gateway goes on serving.
    let fine = client.create(&CreateSandbox::default()).await.unwrap();
    client.delete(&fine.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumable_uploads_archives_and_watches_pass_through_the_gateway() {
    use futures_util::StreamExt;

    let fake = FakeKube::start().await;
    let mut daemon = gateway(&fake, &[]);
    let client = daemon.client();
    let id = client.create(&CreateSandbox::default()).await.unwrap().id;

    // A resumable upload: half, then a gateway restarted with an empty home, then the
    // rest. Its record lives on the pod, so the second gateway knows it.
    let content = common::files::random(3 << 20, 7);
    let url = client
        .create_upload(&id, "/workspace/big.bin", content.len() as u64, None, None)
        .await
        .unwrap();
    let half = content.len() / 2;
    let first = std::io::Cursor::new(content[..half].to_vec());
    client.upload_chunk(&url, 0, first).await.unwrap();
    let pod = fake.object("pods", &format!("airlock-{id}")).unwrap();
    let annotations = pod["metadata"]["annotations"].as_object().unwrap();
    assert!(
        annotations
            .keys()
            .any(|k| k.starts_with("upload.airlock.dev/"))
    );
    let home = daemon.home();
    assert!(daemon.terminate());
    std::fs::remove_dir_all(&home).unwrap();
    std::fs::create_dir(&home).unwrap();
    daemon.restart();
    let client = daemon.client();
    // The upload's address names no gateway: the new one serves it.
    let path = url.clone();
    assert_eq!(
        client.upload_offset(&path).await.unwrap(),
        Some(half as u64)
    );
    let rest = std::io::Cursor::new(content[half..].to_vec());
    let done = client.upload_chunk(&path, half as u64, rest).await.unwrap();
    assert_eq!(done.offset, content.len() as u64);
    let stored = std::fs::read(fake.root(&id).join("workspace/big.bin")).unwrap();
    assert!(stored == content, "the upload arrived whole");
    let pod = fake.object("pods", &format!("airlock-{id}")).unwrap();
    let annotations = pod["metadata"]["annotations"].as_object().unwrap();
    assert!(
        !annotations
            .keys()
            .any(|k| k.starts_with("upload.airlock.dev/"))
    );

    // A tree out as tar and back in elsewhere.
    write(&client, &id, "/workspace/tree/a.txt", "alpha").await;
    write(&client, &id, "/workspace/tree/sub/b.txt", "beta").await;
    let mut tar = Vec::new();
    client
        .download_archive(
            &id,
            "/workspace/tree",
            airlock_client::ArchiveFormat::Tar,
            &mut tar,
        )
        .await
        .unwrap();
    client
        .upload_archive(
            &id,
            "/workspace/copy",
            std::io::Cursor::new(tar),
            airlock_client::ArchiveFormat::Tar,
        )
        .await
        .unwrap();
    assert_eq!(
        read(&client, &id, "/workspace/copy/sub/b.txt")
            .await
            .unwrap(),
        "beta"
    );

    // A watch sees a file a command makes in the pod.
    let mut events = client.watch(&id, "/workspace", true).await.unwrap();
    let ready = events.next().await.unwrap().unwrap();
    assert_eq!(ready.kind, "ready");
    run(&client, &id, "echo new > made-by-a-command.txt").await;
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.next().await {
            if event.unwrap().path == "/workspace/made-by-a-command.txt" {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(seen, "the watch through the agent saw the command's file");
    assert_within_rbac(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_serve_the_same_sandboxes() {
    let fake = FakeKube::start().await;
    let (first, second, id) = two_gateways_and_a_sandbox(&fake).await;
    let (a, b) = (first.client(), second.client());
    write(&a, &id, "/workspace/shared.txt", "from the first").await;

    // The second gateway serves it once it has seen the record.
    eventually_async("never seen", || async { b.get(&id).await.is_ok() }).await;
    assert_eq!(
        read(&b, &id, "/workspace/shared.txt").await.unwrap(),
        "from the first"
    );
    assert_eq!(
        run(&b, &id, "cat shared.txt").await.stdout,
        "from the first"
    );

    // Commands started through both at once in the one pod keep to their own streams.
    let (from_a, from_b) = tokio::join!(
        run(&a, &id, "sleep 0.3; echo through-a"),
        run(&b, &id, "sleep 0.3; echo through-b")
    );
    assert_eq!(from_a.stdout, "through-a\n");
    assert_eq!(from_b.stdout, "through-b\n");

    // A timeout given through one holds in the other: its reaper does not take the
    // sandbox at the time it first knew. The first TTL leaves room for the second gateway
    // to see the sandbox (it looks every 2 s) before the extension: at 3 s, a loaded CI
    // machine once extended it only after it had expired and been reaped.
    let ttl = Duration::from_secs(10);
    let made = Instant::now();
    let short = a
        .create(&CreateSandbox {
            ttl_secs: Some(ttl.as_secs()),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    eventually_async(
        "the second gateway sees the short-lived sandbox",
        || async { b.get(&short).await.is_ok() },
    )
    .await;
    set_timeout_through_e2b(&first, &short, 120).await;
    assert!(
        made.elapsed() < ttl,
        "extended only after the first TTL had run out: the test proves nothing"
    );
    // Past the first TTL by four of the reaper's ticks.
    tokio::time::sleep_until((made + ttl + Duration::from_secs(2)).into()).await;
    assert!(
        b.get(&short).await.is_ok(),
        "the second gateway reaped an extended sandbox"
    );
    assert!(a.get(&short).await.is_ok());
    a.delete(&short).await.unwrap();

    // Deleted through the second, the first forgets it.
    b.delete(&id).await.unwrap();
    eventually_async("never forgotten", || async { a.get(&id).await.is_err() }).await;
    assert!(a.list().await.unwrap().is_empty());
}

/// A gateway saves its changes to a sandbox's record onto what the cluster holds, not
/// onto its own copy: a stop through the second gateway, made before it has looked at
/// the records again, keeps the timeout just set through the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_gateway_keeps_what_another_just_changed() {
    let fake = FakeKube::start().await;
    let (first, second, id) = two_gateways_and_a_sandbox(&fake).await;
    let (a, b) = (first.client(), second.client());
    eventually_async("the second gateway sees the sandbox", || async {
        b.get(&id)
            .await
            .is_ok_and(|s| s.state == airlock_api::SandboxState::Running)
    })
    .await;
    let before = b.get(&id).await.unwrap().expires_at;
    set_timeout_through_e2b(&first, &id, 3600).await;
    let set = a.get(&id).await.unwrap().expires_at;
    assert_ne!(
        set, before,
        "the timeout changed nothing: the test proves nothing"
    );
    let stopped = within("a stop", b.stop(&id)).await.unwrap();
    assert_eq!(stopped.expires_at, set, "the stop undid the timeout");
    // What the cluster holds, read afresh by a third gateway.
    let third = gateway(&fake, &[]);
    let held = third.client().get(&id).await.unwrap();
    assert_eq!(held.expires_at, set);
    assert_eq!(held.state, airlock_api::SandboxState::Stopped);
    a.delete(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_answers_pending_once_the_pod_exists_and_runs_when_its_agent_answers() {
    let fake = FakeKube::start().await;
    let daemon = gateway(&fake, &[]);
    let client = daemon.client();
    fake.hold_pods(true);
    let req = CreateSandbox {
        files: vec![airlock_api::InjectedFile {
            path: "/workspace/config.toml".into(),
            content: Some("mode = \"ci\"\n".into()),
            content_b64: None,
            mode: None,
            readonly: false,
        }],
        ..Default::default()
    };
    let made = client.create_pending(&req).await.unwrap();
    assert_eq!(made.state, airlock_api::SandboxState::Pending);
    let id = made.id.clone();
    assert!(
        fake.object("pods", &format!("airlock-{id}")).is_some(),
        "the pod exists"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        client.get(&id).await.unwrap().state,
        airlock_api::SandboxState::Pending
    );
    let refused = client
        .exec(
            &id,
            &ExecRequest {
                shell: Some("true".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("pending"), "{refused}");
    assert!(
        client.start(&id).await.is_err(),
        "a pending sandbox starts by itself"
    );

    fake.hold_pods(false);
    let running = client.until_settled(made).await.unwrap();
    assert_eq!(running.state, airlock_api::SandboxState::Running);
    let config = fake.root(&id).join("workspace/config.toml");
    assert_eq!(std::fs::read_to_string(config).unwrap(), "mode = \"ci\"\n");
    assert_eq!(
        run(&client, &id, "cat config.toml").await.stdout,
        "mode = \"ci\"\n"
    );
    client.delete(&id).await.unwrap();
}

/// MiB moved each way by the big transfer; `AIRLOCK_GATEWAY_MIB=4096` for the 4 GiB.
fn big_mib() -> u64 {
    std::env::var("AIRLOCK_GATEWAY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_transfer_through_the_gateway_keeps_both_processes_memory_flat() {
    use tokio::io::AsyncReadExt;

    let fake = FakeKube::start().await;
    let daemon = gateway(&fake, &[]);
    let client = daemon.client();
    let id = client.create(&CreateSandbox::default()).await.unwrap().id;
    let agent = fake.agent_pid(&id).unwrap();
    let (gateway_before, agent_before) = (common::rss_kib(daemon.pid()), common::rss_kib(agent));
    let gateway_rss = common::RssSampler::start(daemon.pid());
    let agent_rss = common::RssSampler::start(agent);

    let bytes = big_mib() << 20;
    let content = tokio::io::repeat(0x5a).take(bytes);
    let opts = WriteOptions::default();
    let written = client
        .write(&id, "/workspace/big.bin", content, &opts)
        .await
        .unwrap();
    assert_eq!(written.entry.size, bytes);
    let on_disk = fake.root(&id).join("workspace/big.bin");
    assert_eq!(std::fs::metadata(on_disk).unwrap().len(), bytes);
    let mut sink = tokio::io::sink();
    let read = client
        .read_to(&id, "/workspace/big.bin", &mut sink)
        .await
        .unwrap();
    assert_eq!(read.size, bytes);

    let grew = |peak: u64, before: u64| peak.saturating_sub(before) / 1024;
    let (gateway_grew, agent_grew) = (
        grew(gateway_rss.peak(), gateway_before),
        grew(agent_rss.peak(), agent_before),
    );
    println!(
        "{} MiB up and down: gateway RSS grew {gateway_grew} MiB, agent {agent_grew} MiB",
        big_mib()
    );
    assert!(
        gateway_grew < 64,
        "the gateway's RSS grew {gateway_grew} MiB"
    );
    assert!(agent_grew < 64, "the agent's RSS grew {agent_grew} MiB");
    client.delete(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_agent_sandbox_is_installed_a_sandbox_is_a_sandbox_object() {
    let fake = FakeKube::start_with_crds().await;
    let mut daemon = gateway(&fake, &[]);
    let client = daemon.client();
    let id = client.create(&CreateSandbox::default()).await.unwrap().id;
    let name = format!("airlock-{id}");
    let held = fake.object("sandboxes", &name).expect("a Sandbox object");
    let template = &held["spec"]["podTemplate"];
    assert_eq!(template["spec"]["containers"][0]["command"][1], "agent");
    assert_eq!(
        template["metadata"]["labels"]["airlock.dev/sandbox"],
        id.as_str()
    );
    assert!(held["metadata"]["annotations"]["airlock.dev/record"].is_string());
    assert!(fake.verbs().contains(&"POST sandboxes".to_owned()));
    assert!(
        !fake.verbs().contains(&"POST pods".to_owned()),
        "no bare pod"
    );

    write(&client, &id, "/workspace/held.txt", "by a Sandbox").await;
    assert_eq!(
        run(&client, &id, "cat held.txt").await.stdout,
        "by a Sandbox"
    );

    let home = daemon.home();
    assert!(daemon.terminate());
    std::fs::remove_dir_all(&home).unwrap();
    std::fs::create_dir(&home).unwrap();
    daemon.restart();
    let client = daemon.client();
    let all = client.list().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].id, id);
    assert_eq!(
        read(&client, &id, "/workspace/held.txt").await.unwrap(),
        "by a Sandbox"
    );

    client.delete(&id).await.unwrap();
    assert!(fake.verbs().contains(&format!("DELETE sandboxes/{name}")));
    assert!(fake.object("sandboxes", &name).is_none());
    assert!(
        fake.object("pods", &name).is_none(),
        "the controller took the pod with it"
    );
    assert_within_rbac(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_share_their_tokens_and_signing_key_through_a_secret() {
    let fake = FakeKube::start().await;
    let first = gateway(&fake, &[]);
    let second = gateway(&fake, &[]);
    assert_eq!(
        first.token, second.token,
        "one admin token for every gateway"
    );
    let held = fake
        .object("secrets", "airlock-gateway")
        .expect("the gateways' Secret");
    for key in ["token", "signing-key"] {
        assert!(held["data"][key].is_string(), "{key} is in the Secret");
    }

    // A tenant's token minted through one gateway works through the other at once.
    let minted = first
        .client()
        .create_token("ci", "team-a", None)
        .await
        .unwrap();
    let tenant_second = airlock_client::Client::new(&second.url, &minted.token);
    let id = tenant_second
        .create(&CreateSandbox::default())
        .await
        .unwrap()
        .id;
    let tenant_first = airlock_client::Client::new(&first.url, &minted.token);
    eventually_async("the first gateway serves the tenant's sandbox", || async {
        tenant_first.get(&id).await.is_ok()
    })
    .await;

    // A URL signed by one gateway is honoured by the other.
    write(&tenant_first, &id, "/workspace/signed.txt", "signed").await;
    let signed = tenant_first
        .sign_url(&id, "/workspace/signed.txt", "GET", Some(60))
        .await
        .unwrap();
    let port = |url: &str| url.rsplit(':').next().unwrap().to_owned();
    let url = signed.url.replace(&port(&first.url), &port(&second.url));
    let body = reqwest::get(&url).await.unwrap();
    assert_eq!(body.status(), 200, "{url}");
    assert_eq!(body.text().await.unwrap(), "signed");

    // Revoked through the second, refused by the first soon after.
    second.client().revoke_token(&minted.id).await.unwrap();
    eventually_async("the first gateway still takes a revoked token", || async {
        tenant_first.list().await.is_err()
    })
    .await;
    first.client().delete(&id).await.unwrap();
    assert_within_rbac(&fake);
}

/// Two gateways on one cluster, and a sandbox created through the first.
async fn two_gateways_and_a_sandbox(fake: &FakeKube) -> (Daemon, Daemon, String) {
    let (first, second) = (gateway(fake, &[]), gateway(fake, &[]));
    let id = common::sandbox(&first.client()).await.id;
    (first, second, id)
}

/// Sets a sandbox's timeout the way the E2B SDK does, through `gateway`.
async fn set_timeout_through_e2b(gateway: &Daemon, id: &str, secs: u64) {
    let answer = reqwest::Client::new()
        .post(format!("{}/e2b/sandboxes/{id}/timeout", gateway.url))
        .header("x-api-key", &gateway.token)
        .json(&serde_json::json!({ "timeout": secs }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);
}

async fn eventually_async<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < Duration::from_secs(20), "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_on_a_terminal_in_a_pod_is_typed_at_and_resized() {
    let fake = FakeKube::start().await;
    let daemon = gateway(&fake, &[]);
    let id = common::sandbox(&daemon.client()).await.id;
    let http = reqwest::Client::new();
    let base = format!("{}/v1/sandboxes/{id}/processes", daemon.url);
    let script = "test -t 0 && echo on-a-tty; stty size; read line; stty size; echo \"got $line\"";
    let mut answer = http
        .post(format!("{base}?terminal=80x24&stream=true&tag=term"))
        .bearer_auth(&daemon.token)
        .json(&serde_json::json!({ "shell": script }))
        .send()
        .await
        .unwrap();
    if answer.status() != 200 {
        panic!(
            "{}: {}\n{}",
            answer.status(),
            answer.text().await.unwrap(),
            daemon.log()
        );
    }
    let mut seen = String::new();
    common::read_until(&mut answer, &mut seen, "24 80").await;
    assert!(seen.contains("on-a-tty"), "{seen}");
    let listed: serde_json::Value = http
        .get(format!("{base}?tag=term"))
        .bearer_auth(&daemon.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pid = listed[0]["pid"]
        .as_u64()
        .expect("the process is listed by its tag");
    let resized = http
        .post(format!("{base}/{pid}/resize"))
        .bearer_auth(&daemon.token)
        .json(&serde_json::json!({ "cols": 132, "rows": 50 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resized.status(), 204);
    let typed = http
        .post(format!("{base}/{pid}/stdin"))
        .bearer_auth(&daemon.token)
        .body("typed\n")
        .send()
        .await
        .unwrap();
    assert_eq!(typed.status(), 204);
    common::read_until(&mut answer, &mut seen, "got typed").await;
    assert!(seen.contains("50 132"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unmodified_e2b_sdk_drives_a_sandbox_in_a_pod() {
    let fake = FakeKube::start().await;
    let daemon = gateway(&fake, &[]);
    let key = daemon
        .client()
        .create_token("e2b", "team-a", None)
        .await
        .unwrap()
        .token;
    let env = common::e2b_env(&daemon, &key);
    common::run_e2b(common::python_client("e2b_sdk.py"), &env).await;
    assert_within_rbac(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unmodified_agent_sandbox_sdk_drives_a_sandbox_in_a_pod() {
    let fake = FakeKube::start().await;
    let daemon = gateway(&fake, &[]);
    let token = daemon
        .client()
        .create_token("agents", "team-a", None)
        .await
        .unwrap()
        .token;
    let tenant = airlock_client::Client::new(daemon.url.clone(), token.clone());
    let id = tenant.create(&CreateSandbox::default()).await.unwrap().id;
    let env = [
        ("AIRLOCK_URL", daemon.url.as_str()),
        ("AIRLOCK_TOKEN", token.as_str()),
        ("SANDBOX_ID", id.as_str()),
    ];
    common::run_client(common::python_client("agent_sandbox_sdk.py"), &env).await;
    assert!(
        fake.root(&id).join("home/user/data.csv").exists(),
        "written in the pod"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_client_streams_files_to_a_sandbox_in_a_pod() {
    let fake = FakeKube::start().await;
    let daemon = gateway(&fake, &[]);
    let id = common::sandbox(&daemon.client()).await.id;
    common::grpc_roundtrip(&daemon, &id, 16).await;
    let landed = fake.root(&id).join("workspace/py.bin");
    assert_eq!(std::fs::metadata(landed).unwrap().len(), 16 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_file_is_mounted_read_only_in_the_pod() {
    let fake = FakeKube::start().await;
    let daemon = gateway(&fake, &[]);
    let client = daemon.client();
    let req = CreateSandbox {
        files: vec![airlock_api::InjectedFile {
            path: "/opt/policy.json".into(),
            content: Some("{\"allow\": false}".into()),
            content_b64: None,
            mode: None,
            readonly: true,
        }],
        ..Default::default()
    };
    let id = client.create(&req).await.unwrap().id;
    let pod = fake.object("pods", &format!("airlock-{id}")).unwrap();
    let mounts = pod["spec"]["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap();
    let policy = mounts
        .iter()
        .find(|m| m["mountPath"] == "/opt/policy.json")
        .unwrap();
    assert_eq!(policy["readOnly"], true);

    let seen = run(&client, &id, "cat /opt/policy.json").await;
    assert_eq!(seen.stdout, "{\"allow\": false}");
    // Not even the pod's root may change it: not its bytes, not its name.
    for attack in [
        "echo '{}' > /opt/policy.json",
        "rm -f /opt/policy.json",
        "mv /opt/policy.json /opt/moved.json",
        "chmod 666 /opt/policy.json",
    ] {
        let done = run(&client, &id, attack).await;
        assert_ne!(done.exit_code, 0, "{attack} succeeded");
    }
    let planted = std::io::Cursor::new(b"{}".to_vec());
    let overwrite = client
        .write(&id, "/opt/policy.json", planted, &WriteOptions::default())
        .await;
    assert!(overwrite.is_err(), "the API replaced a read-only file");
    let kept = read(&client, &id, "/opt/policy.json").await.unwrap();
    assert_eq!(kept, "{\"allow\": false}");
    client.delete(&id).await.unwrap();
}

/// Tokens minted and revoked through two gateways while both are busy answering
/// bearers (known ones, and unknown ones that send each gateway to the Secret again):
/// every call answers, and each token holds through the other gateway as soon as it is
/// made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_change_through_two_busy_gateways() {
    let fake = FakeKube::start().await;
    let gateways = [gateway(&fake, &[]), gateway(&fake, &[])];
    let urls: Vec<String> = gateways.iter().map(|g| g.url.clone()).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut busy = Vec::new();
    for n in 0..6 {
        let url = urls[n % 2].clone();
        let token = if n < 3 {
            gateways[0].token.clone()
        } else {
            format!("al_unknown{n}")
        };
        let stop = stop.clone();
        busy.push(tokio::spawn(async move {
            let client = Client::new(&url, &token);
            let what = format!("a list through {url}");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Refused or not, it answers.
                let _ = within(&what, client.list()).await;
            }
        }));
    }
    for round in 0..20 {
        let (by, other) = (&gateways[round % 2], &gateways[(round + 1) % 2]);
        let minted = within("a mint", by.client().create_token("ci", "team-a", None))
            .await
            .unwrap();
        let tenant = Client::new(&other.url, &minted.token);
        within("a tenant's list", tenant.list()).await.unwrap();
        within("a revoke", other.client().revoke_token(&minted.id))
            .await
            .unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in busy {
        task.await.unwrap();
    }
}

/// `work`'s answer, or a failure naming it when it takes longer than any call should.
async fn within<T>(what: &str, work: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), work)
        .await
        .unwrap_or_else(|_| panic!("{what} did not answer"))
}
