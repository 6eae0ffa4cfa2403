//! W4: sandbox create (with 10 injected files) → first exec → delete, p50/p99, next to
//! `unshare … true` and `bwrap … true`, alternating Airlock and peers run by run.
//!
//! Usage: lifecycle AIRLOCK_BINARY [ITERATIONS] [OUT_PREFIX]

use std::process::{Command, Stdio};
use std::time::Instant;

use airlock_api::{CreateSandbox, ExecRequest, InjectedFile};
use airlock_bench::{BenchDaemon, Row, airlock_binary, machine, ms};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let binary = airlock_binary(&mut args);
    let iterations: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(100);
    let out = args
        .next()
        .unwrap_or_else(|| "bench/results/lifecycle".into());
    let daemon = BenchDaemon::start(&binary)?;
    let client = daemon.client();
    let files: Vec<InjectedFile> = (0..10)
        .map(|i| InjectedFile {
            path: format!("/workspace/seed/file-{i}.txt"),
            content: Some(format!("seed file {i}\n").repeat(64)),
            content_b64: None,
            mode: None,
            readonly: i == 0,
        })
        .collect();
    let create = CreateSandbox {
        files,
        ..Default::default()
    };
    let exec = ExecRequest {
        cmd: Some(vec!["true".into()]),
        ..Default::default()
    };
    let peers = peer_commands();

    // Warm-up: page cache, binaries, cgroup parents.
    for _ in 0..3 {
        let id = client.create(&create).await?.id;
        client.exec(&id, &exec).await?;
        client.delete(&id).await?;
    }
    let (mut created, mut first_exec, mut deleted, mut total) = (vec![], vec![], vec![], vec![]);
    let mut peer_samples: Vec<Vec<f64>> = vec![vec![]; peers.len()];
    for _ in 0..iterations {
        let t0 = Instant::now();
        let id = client.create(&create).await?.id;
        let t1 = Instant::now();
        let result = client.exec(&id, &exec).await?;
        anyhow::ensure!(result.exit_code == 0, "exec failed: {result:?}");
        let t2 = Instant::now();
        client.delete(&id).await?;
        let t3 = Instant::now();
        created.push(ms(t1 - t0));
        first_exec.push(ms(t2 - t1));
        deleted.push(ms(t3 - t2));
        total.push(ms(t3 - t0));
        for (samples, (_, argv)) in peer_samples.iter_mut().zip(&peers) {
            let started = Instant::now();
            let status = Command::new(&argv[0])
                .args(&argv[1..])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?;
            anyhow::ensure!(status.success(), "{argv:?} failed");
            samples.push(ms(started.elapsed()));
        }
    }
    let (pooled_created, pooled_total) = pooled(&client, &create, &exec, iterations).await?;
    let mut rows = vec![
        Row::of("airlock create+start (10 files)", &created),
        Row::of("airlock first exec (`true`)", &first_exec),
        Row::of("airlock delete", &deleted),
        Row::of("airlock create → exec → delete", &total),
        Row::of(
            "airlock create+start claimed from a warm pool (10 files)",
            &pooled_created,
        ),
        Row::of("airlock create → exec → delete, warm pool", &pooled_total),
    ];
    rows.extend(
        peers
            .iter()
            .zip(&peer_samples)
            .map(|((name, _), s)| Row::of(name, s)),
    );
    report(&rows, iterations, &out)
}

/// The same cycle served by a warm pool of 2 (`PUT /v1/warm-pools/host`): each create
/// waits, untimed, until the pool holds a sandbox, as a pool sized for its load would.
/// The files are all writable: a read-only one is bound at start, so a pool cannot
/// serve it.
async fn pooled(
    client: &airlock_client::Client,
    create: &CreateSandbox,
    exec: &ExecRequest,
    iterations: usize,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let mut create = create.clone();
    for file in &mut create.files {
        file.readonly = false;
    }
    client.size_pool("host", 2).await?;
    let (mut created, mut total) = (vec![], vec![]);
    for _ in 0..iterations + 3 {
        while client.pools().await?.iter().all(|p| p.ready == 0) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let t0 = Instant::now();
        let id = client.create(&create).await?.id;
        let t1 = Instant::now();
        anyhow::ensure!(client.exec(&id, exec).await?.exit_code == 0, "exec failed");
        client.delete(&id).await?;
        created.push(ms(t1 - t0));
        total.push(ms(t0.elapsed()));
    }
    client.size_pool("host", 0).await?;
    // The first three warm the pool's path up, as the main loop's warm-up does.
    Ok((created.split_off(3), total.split_off(3)))
}

/// The peers that are installed, each as (label, argv).
fn peer_commands() -> Vec<(String, Vec<String>)> {
    let mut peers = vec![(
        "unshare mount+pid+net+uts+ipc --fork true".to_owned(),
        [
            "unshare", "--mount", "--pid", "--net", "--uts", "--ipc", "--fork", "true",
        ]
        .map(String::from)
        .to_vec(),
    )];
    if Command::new("bwrap")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let argv = "bwrap --unshare-all --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 --proc /proc --dev /dev --tmpfs /tmp true";
        peers.push((
            "bwrap --unshare-all … true".to_owned(),
            argv.split(' ').map(String::from).collect(),
        ));
    }
    peers
}

fn report(rows: &[Row], iterations: usize, out: &str) -> anyhow::Result<()> {
    let goal = rows[0].p50_ms < 20.0;
    let mut md = format!(
        "# W4: sandbox lifecycle latency\n\nMachine: {}\n\n{iterations} iterations, Airlock and peers alternating.\n\n| what | p50 ms | p99 ms | min ms | max ms |\n|---|---|---|---|---|\n",
        machine()
    );
    for r in rows {
        md += &format!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
            r.what, r.p50_ms, r.p99_ms, r.min_ms, r.max_ms
        );
    }
    let ratio = rows
        .last()
        .map(|peer| rows[0].p50_ms / peer.p50_ms)
        .unwrap_or(f64::NAN);
    md += &format!(
        "\nGoal create+start p50 < 20 ms: {} ({:.2} ms). Airlock create+start / last peer, p50: {ratio:.1}×\n",
        if goal { "pass" } else { "short" },
        rows[0].p50_ms
    );
    let fresh = rows[3].p50_ms / rows.last().map_or(f64::NAN, |peer| peer.p50_ms);
    md += &format!(
        "Goal create → exec → delete ≤ 2× the last peer (#16), p50: {} ({fresh:.1}×)\n",
        if fresh <= 2.0 { "pass" } else { "short" }
    );
    let pooled = rows[5].p50_ms / rows.last().map_or(f64::NAN, |peer| peer.p50_ms);
    md += &format!(
        "Goal create → exec → delete from a warm pool ≤ 2× the last peer, p50: {} ({pooled:.1}×)\n",
        if pooled <= 2.0 { "pass" } else { "short" }
    );
    print!("{md}");
    std::fs::write(format!("{out}.md"), &md)?;
    let json = serde_json::json!({"machine": machine(), "iterations": iterations, "rows": rows, "goal_create_p50_under_20ms": goal});
    std::fs::write(format!("{out}.json"), serde_json::to_string_pretty(&json)?)?;
    Ok(())
}
