//! Exec over REST: argv and shell forms, environment, cwd, stdin, binary output, exit
//! codes, streaming, and timeouts that kill the whole process tree.
#![allow(clippy::unwrap_used)]

mod common;

use airlock_api::{ErrorCode, ExecEvent, ExecRequest};
use base64::Engine as _;
use common::{Daemon, sandbox, sh};
use futures_util::StreamExt;

#[tokio::test]
async fn argv_env_cwd_stdin_and_exit_codes() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = sandbox(&client).await.id;

    let argv = ExecRequest {
        cmd: Some(vec![
            "printf".into(),
            "%s|".into(),
            "a b".into(),
            "$HOME".into(),
        ]),
        ..Default::default()
    };
    assert_eq!(
        client.exec(&id, &argv).await.unwrap().stdout,
        "a b|$HOME|",
        "argv is not split or expanded"
    );

    let mut req = ExecRequest {
        shell: Some("pwd; echo $HOME $USER $X; cat".into()),
        ..Default::default()
    };
    req.env.insert("X".into(), "from-request".into());
    req.cwd = Some("/tmp".into());
    req.stdin = Some("piped in".into());
    let out = client.exec(&id, &req).await.unwrap();
    assert_eq!(out.stdout, "/tmp\n/home/user user from-request\npiped in");

    let failing = sh(&client, &id, "echo oops >&2; exit 3").await;
    assert_eq!((failing.exit_code, failing.stderr.as_str()), (3, "oops\n"));
    let missing = client
        .exec(
            &id,
            &ExecRequest {
                cmd: Some(vec!["no-such-program".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(missing.exit_code, 127);
    assert!(missing.stderr.contains("not found"), "{}", missing.stderr);
    let killed = sh(&client, &id, "kill -9 $$").await;
    assert_eq!(killed.exit_code, 137, "death by signal N reports 128+N");
    let bad_cwd = client
        .exec(
            &id,
            &ExecRequest {
                cmd: Some(vec!["true".into()]),
                cwd: Some("/nope".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_ne!(bad_cwd.exit_code, 0);
    assert!(bad_cwd.stderr.contains("/nope"), "{}", bad_cwd.stderr);
}

#[tokio::test]
async fn binary_output_and_input_are_exact() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = sandbox(&client).await.id;
    let bytes: Vec<u8> = (0..=255u8).rev().collect();
    let req = ExecRequest {
        cmd: Some(vec!["cat".into()]),
        stdin_b64: Some(base64::engine::general_purpose::STANDARD.encode(&bytes)),
        ..Default::default()
    };
    let out = client.exec(&id, &req).await.unwrap();
    assert!(
        out.stdout_b64.is_some(),
        "non-UTF-8 output is also given exactly"
    );
    assert_eq!(out.stdout_bytes(), bytes);
}

#[tokio::test]
async fn streamed_events_arrive_before_the_command_ends() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = sandbox(&client).await.id;
    let req = ExecRequest {
        shell: Some("echo first; sleep 30; echo never".into()),
        timeout_ms: Some(60_000),
        ..Default::default()
    };
    let mut events = Box::pin(client.exec_stream(&id, &req).await.unwrap());
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), events.next()).await;
    let Ok(Some(Ok(ExecEvent::Stdout(chunk)))) = first else {
        panic!("no live output: {first:?}")
    };
    assert_eq!(chunk.bytes(), b"first\n");
    drop(events);
    // Hanging up on the stream ends the command.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sh(&client, &id, "pgrep -x sleep || true")
        .await
        .stdout
        .trim()
        != ""
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the abandoned command kept running"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let req = ExecRequest {
        shell: Some("echo out; echo err >&2; exit 4".into()),
        ..Default::default()
    };
    let events: Vec<ExecEvent> = client
        .exec_stream(&id, &req)
        .await
        .unwrap()
        .map(|e| e.unwrap())
        .collect()
        .await;
    assert_eq!(
        events.last(),
        Some(&ExecEvent::Exit {
            exit_code: 4,
            timed_out: false
        })
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ExecEvent::Stderr(c) if c.bytes() == b"err\n"))
    );
}

#[tokio::test]
async fn timeout_kills_the_whole_tree() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = sandbox(&client).await.id;
    // A background child, and a grandchild that escapes into its own session.
    let req = ExecRequest {
        shell: Some("sleep 101 & (setsid sleep 102 &); sleep 103".into()),
        timeout_ms: Some(500),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let out = client.exec(&id, &req).await.unwrap();
    assert!(out.timed_out);
    assert_eq!(out.exit_code, 124);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let left = sh(&client, &id, "pgrep -a sleep || true").await.stdout;
    assert_eq!(left, "", "every process of the timed-out command is gone");
}

#[tokio::test]
async fn exec_on_missing_or_stopped_sandboxes_is_refused() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let req = ExecRequest {
        shell: Some("true".into()),
        ..Default::default()
    };
    assert_eq!(
        client.exec("000000000000", &req).await.unwrap_err().code(),
        Some(ErrorCode::NotFound)
    );
    let id = sandbox(&client).await.id;
    client.stop(&id).await.unwrap();
    assert_eq!(
        client.exec(&id, &req).await.unwrap_err().code(),
        Some(ErrorCode::Conflict)
    );
}

/// A command starts as a program expects: no signal blocked, SIGPIPE at its default (a
/// writer into a closed pipe dies quietly instead of failing with EPIPE).
#[tokio::test]
async fn commands_start_with_default_signals() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = sandbox(&client).await.id;
    let out = sh(
        &client,
        &id,
        "grep '^SigBlk' /proc/self/status; yes | head -c 2 >/dev/null; echo yes-ended",
    )
    .await;
    assert_eq!(
        out.stdout, "SigBlk:\t0000000000000000\nyes-ended\n",
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr, "", "yes dies of SIGPIPE without a word");
}

/// How many exec leaves (cgroups) sandbox `id` has in `daemon`'s pids hierarchy.
fn exec_leaves(daemon: &Daemon, id: &str) -> usize {
    let node = common::census::instance_cgroup(daemon, "pids").join(id);
    std::fs::read_dir(node)
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("exec-"))
        .count()
}

/// A command runs in the cgroup leaf an ended one left empty, and never in one that a
/// process left behind still holds: a command killed at its timeout takes its leaf's
/// processes with it, and must not take another command's.
#[tokio::test]
async fn command_leaves_are_reused_only_when_empty() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = sandbox(&client).await.id;
    for _ in 0..8 {
        assert_eq!(sh(&client, &id, "true").await.exit_code, 0);
    }
    // One leaf, or two where a command began before the last one's leaf was handed back;
    // eight if none were reused, none if every one were removed.
    let leaves = exec_leaves(&daemon, &id);
    assert!(
        (1..=2).contains(&leaves),
        "{leaves} leaves after 8 commands in a row"
    );

    let left = sh(&client, &id, "sleep 301 >/dev/null 2>&1 & echo started").await;
    assert_eq!(left.stdout, "started\n");
    let req = ExecRequest {
        shell: Some("sleep 302".into()),
        timeout_ms: Some(300),
        ..Default::default()
    };
    assert!(client.exec(&id, &req).await.unwrap().timed_out);
    let sleeping = sh(&client, &id, "pgrep -a sleep || true").await.stdout;
    assert_eq!(
        sleeping.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["sleep", "301"],
        "the timed-out command killed its own tree and nothing else"
    );
}
