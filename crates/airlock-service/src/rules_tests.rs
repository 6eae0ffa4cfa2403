//! The service's rules, checked through the fake backend: what the service asks of its
//! backend at each step of a sandbox's life, who may reach which sandbox, the resumable
//! upload's state machine, recovery after a restart, and commands' rules. The engine
//! itself is tested end to end elsewhere; these need no namespaces.

use std::sync::Arc;
use std::time::Duration;

use airlock_api::{CreateSandbox, ErrorCode, ExecRequest, SandboxState};

use crate::fake_backend::FakeBackend;
use airlock_sandbox::Layout;

use crate::{FileRecords, NewUpload, Principal, Service, Settings, bytes_body};

async fn service(home: &std::path::Path) -> (Service, Arc<FakeBackend>) {
    let backend = FakeBackend::new(home);
    let records = Arc::new(FileRecords::new(Layout::new(home)));
    let secrets = Arc::new(crate::HomeSecrets::new(home));
    let service = Service::open_with(home, Settings::default(), backend.clone(), records, secrets)
        .await
        .unwrap();
    (service, backend)
}

fn tenant(name: &str) -> Principal {
    Principal::Tenant {
        tenant: name.into(),
        by: format!("test {name}"),
    }
}

/// Polls `done` every 10 ms for at most 5 s.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

/// A sandbox the admin made, started or not; its id.
async fn admin_sandbox(service: &Service, start: bool) -> String {
    let made = service.create(&Principal::Admin, create(start)).await;
    made.unwrap().id
}

fn create(start: bool) -> CreateSandbox {
    CreateSandbox {
        start: Some(start),
        ..CreateSandbox::default()
    }
}

#[tokio::test]
async fn each_step_of_a_sandboxs_life_asks_the_backend_once() {
    let home = tempfile::tempdir().unwrap();
    let (service, backend) = service(home.path()).await;
    let me = Principal::Admin;
    let id = service.create(&me, create(true)).await.unwrap().id;
    assert_eq!(service.get(&me, &id).unwrap().state, SandboxState::Running);
    assert_eq!(backend.calls_for(&id), ["provision", "start"]);

    // Starting a running sandbox and stopping a stopped one change nothing.
    service.start(&me, &id).await.unwrap();
    let stopped = service.stop(&me, &id).await.unwrap();
    assert_eq!(stopped.state, SandboxState::Stopped);
    service.stop(&me, &id).await.unwrap();
    assert_eq!(backend.calls_for(&id), ["provision", "start", "stop"]);

    service.start(&me, &id).await.unwrap();
    service.delete(&me, &id).await.unwrap();
    assert_eq!(
        backend.calls_for(&id),
        ["provision", "start", "stop", "start", "stop", "destroy"]
    );
    let gone = service.get(&me, &id).unwrap_err();
    assert_eq!(gone.code, ErrorCode::NotFound);
    assert!(!home.path().join("sandboxes").join(&id).exists());
    assert!(!home.path().join("views").join(&id).exists());
}

#[tokio::test]
async fn a_sandbox_whose_init_ends_by_itself_is_marked_stopped() {
    let home = tempfile::tempdir().unwrap();
    let (service, backend) = service(home.path()).await;
    let id = admin_sandbox(&service, true).await;
    backend.crash(&id);
    let state = || service.get(&Principal::Admin, &id).unwrap().state;
    assert!(eventually(|| state() == SandboxState::Stopped).await);
    // And it can be started again.
    let again = service.start(&Principal::Admin, &id).await.unwrap();
    assert_eq!(again.state, SandboxState::Running);
}

#[tokio::test]
async fn another_tenants_sandbox_is_not_found_and_never_reaches_the_backend() {
    let home = tempfile::tempdir().unwrap();
    let (service, backend) = service(home.path()).await;
    let (alice, bob) = (tenant("alice"), tenant("bob"));
    let id = service.create(&alice, create(false)).await.unwrap().id;

    assert_eq!(
        service.get(&bob, &id).unwrap_err().code,
        ErrorCode::NotFound
    );
    assert!(service.list(&bob).unwrap().is_empty());
    let refused = [
        service.start(&bob, &id).await.unwrap_err().code,
        service.delete(&bob, &id).await.map(drop).unwrap_err().code,
        service
            .stat_file(&bob, &id, "/workspace")
            .await
            .map(drop)
            .unwrap_err()
            .code,
    ];
    assert_eq!(refused, [ErrorCode::NotFound; 3]);
    assert_eq!(backend.calls_for(&id), ["provision"]);

    assert_eq!(service.list(&alice).unwrap().len(), 1);
    assert_eq!(service.list(&Principal::Admin).unwrap().len(), 1);
}

#[tokio::test]
async fn a_resumable_upload_takes_its_chunks_in_order_and_commits_at_its_length() {
    let home = tempfile::tempdir().unwrap();
    let (service, _backend) = service(home.path()).await;
    let me = Principal::Admin;
    let id = service.create(&me, create(false)).await.unwrap().id;
    let new = NewUpload {
        path: "/workspace/notes.txt".into(),
        length: 10,
        ..NewUpload::default()
    };
    let upload = service
        .create_upload(&me, &id, new)
        .await
        .unwrap()
        .record
        .id;

    let chunk = |text: &'static str| bytes_body(bytes::Bytes::from_static(text.as_bytes()));
    let wrong = service
        .append_upload(&me, &id, &upload, 5, None, chunk("world"))
        .await
        .map(drop)
        .unwrap_err();
    assert_eq!(wrong.code, ErrorCode::Conflict);

    let half = service
        .append_upload(&me, &id, &upload, 0, None, chunk("hello"))
        .await
        .unwrap();
    assert_eq!((half.record.offset, half.done.is_some()), (5, false));
    let path = home
        .path()
        .join("views")
        .join(&id)
        .join("workspace/notes.txt");
    assert!(!path.exists(), "nothing is in place before the last byte");

    let whole = service
        .append_upload(&me, &id, &upload, 5, None, chunk("world"))
        .await
        .unwrap();
    assert_eq!(whole.done.unwrap().entry.size, 10);
    assert_eq!(std::fs::read(&path).unwrap(), b"helloworld");
    // A finished upload is gone: its status is 404.
    let done = service.upload_status(&me, &id, &upload).await.unwrap_err();
    assert_eq!(done.code, ErrorCode::NotFound);
}

#[tokio::test]
async fn a_restarted_service_restores_every_sandbox_and_starts_the_running_ones() {
    let home = tempfile::tempdir().unwrap();
    let (first, _) = service(home.path()).await;
    let running = admin_sandbox(&first, true).await;
    let never_started = admin_sandbox(&first, false).await;
    first.shutdown().await;
    drop(first);

    let (second, backend) = service(home.path()).await;
    let state = |id: &str| second.get(&Principal::Admin, id).unwrap().state;
    assert_eq!(state(&running), SandboxState::Running);
    assert_eq!(state(&never_started), SandboxState::Created);
    assert_eq!(backend.calls_for(&running), ["restore", "start"]);
    assert_eq!(backend.calls_for(&never_started), ["restore"]);
}

#[tokio::test]
async fn a_command_needs_a_running_sandbox_and_reports_its_output_and_exit() {
    let home = tempfile::tempdir().unwrap();
    let (service, _backend) = service(home.path()).await;
    let me = Principal::Admin;
    let id = service.create(&me, create(false)).await.unwrap().id;
    let req = ExecRequest {
        cmd: Some(vec![
            "sh".into(),
            "-c".into(),
            "echo out; echo err >&2; exit 3".into(),
        ]),
        ..ExecRequest::default()
    };
    let refused = service.exec(&me, &id, req.clone()).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::Conflict);

    service.start(&me, &id).await.unwrap();
    let ran = service.exec(&me, &id, req).await.unwrap();
    assert_eq!(
        (ran.exit_code, ran.stdout.as_str(), ran.stderr.as_str()),
        (3, "out\n", "err\n")
    );

    let slow = ExecRequest {
        cmd: Some(vec!["sleep".into(), "30".into()]),
        timeout_ms: Some(100),
        ..ExecRequest::default()
    };
    let timed_out = service.exec(&me, &id, slow).await.unwrap();
    assert_eq!(timed_out.exit_code, crate::exec::TIMED_OUT);
}

#[tokio::test]
async fn a_matching_create_claims_a_warm_sandbox_as_its_own_and_the_pool_refills() {
    let home = tempfile::tempdir().unwrap();
    let (service, backend) = service(home.path()).await;
    let service = Arc::new(service);
    tokio::spawn(service.clone().fill_pools_forever());
    let ready = || service.pools(&Principal::Admin).unwrap()[0].ready;
    service.size_pool(&Principal::Admin, "host", 1).unwrap();
    assert!(eventually(|| ready() == 1).await);
    let warm = backend.provisioned()[0].clone();

    let alice = tenant("alice");
    let made = CreateSandbox {
        env: [("GREETING".to_owned(), "hi".to_owned())].into(),
        labels: [("team".to_owned(), "a".to_owned())].into(),
        ..CreateSandbox::default()
    };
    let claimed = service.create(&alice, made).await.unwrap();
    assert_eq!(claimed.id, warm, "the create was served from the pool");
    assert_eq!(claimed.state, SandboxState::Running);
    assert_eq!(claimed.owner, "alice");
    assert_eq!(claimed.env["GREETING"], "hi");
    assert_eq!(claimed.labels["team"], "a");
    // Claimed as it stood: not provisioned or started a second time.
    assert_eq!(backend.calls_for(&warm), ["provision", "start"]);
    let bob = tenant("bob");
    assert_eq!(
        service.get(&bob, &warm).unwrap_err().code,
        ErrorCode::NotFound
    );

    assert!(eventually(|| ready() == 1).await, "the pool refills");
    let pool = &service.pools(&Principal::Admin).unwrap()[0];
    assert_eq!(pool.claimed, 1);
    assert_ne!(backend.provisioned().last(), Some(&warm));
}

#[tokio::test]
async fn a_sandbox_past_its_ttl_is_deleted_and_its_storage_destroyed() {
    let home = tempfile::tempdir().unwrap();
    let (service, backend) = service(home.path()).await;
    let service = Arc::new(service);
    tokio::spawn(service.clone().expire_forever());
    let short = CreateSandbox {
        ttl_secs: Some(1),
        ..create(true)
    };
    let id = service.create(&Principal::Admin, short).await.unwrap().id;
    let kept = admin_sandbox(&service, true).await;
    let gone = || service.get(&Principal::Admin, &id).is_err();
    assert!(eventually(gone).await);
    assert_eq!(
        backend.calls_for(&id),
        ["provision", "start", "stop", "destroy"]
    );
    assert_eq!(
        service.get(&Principal::Admin, &kept).unwrap().state,
        SandboxState::Running
    );
}

#[tokio::test]
async fn a_pending_sandbox_gets_its_files_then_starts_and_one_that_fails_is_gone_with_why() {
    let home = tempfile::tempdir().unwrap();
    let (service, backend) = service(home.path()).await;
    let service = Arc::new(service);
    tokio::spawn(service.clone().settle_forever());
    let settle = backend.make_pending();
    let alice = tenant("alice");
    let with_file = CreateSandbox {
        files: vec![airlock_api::InjectedFile {
            path: "/workspace/seed.txt".into(),
            content: Some("seeded".into()),
            content_b64: None,
            mode: None,
            readonly: false,
        }],
        ..create(true)
    };
    let made = service.create(&alice, with_file).await.unwrap();
    assert_eq!(made.state, SandboxState::Pending);
    let id = made.id;
    let refused = service.start(&alice, &id).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::Conflict);
    let exec = ExecRequest {
        shell: Some("true".into()),
        ..ExecRequest::default()
    };
    let refused = service.exec(&alice, &id, exec).await.unwrap_err();
    assert!(refused.message.contains("pending"), "{}", refused.message);

    settle.send_replace(Some(true));
    let running = || {
        service
            .get(&alice, &id)
            .is_ok_and(|s| s.state == SandboxState::Running)
    };
    assert!(eventually(running).await);
    assert_eq!(backend.calls_for(&id), ["provision", "settle", "start"]);
    let seed = Layout::new(home.path())
        .view(&id)
        .join("workspace/seed.txt");
    assert_eq!(std::fs::read_to_string(seed).unwrap(), "seeded");

    // A second one cannot be made: it is deleted, and its creator learns why.
    let settle = backend.make_pending();
    let doomed = service.create(&alice, create(true)).await.unwrap().id;
    settle.send_replace(Some(false));
    let gone = || service.get(&alice, &doomed).is_err();
    assert!(eventually(gone).await);
    let why = service.get(&alice, &doomed).unwrap_err();
    assert_eq!(why.code, ErrorCode::NotFound);
    assert!(why.message.contains("no node fits"), "{}", why.message);
    assert_eq!(
        backend.calls_for(&doomed),
        ["provision", "settle", "destroy"]
    );
    // Another tenant learns nothing of it.
    let bob = service.get(&tenant("bob"), &doomed).unwrap_err();
    assert!(!bob.message.contains("no node fits"));
}
