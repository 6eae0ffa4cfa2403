//! Every face on one daemon: a 1 GiB file up and down with curl, through the Rust SDK
//! (REST), gRPC (with tonic's stubs and with grpcio's C core), the Python SDK and the
//! TypeScript SDK, alternating run by run after an uncounted warm-up. Checks the goals
//! "gRPC within 10 % of REST both ways" and "the Python and TypeScript SDKs at ≥ 0.8×
//! curl's throughput"; `bench/run` measures the Rust SDK and gRPC rows inside W1 beside
//! the other peers too.
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
use airlock_bench::{BenchDaemon, airlock_binary, machine, run_shell};
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
    /// What its calls are named, up and down.
    calls: [&'static str; 2],
    /// The rows its goal compares with, up and down, and the most time it may take
    /// against them.
    against: [&'static str; 2],
    within: f64,
}

const CURL: [&str; 2] = ["up: curl PUT", "down: curl GET"];
const REST: [&str; 2] = ["up: REST (SDK write)", "down: REST (SDK read_to)"];

const SCRIPTED: [Scripted; 3] = [
    Scripted {
        name: "gRPC, grpcio",
        key: "grpcio",
        interpreter: ".venv/bin/python",
        script: "bench/sdk/grpc_transfer.py",
        calls: ["UploadFile", "DownloadFile"],
        against: REST,
        within: 1.1,
    },
    Scripted {
        name: "Python SDK",
        key: "python",
        interpreter: ".venv/bin/python",
        script: "bench/sdk/transfer.py",
        calls: ["write", "read"],
        against: CURL,
        within: 1.25,
    },
    Scripted {
        name: "TypeScript SDK",
        key: "typescript",
        interpreter: "node",
        script: "bench/sdk/transfer.mjs",
        calls: ["write", "read"],
        against: CURL,
        within: 1.25,
    },
];

impl Scripted {
    /// Its row for one direction (0 up, 1 down).
    fn row(&self, way: usize) -> String {
        let direction = ["up", "down"][way];
        format!("{direction}: {} ({})", self.name, self.calls[way])
    }

    /// One transfer; answers the seconds the script measured.
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
            .env("AIRLOCK_URL", &daemon.url)
            .env("AIRLOCK_TOKEN", &daemon.token)
            .output()?;
        anyhow::ensure!(
            output.status.success(),
            "{} {direction} failed: {}",
            self.script,
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8(output.stdout)?.trim().parse()?)
    }
}

/// Records one GiB moved since `started`.
fn record_gib(t: &mut Table, what: &str, started: Instant) {
    t.record(what, Some(GIB), None, started.elapsed().as_secs_f64());
}

/// A `curl` command line for one file of the sandbox, up (`-T`, streamed) or down.
fn curl(daemon: &BenchDaemon, id: &str, direction: &str, local: &Path, remote: &str) -> String {
    let transfer = if direction == "up" { "-T" } else { "-o" };
    format!(
        "curl -sSf -H 'Authorization: Bearer {}' {transfer} {} '{}/v1/sandboxes/{id}/files/content?path={remote}' > /dev/null",
        daemon.token,
        local.display(),
        daemon.url
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let binary = airlock_binary(&mut args);
    let reps: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(5);
    let out = args.next().unwrap_or_else(|| "bench/results/faces".into());
    let work = PathBuf::from("/tmp/airlock-bench-faces");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let big = work.join("big.bin");
    run_shell(&format!("head -c 1G /dev/urandom > {}", big.display()))?;
    let daemon = BenchDaemon::start(&binary)?;
    let client = daemon.client();
    let id = client.create(&CreateSandbox::default()).await?.id;
    let mut grpc = GrpcFiles::connect(&daemon.url, &daemon.token).await?;
    // A directory per face, so checking an upload's CRC reads that upload alone.
    for face in ["rest", "grpc", "curl", "grpcio", "python", "typescript"] {
        client
            .mkdir(&id, &format!("/workspace/{face}"), None)
            .await?;
    }
    let mut t = Table::new("Every face: one 1 GiB file, up and down");
    for rep in 0..=reps {
        let mut warm = Table::new("");
        let t = if rep == 0 { &mut warm } else { &mut t };
        run_shell(&format!("cat {} > /dev/null", big.display()))?;
        let started = Instant::now();
        let file = tokio::fs::File::open(&big).await?;
        let want = client
            .write(
                &id,
                &format!("/workspace/rest/{rep}"),
                file,
                &WriteOptions::default(),
            )
            .await?
            .crc64nvme;
        record_gib(t, REST[0], started);
        run_shell("sync")?;
        let started = Instant::now();
        grpc.upload(&id, &big, &format!("/workspace/grpc/{rep}"))
            .await?;
        record_gib(t, "up: gRPC (UploadFile)", started);
        arrived(&client, &id, &format!("/workspace/grpc/{rep}"), &want).await?;
        let started = Instant::now();
        run_shell(&curl(
            &daemon,
            &id,
            "up",
            &big,
            &format!("/workspace/curl/{rep}"),
        ))?;
        record_gib(t, CURL[0], started);
        arrived(&client, &id, &format!("/workspace/curl/{rep}"), &want).await?;
        for sdk in &SCRIPTED {
            let remote = format!("/workspace/{}/{rep}", sdk.key);
            let secs = sdk.run(&daemon, "up", &id, &big, &remote)?;
            t.record(&sdk.row(0), Some(GIB), None, secs);
            arrived(&client, &id, &remote, &want).await?;
        }
        // Every face downloads the REST upload's copy.
        let source = format!("/workspace/rest/{rep}");
        let started = Instant::now();
        let mut local = tokio::fs::File::create(work.join(format!("down-rest-{rep}"))).await?;
        client.read_to(&id, &source, &mut local).await?;
        record_gib(t, REST[1], started);
        landed(&big, &work.join(format!("down-rest-{rep}")))?;
        let started = Instant::now();
        grpc.download(&id, &source, &work.join(format!("down-grpc-{rep}")))
            .await?;
        record_gib(t, "down: gRPC (DownloadFile)", started);
        landed(&big, &work.join(format!("down-grpc-{rep}")))?;
        let started = Instant::now();
        run_shell(&curl(
            &daemon,
            &id,
            "down",
            &work.join(format!("down-curl-{rep}")),
            &source,
        ))?;
        record_gib(t, CURL[1], started);
        landed(&big, &work.join(format!("down-curl-{rep}")))?;
        for sdk in &SCRIPTED {
            let local = work.join(format!("down-{}-{rep}", sdk.key));
            let secs = sdk.run(&daemon, "down", &id, &local, &source)?;
            t.record(&sdk.row(1), Some(GIB), None, secs);
            landed(&big, &local)?;
        }
        client.remove(&id, &source, false).await?;
    }
    t.ratio_goal("up: gRPC (UploadFile)", REST[0], 1.1);
    t.ratio_goal("down: gRPC (DownloadFile)", REST[1], 1.1);
    for sdk in &SCRIPTED {
        for way in 0..2 {
            t.ratio_goal(&sdk.row(way), sdk.against[way], sdk.within);
        }
    }
    t.notes.push(
        "Goals: gRPC within 10 % of REST's time (≤ 1.1×) both ways, with either client; the \
         Python and TypeScript SDKs at ≥ 0.8× curl's throughput (≤ 1.25× its time) both ways. \
         The gRPC rows use tonic's stubs in this process (its client shares the two cores \
         with the daemon) and grpcio, gRPC's C core, from Python."
            .into(),
    );
    drop(daemon);
    let _ = std::fs::remove_dir_all(&work);
    let md = format!(
        "Machine: {}\n\n{reps} runs per line after a warm-up run, the faces alternating.\n\n{}",
        machine(),
        t.markdown()
    );
    std::fs::write(format!("{out}.md"), &md)?;
    std::fs::write(
        format!("{out}.json"),
        serde_json::to_string_pretty(
            &serde_json::json!({"machine": machine(), "reps": reps, "workloads": [t]}),
        )?,
    )?;
    print!("{md}");
    Ok(())
}

/// Checks that an upload arrived whole (the daemon's CRC of it against the REST upload's),
/// then removes it and flushes, outside the timed windows: left in place, each GiB slowed
/// the writes after it (a fifth upload took 2.8 s where the first took 1.1 s).
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
    client.remove(id, remote, false).await?;
    run_shell("sync")
}

/// Checks that a download came back whole (a fast wrong answer is no answer), then removes
/// it and flushes, outside the timed windows, for the same reason as [`arrived`].
fn landed(big: &Path, local: &Path) -> anyhow::Result<()> {
    run_shell(&format!(
        "cmp -s {} {l} && rm {l} && sync",
        big.display(),
        l = local.display()
    ))
}
