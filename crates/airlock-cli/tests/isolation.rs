//! What a sandboxed process can and cannot see or do: its own user, namespaces, and
//! filesystem; no host secrets, host processes, network, capabilities or dangerous
//! syscalls; Landlock on writes.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Daemon, sandbox, sh};

#[tokio::test]
async fn runs_as_user_with_its_own_home() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = sandbox(&client).await.id;
    let out = sh(
        &client,
        &id,
        "id; echo $HOME; pwd; hostname; ls -ld /home/user /workspace /tmp | cut -d' ' -f1,3",
    )
    .await;
    let expected = format!(
        "uid=1000(user) gid=1000(user) groups=1000(user)\n/home/user\n/home/user\nsandbox-{id}\ndrwxr-x--- user\ndrwxrwxrwt root\ndrwxr-xr-x user\n"
    );
    assert_eq!(out.stdout, expected);
    let tools = sh(&client, &id, "sh -c 'echo sh' && python3 -c 'print(\"py\")' && perl -e 'print qq(pl\\n)' && ls / >/dev/null && echo coreutils").await;
    assert_eq!(tools.stdout, "sh\npy\npl\ncoreutils\n", "{}", tools.stderr);
}

#[tokio::test]
async fn host_files_are_invisible() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = sandbox(&client).await.id;
    // A host sentinel in a place the sandbox has a path for: it must see its own /tmp.
    let sentinel = format!("/tmp/airlock-host-sentinel-{id}");
    std::fs::write(&sentinel, "host secret").unwrap();
    let home = daemon.home();
    let probe = format!(
        "cat {sentinel} 2>&1; ls /root 2>&1; ls {home} 2>&1; cat {home}/token 2>&1; ls /var/lib 2>&1; ls /home; cat /etc/hostname",
        home = home.display()
    );
    let out = sh(&client, &id, &probe).await.stdout;
    std::fs::remove_file(&sentinel).unwrap();
    assert!(!out.contains("host secret"), "{out}");
    assert!(
        !out.contains(&daemon.token),
        "the token must never be readable"
    );
    assert!(out.contains("/root': Permission denied"), "{out}");
    assert!(
        out.contains(&format!("{}': No such file or directory", home.display())),
        "{out}"
    );
    assert!(
        out.contains("/var/lib': No such file or directory"),
        "{out}"
    );
    assert!(
        out.ends_with(&format!("user\nsandbox-{id}\n")),
        "only the sandbox user's home: {out}"
    );
    let system = sh(
        &client,
        &id,
        "echo x > /usr/bin/evil; echo x > /etc/passwd; touch /bin/evil",
    )
    .await;
    assert_eq!(
        system.stderr.matches("Read-only file system").count()
            + system.stderr.matches("Permission denied").count(),
        3,
        "{}",
        system.stderr
    );
}

#[tokio::test]
async fn host_processes_and_network_are_invisible() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = sandbox(&client).await.id;
    let pids = sh(
        &client,
        &id,
        "ls /proc | grep -E '^[0-9]+$' | sort -n | head -1; ps -e --no-headers | wc -l",
    )
    .await
    .stdout;
    let mut lines = pids.lines();
    assert_eq!(lines.next(), Some("1"), "its own pid namespace starts at 1");
    let count: usize = lines.next().unwrap().trim().parse().unwrap();
    assert!(
        count < 10,
        "only the sandbox's processes are visible, saw {count}"
    );
    assert_eq!(
        sh(&client, &id, "cat /proc/1/comm").await.stdout,
        "airlock-init\n",
        "pid 1 is the sandbox's init"
    );
    // Host kernel state in /proc is masked (a /dev/null bind) or read-only.
    let masked = sh(
        &client,
        &id,
        "for f in /proc/kcore /proc/keys /proc/timer_list /proc/kallsyms; do [ -e $f ] && stat -c %F $f; done | sort -u; grep -c ' /proc/sys .*ro,' /proc/self/mountinfo",
    )
    .await
    .stdout;
    assert_eq!(masked, "character special file\n1\n");

    let interfaces = sh(
        &client,
        &id,
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '",
    )
    .await
    .stdout;
    assert_eq!(interfaces, "lo\n", "loopback only");
    let port = daemon.url.rsplit(':').next().unwrap();
    let connect = format!(
        "python3 -c 'import socket\ns=socket.socket(); s.settimeout(2)\ntry:\n  s.connect((\"127.0.0.1\", {port})); print(\"reached\")\nexcept OSError as e: print(\"refused\", e.errno)'"
    );
    assert_eq!(
        sh(&client, &id, &connect)
            .await
            .stdout
            .split_whitespace()
            .next(),
        Some("refused"),
        "the daemon's port is out of reach"
    );
    let outside = sh(&client, &id, "python3 -c 'import socket; socket.create_connection((\"10.0.0.1\", 80), timeout=2)' 2>&1 | tail -1").await.stdout;
    assert!(outside.contains("unreachable"), "no route out: {outside}");
    let own_loopback = sh(&client, &id, "python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 8080)); s.listen(); print(\"ok\")'").await.stdout;
    assert_eq!(
        own_loopback, "ok\n",
        "a sandbox may serve on its own loopback"
    );
}

#[tokio::test]
async fn no_privileges_and_dangerous_syscalls_denied() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = sandbox(&client).await.id;
    let status = sh(&client, &id, "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t ' ' '").await.stdout;
    assert_eq!(
        status,
        "CapInh: 0000000000000000\nCapPrm: 0000000000000000\nCapEff: 0000000000000000\nCapBnd: 0000000000000000\nCapAmb: 0000000000000000\nNoNewPrivs: 1\nSeccomp: 2\n"
    );
    // Each attempt prints its errno name; none may succeed.
    let probe = r#"python3 - <<'EOF'
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def attempt(name, call):
    r = call()
    print(name, "succeeded" if r == 0 else os.strerror(ctypes.get_errno()))
attempt("mount", lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
attempt("unshare-user", lambda: libc.unshare(0x10000000))
attempt("ptrace", lambda: libc.ptrace(16, 1, 0, 0))
attempt("bpf", lambda: libc.syscall(321, 0, 0, 0))
attempt("keyctl", lambda: libc.syscall(250, 0, 0, 0, 0, 0))
attempt("init_module", lambda: libc.syscall(175, 0, 0, b""))
attempt("setns", lambda: libc.setns(0, 0))
attempt("open_by_handle_at", lambda: libc.syscall(304, 0, 0, 0))
EOF"#;
    let out = sh(&client, &id, probe).await;
    assert!(!out.stdout.contains("succeeded"), "{}", out.stdout);
    assert_eq!(out.stdout.lines().count(), 8, "{out:?}");
    let clone = sh(
        &client,
        &id,
        "unshare --user true 2>&1; unshare --map-root-user true 2>&1",
    )
    .await
    .stdout;
    assert_eq!(
        clone.matches("Operation not permitted").count(),
        2,
        "{clone}"
    );
    let threads = sh(&client, &id, "python3 -c 'import threading; t=threading.Thread(target=print, args=(\"thread ok\",)); t.start(); t.join()'").await;
    assert_eq!(
        threads.stdout, "thread ok\n",
        "threads still work under the clone3 rule: {}",
        threads.stderr
    );
}

#[tokio::test]
async fn commands_inherit_only_their_stdio_even_when_started_together() {
    // The daemon hands each helper its spec and the init's pidfd as inheritable
    // descriptors, which a helper spawned at the same moment inherits too: whatever a
    // helper was given or caught must be closed before its command runs.
    let daemon = Daemon::start();
    let client = daemon.client();
    let ids = [sandbox(&client).await.id, sandbox(&client).await.id];
    let runs = (0..24).map(|i| {
        let client = client.clone();
        let id = ids[i % 2].clone();
        async move { sh(&client, &id, "ls /proc/self/fd").await }
    });
    for out in futures_util::future::join_all(runs).await {
        // 3 is `ls`'s own handle on the directory it lists.
        assert_eq!(out.stdout, "0\n1\n2\n3\n", "{out:?}");
    }
}

#[tokio::test]
async fn landlock_limits_writes_to_the_sandbox_users_directories() {
    let daemon = Daemon::start();
    let client = daemon.client();
    // A file the sandbox user owns outside its writable directories: Unix permissions
    // would let it write; Landlock must not.
    let mut req = airlock_api::CreateSandbox::default();
    req.files.push(airlock_api::InjectedFile {
        path: "/etc/app.conf".into(),
        content: Some("v1\n".into()),
        content_b64: None,
        mode: None,
        readonly: false,
    });
    let id = client.create(&req).await.unwrap().id;
    let out = sh(&client, &id, "ls -l /etc/app.conf | cut -d' ' -f3; echo v2 > /etc/app.conf; cat /etc/app.conf; for d in /home/user /tmp /workspace /dev/shm; do echo ok > $d/w && echo $d; done").await;
    assert_eq!(
        out.stdout, "user\nv1\n/home/user\n/tmp\n/workspace\n/dev/shm\n",
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Permission denied"), "{}", out.stderr);
}

/// The hierarchy that makes cgroup moves fast is the daemon's alone: mounted in its
/// private namespace, never in the host's mount table, never inside a sandbox; and
/// `--slow-cgroup-moves` leaves it out.
#[tokio::test]
async fn the_fast_moves_hierarchy_stays_in_the_daemons_namespace() {
    let mounted_in = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
            .unwrap()
            .lines()
            .any(|line| line.contains("name=airlock-moves"))
    };
    let daemon = Daemon::start();
    assert!(mounted_in(&daemon.pid().to_string()), "the daemon has it");
    assert!(!mounted_in("self"), "the host's mount table does not");
    let client = daemon.client();
    let id = sandbox(&client).await.id;
    let inside = sh(&client, &id, "grep -c airlock-moves /proc/self/mountinfo").await;
    assert_eq!(
        inside.stdout, "0\n",
        "a sandbox does not: {}",
        inside.stderr
    );

    let slow = Daemon::start_with(&["--slow-cgroup-moves"]);
    let table = std::fs::read_to_string(format!("/proc/{}/mountinfo", slow.pid())).unwrap();
    assert!(
        !table.contains("name=airlock-moves"),
        "--slow-cgroup-moves mounts nothing"
    );
}
