//! `airlock agent` as a real process: it serves a directory standing in for a pod's root
//! on a real port, the gateway's client reaches it there, and it refuses what it must.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};

use airlock_agent::client::RemoteFs;
use airlock_fs::{FileOwner, FsErrorKind, SandboxFs, SandboxPath, WriteOptions};

/// A running agent and the address it printed.
struct Agent {
    child: Child,
    addr: String,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(root: &std::path::Path, secret_file: &std::path::Path) -> Agent {
    start_with(root, secret_file, &[])
}

fn start_with(root: &std::path::Path, secret_file: &std::path::Path, extra: &[&str]) -> Agent {
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["agent", "--listen", "127.0.0.1:0", "--root"])
        .arg(root)
        .arg("--secret-file")
        .arg(secret_file)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let line = common::first_line(&mut child);
    Agent {
        child,
        addr: line.trim().to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_process_serves_its_root_to_the_holder_of_its_secret() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "0123456789abcdef-secret\n").unwrap();
    let agent = start(&root, &secret_file);
    let url = format!("http://{}", agent.addr);
    let fs = RemoteFs::new(
        &url,
        "0123456789abcdef-secret",
        tokio::runtime::Handle::current(),
    );
    let stranger = RemoteFs::new(
        &url,
        "0123456789abcdef-wrong",
        tokio::runtime::Handle::current(),
    );
    tokio::task::spawn_blocking(move || {
        let path = SandboxPath::parse("/workspace/hello.txt").unwrap();
        let opts = WriteOptions::new(0o644, FileOwner::SANDBOX_USER);
        fs.write_file(&path, &mut &b"hello from the gateway"[..], opts)
            .unwrap();
        let (mut file, entry) = fs.open_read(&path).unwrap();
        assert_eq!(entry.size, 22);
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello from the gateway");
        let refused = stranger.stat(&path).unwrap_err();
        assert_eq!(refused.kind(), FsErrorKind::Io);
    })
    .await
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("workspace/hello.txt")).unwrap(),
        "hello from the gateway"
    );
}

#[test]
fn the_agent_refuses_to_start_with_a_short_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "short").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["agent", "--listen", "127.0.0.1:0", "--root"])
        .arg(dir.path())
        .arg("--secret-file")
        .arg(&secret_file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("at least 16 bytes"), "{said}");
}

/// A workload container: `sleep`, chrooted into `root` in a mount namespace of its own,
/// with the host's `/usr` and `/etc` read-only there in place of an image.
const WORKLOAD: &str = r#"
set -e
root="$1"
for dir in bin lib lib64 sbin; do
  if [ -L "/$dir" ]; then ln -sfn "$(readlink "/$dir")" "$root/$dir"; fi
done
for dir in usr etc; do
  mkdir -p "$root/$dir"
  mount --bind "/$dir" "$root/$dir"
  mount -o remount,bind,ro "$root/$dir"
done
exec chroot "$root" sleep 300
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_a_sidecar_the_agent_serves_another_containers_root_and_runs_commands_in_it() {
    use airlock_agent::calls::Spawn;
    use airlock_agent::commands_client::AgentCommands;
    use tokio::io::AsyncReadExt;

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("workload");
    std::fs::create_dir_all(root.join("workspace")).unwrap();
    std::fs::write(root.join("only-in-the-workload"), "the workload's own").unwrap();
    let mut workload = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            WORKLOAD,
            "pod",
        ])
        .arg(&root)
        .spawn()
        .unwrap();
    let pid = workload.id();
    let started = std::time::Instant::now();
    while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default() != "sleep\n" {
        assert!(
            started.elapsed().as_secs() < 10,
            "the workload did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // The sidecar: not in the workload's mount namespace, serving its root through /proc.
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "0123456789abcdef-secret").unwrap();
    let workload_root = std::path::PathBuf::from(format!("/proc/{pid}/root"));
    let agent = start_with(&workload_root, &secret_file, &["--chroot"]);
    let url = format!("http://{}", agent.addr);
    let fs = RemoteFs::new(
        &url,
        "0123456789abcdef-secret",
        tokio::runtime::Handle::current(),
    );
    tokio::task::spawn_blocking(move || {
        let path = SandboxPath::parse("/workspace/from-the-gateway.txt").unwrap();
        let opts = WriteOptions::new(0o644, FileOwner::SANDBOX_USER);
        fs.write_file(&path, &mut &b"through the sidecar"[..], opts)
            .unwrap();
        // The workload's mounts are seen through its root: /usr is there.
        let usr = SandboxPath::parse("/usr/bin").unwrap();
        assert!(fs.stat(&usr).is_ok());
    })
    .await
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("workspace/from-the-gateway.txt")).unwrap(),
        "through the sidecar"
    );

    // A command runs in the workload's root, not the sidecar's.
    let commands = AgentCommands::new(&url, "0123456789abcdef-secret");
    let spawn = Spawn {
        name: "c".into(),
        argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            "cat /only-in-the-workload; pwd".into(),
        ],
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        cwd: SandboxPath::parse("/workspace").unwrap(),
        terminal: None,
    };
    let child = commands.spawn(&spawn).await.unwrap();
    drop(child.stdin);
    let mut out = String::new();
    child
        .stdout
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    assert_eq!(out, "the workload's own/workspace\n");
    assert_eq!(child.handle.wait().await.unwrap(), 0);
    drop(agent);
    let _ = workload.kill();
    let _ = workload.wait();
}

/// In a pod the agent is the container's first process, and the kernel drops any signal
/// such a process has no handler for: the kubelet's SIGTERM must still end it, at once
/// and cleanly, or every deleted sandbox pod lingers until the SIGKILL that follows the
/// grace period. Started here as the first process of a new PID namespace, as in a pod.
#[test]
fn the_agent_as_a_pods_first_process_ends_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "0123456789abcdef-secret\n").unwrap();
    let mut unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child"])
        .arg(env!("CARGO_BIN_EXE_airlock"))
        .args(["agent", "--listen", "127.0.0.1:0", "--root"])
        .arg(dir.path())
        .arg("--secret-file")
        .arg(&secret_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Listening: its handlers are in place.
    assert!(!common::first_line(&mut unshare).trim().is_empty());
    let agent = common::children_of(unshare.id() as i32)[0];
    // SAFETY: a plain signal to a process this test started.
    unsafe { libc::kill(agent, libc::SIGTERM) };
    let Some(status) = common::exited_within(&mut unshare, std::time::Duration::from_secs(10))
    else {
        let _ = unshare.kill();
        let _ = unshare.wait();
        panic!("the agent ignored SIGTERM as a PID namespace's first process");
    };
    assert!(status.success(), "the agent ended with {status}");
}
