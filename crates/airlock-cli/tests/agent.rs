//! `airlock agent` as a real process: it serves a directory standing in for a pod's root
//! on a real port, the gateway's client reaches it there, and it refuses what it must.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["agent", "--listen", "127.0.0.1:0", "--root"])
        .arg(root)
        .arg("--secret-file")
        .arg(secret_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
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
