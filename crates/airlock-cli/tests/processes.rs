//! Processes that outlive their request: started in the background, listed, reconnected
//! to with their buffered output, fed stdin, signalled and killed with their whole tree,
//! on REST and gRPC; the daemon never blocks on a listener that went away. A process may
//! run on a terminal instead of pipes: typed at, resized, its outputs merged.
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

impl<'d> Procs<'d> {
    /// A new sandbox, reached with the daemon's token.
    async fn new(daemon: &'d Daemon) -> Self {
        Procs {
            daemon,
            id: common::sandbox(&daemon.client()).await.id,
            token: daemon.token.clone(),
            http: reqwest::Client::new(),
        }
    }

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

    /// Sends a named signal; the answer's status.
    async fn signal(&self, pid: u64, signal: &str) -> u16 {
        let r = self
            .http
            .post(self.url(&format!("/{pid}/signal")))
            .bearer_auth(&self.token)
            .json(&json!({ "signal": signal }))
            .send();
        r.await.unwrap().status().as_u16()
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

    async fn info_by_tag(&self, tag: &str) -> Value {
        let r = self
            .http
            .get(self.url(&format!("?tag={tag}")))
            .bearer_auth(&self.token)
            .send();
        let listed: Value = r.await.unwrap().json().await.unwrap();
        listed[0].clone()
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

type GrpcProcesses = airlock_proto::v1::processes_client::ProcessesClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        common::grpc::Bearer,
    >,
>;

/// A new sandbox and a gRPC Processes client with the daemon's token.
async fn grpc_processes(daemon: &Daemon) -> (String, GrpcProcesses) {
    let id = common::sandbox(&daemon.client()).await.id;
    let procs = airlock_proto::v1::processes_client::ProcessesClient::with_interceptor(
        common::grpc::channel(daemon).await,
        common::grpc::Bearer(daemon.token.clone()),
    );
    (id, procs)
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
    let p = Procs::new(&daemon).await;
    let id = p.id.clone();

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
    assert_eq!(p.signal(sleeper, "SIGTERM").await, 204);
    assert_eq!(p.wait_ended(sleeper).await["exit_code"], 143);
    // The signal reaches the command itself, which may handle it: a server shuts down
    // cleanly and its own exit code comes back.
    let (_, trapper) = p
        .start(
            "",
            json!({"shell": "trap 'echo cleaned up; exit 7' TERM; echo ready; while :; do sleep 0.05; done"}),
        )
        .await;
    let trapper = trapper["pid"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(p.signal(trapper, "SIGTERM").await, 204);
    assert_eq!(p.wait_ended(trapper).await["exit_code"], 7);
    assert_eq!(
        stdout(&p.events(trapper, true).await),
        "ready\ncleaned up\n"
    );
    // SIGSTOP pauses the command's whole tree and SIGCONT resumes it.
    let (_, paused) = p.start("", json!({"shell": "sleep 100 & wait"})).await;
    let paused = paused["pid"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let states = "ps -o stat= -C sleep | cut -c1 | tr -d '\\n'";
    for (signal, want) in [("SIGSTOP", "T"), ("SIGCONT", "S")] {
        assert_eq!(p.signal(paused, signal).await, 204);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let seen = common::sh(&daemon.client(), &id, states).await.stdout;
        assert_eq!(seen, want, "after {signal}");
    }
    let killed = p
        .http
        .delete(p.url(&format!("/{paused}")))
        .bearer_auth(&p.token)
        .send();
    assert_eq!(killed.await.unwrap().status(), 204);
    assert_eq!(p.wait_ended(paused).await["exit_code"], 137);
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
    // Live ones only: a killed child may still be a zombie until the sandbox's init reaps
    // it, and a command started right after the kill can see that.
    let live_sleeps = "ps -eo stat=,comm= | awk '$2 == \"sleep\" && $1 !~ /^Z/' | wc -l";
    let left = common::sh(&daemon.client(), &id, live_sleeps).await;
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
    assert_eq!(p.signal(tree, "SIGSEGV").await, 400);

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
    let (id, mut procs) = grpc_processes(&daemon).await;
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
            terminal: None,
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

#[tokio::test]
async fn a_process_can_run_on_a_terminal() {
    let daemon = Daemon::start();
    let p = Procs::new(&daemon).await;
    let script = "test -t 0 && test -t 1 && echo on-a-tty; echo to-stderr >&2; stty size; \
                  read line; stty size; echo \"got $line\"; exit 4";
    let mut answer = p
        .http
        .post(p.url("?terminal=80x24&stream=true&tag=term"))
        .bearer_auth(&p.token)
        .json(&json!({"shell": script}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let mut seen = String::new();
    common::read_until(&mut answer, &mut seen, "24 80").await;
    assert!(
        seen.contains("on-a-tty") && seen.contains("to-stderr"),
        "{seen}"
    );
    let pid = p.info_by_tag("term").await["pid"].as_u64().unwrap();
    assert_eq!(
        p.info(pid).await["terminal"],
        json!({"cols": 80, "rows": 24})
    );
    // Resized: the program sees the new size; the listing shows it.
    let resize = |body: Value| {
        p.http
            .post(p.url(&format!("/{pid}/resize")))
            .bearer_auth(&p.token)
            .json(&body)
            .send()
    };
    assert_eq!(
        resize(json!({"cols": 132, "rows": 50}))
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        p.info(pid).await["terminal"],
        json!({"cols": 132, "rows": 50})
    );
    for bad in [
        json!({"cols": 0, "rows": 5}),
        json!({"cols": 5000, "rows": 5}),
        json!({"cols": 5}),
    ] {
        assert_eq!(resize(bad.clone()).await.unwrap().status(), 400, "{bad}");
    }
    // A terminal's input has no end to close: Ctrl-D is the user's to type.
    assert_eq!(
        p.post(&format!("/{pid}/stdin?close=true"), "".into()).await,
        400
    );
    assert_eq!(
        p.post(&format!("/{pid}/stdin"), "typed\n".into()).await,
        204
    );
    common::read_until(&mut answer, &mut seen, "got typed").await;
    assert!(seen.contains("50 132"), "{seen}");
    assert_eq!(p.wait_ended(pid).await["exit_code"], 4);
    // Once it ended, its terminal is closed: nothing to resize.
    let gone = resize(json!({"cols": 10, "rows": 10})).await.unwrap();
    assert_eq!(gone.status(), 409);

    // The terminal is a descriptor, not a way out: the sandbox has no /dev/pts and no
    // /dev/ptmx, so no other terminal (another sandbox's, the host's) can be opened;
    // /dev/tty is the process's own.
    let probe = "ls /dev/pts 2>&1 || true; test -e /dev/ptmx || echo no-ptmx; \
                 echo via-dev-tty > /dev/tty; echo probed";
    let mut answer = p
        .http
        .post(p.url("?terminal=80x24&stream=true"))
        .bearer_auth(&p.token)
        .json(&json!({"shell": probe}))
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    common::read_until(&mut answer, &mut seen, "probed").await;
    assert!(seen.contains("No such file"), "{seen}");
    assert!(
        seen.contains("no-ptmx") && seen.contains("via-dev-tty"),
        "{seen}"
    );

    // Refused: a size that is not COLSxROWS, too large, and resizing a piped process.
    for query in [
        "?terminal=80",
        "?terminal=axb",
        "?terminal=0x24",
        "?terminal=80x99999",
    ] {
        let (status, body) = p.start(query, json!({"shell": "true"})).await;
        assert_eq!(status, 400, "{query}: {body}");
    }
    let (_, piped) = p.start("", json!({"shell": "sleep 5"})).await;
    let piped = piped["pid"].as_u64().unwrap();
    let status = p
        .http
        .post(p.url(&format!("/{piped}/resize")))
        .bearer_auth(&p.token)
        .json(&json!({"cols": 10, "rows": 10}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 400);
    assert!(p.info(piped).await.get("terminal").is_none());
}

#[tokio::test]
async fn terminals_over_grpc() {
    use airlock_proto::v1 as pb;
    use pb::run_response::Payload;

    let daemon = Daemon::start();
    let (id, mut procs) = grpc_processes(&daemon).await;
    let mut started = procs
        .start(pb::StartProcessRequest {
            start: Some(pb::ExecStart {
                sandbox_id: id.clone(),
                shell: Some("stty size; read x; stty size".into()),
                ..Default::default()
            }),
            terminal: Some(pb::TerminalSize { cols: 90, rows: 20 }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut out = String::new();
    let mut pid = 0;
    let mut resized = false;
    let mut exit = None;
    while let Some(event) = started.message().await.unwrap() {
        match event.payload {
            Some(Payload::Started(s)) => pid = s.pid,
            Some(Payload::Stdout(b)) => out.push_str(&String::from_utf8_lossy(&b)),
            Some(Payload::Exit(e)) => exit = Some(e.exit_code),
            _ => {}
        }
        if out.contains("20 90") && !resized {
            resized = true;
            let process = Some(pb::ProcessSelector {
                selector: Some(pb::process_selector::Selector::Pid(pid)),
            });
            procs
                .resize(pb::ResizeRequest {
                    sandbox_id: id.clone(),
                    process: process.clone(),
                    size: Some(pb::TerminalSize { cols: 70, rows: 10 }),
                })
                .await
                .unwrap();
            procs
                .send_input(pb::SendInputRequest {
                    sandbox_id: id.clone(),
                    process,
                    data: bytes::Bytes::from_static(b"\n"),
                    close: false,
                })
                .await
                .unwrap();
        }
    }
    assert!(out.contains("10 70"), "{out:?}");
    assert_eq!(exit, Some(0));
    let too_big = procs
        .resize(pb::ResizeRequest {
            sandbox_id: id.clone(),
            process: Some(pb::ProcessSelector {
                selector: Some(pb::process_selector::Selector::Pid(pid)),
            }),
            size: Some(pb::TerminalSize {
                cols: 1 << 20,
                rows: 10,
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(too_big.code(), tonic::Code::InvalidArgument);
}
