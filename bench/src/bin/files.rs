//! File transfer next to the tools users would use instead, in one run, alternating:
//! - one 1 GiB file up and down (curl ↔ Airlock) next to `cp` and `cat | cat`;
//! - a 10,000 × 4 KiB tree up (`tar c | curl` ↔ Airlock's archive route) next to
//!   `tar c | tar x`;
//! - 1,000 sequential 1 KiB PUTs on one keep-alive connection, curl ↔ Airlock next to
//!   curl ↔ nginx WebDAV.
//!
//! Usage: files AIRLOCK_BINARY NGINX_PORT [REPS] [OUT_PREFIX]
//! (`bench/run-files` starts nginx and calls this.)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use airlock_api::CreateSandbox;
use airlock_bench::{BenchDaemon, machine, make_tree, quantile};

/// Where every run writes, on the same filesystem as the daemon's home:
/// `$AIRLOCK_BENCH_DIR` (a tmpfs, with `bench/run-files --tmpfs`) or `/tmp`.
fn base_dir() -> PathBuf {
    std::env::var_os("AIRLOCK_BENCH_DIR").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let binary = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "target/release/airlock".into()),
    );
    let nginx_port: u16 = args.next().map(|p| p.parse()).transpose()?.unwrap_or(8089);
    let reps: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(5);
    let out = args.next().unwrap_or_else(|| "bench/results/files".into());

    let work = base_dir().join("airlock-bench-files");
    let w = work.display().to_string();
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let big = work.join("big.bin");
    sh(&format!("head -c 1G /dev/urandom > {}", big.display()))?;
    let tree = work.join("tree");
    make_tree(&tree)?;
    std::fs::write(work.join("small.bin"), vec![b'k'; 1024])?;

    let daemon = BenchDaemon::start_in(&binary, &base_dir())?;
    let sandbox = daemon.client().create(&CreateSandbox::default()).await?.id;
    let files = format!("{}/v1/sandboxes/{sandbox}/files", daemon.url);
    let auth = format!("Authorization: Bearer {}", daemon.token);
    // The host template keeps the sandbox's files here (views live in the daemon's own
    // mount namespace, out of our sight).
    let view = daemon
        .home()
        .join("sandboxes")
        .join(&sandbox)
        .join("data/root");

    let mut table = Table::default();
    // Three phases, each alternating Airlock and its peer run by run. Nothing is deleted
    // until the end: deleting many files makes creating files slow for a minute here.
    for rep in 0..reps {
        warm_tree(&tree)?;
        table.time("10k × 4 KiB tree: tar c | tar x", || {
            std::fs::create_dir_all(work.join(format!("untar-{rep}")))?;
            sh(&format!(
                "tar c -C {} . | tar x -C {w}/untar-{rep}",
                tree.display()
            ))
        });
        warm_tree(&tree)?;
        table.time("10k × 4 KiB tree: airlock (tar c | curl -T - archive)", || {
            sh(&format!(
                "tar c -C {} . | curl -sSf -H '{auth}' -T - '{files}/archive?path=/workspace/tree-{rep}' > /dev/null",
                tree.display()
            ))
        });
        let count = sh_out(&format!(
            "find {}/workspace/tree-{rep} -type f | wc -l",
            view.display()
        ))?;
        anyhow::ensure!(count.trim() == "10000", "tree upload made {count} files");
    }
    for rep in 0..reps {
        let nginx = format!("http://127.0.0.1:{nginx_port}/r{rep}");
        table.time_per("1 KiB PUT ×1000: curl → nginx WebDAV", 1000, || {
            curl_many(&w, "", &|i| format!("{nginx}/f{i}"))
        });
        table.time_per("1 KiB PUT ×1000: curl → airlock", 1000, || {
            curl_many(&w, &auth, &|i| {
                format!("{files}/content?path=/workspace/small-{rep}/f{i}&parents=true")
            })
        });
    }
    for rep in 0..reps {
        // Before each timed copy: dirty pages flushed (so no run pays for another's
        // writeback) and the source read back into the page cache (idle cache is reclaimed).
        settle(&big)?;
        table.time("1 GiB: cp", || {
            sh(&format!("cp {} {w}/cp-{rep}.bin", big.display()))
        });
        settle(&big)?;
        table.time("1 GiB: cat | cat", || {
            sh(&format!("cat {} | cat > {w}/cat-{rep}.bin", big.display()))
        });
        settle(&big)?;
        table.time("1 GiB: airlock upload (curl -T)", || {
            curl(
                &auth,
                &format!(
                    "-T {} '{files}/content?path=/workspace/up-{rep}.bin'",
                    big.display()
                ),
            )
        });
        settle(&view.join(format!("workspace/up-{rep}.bin")))?;
        table.time("1 GiB: airlock download (curl -o)", || {
            curl(
                &auth,
                &format!("-o {w}/down-{rep}.bin '{files}/content?path=/workspace/up-{rep}.bin'"),
            )
        });
        let sum_in = sh_out(&format!("sha256sum < {}", big.display()))?;
        let sum_out = sh_out(&format!("sha256sum < {w}/down-{rep}.bin"))?;
        anyhow::ensure!(sum_in == sum_out, "download differs from the source");
        // Big files only (deleting them is quick): a tmpfs run must fit in memory.
        for f in ["cp", "cat", "down"] {
            std::fs::remove_file(work.join(format!("{f}-{rep}.bin")))?;
        }
        std::fs::remove_file(view.join(format!("workspace/up-{rep}.bin")))?;
    }
    drop(daemon);
    let _ = std::fs::remove_dir_all(&work);
    table.report(reps, &out)
}

/// Results: samples in seconds per label, in the order first seen.
#[derive(Default)]
struct Table {
    rows: Vec<(String, Vec<f64>, usize)>,
}

impl Table {
    fn time(&mut self, label: &str, run: impl FnOnce() -> anyhow::Result<()>) {
        self.time_per(label, 1, run);
    }

    /// Times `run`; `per` operations happen in it (the report divides).
    fn time_per(&mut self, label: &str, per: usize, run: impl FnOnce() -> anyhow::Result<()>) {
        let started = Instant::now();
        if let Err(e) = run() {
            panic!("{label}: {e}");
        }
        let secs = started.elapsed().as_secs_f64();
        match self.rows.iter_mut().find(|r| r.0 == label) {
            Some(row) => row.1.push(secs),
            None => self.rows.push((label.to_owned(), vec![secs], per)),
        }
    }

    fn median(&self, label: &str) -> f64 {
        self.rows
            .iter()
            .find(|r| r.0 == label)
            .map_or(f64::NAN, |r| quantile(&r.1, 0.5))
    }

    fn report(&self, reps: usize, out: &str) -> anyhow::Result<()> {
        let mut md = format!(
            "# File transfer, side by side\n\nMachine: {}\n\nMedians of {reps} runs, Airlock and peers alternating in each run; \
             the source is re-read into the page cache before each timed copy; every run writes into a fresh directory.\n\n\
             Files live on: {}.\n\n\
             | what | median | min | max | rate or per op |\n|---|---|---|---|---|\n",
            machine(),
            filesystem()
        );
        for (label, samples, per) in &self.rows {
            let median = quantile(samples, 0.5);
            let rate = if label.starts_with("1 GiB") {
                format!("{:.0} MB/s", (1u64 << 30) as f64 / median / 1e6)
            } else if *per > 1 {
                format!("{:.0} µs/op", median / *per as f64 * 1e6)
            } else {
                format!("{:.0} files/s", 10_000.0 / median)
            };
            md += &format!(
                "| {label} | {:.3} s | {:.3} s | {:.3} s | {rate} |\n",
                median,
                quantile(samples, 0.0),
                quantile(samples, 1.0)
            );
        }
        let ratios = [
            (
                "1 GiB upload / cp",
                "1 GiB: airlock upload (curl -T)",
                "1 GiB: cp",
                1.5,
            ),
            (
                "1 GiB download / cp",
                "1 GiB: airlock download (curl -o)",
                "1 GiB: cp",
                1.5,
            ),
            (
                "1 GiB upload / cat | cat",
                "1 GiB: airlock upload (curl -T)",
                "1 GiB: cat | cat",
                f64::NAN,
            ),
            (
                "tree upload / tar c | tar x",
                "10k × 4 KiB tree: airlock (tar c | curl -T - archive)",
                "10k × 4 KiB tree: tar c | tar x",
                1.3,
            ),
            (
                "1 KiB PUT / nginx",
                "1 KiB PUT ×1000: curl → airlock",
                "1 KiB PUT ×1000: curl → nginx WebDAV",
                1.0,
            ),
        ];
        md += "\n| ratio of medians | value | goal |\n|---|---|---|\n";
        let mut json_ratios = serde_json::Map::new();
        for (name, ours, theirs, goal) in ratios {
            let ratio = self.median(ours) / self.median(theirs);
            let verdict = if goal.is_nan() {
                "—".to_owned()
            } else if ratio <= goal {
                format!("≤ {goal}: met")
            } else {
                format!("≤ {goal}: missed")
            };
            md += &format!("| {name} | {ratio:.2}× | {verdict} |\n");
            json_ratios.insert(name.to_owned(), serde_json::json!(ratio));
        }
        print!("{md}");
        std::fs::write(format!("{out}.md"), &md)?;
        let rows: Vec<_> = self
            .rows
            .iter()
            .map(|(label, samples, per)| serde_json::json!({"what": label, "seconds": samples, "ops_per_sample": per}))
            .collect();
        let json = serde_json::json!({"machine": machine(), "reps": reps, "rows": rows, "ratios": json_ratios});
        std::fs::write(format!("{out}.json"), serde_json::to_string_pretty(&json)?)?;
        Ok(())
    }
}

fn settle(file: &Path) -> anyhow::Result<()> {
    sh(&format!("sync && cat {} > /dev/null", file.display()))
}

fn warm_tree(tree: &Path) -> anyhow::Result<()> {
    sh(&format!("tar c -C {} . > /dev/null", tree.display()))
}

/// One curl call; fails unless every response was 2xx.
fn curl(auth: &str, args: &str) -> anyhow::Result<()> {
    sh(&format!("curl -sSf -H '{auth}' {args} > /dev/null"))
}

/// 1,000 PUTs of the small file on one keep-alive connection (one curl process).
fn curl_many(w: &str, auth: &str, url: &dyn Fn(usize) -> String) -> anyhow::Result<()> {
    let mut config = String::new();
    if !auth.is_empty() {
        config += &format!("header = \"{auth}\"\n");
    }
    for i in 0..1000 {
        config += &format!(
            "upload-file = \"{w}/small.bin\"\nurl = \"{}\"\noutput = \"/dev/null\"\n",
            url(i)
        );
    }
    let list = format!("{w}/curl-config");
    std::fs::write(&list, config)?;
    sh(&format!("curl -sSf --config {list}"))
}

fn sh(line: &str) -> anyhow::Result<()> {
    let status = Command::new("bash").args(["-c", line]).status()?;
    anyhow::ensure!(status.success(), "`{line}` failed: {status}");
    Ok(())
}

fn sh_out(line: &str) -> anyhow::Result<String> {
    let out = Command::new("bash").args(["-c", line]).output()?;
    anyhow::ensure!(out.status.success(), "`{line}` failed");
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What the benchmark's files live on, for the report.
fn filesystem() -> String {
    let dir = base_dir();
    sh_out(&format!(
        "findmnt -n -o FSTYPE,TARGET --target {}",
        dir.display()
    ))
    .map(|s| s.trim().to_owned())
    .unwrap_or_default()
}
