//! Shared pieces of Airlock's benchmarks: a daemon to measure, timing and summaries.

pub mod grpc;
pub mod grpc_download;
pub mod grpc_upload;
pub mod table;

/// jemalloc, as the `airlock` binary (CLI and daemon) runs on. The clients these benchmarks
/// run in process are measured as the CLI would run them: on glibc's malloc, a gRPC client
/// that takes 1 MiB frames handed its receive buffers back to the kernel and faulted them
/// in again frame after frame (a fifth of its CPU in page faults and clears), which put
/// tonic's download at up to 1.6× REST's time with the daemon spending the same on both.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A daemon started for a benchmark run, stopped when dropped.
pub struct BenchDaemon {
    child: Child,
    home: PathBuf,
    /// Base URL.
    pub url: String,
    /// Admin token.
    pub token: String,
}

impl BenchDaemon {
    /// Starts `binary serve` on a free port with a fresh home under `/tmp`.
    pub fn start(binary: &Path) -> anyhow::Result<Self> {
        Self::start_in(binary, Path::new("/tmp"))
    }

    /// Starts `binary serve` on a free port with a fresh home under `parent`.
    pub fn start_in(binary: &Path, parent: &Path) -> anyhow::Result<Self> {
        let home = parent.join(format!("airlock-bench-{}", std::process::id()));
        std::fs::create_dir_all(&home)?;
        let child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--home"])
            .arg(&home)
            .env("AIRLOCK_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()?;
        let started = Instant::now();
        while !home.join("listen").exists() {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(30),
                "daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let url = format!("http://{}", std::fs::read_to_string(home.join("listen"))?);
        let token = std::fs::read_to_string(home.join("token"))?
            .trim()
            .to_owned();
        Ok(Self {
            child,
            home,
            url,
            token,
        })
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The CPU time (user and system, every thread) the daemon has used so far, in seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds(self.pid())
    }

    /// Its home directory (sandbox views are under `views/<id>`).
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// A client for it.
    pub fn client(&self) -> airlock_client::Client {
        airlock_client::Client::new(&self.url, &self.token)
    }
}

impl Drop for BenchDaemon {
    fn drop(&mut self) {
        // SIGTERM, so the daemon stops its sandboxes on the way out.
        // SAFETY: a plain signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// Milliseconds of a duration.
/// The benchmark binaries' first argument: the `airlock` binary to measure.
pub fn airlock_binary(args: &mut impl Iterator<Item = String>) -> std::path::PathBuf {
    args.next()
        .unwrap_or_else(|| "target/release/airlock".into())
        .into()
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The q-quantile (0..=1) of samples, nearest rank.
pub fn quantile(samples: &[f64], q: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// One line of a results table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// What was measured.
    pub what: String,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Fastest, ms.
    pub min_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
}

impl Row {
    /// Summarises samples in milliseconds.
    pub fn of(what: &str, samples: &[f64]) -> Self {
        Self {
            what: what.to_owned(),
            p50_ms: quantile(samples, 0.5),
            p99_ms: quantile(samples, 0.99),
            min_ms: quantile(samples, 0.0),
            max_ms: quantile(samples, 1.0),
        }
    }
}

/// The order run `rep` takes its rows in: as listed on even runs, reversed on odd ones.
/// What a row leaves behind (dirty pages, memory just freed, a disk still writing) lands
/// on whichever row runs next, so no row should always follow the same neighbour.
pub fn in_turn<T>(mut rows: Vec<T>, rep: usize) -> Vec<T> {
    if rep % 2 == 1 {
        rows.reverse();
    }
    rows
}

/// A short description of this machine for result files.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores, {cpu}, Linux {}", kernel.trim())
}

/// 100 directories × 100 files × 4 KiB of random bytes.
pub fn make_tree(tree: &Path) -> anyhow::Result<()> {
    make_tree_of(tree, 100, 100, 4096)
}

/// `dirs` directories × `per_dir` files × `size` bytes of random bytes.
pub fn make_tree_of(tree: &Path, dirs: usize, per_dir: usize, size: usize) -> anyhow::Result<()> {
    run_shell(&format!(
        "for d in $(seq {dirs}); do mkdir -p {t}/d$d; done; head -c {total} /dev/urandom | split -a 5 -b {size} - {t}/tmp-",
        t = tree.display(),
        total = dirs * per_dir * size
    ))?;
    let mut chunks: Vec<_> = std::fs::read_dir(tree)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    chunks.sort();
    for (i, chunk) in chunks.iter().enumerate() {
        std::fs::rename(
            chunk,
            tree.join(format!("d{}/f{}", i / per_dir + 1, i % per_dir)),
        )?;
    }
    Ok(())
}

/// What [`warm_memory`] touches before a timed copy of one GiB: far more than the copy
/// writes. With 2 GiB, `cp` took 0.32–0.41 s right after nine earlier copies were
/// deleted and 0.37–0.81 s with them kept in the page cache (4 rounds by hand); with
/// 8 GiB, 0.32–0.35 s kept (3 rounds): with much cached, the copy does not get only the
/// pages just warmed. A W1 run keeps up to ten such copies.
pub const WARM_FOR_GIB: usize = 8 << 30;

/// Touches `bytes` of fresh memory and frees it, so that the copy timed next writes into
/// pages the host has backed. This VM's balloon reports free guest pages to the host
/// (free page reporting), which discards them; the first touch of such a page then costs
/// a fault on the host. Writing 1 GiB into the page cache took 2–3 s on those pages
/// against 0.3 s on warm ones, for `cp` as for every client, depending only on how much
/// memory had been freed in the seconds before. Freed pages go to the front of the
/// kernel's free lists, so the next writer gets these.
pub fn warm_memory(bytes: usize) {
    // A zeroed allocation this large is a fresh mapping that malloc does not touch, and
    // freeing it unmaps it: each page is faulted in by the loop below and given back.
    let mut pages = vec![0u8; bytes];
    for at in (0..bytes).step_by(4096) {
        pages[at] = 1;
    }
    std::hint::black_box(&pages);
}

/// Runs a bash command line; fails unless it succeeds.
pub fn run_shell(line: &str) -> anyhow::Result<()> {
    let status = Command::new("bash").args(["-c", line]).status()?;
    anyhow::ensure!(status.success(), "`{line}` failed: {status}");
    Ok(())
}

/// Makes `work` anew with one file of 1 GiB of random bytes in it; answers that file.
pub fn fresh_gib(work: &Path) -> anyhow::Result<PathBuf> {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work)?;
    let big = work.join("big.bin");
    run_shell(&format!("head -c 1G /dev/urandom > {}", big.display()))?;
    Ok(big)
}

/// The CPU time (user and system, every thread) process `pid` has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow::anyhow!("unreadable /proc stat: {stat:?}"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are the stat file's fields 14 and 15 (11 and 12 after the name).
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf reads a constant of the system and touches no memory of ours.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    anyhow::ensure!(per_second > 0, "no clock tick rate");
    Ok(ticks as f64 / per_second as f64)
}

/// What one transfer cost, for the by-hand client tools: its time, the daemon's CPU and
/// this process's (the client's).
pub struct Cost {
    pub secs: f64,
    pub daemon_cpu: f64,
    pub client_cpu: f64,
}

impl Cost {
    /// The header of [`Cost::line`]s.
    pub const HEADER: &str = "client\ttime\tdaemon CPU\tclient CPU";

    /// Runs `work` and answers what it gave and what it cost.
    pub async fn of<T>(
        daemon: &BenchDaemon,
        work: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<(T, Cost)> {
        let own = std::process::id();
        let (daemon_was, own_was, at) = (daemon.cpu_seconds()?, cpu_seconds(own)?, Instant::now());
        let got = work.await?;
        let cost = Cost {
            secs: at.elapsed().as_secs_f64(),
            daemon_cpu: daemon.cpu_seconds()? - daemon_was,
            client_cpu: cpu_seconds(own)? - own_was,
        };
        Ok((got, cost))
    }

    /// One tab-separated line: `client`, then the costs.
    pub fn line(&self, client: &str) -> String {
        format!(
            "{client}\t{:.3} s\t{:.2} s\t{:.2} s",
            self.secs, self.daemon_cpu, self.client_cpu
        )
    }
}
