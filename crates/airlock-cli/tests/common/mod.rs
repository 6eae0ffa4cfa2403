//! A real daemon for end-to-end tests: the `airlock` binary started as `airlock serve`
//! on a free loopback port with its own temporary home, stopped when the test ends.
#![allow(dead_code, clippy::unwrap_used)]

pub mod census;
pub mod fake_kube;
pub mod files;
pub mod grpc;
pub mod metrics;
pub mod raw_body;
pub mod tus;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use airlock_api::{CreateSandbox, ExecRequest, ExecResult, Sandbox};
use airlock_client::Client;

/// How long a daemon may take to answer /healthz after it starts.
const STARTUP: Duration = Duration::from_secs(30);
/// A daemon still running this long after it started is printed with its log, so a test
/// that hangs until the runner's timeout (300 s) still shows what the daemon was doing.
const HANG_REPORT: Duration = Duration::from_secs(240);

pub struct Daemon {
    child: Option<Child>,
    /// The `airlock` binary it runs.
    binary: PathBuf,
    /// Extra `airlock serve` flags.
    flags: Vec<String>,
    dir: tempfile::TempDir,
    pub url: String,
    pub token: String,
    /// Dropped with the daemon; its hang reporter stops when this is gone.
    alive: std::sync::Arc<()>,
}

impl Daemon {
    /// Starts a daemon with a fresh home.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a daemon with a fresh home and extra `airlock serve` flags.
    pub fn start_with(flags: &[&str]) -> Self {
        Self::start_binary(Path::new(env!("CARGO_BIN_EXE_airlock")), flags)
    }

    /// Starts `binary` (an `airlock`) as a daemon with a fresh home.
    pub fn start_binary(binary: &Path, flags: &[&str]) -> Self {
        assert!(
            rustix_is_root(),
            "the end-to-end tests start real sandboxes and must run as root"
        );
        let dir = tempfile::Builder::new()
            .prefix("airlock-e2e-")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        let mut daemon = Self {
            child: None,
            binary: binary.to_owned(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
            dir,
            url: String::new(),
            token: String::new(),
            alive: std::sync::Arc::new(()),
        };
        daemon.spawn();
        daemon.report_a_hang();
        daemon
    }

    /// The daemon's home directory.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home").canonicalize().unwrap()
    }

    fn spawn(&mut self) {
        let home = self.home();
        let _ = std::fs::remove_file(home.join("listen"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(&self.binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--home"])
            .arg(&home)
            .args(&self.flags)
            .env("AIRLOCK_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Ok(address) = std::fs::read_to_string(home.join("listen"))
                && healthy(&address)
            {
                self.url = format!("http://{address}");
                break;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "daemon exited with {status} while starting:\n{}",
                    self.log()
                );
            }
            assert!(
                started.elapsed() < STARTUP,
                "daemon did not become healthy:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.token = std::fs::read_to_string(home.join("token"))
            .unwrap()
            .trim()
            .to_owned();
    }

    /// Prints the log if the daemon (restarts included) outlives [`HANG_REPORT`].
    fn report_a_hang(&self) {
        let alive = std::sync::Arc::downgrade(&self.alive);
        let log = self.log_path();
        std::thread::spawn(move || {
            let started = Instant::now();
            while started.elapsed() < HANG_REPORT {
                std::thread::sleep(Duration::from_millis(500));
                if alive.strong_count() == 0 {
                    return;
                }
            }
            eprintln!(
                "a daemon has run for {HANG_REPORT:?}; should its test hang, its log is:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        });
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url, &self.token)
    }

    /// `kill -9`, as a crash would.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM and wait; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        // SAFETY: plain signal to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        match exited_within(&mut child, Duration::from_secs(20)) {
            Some(status) if status.success() => true,
            Some(status) => {
                eprintln!("the daemon exited with {status} after SIGTERM");
                false
            }
            None => {
                eprintln!("the daemon was still running 20 s after SIGTERM");
                let _ = child.kill();
                let _ = child.wait();
                false
            }
        }
    }

    /// Starts the daemon again on the same home.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the daemon first");
        self.spawn();
    }

    /// Runs the `airlock` CLI against this daemon.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(args)
            .env("AIRLOCK_URL", &self.url)
            .env("AIRLOCK_TOKEN", &self.token)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let clean = self.terminate();
        if !clean || std::thread::panicking() {
            eprintln!("daemon log (clean exit: {clean}):\n{}", self.log());
        }
        if !clean {
            // A daemon that died leaves its sandboxes running, as it should: the next
            // daemon on this home reaps them. Start it once, so a crash in one test does
            // not leave processes burning CPU for the rest of the run.
            let restarted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.spawn()));
            if restarted.is_ok() {
                self.terminate();
            }
        }
    }
}

fn healthy(address: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

fn rustix_is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Creates a running host-template sandbox with default settings.
pub async fn sandbox(client: &Client) -> Sandbox {
    client.create(&CreateSandbox::default()).await.unwrap()
}

/// Runs a shell command line in a sandbox.
pub async fn sh(client: &Client, id: &str, line: &str) -> ExecResult {
    client
        .exec(
            id,
            &ExecRequest {
                shell: Some(line.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
}

/// How `child` ended, if it did within `limit`; still running after it, `None`.
pub fn exited_within(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if started.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Host pids whose parent is `parent`.
pub fn children_of(parent: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| ppid(*pid) == Some(parent))
        .collect()
}

/// The daemon's children but its forker (which lives as long as the daemon does): the
/// sandboxes' inits and the commands' helpers.
pub fn sandbox_processes_of(daemon: i32) -> Vec<i32> {
    children_of(daemon)
        .into_iter()
        .filter(|pid| comm(*pid).is_some_and(|name| name != FORKER))
        .collect()
}

/// Whether `pid` is a daemon's forker (what it forks goes by its own name, `airlock-init`
/// or `airlock-exec`, though its command line is the forker's).
pub fn is_forker(pid: i32) -> bool {
    comm(pid).as_deref() == Some(FORKER)
}

const FORKER: &str = "airlock-forker";

/// The name a running process goes by (`/proc/PID/comm`).
pub fn comm(pid: i32) -> Option<String> {
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(name.trim_end().to_owned())
}

fn ppid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parens; fields resume after the last ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// True if process `pid` exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
                .unwrap_or(false)
        })
        .unwrap_or(false)
}

/// Counts files and directories below `dir`.
pub fn count_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    1 + if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        count_entries(&e.path())
                    } else {
                        0
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// The resident memory of a process, in KiB.
pub fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Samples a process's RSS every 50 ms until dropped; keeps the peak.
pub struct RssSampler {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(pid: i32) -> Self {
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                seen.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Self { peak, task }
    }

    /// The highest RSS seen so far, in KiB.
    pub fn peak(&self) -> u64 {
        self.peak.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The project's virtualenv interpreter (made by `scripts/setup`), where the Python
/// clients' packages live.
pub fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python3");
    assert!(
        venv.exists(),
        "run scripts/setup first: it makes .venv with the Python clients"
    );
    venv
}

/// Runs a client program (the unmodified SDKs' drivers, under `tests/clients` or
/// `compat/`) with `env`, and asserts it succeeded, showing its output if not.
pub async fn run_client(
    mut command: tokio::process::Command,
    env: &[(&str, &str)],
) -> std::process::Output {
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().await.unwrap();
    assert!(
        out.status.success(),
        "{}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A Python driver under `tests/clients`, run by the project's virtualenv.
pub fn python_client(script: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(python());
    command.arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/clients")
            .join(script),
    );
    command
}

/// A protobuf string field (`field`, wire type 2), encoded by hand, so a test can send
/// a path to a binary Connect route byte for byte as it chose.
pub fn protobuf_string(field: u8, text: &str) -> Vec<u8> {
    let mut out = vec![field << 3 | 2];
    let mut len = text.len();
    while len >= 0x80 {
        out.push((len as u8) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend(text.as_bytes());
    out
}

/// The environment that points an E2B SDK at `daemon` with `key`.
pub fn e2b_env(daemon: &Daemon, key: &str) -> Vec<(String, String)> {
    vec![
        ("E2B_API_URL".into(), format!("{}/e2b", daemon.url)),
        ("E2B_SANDBOX_URL".into(), format!("{}/e2b/envd", daemon.url)),
        ("E2B_API_KEY".into(), key.to_owned()),
    ]
}

/// Runs an E2B SDK driver with `env`, asserting it succeeded.
pub async fn run_e2b(
    command: tokio::process::Command,
    env: &[(String, String)],
) -> std::process::Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    run_client(command, &env).await
}

/// The grpcio client generated from the proto (tests/clients/grpc_roundtrip.py) streams
/// `mib` MiB to `/workspace/py.bin` in sandbox `id` and back; answers the sha256 it saw.
pub async fn grpc_roundtrip(daemon: &Daemon, id: &str, mib: u64) -> String {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new(python())
        .arg(manifest.join("tests/clients/grpc_roundtrip.py"))
        .arg(daemon.url.trim_start_matches("http://"))
        .arg(&daemon.token)
        .arg(id)
        .arg(mib.to_string())
        .arg(manifest.join("../../proto"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with(&format!("ok {}", mib << 20)),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.split_whitespace().nth(2).unwrap().to_owned()
}

/// Reads an NDJSON event stream until its stdout holds `text`; returns all seen so far.
pub async fn read_until(answer: &mut reqwest::Response, seen: &mut String, text: &str) {
    let mut pending = String::new();
    while !seen.contains(text) {
        let chunk = tokio::time::timeout(Duration::from_secs(20), answer.chunk())
            .await
            .unwrap_or_else(|_| panic!("{text:?} never came; saw {seen:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the stream ended before {text:?}; saw {seen:?}"));
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some((line, rest)) = pending.split_once('\n') {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            if event["type"] == "stdout" {
                seen.push_str(event["data"].as_str().unwrap());
            }
            assert_ne!(
                event["type"], "stderr",
                "a terminal has one output: {event}"
            );
            pending = rest.to_owned();
        }
    }
}

/// The first line a child prints on stdout (an agent prints the address it listens on).
pub fn first_line(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line
}
