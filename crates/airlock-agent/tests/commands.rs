//! The agent's commands over a real socket: input in, both outputs and the exit code out,
//! signals, stopping everything, and a caller without the secret.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use airlock_agent::calls::Spawn;
use airlock_agent::commands_client::AgentCommands;
use airlock_fs::{Root, SandboxFs, SandboxPath};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "a-sandbox-secret";

async fn agent(dir: &Path, secret: &str) -> AgentCommands {
    let root: Arc<dyn SandboxFs> = Arc::new(Root::open(dir).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = airlock_agent::server::router(root, dir, SECRET);
    tokio::spawn(async move { axum::serve(listener, app).await });
    AgentCommands::new(&format!("http://{addr}"), secret)
}

fn sh(name: &str, script: &str, cwd: &str) -> Spawn {
    Spawn {
        name: name.into(),
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: vec![("GREETING".into(), "hi".into())],
        cwd: SandboxPath::parse(cwd).unwrap(),
        terminal: None,
    }
}

async fn all(mut r: impl tokio::io::AsyncRead + Unpin) -> String {
    let mut s = String::new();
    r.read_to_string(&mut s).await.unwrap();
    s
}

#[tokio::test]
async fn input_goes_in_and_both_outputs_and_the_exit_code_come_out() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("work")).unwrap();
    let agent = agent(dir.path(), SECRET).await;
    let script = "cat; echo \"$GREETING from $(basename \"$PWD\")\" >&2; exit 3";
    let child = agent.spawn(&sh("c1", script, "/work")).await.unwrap();
    let mut stdin = child.stdin.unwrap();
    stdin.write_all(b"some input\n").await.unwrap();
    stdin.shutdown().await.unwrap();
    drop(stdin);
    let (out, err) = tokio::join!(all(child.stdout.unwrap()), all(child.stderr.unwrap()));
    assert_eq!(out, "some input\n");
    assert_eq!(err, "hi from work\n");
    assert_eq!(child.handle.wait().await.unwrap(), 3);
    assert!(child.handle.has_ended());
    child.handle.finish().await.unwrap();
    assert!(
        child.handle.wait().await.is_err(),
        "a finished command is forgotten"
    );
}

#[tokio::test]
async fn a_signal_ends_a_command_and_stop_all_ends_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(dir.path(), SECRET).await;
    let child = agent.spawn(&sh("s", "exec sleep 30", "/")).await.unwrap();
    child.handle.signal(15).await.unwrap();
    assert_eq!(child.handle.wait().await.unwrap(), 128 + 15);
    assert!(child.handle.signal(15).await.is_err(), "an ended command");

    // A command that starts a grandchild and ignores SIGTERM: stop_all kills the group.
    let script = "trap '' TERM; sleep 30 & echo $!; wait";
    let child = agent.spawn(&sh("g", script, "/")).await.unwrap();
    let mut stdout = child.stdout.unwrap();
    let mut line = [0u8; 16];
    let n = stdout.read(&mut line).await.unwrap();
    let grandchild: i32 = std::str::from_utf8(&line[..n])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    agent.stop_all(Duration::from_millis(200)).await.unwrap();
    assert_eq!(child.handle.wait().await.unwrap(), 128 + 9);
    // A killed process may take a moment to become a zombie (or be reaped).
    let alive = || {
        std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
            .is_ok_and(|stat| !stat.contains(") Z ") && !stat.contains(") X "))
    };
    let started = std::time::Instant::now();
    while alive() && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(), "the grandchild was killed with its group");
}

#[tokio::test]
async fn a_missing_program_is_refused_and_a_wrong_secret_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let agent_ok = agent(dir.path(), SECRET).await;
    let mut missing = sh("m", "", "/");
    missing.argv = vec!["/no/such/program".into()];
    let err = agent_ok.spawn(&missing).await.err().unwrap();
    assert!(err.to_string().contains("/no/such/program"), "{err}");

    let intruder = agent(dir.path(), "not-the-secret-at-all").await;
    let marker = dir.path().join("ran");
    let script = format!("touch {}", marker.display());
    let err = intruder.spawn(&sh("x", &script, "/")).await.err().unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(!intruder.alive(Duration::from_secs(1)).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!marker.exists());
}

#[tokio::test]
async fn a_command_with_a_terminal_reads_types_and_is_resized() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(dir.path(), SECRET).await;
    let mut spawn = sh(
        "t",
        "stty size; read line; stty size; echo \"got $line\"",
        "/",
    );
    spawn.terminal = Some((80, 24));
    let child = agent.spawn(&spawn).await.unwrap();
    assert!(child.stdin.is_none() && child.stdout.is_none());
    let terminal = child.terminal.unwrap();
    let mut output = terminal.output();
    let mut seen = String::new();
    let mut chunk = [0u8; 256];
    while !seen.contains("24 80") {
        let n = output.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the terminal ended early: {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
    terminal.resize(100, 30).await.unwrap();
    let mut input = terminal.input();
    input.write_all(b"hello\r").await.unwrap();
    input.flush().await.unwrap();
    let mut rest = String::new();
    output.read_to_string(&mut rest).await.unwrap();
    assert!(rest.contains("30 100"), "{rest:?}");
    assert!(rest.contains("got hello"), "{rest:?}");
    assert_eq!(child.handle.wait().await.unwrap(), 0);
}
