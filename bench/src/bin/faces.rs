//! REST and gRPC side by side on one daemon: a 1 GiB file up and down through the Rust
//! SDK (REST) and through the gRPC stubs, alternating run by run after an uncounted
//! warm-up. The quick check of the goal "gRPC within 10 % of REST both ways"; `bench/run`
//! measures the same rows inside W1 beside the other peers.
//!
//! Usage: faces AIRLOCK_BINARY REPS OUT_PREFIX

use std::path::PathBuf;
use std::time::Instant;

use airlock_api::CreateSandbox;
use airlock_bench::grpc::GrpcFiles;
use airlock_bench::table::Table;
use airlock_bench::{BenchDaemon, airlock_binary, machine, run_shell};
use airlock_client::WriteOptions;

const GIB: u64 = 1 << 30;

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
    let mut t = Table::new("REST and gRPC: one 1 GiB file, up and down");
    for rep in 0..=reps {
        let mut warm = Table::new("");
        let t = if rep == 0 { &mut warm } else { &mut t };
        run_shell(&format!("cat {} > /dev/null", big.display()))?;
        let started = Instant::now();
        let file = tokio::fs::File::open(&big).await?;
        client
            .write(
                &id,
                &format!("/workspace/rest-{rep}"),
                file,
                &WriteOptions::default(),
            )
            .await?;
        t.record(
            "up: REST (SDK write)",
            Some(GIB),
            None,
            started.elapsed().as_secs_f64(),
        );
        run_shell("sync")?;
        let started = Instant::now();
        grpc.upload(&id, &big, &format!("/workspace/grpc-{rep}"))
            .await?;
        t.record(
            "up: gRPC (UploadFile)",
            Some(GIB),
            None,
            started.elapsed().as_secs_f64(),
        );
        run_shell("sync")?;
        let started = Instant::now();
        let mut local = tokio::fs::File::create(work.join("down-rest")).await?;
        client
            .read_to(&id, &format!("/workspace/rest-{rep}"), &mut local)
            .await?;
        t.record(
            "down: REST (SDK read_to)",
            Some(GIB),
            None,
            started.elapsed().as_secs_f64(),
        );
        let started = Instant::now();
        grpc.download(
            &id,
            &format!("/workspace/grpc-{rep}"),
            &work.join("down-grpc"),
        )
        .await?;
        t.record(
            "down: gRPC (DownloadFile)",
            Some(GIB),
            None,
            started.elapsed().as_secs_f64(),
        );
        run_shell(&format!(
            "cmp -s {b} {w}/down-rest && cmp -s {b} {w}/down-grpc",
            b = big.display(),
            w = work.display()
        ))?;
        for face in ["rest", "grpc"] {
            client
                .remove(&id, &format!("/workspace/{face}-{rep}"), false)
                .await?;
        }
    }
    t.ratio_goal("up: gRPC (UploadFile)", "up: REST (SDK write)", 1.1);
    t.ratio_goal("down: gRPC (DownloadFile)", "down: REST (SDK read_to)", 1.1);
    t.notes
        .push("Goal: gRPC within 10 % of REST's time (≤ 1.1×) both ways.".into());
    drop(daemon);
    let _ = std::fs::remove_dir_all(&work);
    let md = format!(
        "Machine: {}\n\n{reps} runs per line after a warm-up run, REST and gRPC alternating.\n\n{}",
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
