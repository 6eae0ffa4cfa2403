//! Processes that outlive their request: started in the background, listed, reconnected
//! to with their buffered output, fed stdin, signalled and killed with their whole tree,
//! on REST and gRPC; the daemon never blocks on a listener that went away.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Daemon;
use serde_json::{Value, json};

struct Procs<'d> {
    daemon: &'d Daemon,
    id: String,
    token: String,
    http: reqwest::Client,
}

impl Procs<'_> {
    fn url(&self, rest: &str) -> String {
        format!(
            "{}/v1/sandboxes/{}/processes{rest}",
            self.daemon.url, self.id
        )
    }

    async fn start(&self, query: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(query))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn info(&self, pid: u64) -> Value {
        let r = self
            .http
            .get(self.url(&format!("/{pid}")))
            .bearer_auth(&self.token)
            .send();
        r.await.unwrap().json().await.unwrap()
    }

    /// Every event line until the stream ends.
    async fn events(&self, pid: u64, replay: bool) -> Vec<Value> {
        let r = self
            .http
            .get(self.url(&format!("/{pid}/events?replay={replay}")))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    async fn post(&self, rest: &str, body: reqwest::Body) -> u16 {
        let r = self
            .http
            .post(self.url(rest))
            .bearer_auth(&self.token)
            .body(body);
        r.send().await.unwrap().status().as_u16()
    }

    async fn wait_ended(&self, pid: u64) -> Value {
        for _ in 0..100 {
            let info = self.info(pid).await;
            if info["running"] == false {
                return info;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("process {pid} never ended");
    }
}

fn stdout(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "stdout")
        .map(|e| e["data"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn background_processes_outlive_their_request() {
    let daemon = Daemon::start();
    let id = common::sandbox(&daemon.client()).await.id;
    let p = Procs {
        daemon: &daemon,
        id: id.clone(),
        token: daemon.token.clone(),
        http: reqwest::Client::new(),
    };

    // Started, listed by tag, reconnected with its buffered output.
    let (status, started) = p
        .start(
            "?tag=server",
            json!({"shell": "echo one; sleep 1; echo two"}),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["running"], true);
    let pid = started["pid"].as_u64().unwrap();
    let listed: Value = p
        .http
        .get(p.url("?tag=server"))
        .bearer_auth(&p.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["pid"], pid);
    let events = p.events(pid, true).await;
    assert_eq!(events[0], json!({"type": "start", "pid": pid}));
    assert_eq!(stdout(&events), "one\ntwo\n");
    assert_eq!(events.last().unwrap()["exit_code"], 0);
    // After it ended: its exit code, and its output still replayed.
    assert_eq!(p.info(pid).await["exit_code"], 0);
    assert_eq!(stdout(&p.events(pid, true).await), "one\ntwo\n");

    // A streamed start whose client hangs up: the process runs on.
    let mut streamed = p
        .http
        .post(p.url("?stream=true"))
        .bearer_auth(&p.token)
        .json(&json!({"shell": "sleep 1; echo survived"}))
        .send()
        .await
        .unwrap();
    let first: Value = serde_json::from_slice(&streamed.chunk().await.unwrap().unwrap()).unwrap();
    let pid = first["pid"].as_u64().unwrap();
    drop(streamed);
    assert_eq!(p.wait_ended(pid).await["exit_code"], 0);
    assert_eq!(stdout(&p.events(pid, true).await), "survived\n");

    // stdin kept open, fed in two requests, then closed.
    let (_, cat) = p.start("?stdin=true", json!({"cmd": ["cat"]})).await;
    let cat = cat["pid"].as_u64().unwrap();
    assert_eq!(p.post(&format!("/{cat}/stdin"), "hello ".into()).await, 204);
    assert_eq!(
        p.post(&format!("/{cat}/stdin?close=true"), "world".into())
            .await,
        204
    );
    assert_eq!(p.wait_ended(cat).await["exit_code"], 0);
    assert_eq!(stdout(&p.events(cat, true).await), "hello world");
    // Without ?stdin=true, stdin is closed at once: cat ends by itself.
    let (_, quick) = p.start("", json!({"cmd": ["cat"]})).await;
    assert_eq!(
        p.wait_ended(quick["pid"].as_u64().unwrap()).await["exit_code"],
        0
    );

    // Signals: SIGTERM ends a sleep (143); DELETE kills a whole tree (137).
    let (_, sleeper) = p.start("", json!({"cmd": ["sleep", "100"]})).await;
    let sleeper = sleeper["pid"].as_u64().unwrap();
    let term = p
        .http
        .post(p.url(&format!("/{sleeper}/signal")))
        .bearer_auth(&p.token)
        .json(&json!({"signal": "SIGTERM"}))
        .send()
        .await
        .unwrap();
    assert_eq!(term.status(), 204);
    assert_eq!(p.wait_ended(sleeper).await["exit_code"], 143);
    let (_, tree) = p
        .start("", json!({"shell": "sleep 100 & sleep 100 & wait"}))
        .await;
    let tree = tree["pid"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = p
        .http
        .delete(p.url(&format!("/{tree}")))
        .bearer_auth(&p.token)
        .send();
    assert_eq!(killed.await.unwrap().status(), 204);
    assert_eq!(p.wait_ended(tree).await["exit_code"], 137);
    let left = common::sh(&daemon.client(), &id, "pgrep -c sleep || true").await;
    assert_eq!(left.stdout.trim(), "0", "the tree's children survived");

    // Refusals: a bad number, an unknown one, an unknown signal.
    let bad = p
        .http
        .get(p.url("/abc"))
        .bearer_auth(&p.token)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let unknown = p
        .http
        .get(p.url("/9999"))
        .bearer_auth(&p.token)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let odd = p
        .http
        .post(p.url(&format!("/{tree}/signal")))
        .bearer_auth(&p.token)
        .json(&json!({"signal": "SIGSEGV"}))
        .send()
        .await
        .unwrap();
    assert_eq!(odd.status(), 400);

    // A read-only sandbox token sees processes but may not start or signal them.
    let read = daemon
        .client()
        .create_sandbox_token(&id, "read", None)
        .await
        .unwrap()
        .token;
    let reader = Procs { token: read, ..p };
    assert_eq!(reader.info(pid).await["pid"], pid);
    assert_eq!(reader.start("", json!({"cmd": ["true"]})).await.0, 403);
}

#[tokio::test]
async fn processes_over_grpc() {
    use airlock_proto::v1 as pb;
    use pb::process_selector::Selector as Which;
    use pb::run_response::Payload;

    let daemon = Daemon::start();
    let id = common::sandbox(&daemon.client()).await.id;
    let mut procs = pb::processes_client::ProcessesClient::with_interceptor(
        common::grpc::channel(&daemon).await,
        common::grpc::Bearer(daemon.token.clone()),
    );
    let by_tag = |tag: &str| {
        Some(pb::ProcessSelector {
            selector: Some(Which::Tag(tag.into())),
        })
    };
    // Started with stdin kept open; the start call hangs up after the first event.
    let mut started = procs
        .start(pb::StartProcessRequest {
            start: Some(pb::ExecStart {
                sandbox_id: id.clone(),
                cmd: vec!["cat".into()],
                ..Default::default()
            }),
            tag: Some("echo".into()),
            keep_stdin: true,
            stdin: bytes::Bytes::from_static(b"first "),
        })
        .await
        .unwrap()
        .into_inner();
    let first = started.message().await.unwrap().unwrap();
    let Some(Payload::Started(pb::ProcessStarted { pid })) = first.payload else {
        panic!("{first:?}")
    };
    drop(started);
    let listed = procs
        .list(pb::ListProcessesRequest {
            sandbox_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.processes[0].pid, pid);
    assert!(listed.processes[0].running);
    procs
        .send_input(pb::SendInputRequest {
            sandbox_id: id.clone(),
            process: by_tag("echo"),
            data: bytes::Bytes::from_static(b"second"),
            close: true,
        })
        .await
        .unwrap();
    let mut attached = procs
        .attach(pb::AttachProcessRequest {
            sandbox_id: id.clone(),
            process: by_tag("echo"),
            replay: true,
        })
        .await
        .unwrap()
        .into_inner();
    let (mut out, mut exit) = (Vec::new(), None);
    while let Some(event) = attached.message().await.unwrap() {
        match event.payload {
            Some(Payload::Stdout(b)) => out.extend_from_slice(&b),
            Some(Payload::Exit(e)) => exit = Some(e.exit_code),
            _ => {}
        }
    }
    assert_eq!(out, b"first second");
    assert_eq!(exit, Some(0));
    let unknown = procs
        .send_signal(pb::SendSignalRequest {
            sandbox_id: id.clone(),
            process: by_tag("nobody"),
            signal: "SIGTERM".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}
