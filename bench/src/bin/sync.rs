//! W5: `airlock sync` of a 10,000-file tree after one change, next to `rsync -a` over ssh
//! (aes128-gcm, loopback), alternating run by run; each run changes a different file first.
//!
//! Usage: sync AIRLOCK_BINARY SSH_COMMAND_FILE [REPS] [OUT_PREFIX]
//! (`bench/run-sync` starts the throwaway sshd and calls this.)

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use airlock_api::CreateSandbox;
use airlock_bench::{BenchDaemon, Row, airlock_binary, machine, make_tree, ms, run_shell};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let binary = airlock_binary(&mut args);
    let ssh = std::fs::read_to_string(
        args.next()
            .unwrap_or_else(|| "/tmp/airlock-bench-ssh/ssh".into()),
    )?;
    let reps: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(10);
    let out = args.next().unwrap_or_else(|| "bench/results/sync".into());

    let work = PathBuf::from("/tmp/airlock-bench-sync");
    let _ = std::fs::remove_dir_all(&work);
    let tree = work.join("tree");
    std::fs::create_dir_all(&tree)?;
    make_tree(&tree)?;
    let daemon = BenchDaemon::start(&binary)?;
    let id = daemon.client().create(&CreateSandbox::default()).await?.id;
    let airlock_sync = format!(
        "AIRLOCK_URL={} AIRLOCK_TOKEN={} {} sync {} {id}:/workspace/tree",
        daemon.url,
        daemon.token,
        binary.display(),
        tree.display()
    );
    let rsync = format!(
        "rsync -a -e '{}' {}/ airlockbench@127.0.0.1:tree/",
        ssh.trim(),
        tree.display()
    );
    // First copies, untimed: both sides start equal.
    run_shell(&format!("{airlock_sync} 2>/dev/null"))?;
    run_shell(&rsync)?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for rep in 0..reps + 1 {
        std::fs::write(
            tree.join(format!("d{}/f7", rep % 100 + 1)),
            format!("changed {rep}"),
        )?;
        let started = Instant::now();
        let sent = Command::new("bash")
            .args(["-c", &format!("{airlock_sync} --json")])
            .output()?;
        let airlock = ms(started.elapsed());
        anyhow::ensure!(sent.status.success(), "airlock sync failed");
        let summary: serde_json::Value = serde_json::from_slice(&sent.stdout)?;
        anyhow::ensure!(summary["sent"] == 1, "airlock sync sent {summary}");
        let started = Instant::now();
        run_shell(&rsync)?;
        let peer = ms(started.elapsed());
        // The first pair warms caches and connections.
        if rep > 0 {
            ours.push(airlock);
            theirs.push(peer);
        }
    }
    drop(daemon);
    let _ = std::fs::remove_dir_all(&work);
    let rows = [
        Row::of("airlock sync (10,000 files, 1 changed)", &ours),
        Row::of("rsync -a over ssh (aes128-gcm)", &theirs),
    ];
    let ratio = rows[0].p50_ms / rows[1].p50_ms;
    let verdict = |ok: bool| if ok { "pass" } else { "short" };
    let mut md = format!(
        "# W5: incremental sync after one change\n\nMachine: {}\n\n{reps} runs after a warm-up pair, alternating; each run changes another file.\n\n\
         | what | p50 ms | p99 ms | min ms | max ms |\n|---|---|---|---|---|\n",
        machine()
    );
    for r in &rows {
        md += &format!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
            r.what, r.p50_ms, r.p99_ms, r.min_ms, r.max_ms
        );
    }
    md += &format!(
        "\nGoal p50 < 150 ms: {} ({:.1} ms). Goal ≤ 0.5× rsync: {} ({ratio:.2}×)\n",
        verdict(rows[0].p50_ms < 150.0),
        rows[0].p50_ms,
        verdict(ratio <= 0.5)
    );
    print!("{md}");
    std::fs::write(format!("{out}.md"), &md)?;
    let json =
        serde_json::json!({"machine": machine(), "reps": reps, "rows": rows, "ratio": ratio});
    std::fs::write(format!("{out}.json"), serde_json::to_string_pretty(&json)?)?;
    Ok(())
}
