//! The `airlock` CLI against a real daemon: every verb of this part, with and without --json.
#![allow(clippy::unwrap_used)]

mod common;

use common::Daemon;
use serde_json::Value;

fn json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn verbs_work_end_to_end() {
    let daemon = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("app.toml");
    std::fs::write(&config, "mode = \"ci\"\n").unwrap();
    let script = dir.path().join("run.sh");
    std::fs::write(&script, "#!/bin/sh\necho script ran\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let ro = format!("{}:/home/user/app.toml:ro", config.display());
    let exe = format!("{}:/workspace/run.sh", script.display());
    let made = json(&daemon.cli(&[
        "create",
        "--json",
        "--no-start",
        "--env",
        "MODE=test",
        "--memory",
        "256m",
        "--disk",
        "64m",
        "--label",
        "who=cli",
        "--file",
        &ro,
        "--file",
        &exe,
    ]));
    let id = made["id"].as_str().unwrap().to_owned();
    assert_eq!(made["state"], "created");
    assert_eq!(made["limits"]["memory_mb"], 256);
    assert_eq!(made["readonly_paths"][0], "/home/user/app.toml");

    let listed = json(&daemon.cli(&["ls", "--json"]));
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(text(&daemon.cli(&["ls"])).contains(&format!("{id}  host      created")));
    assert_eq!(
        json(&daemon.cli(&["start", &id, "--json"]))["state"],
        "running"
    );
    assert_eq!(json(&daemon.cli(&["inspect", &id]))["labels"]["who"], "cli");

    let run = daemon.cli(&[
        "exec",
        &id,
        "--",
        "sh",
        "-c",
        "cat app.toml; /workspace/run.sh; echo $MODE; echo to-stderr >&2; exit 7",
    ]);
    assert_eq!(
        run.status.code(),
        Some(7),
        "exec exits with the command's code"
    );
    assert_eq!(text(&run), "mode = \"ci\"\nscript ran\ntest\n");
    assert_eq!(String::from_utf8_lossy(&run.stderr), "to-stderr\n");
    let buffered = daemon.cli(&[
        "exec",
        &id,
        "--json",
        "--cwd",
        "/tmp",
        "--env",
        "X=1",
        "--",
        "sh",
        "-c",
        "echo $X $PWD",
    ]);
    assert_eq!(json(&buffered)["stdout"], "1 /tmp\n");
    let refused = daemon.cli(&["exec", &id, "--", "sh", "-c", "echo x > app.toml"]);
    assert_ne!(
        refused.status.code(),
        Some(0),
        "the read-only file stays read-only"
    );

    assert_eq!(
        json(&daemon.cli(&["stop", &id, "--json"]))["state"],
        "stopped"
    );
    let partial = daemon.cli(&["rm", "--json", &id, "000000000000"]);
    assert_eq!(partial.status.code(), Some(1), "one of the two failed");
    let removed: Value = serde_json::from_slice(&partial.stdout).unwrap();
    assert_eq!(removed[0]["deleted"], true);
    assert_eq!(removed[1]["deleted"], false);
    assert_eq!(daemon.cli(&["rm", "000000000000"]).status.code(), Some(1));
    let missing = daemon.cli(&["inspect", "000000000000"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no sandbox 000000000000"));
    let templates = json(&daemon.cli(&["template", "ls", "--json"]));
    assert_eq!(templates[0]["name"], "host");
}

#[test]
fn a_wrong_token_is_reported_plainly() {
    let daemon = Daemon::start();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["ls"])
        .env("AIRLOCK_URL", &daemon.url)
        .env("AIRLOCK_TOKEN", "wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("token is not valid"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_template_from_a_local_directory() {
    let daemon = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "cat", "id"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/motd"), "from the template\n").unwrap();
    let added = json(&daemon.cli(&[
        "template",
        "add",
        "--json",
        "tiny",
        rootfs.to_str().unwrap(),
    ]));
    assert_eq!(added["kind"], "rootfs");
    let id = text(&daemon.cli(&["create", "--template", "tiny"]))
        .trim()
        .to_owned();
    let run = daemon.cli(&["exec", &id, "--", "sh", "-c", "cat /etc/motd; id -u"]);
    assert_eq!(
        text(&run),
        "from the template\n1000\n",
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        !daemon.cli(&["template", "rm", "tiny"]).status.success(),
        "in use"
    );
    assert!(daemon.cli(&["rm", &id]).status.success());
    assert!(daemon.cli(&["template", "rm", "tiny"]).status.success());

    // The same root filesystem given as a tarball is streamed as it is.
    let tarball = dir.path().join("rootfs.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&tarball).unwrap());
    builder.follow_symlinks(false);
    builder.append_dir_all(".", &rootfs).unwrap();
    builder.finish().unwrap();
    drop(builder);
    let added = json(&daemon.cli(&[
        "template",
        "add",
        "--json",
        "tiny-tar",
        tarball.to_str().unwrap(),
    ]));
    assert_eq!(added["name"], "tiny-tar");
    let id = text(&daemon.cli(&["create", "--template", "tiny-tar"]))
        .trim()
        .to_owned();
    assert_eq!(
        text(&daemon.cli(&["exec", &id, "--", "cat", "/etc/motd"])),
        "from the template\n"
    );
}
