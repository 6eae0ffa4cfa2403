//! Every face on one daemon: a 1 GiB file up, and down into `/dev/null`, with curl, the Rust SDK
//! (REST), gRPC (with tonic in this process and with grpcio's C core), the Python SDK (its
//! sync and async clients) and the TypeScript SDK, alternating run by run after an uncounted
//! warm-up, in the listed order one run and reversed the next. Checks the goals "gRPC
//! within 10 % of REST both ways" and "the Python and TypeScript SDKs at ≥ 0.8× curl's
//! throughput"; `bench/run` measures the Rust SDK and gRPC rows inside W1 beside the other
//! peers too.
//!
//! The Python, grpcio and TypeScript transfers run as child processes (`bench/sdk/`) that
//! time the transfer itself, so an interpreter's start-up is not charged to its client;
//! they need the project's `.venv` with the Python SDK, grpcio and grpcio-tools, and the
//! built TypeScript package (`bench/run` makes them).
//!
//! Usage: faces AIRLOCK_BINARY REPS OUT_PREFIX

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use airlock_api::CreateSandbox;
use airlock_bench::grpc::GrpcFiles;
use airlock_bench::table::Table;
use airlock_bench::{BenchDaemon, airlock_binary, fresh_gib, in_turn, machine, run_shell};
use airlock_client::WriteOptions;

const GIB: u64 = 1 << 30;

/// A client driven as a child process.
struct Scripted {
    /// Its rows' name.
    name: &'static str,
    /// Its directory in the sandbox.
    key: &'static str,
    interpreter: &'static str,
    script: &'static str,
    /// Arguments after the transfer's own.
    extra: &'static [&'static str],
    /// What its calls are named, up and down.
    calls: [&'static str; 2],
    /// The rows its goal compares with, up and down, and the most time it may take
    /// against them.
    against: [&'static str; 2],
    within: f64,
}

const CURL: [&str; 2] = ["up: curl PUT", "down: curl GET"];
const REST: [&str; 2] = ["up: REST (SDK write_file)", "down: REST (SDK read_to)"];
const GRPC: [&str; 2] = ["up: gRPC (UploadFile)", "down: gRPC (DownloadFile)"];

static SCRIPTED: [Scripted; 4] = [
    Scripted {
        name: "gRPC, grpcio",
        key: "grpcio",
        interpreter: ".venv/bin/python",
        script: "bench/sdk/grpc_transfer.py",
        extra: &[],
        calls: ["UploadFile", "DownloadFile"],
        against: REST,
        within: 1.1,
    },
    Scripted {
        name: "Python SDK",
        key: "python",
        interpreter: ".venv/bin/python",
        script: "bench/sdk/transfer.py",
        extra: &[],
        calls: ["write", "read_to"],
        against: CURL,
        within: 1.25,
    },
    Scripted {
        name: "Python SDK, async",
        key: "python-async",
        interpreter: ".venv/bin/python",
        script: "bench/sdk/transfer.py",
        extra: &["async"],
        calls: ["write", "read_to"],
        against: CURL,
        within: 1.25,
    },
    Scripted {
        name: "TypeScript SDK",
        key: "typescript",
        interpreter: "node",
        script: "bench/sdk/transfer.mjs",
        extra: &[],
        calls: ["writeFrom", "readTo"],
        against: CURL,
        within: 1.25,
    },
];

/// One face's turn in a run.
#[derive(Clone, Copy)]
enum Face {
    Rest,
    Grpc,
    Curl,
    Scripted(&'static Scripted),
}

/// Every face, in the order a run lists them (`in_turn` reverses it every other run).
fn faces() -> Vec<Face> {
    [Face::Rest, Face::Grpc, Face::Curl]
        .into_iter()
        .chain(SCRIPTED.iter().map(Face::Scripted))
        .collect()
}

impl Face {
    /// Its directory in the sandbox.
    fn key(self) -> &'static str {
        match self {
            Face::Rest => "rest",
            Face::Grpc => "grpc",
            Face::Curl => "curl",
            Face::Scripted(sdk) => sdk.key,
        }
    }

    /// Its row for one direction (0 up, 1 down).
    fn row(self, way: usize) -> String {
        match self {
            Face::Rest => REST[way].into(),
            Face::Grpc => GRPC[way].into(),
            Face::Curl => CURL[way].into(),
            Face::Scripted(sdk) => sdk.row(way),
        }
    }
}

impl Scripted {
    /// Its row for one direction (0 up, 1 down).
    fn row(&self, way: usize) -> String {
        let direction = ["up", "down"][way];
        format!("{direction}: {} ({})", self.name, self.calls[way])
    }

    /// One transfer; answers the seconds the script measured, once it says it moved the
    /// whole GiB.
    fn run(
        &self,
        daemon: &BenchDaemon,
        direction: &str,
        id: &str,
        local: &Path,
        remote: &str,
    ) -> anyhow::Result<f64> {
        let output = Command::new(self.interpreter)
            .arg(self.script)
            .args([direction, id])
            .arg(local)
            .arg(remote)
            .args(self.extra)
            .env("AIRLOCK_URL", &daemon.url)
            .env("AIRLOCK_TOKEN", &daemon.token)
            .output()?;
        anyhow::ensure!(
            output.status.success(),
            "{} {direction} failed: {}",
            self.script,
            String::from_utf8_lossy(&output.stderr)
        );
        let printed = String::from_utf8(output.stdout)?;
        let (secs, moved) = printed
            .trim()
            .split_once(' ')
            .ok_or_else(|| anyhow::anyhow!("{} printed {printed:?}", self.script))?;
        whole(self.script, moved.parse()?)?;
        Ok(secs.parse()?)
    }
}

/// The wall clock and the daemon's CPU clock at a transfer's start.
struct Started {
    at: Instant,
    cpu: f64,
}

fn start(daemon: &BenchDaemon) -> anyhow::Result<Started> {
    Ok(Started {
        at: Instant::now(),
        cpu: daemon.cpu_seconds()?,
    })
}

/// The timings of each row, and the daemon's CPU time spent on each: a face whose wall
/// time is longer while the daemon spends less on it is slower in its client.
struct Tables {
    time: Table,
    cpu: Table,
}

impl Tables {
    fn new(time: &str, cpu: &str) -> Self {
        Self {
            time: Table::new(time),
            cpu: Table::new(cpu),
        }
    }

    /// Records one GiB moved since `started`, taking `secs` as its time when the client
    /// timed itself.
    fn record_gib(
        &mut self,
        daemon: &BenchDaemon,
        what: &str,
        started: Started,
        secs: Option<f64>,
    ) -> anyhow::Result<()> {
        let cpu = daemon.cpu_seconds()? - started.cpu;
        let secs = secs.unwrap_or_else(|| started.at.elapsed().as_secs_f64());
        self.time.record(what, Some(GIB), None, secs);
        self.cpu.record(what, None, None, cpu);
        Ok(())
    }
}

/// A `curl` command line that streams `local` up (`-T`) to the sandbox's file `remote`.
fn curl_up(daemon: &BenchDaemon, id: &str, local: &Path, remote: &str) -> String {
    curl(
        daemon,
        id,
        &format!("-T {} -o /dev/null", local.display()),
        remote,
    )
}

/// A `curl` command line that downloads the sandbox's file `remote` into `/dev/null` and
/// prints the bytes it received.
fn curl_down(daemon: &BenchDaemon, id: &str, remote: &str) -> String {
    curl(daemon, id, "-o /dev/null -w '%{size_download}'", remote)
}

fn curl(daemon: &BenchDaemon, id: &str, transfer: &str, remote: &str) -> String {
    format!(
        "curl -sSf -H 'Authorization: Bearer {}' {transfer} '{}/v1/sandboxes/{id}/files/content?path={remote}'",
        daemon.token, daemon.url
    )
}

/// Runs a curl command line; answers what it printed.
fn run_curl(line: &str) -> anyhow::Result<String> {
    let output = Command::new("bash").args(["-c", line]).output()?;
    anyhow::ensure!(
        output.status.success(),
        "`{line}` failed: {}",
        output.status
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// Fails unless `moved` is the whole GiB (a fast short answer is no answer).
fn whole(face: &str, moved: u64) -> anyhow::Result<()> {
    anyhow::ensure!(moved == GIB, "{face} moved {moved} bytes, not {GIB}");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let binary = airlock_binary(&mut args);
    let reps: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(5);
    let out = args.next().unwrap_or_else(|| "bench/results/faces".into());
    let work = PathBuf::from("/tmp/airlock-bench-faces");
    let big = fresh_gib(&work)?;
    let daemon = BenchDaemon::start(&binary)?;
    let client = daemon.client();
    let id = client.create(&CreateSandbox::default()).await?.id;
    let mut grpc = GrpcFiles::connect(&daemon.url, &daemon.token).await?;
    // A directory per face, so checking an upload's CRC reads that upload alone.
    for face in faces() {
        client
            .mkdir(&id, &format!("/workspace/{}", face.key()), None)
            .await?;
    }
    let mut tables = Tables::new(
        "Every face: one 1 GiB file, up and down",
        "The daemon's CPU time (user + system) per 1 GiB, by face",
    );
    // The CRC every upload must arrive with, from one upload before the runs.
    let reference = "/workspace/rest/reference";
    let file = std::fs::File::open(&big)?;
    let want = client
        .write_file(&id, reference, file, &WriteOptions::default())
        .await?
        .crc64nvme;
    client.remove(&id, reference, false).await?;
    for rep in 0..=reps {
        let mut warm = Tables::new("", "");
        let t = if rep == 0 { &mut warm } else { &mut tables };
        run_shell(&format!("cat {} > /dev/null", big.display()))?;
        run_shell("sync")?;
        for face in in_turn(faces(), rep) {
            let remote = format!("/workspace/{}/{rep}", face.key());
            let started = start(&daemon)?;
            let secs = match face {
                Face::Rest => {
                    let file = std::fs::File::open(&big)?;
                    client
                        .write_file(&id, &remote, file, &WriteOptions::default())
                        .await?;
                    None
                }
                Face::Grpc => {
                    grpc.upload(&id, &big, &remote).await?;
                    None
                }
                Face::Curl => {
                    run_shell(&curl_up(&daemon, &id, &big, &remote))?;
                    None
                }
                Face::Scripted(sdk) => Some(sdk.run(&daemon, "up", &id, &big, &remote)?),
            };
            t.record_gib(&daemon, &face.row(0), started, secs)?;
            arrived(&client, &id, &remote, &want).await?;
            // Removed and flushed outside the timed windows: left in place, each GiB slowed
            // the writes after it (a fifth upload took 2.8 s where the first took 1.1 s).
            // REST's copy stays until the downloads, which all read it.
            if !matches!(face, Face::Rest) {
                client.remove(&id, &remote, false).await?;
            }
            run_shell("sync")?;
        }
        // Every face downloads the REST upload's copy into /dev/null, the Rust clients into
        // `tokio::io::sink` (a tokio `File` sends every write to a blocking thread): what
        // a face costs, not what the local page cache does (writing a fresh GiB to a file
        // here took 0.4 to 3 s, with `cat` as with every client, by how warm the pages were:
        // see `warm_memory`).
        let source = format!("/workspace/rest/{rep}");
        for face in in_turn(faces(), rep) {
            let started = start(&daemon)?;
            let secs = match face {
                Face::Rest => {
                    let got = client.read_to(&id, &source, &mut tokio::io::sink()).await?;
                    whole("REST", got.size)?;
                    None
                }
                Face::Grpc => {
                    let got = grpc
                        .download_into(&id, &source, &mut tokio::io::sink())
                        .await?;
                    whole("gRPC", got)?;
                    None
                }
                Face::Curl => {
                    let got = run_curl(&curl_down(&daemon, &id, &source))?;
                    whole("curl", got.trim().parse()?)?;
                    None
                }
                Face::Scripted(sdk) => {
                    Some(sdk.run(&daemon, "down", &id, Path::new("/dev/null"), &source)?)
                }
            };
            t.record_gib(&daemon, &face.row(1), started, secs)?;
        }
        client.remove(&id, &source, false).await?;
    }
    let Tables { time: mut t, cpu } = tables;
    t.ratio_goal(GRPC[0], REST[0], 1.1);
    t.ratio_goal(GRPC[1], REST[1], 1.1);
    for sdk in &SCRIPTED {
        for way in 0..2 {
            t.ratio_goal(&sdk.row(way), sdk.against[way], sdk.within);
        }
    }
    t.notes.push(
        "Goals: gRPC within 10 % of REST's time (≤ 1.1×) both ways, with either client; the \
         Python SDK (both its clients) and the TypeScript SDK at ≥ 0.8× curl's throughput \
         (≤ 1.25× its time) both ways. The gRPC rows use tonic in this process (its client \
         shares the two cores with the daemon and runs on jemalloc, as `airlock` does; \
         uploads read each chunk from the file straight into the call's send buffer, so each \
         byte passes through user space once where the REST SDK sends with `sendfile`; \
         downloads use the generated stubs) and grpcio, gRPC's C core, from Python."
            .into(),
    );
    drop(daemon);
    let _ = std::fs::remove_dir_all(&work);
    let md = format!(
        "Machine: {}\n\n{reps} runs per line after a warm-up run, the faces alternating \
         (in the listed order one run, reversed the next).\n\n{}\n{}",
        machine(),
        t.markdown(),
        cpu.markdown(),
    );
    std::fs::write(format!("{out}.md"), &md)?;
    std::fs::write(
        format!("{out}.json"),
        serde_json::to_string_pretty(
            &serde_json::json!({"machine": machine(), "reps": reps, "workloads": [t, cpu]}),
        )?,
    )?;
    print!("{md}");
    Ok(())
}

/// Checks that an upload arrived whole: the daemon's CRC of it, from a listing, against
/// the reference upload's.
async fn arrived(
    client: &airlock_client::Client,
    id: &str,
    remote: &str,
    want: &str,
) -> anyhow::Result<()> {
    let dir = remote.rsplit_once('/').map_or("/", |(dir, _)| dir);
    let listed = client.list_page(id, dir, 1, None, true).await?;
    let entry = listed.entries.iter().find(|e| e.path == remote);
    let got = entry.and_then(|e| e.crc64nvme.as_deref());
    anyhow::ensure!(got == Some(want), "{remote} arrived as {got:?}, not {want}");
    Ok(())
}
