//! W1, W2, W3, W6 and memory: Airlock next to the tools users would use instead, in one
//! run, alternating run by run (A B A B …) after a warm-up run that is not counted; W1's
//! and W2's rows run in the listed order on even runs and reversed on odd ones.
//!
//! Usage: suite AIRLOCK_BINARY REPS OUT_PREFIX
//! Needs, from `bench/run`: nginx with WebDAV PUT on 127.0.0.1:$NGINX_PORT serving
//! $NGINX_ROOT, and a throwaway sshd whose ssh command line is in the file $SSH_COMMAND
//! (user `airlockbench`, home /home/airlockbench).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use airlock_api::CreateSandbox;
use airlock_bench::grpc::GrpcFiles;
use airlock_bench::table::Table;
use airlock_bench::{
    BenchDaemon, WARM_FOR_GIB, airlock_binary, in_turn, machine, make_tree_of, run_shell,
    warm_memory,
};
use airlock_client::{Client, WriteOptions};

const GIB: u64 = 1 << 30;
const REMOTE_HOME: &str = "/home/airlockbench";

struct Env {
    work: PathBuf,
    /// The ssh command line as one program, for scp's and sftp's `-S`.
    scp_ssh: String,
    url: String,
    token: String,
    cli: String,
    ssh: String,
    nginx: String,
    nginx_root: PathBuf,
    client: Client,
    id: String,
    /// A sandbox with a disk limit: its files live on a loop-mounted image.
    disk_id: String,
    daemon_pid: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let binary = airlock_binary(&mut args);
    let reps: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(5);
    let out = args.next().unwrap_or_else(|| "bench/results/suite".into());
    let work = PathBuf::from("/tmp/airlock-bench-suite");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let daemon = BenchDaemon::start(&binary)?;
    let client = daemon.client();
    let id = client.create(&CreateSandbox::default()).await?.id;
    // Room for every run's gibibyte (warm-up included): nothing is deleted while timing.
    let disk = CreateSandbox {
        limits: airlock_api::Limits {
            disk_mb: Some((reps as u64 + 2) * 1024),
            ..Default::default()
        },
        ..Default::default()
    };
    let disk_id = client.create(&disk).await?.id;
    let ssh = std::fs::read_to_string(std::env::var("SSH_COMMAND")?)?
        .trim()
        .to_owned();
    let scp_ssh = work.join("ssh-wrapper");
    std::fs::write(&scp_ssh, format!("#!/bin/sh\nexec {ssh} \"$@\"\n"))?;
    run_shell(&format!("chmod +x {}", scp_ssh.display()))?;
    let env = Env {
        scp_ssh: scp_ssh.display().to_string(),
        cli: format!(
            "AIRLOCK_URL={} AIRLOCK_TOKEN={} AIRLOCK_STATE_DIR={} {} ",
            daemon.url,
            daemon.token,
            work.join("state").display(),
            binary.display()
        ),
        ssh,
        url: daemon.url.clone(),
        token: daemon.token.clone(),
        nginx: format!("http://127.0.0.1:{}", std::env::var("NGINX_PORT")?),
        nginx_root: PathBuf::from(std::env::var("NGINX_ROOT")?),
        work,
        client,
        id,
        disk_id,
        daemon_pid: daemon.pid(),
    };
    let mut tables = vec![
        w1(&env, reps).await?,
        w2(&env, reps, "10k × 4 KiB", 100, 100, 4096).await?,
        w2(&env, reps, "1k × 100 KiB", 10, 100, 100 * 1024).await?,
        w3(&env, reps)?,
    ];
    let single = tables[0].median("up: airlock SDK (write_file)");
    tables.push(w6(&env, reps, GIB as f64 / single).await?);
    tables.push(memory(&env).await?);
    drop(daemon);
    let _ = std::fs::remove_dir_all(&env.work);
    let mut md = format!(
        "Machine: {}\n\n{reps} runs per line after a warm-up run, Airlock and peers alternating \
         (W1's and W2's rows in the listed order one run, reversed the next). \
         Sources are read back into the page cache (and dirty pages flushed) before each timed copy, \
         and memory for what it writes is touched and freed just before (this VM's host discards \
         the guest's free pages; writing to such pages is up to ten times slower); \
         every run writes to a fresh path; nothing is deleted inside a timed window.\n\n",
        machine()
    );
    for t in &tables {
        md += &t.markdown();
    }
    std::fs::write(format!("{out}.md"), &md)?;
    let json = serde_json::json!({"machine": machine(), "reps": reps, "workloads": tables});
    std::fs::write(format!("{out}.json"), serde_json::to_string_pretty(&json)?)?;
    print!("{md}");
    Ok(())
}

/// W1: one 1 GiB file up and down.
async fn w1(env: &Env, reps: usize) -> anyhow::Result<Table> {
    let mut t = Table::new("W1: one 1 GiB file, up and down");
    let w = env.work.display().to_string();
    let big = env.work.join("big.bin");
    sh(&format!("head -c 1G /dev/urandom > {}", big.display()))?;
    let b = big.display().to_string();
    let (ssh, cli, id, nginx) = (&env.ssh, &env.cli, &env.id, &env.nginx);
    let bytes = Some(GIB);
    for rep in 0..=reps {
        let mut t_rep = Table::new("");
        let t = if rep == 0 { &mut t_rep } else { &mut t };
        let r = format!("{rep}");
        let up: Vec<(&str, String)> = vec![
            ("up: cp", format!("cp {b} {w}/cp-{r}")),
            ("up: cat | cat", format!("cat {b} | cat > {w}/cat-{r}")),
            (
                "up: airlock cp (CLI)",
                format!("{cli} cp -q {b} {id}:/workspace/cli-{r}"),
            ),
            (
                "up: curl PUT → nginx",
                format!("curl -sSf -T {b} {nginx}/big-{r}"),
            ),
            (
                "up: scp (aes128-gcm)",
                format!(
                    "scp -q -S {} -c aes128-gcm@openssh.com {b} airlockbench@127.0.0.1:big-{r}",
                    env.scp_ssh
                ),
            ),
            (
                "up: sftp (aes128-gcm)",
                format!(
                    "echo 'put {b} sftp-{r}' | sftp -q -b - -S {} airlockbench@127.0.0.1 >/dev/null",
                    env.scp_ssh
                ),
            ),
            (
                "up: rsync over ssh",
                format!("rsync -e '{ssh}' {b} airlockbench@127.0.0.1:rsync-{r}"),
            ),
        ];
        for (what, line) in &in_turn(up, rep) {
            settle(&big, WARM_FOR_GIB)?;
            t.time(what, bytes, None, || sh(line));
            if *what == "up: airlock cp (CLI)" {
                let dest = format!("/workspace/sdk-{r}");
                for (row, id) in [
                    ("up: airlock SDK (write_file)", &env.id),
                    ("up: airlock SDK, disk-limited sandbox", &env.disk_id),
                ] {
                    settle(&big, WARM_FOR_GIB)?;
                    let started = Instant::now();
                    let file = std::fs::File::open(&big)?;
                    env.client
                        .write_file(id, &dest, file, &WriteOptions::default())
                        .await?;
                    t.record(row, bytes, None, started.elapsed().as_secs_f64());
                }
                settle(&big, WARM_FOR_GIB)?;
                let mut grpc = GrpcFiles::connect(&env.url, &env.token).await?;
                let started = Instant::now();
                grpc.upload(&env.id, &big, &format!("/workspace/grpc-{r}"))
                    .await?;
                t.record(
                    "up: airlock gRPC (UploadFile)",
                    bytes,
                    None,
                    started.elapsed().as_secs_f64(),
                );
            }
        }
        let down: Vec<(&str, String)> = vec![
            (
                "down: airlock cp (CLI)",
                format!("{cli} cp -q {id}:/workspace/cli-{r} {w}/d-cli-{r}"),
            ),
            (
                "down: curl GET ← nginx",
                format!("curl -sSf -o {w}/d-nginx-{r} {nginx}/big-{r}"),
            ),
            (
                "down: scp (aes128-gcm)",
                format!(
                    "scp -q -S {} -c aes128-gcm@openssh.com airlockbench@127.0.0.1:big-{r} {w}/d-scp-{r}",
                    env.scp_ssh
                ),
            ),
            (
                "down: sftp (aes128-gcm)",
                format!(
                    "echo 'get sftp-{r} {w}/d-sftp-{r}' | sftp -q -b - -S {} airlockbench@127.0.0.1 >/dev/null",
                    env.scp_ssh
                ),
            ),
            (
                "down: rsync over ssh",
                format!("rsync -e '{ssh}' airlockbench@127.0.0.1:rsync-{r} {w}/d-rsync-{r}"),
            ),
        ];
        for (what, line) in &in_turn(down, rep) {
            flush_and_warm(WARM_FOR_GIB)?;
            t.time(what, bytes, None, || sh(line));
            if *what == "down: airlock cp (CLI)" {
                flush_and_warm(WARM_FOR_GIB)?;
                let started = Instant::now();
                let out = std::fs::File::create(env.work.join(format!("d-sdk-{r}")))?;
                env.client
                    .read_to_file(&env.id, &format!("/workspace/sdk-{r}"), out)
                    .await?;
                t.record(
                    "down: airlock SDK (read_to_file)",
                    bytes,
                    None,
                    started.elapsed().as_secs_f64(),
                );
                let mut grpc = GrpcFiles::connect(&env.url, &env.token).await?;
                let remote = format!("/workspace/grpc-{r}");
                for (what, stubs) in [
                    ("down: airlock gRPC (DownloadFile)", false),
                    ("down: airlock gRPC, tonic's generated stubs", true),
                ] {
                    flush_and_warm(WARM_FOR_GIB)?;
                    let local = env
                        .work
                        .join(format!("d-{}-{r}", if stubs { "stubs" } else { "grpc" }));
                    let started = Instant::now();
                    if stubs {
                        grpc.download_with_stubs(&env.id, &remote, &local).await?;
                    } else {
                        grpc.download(&env.id, &remote, &local).await?;
                    }
                    t.record(what, bytes, None, started.elapsed().as_secs_f64());
                }
            }
        }
        let want = sh_out(&format!("sha256sum < {b}"))?;
        anyhow::ensure!(
            sh_out(&format!("sha256sum < {w}/d-cli-{r}"))? == want,
            "airlock cp download differs"
        );
        anyhow::ensure!(
            sh_out(&format!("sha256sum < {w}/d-sdk-{r}"))? == want,
            "SDK download differs"
        );
        anyhow::ensure!(
            sh_out(&format!("sha256sum < {w}/d-grpc-{r}"))? == want,
            "gRPC download differs"
        );
        anyhow::ensure!(
            sh_out(&format!("sha256sum < {w}/d-stubs-{r}"))? == want,
            "gRPC download by the stubs differs"
        );
        // Outside the timed windows: big files only, quick to delete.
        sh(&format!(
            "rm -f {w}/cp-{r} {w}/cat-{r} {w}/d-*-{r} {root}/big-{r} {REMOTE_HOME}/big-{r} {REMOTE_HOME}/sftp-{r} {REMOTE_HOME}/rsync-{r}",
            root = env.nginx_root.display()
        ))?;
        for f in [
            format!("/workspace/cli-{r}"),
            format!("/workspace/sdk-{r}"),
            format!("/workspace/grpc-{r}"),
        ] {
            env.client.remove(&env.id, &f, false).await?;
        }
    }
    t.ratio_goal("up: airlock cp (CLI)", "up: cp", 1.5);
    t.ratio_goal("up: airlock SDK (write_file)", "up: cp", 1.5);
    t.ratio_goal("down: airlock SDK (read_to_file)", "up: cp", 1.5);
    t.ratio_goal("up: airlock SDK (write_file)", "up: curl PUT → nginx", 0.5);
    // A disk limit may cost at most a fifth of the plain rate (≥ 0.8×).
    t.ratio_goal(
        "up: airlock SDK, disk-limited sandbox",
        "up: airlock SDK (write_file)",
        1.25,
    );
    t.ratio_goal(
        "down: airlock SDK (read_to_file)",
        "down: curl GET ← nginx",
        0.5,
    );
    t.ratio_goal(
        "up: airlock gRPC (UploadFile)",
        "up: airlock SDK (write_file)",
        1.1,
    );
    t.ratio_goal(
        "down: airlock gRPC (DownloadFile)",
        "down: airlock SDK (read_to_file)",
        1.1,
    );
    t.notes.push(
        "Goals: within 1.5× of `cp`'s time; at least 2× nginx's throughput (≤ 0.5× its time); \
         gRPC within 10 % of REST (the SDK) both ways. The gRPC rows' client is tonic: uploads \
         read each chunk from the file straight into the call's send buffer, and downloads \
         pass each chunk on as the slices of the HTTP/2 frames it arrived in \
         (`bench/src/grpc_download.rs`): each byte passes through user space once, where the \
         REST SDK's never do (it sends with `sendfile` and receives with `splice`); the stubs' \
         row is tonic's generated client, which copies every frame into a buffer of its own."
            .into(),
    );
    Ok(t)
}

/// Memory warmed before each W2 copy: the 100 MiB tree's pages and inodes, with room
/// (20 times: W2 keeps every run's copies, and with much cached a copy does not get only
/// the pages just warmed; see [`WARM_FOR_GIB`]).
const WARM_FOR_TREE: usize = 2 << 30;

/// W2: a tree up and down.
async fn w2(
    env: &Env,
    reps: usize,
    shape: &str,
    dirs: usize,
    per_dir: usize,
    size: usize,
) -> anyhow::Result<Table> {
    let mut t = Table::new(&format!("W2: a tree of {shape}, up and down"));
    let tag = if size == 4096 { "small" } else { "big" };
    let tree = env.work.join(format!("tree-{tag}"));
    make_tree_of(&tree, dirs, per_dir, size)?;
    let src = tree.display().to_string();
    let w = env.work.display().to_string();
    let (ssh, cli, id, nginx) = (&env.ssh, &env.cli, &env.id, &env.nginx);
    let bytes = Some((dirs * per_dir * size) as u64);
    // curl --parallel needs one upload per file.
    let mut put_list = String::new();
    let mut get_list = String::new();
    for d in 1..=dirs {
        for f in 0..per_dir {
            put_list += &format!(
                "upload-file = \"{src}/d{d}/f{f}\"\nurl = \"{nginx}/TREE/d{d}/f{f}\"\noutput = \"/dev/null\"\n"
            );
            get_list += &format!("url = \"{nginx}/TREE/d{d}/f{f}\"\noutput = \"OUT/d{d}/f{f}\"\n");
        }
    }
    for rep in 0..=reps {
        let mut t_rep = Table::new("");
        let t = if rep == 0 { &mut t_rep } else { &mut t };
        let n = format!("{tag}-{rep}");
        std::fs::write(
            format!("{w}/put-{n}"),
            put_list.replace("TREE", &format!("t-{n}")),
        )?;
        let out_dir = format!("{w}/d-nginx-{n}");
        std::fs::write(
            format!("{w}/get-{n}"),
            get_list
                .replace("TREE", &format!("t-{n}"))
                .replace("OUT", &out_dir),
        )?;
        let up: Vec<(&str, String)> = vec![
            ("up: cp -r", format!("cp -r {src} {w}/cpr-{n}")),
            (
                "up: tar c | tar x",
                format!("mkdir {w}/tar-{n} && tar c -C {src} . | tar x -C {w}/tar-{n}"),
            ),
            (
                "up: airlock cp (CLI)",
                format!("{cli} cp -q {src} {id}:/workspace/t-{n}"),
            ),
            (
                "up: tar | ssh tar x",
                format!(
                    "tar c -C {src} . | {ssh} airlockbench@127.0.0.1 'mkdir t-{n} && tar x -C t-{n}'"
                ),
            ),
            (
                "up: rsync -a over ssh",
                format!("rsync -a -e '{ssh}' {src}/ airlockbench@127.0.0.1:r-{n}/"),
            ),
            (
                "up: curl --parallel PUT → nginx",
                format!("curl -sSf -Z --parallel-max 50 --config {w}/put-{n}"),
            ),
        ];
        for (what, line) in &in_turn(up, rep) {
            sh(&format!("sync && tar c -C {src} . > /dev/null"))?;
            warm_memory(WARM_FOR_TREE);
            t.time(what, bytes, None, || sh(line));
        }
        sh(&format!(
            "mkdir -p {out_dir} && for d in $(seq {dirs}); do mkdir -p {out_dir}/d$d; done"
        ))?;
        let down: Vec<(&str, String)> = vec![
            (
                "down: airlock cp (CLI)",
                format!("{cli} cp -q {id}:/workspace/t-{n} {w}/d-cli-{n}"),
            ),
            (
                "down: ssh tar c | tar x",
                format!(
                    "mkdir {w}/d-tar-{n} && {ssh} airlockbench@127.0.0.1 'tar c -C t-{n} .' | tar x -C {w}/d-tar-{n}"
                ),
            ),
            (
                "down: rsync -a over ssh",
                format!("rsync -a -e '{ssh}' airlockbench@127.0.0.1:r-{n}/ {w}/d-rsync-{n}/"),
            ),
            (
                "down: curl --parallel GET ← nginx",
                format!("curl -sSf -Z --parallel-max 50 --config {w}/get-{n}"),
            ),
        ];
        for (what, line) in &in_turn(down, rep) {
            flush_and_warm(WARM_FOR_TREE)?;
            t.time(what, bytes, None, || sh(line));
        }
        let count = sh_out(&format!("find {w}/d-cli-{n} -type f | wc -l"))?;
        anyhow::ensure!(
            count.trim() == (dirs * per_dir).to_string(),
            "airlock cp brought back {count} files"
        );
    }
    // Round one's goal, and #16's: at or under local tar.
    t.ratio_goal("up: airlock cp (CLI)", "up: tar c | tar x", 1.3);
    t.ratio_goal("up: airlock cp (CLI)", "up: tar c | tar x", 1.0);
    for peer in [
        "up: tar | ssh tar x",
        "up: rsync -a over ssh",
        "up: curl --parallel PUT → nginx",
    ] {
        t.ratio_goal("up: airlock cp (CLI)", peer, 1.0);
    }
    for peer in [
        "down: ssh tar c | tar x",
        "down: rsync -a over ssh",
        "down: curl --parallel GET ← nginx",
    ] {
        t.ratio_goal("down: airlock cp (CLI)", peer, 1.0);
    }
    t.notes
        .push("Goals: within 1.3× of local tar (round one's), at or under it (#16's); faster than every networked peer.".into());
    Ok(t)
}

const PUT_NGINX: &str = "1 KiB PUT: curl → nginx";
const PUT_OURS: &str = "1 KiB PUT: curl → airlock";
const GET_NGINX: &str = "1 KiB GET: curl ← nginx";
const GET_OURS: &str = "1 KiB GET: curl ← airlock";
const PUT_NGINX_PINNED: &str = "1 KiB PUT: curl → nginx, one core";
const PUT_OURS_PINNED: &str = "1 KiB PUT: curl → airlock, one core";
const GET_NGINX_PINNED: &str = "1 KiB GET: curl ← nginx, one core";
const GET_OURS_PINNED: &str = "1 KiB GET: curl ← airlock, one core";

/// W3 runs this many times `reps`: a run of 1,000 requests takes a fraction of a second,
/// and on this VM one run's time per request swings by half with how fast each side is
/// woken, so a median of three says little.
const W3_RUNS_PER_REP: usize = 5;

/// W3: 1,000 sequential 1 KiB writes, then reads, on one keep-alive connection; then the
/// same with curl, the daemon and nginx all on one core.
fn w3(env: &Env, reps: usize) -> anyhow::Result<Table> {
    let mut t = Table::new("W3: 1,000 sequential 1 KiB writes and reads, one connection");
    let w = env.work.display().to_string();
    std::fs::write(env.work.join("small"), vec![b'k'; 1024])?;
    let auth_header = format!("header = \"Authorization: Bearer {}\"\n", env.token);
    let files = format!("{}/v1/sandboxes/{}/files/content", env.url, env.id);
    // The servers' processes: every thread of the daemon, and this run's nginx (the master
    // named in the pid file `bench/run` gives it, beside its root, and its worker).
    let pid_file = env
        .nginx_root
        .parent()
        .unwrap_or(&env.nginx_root)
        .join("nginx.pid");
    let servers = format!(
        "{} $(cat {pid}) $(pgrep -P $(cat {pid}))",
        env.daemon_pid,
        pid = pid_file.display()
    );
    for rep in 0..=reps * W3_RUNS_PER_REP {
        let mut t_rep = Table::new("");
        let t = if rep == 0 { &mut t_rep } else { &mut t };
        let config = |auth: &str, url: &dyn Fn(usize) -> String, put: bool| {
            let mut c = auth.to_owned();
            for i in 0..1000 {
                if put {
                    c += &format!("upload-file = \"{w}/small\"\n");
                }
                c += &format!("url = \"{}\"\noutput = \"/dev/null\"\n", url(i));
            }
            c
        };
        for (dir, pinned) in [(format!("s{rep}"), false), (format!("p{rep}"), true)] {
            let nginx = |i: usize| format!("{}/{dir}/f{i}", env.nginx);
            let ours = |i: usize| format!("{files}?path=/workspace/{dir}/f{i}&parents=true");
            std::fs::write(format!("{w}/c1"), config("", &nginx, true))?;
            std::fs::write(format!("{w}/c2"), config(&auth_header, &ours, true))?;
            std::fs::write(format!("{w}/c3"), config("", &nginx, false))?;
            std::fs::write(format!("{w}/c4"), config(&auth_header, &ours, false))?;
            let names = if pinned {
                [
                    PUT_NGINX_PINNED,
                    PUT_OURS_PINNED,
                    GET_NGINX_PINNED,
                    GET_OURS_PINNED,
                ]
            } else {
                [PUT_NGINX, PUT_OURS, GET_NGINX, GET_OURS]
            };
            let [put_nginx, put_ours, get_nginx, get_ours] = names;
            // Every other run, Airlock goes first, so neither side always follows the other.
            let order: [(&str, &str); 4] = if rep % 2 == 0 {
                [
                    (put_nginx, "c1"),
                    (put_ours, "c2"),
                    (get_nginx, "c3"),
                    (get_ours, "c4"),
                ]
            } else {
                [
                    (put_ours, "c2"),
                    (put_nginx, "c1"),
                    (get_ours, "c4"),
                    (get_nginx, "c3"),
                ]
            };
            // On one core, no request waits for the other core to be woken: what is left
            // is the work each side does, which the two-core rows mix with where the
            // scheduler happened to place each side.
            let curl = if pinned { "taskset -c 0 curl" } else { "curl" };
            if pinned {
                pin(&servers, "0")?;
            }
            for (name, config) in order {
                t.time(name, None, Some(1000), || {
                    sh(&format!("{curl} -sSf --config {w}/{config}"))
                });
            }
            if pinned {
                pin(&servers, "$(cat /sys/devices/system/cpu/online)")?;
            }
        }
    }
    t.ratio_goal(PUT_OURS, PUT_NGINX, 1.0);
    t.ratio_goal(GET_OURS, GET_NGINX, 1.0);
    t.ratio_goal(PUT_OURS_PINNED, PUT_NGINX_PINNED, 1.0);
    t.ratio_goal(GET_OURS_PINNED, GET_NGINX_PINNED, 1.0);
    t.notes.push(format!(
        "{} runs per line, Airlock and nginx taking turns to go first. The \"one core\" rows \
         pin curl, every thread of the daemon and nginx's processes to the first core.",
        reps * W3_RUNS_PER_REP
    ));
    t.notes
        .push("Goal: no slower than nginx per request.".into());
    Ok(t)
}

/// Moves every thread of the processes `pids` onto `cpus` (both shell words, expanded).
fn pin(pids: &str, cpus: &str) -> anyhow::Result<()> {
    sh(&format!(
        "for p in {pids}; do taskset -a -p -c {cpus} $p > /dev/null; done"
    ))
}

/// Memory warmed before W6's runs: its 4 GiB, and a GiB of room.
const WARM_FOR_W6: usize = 5 << 30;

const W6_SDK: &str = "64 × 64 MiB, 16 sandboxes (SDK)";
const W6_ONE: &str = "the same 4 GiB as one stream (SDK)";
const W6_CP: &str = "64 × 64 MiB, cp, 64 at once";
/// What a W6 run moves: 64 files of 64 MiB.
const W6_BYTES: u64 = 64 << 26;

/// W6: 64 concurrent 64 MiB uploads across 16 sandboxes, through the SDK, alternating
/// run by run with the same bytes sent as one stream and with `cp` writing the same 64
/// files at once.
async fn w6(env: &Env, reps: usize, single_rate: f64) -> anyhow::Result<Table> {
    let mut t = Table::new("W6: 64 concurrent 64 MiB uploads across 16 sandboxes");
    let src = env.work.join("mid.bin");
    sh(&format!("head -c 64M /dev/urandom > {}", src.display()))?;
    // The 64 streams' bytes end to end: what one stream would send instead.
    let joined = env.work.join("mid-64.bin");
    sh(&format!(
        "for n in $(seq 64); do cat {}; done > {}",
        src.display(),
        joined.display()
    ))?;
    let mut errors = 0;
    for rep in 0..=reps {
        let mut warm = Table::new("");
        let t = if rep == 0 { &mut warm } else { &mut t };
        // Which of the two goes first changes run by run.
        let one_first = if rep % 2 == 1 {
            Some(w6_one_stream(env, &joined).await?)
        } else {
            None
        };
        let (secs, failed) = w6_uploads(env, &src).await?;
        errors += failed;
        t.record(W6_SDK, Some(W6_BYTES), None, secs);
        let one = match one_first {
            Some(secs) => secs,
            None => w6_one_stream(env, &joined).await?,
        };
        t.record(W6_ONE, Some(W6_BYTES), None, one);
        // The machine's own limit for the same 4 GiB written 64 files at once, from the
        // same clean start: the yardstick for the volume, which is four times W1's.
        let dest = env.work.join(format!("w6-cp-{rep}"));
        sh(&format!("mkdir -p {}", dest.display()))?;
        settle(&src, WARM_FOR_W6)?;
        let started = Instant::now();
        sh(&format!(
            "for n in $(seq 64); do cp {} {}/c$n & done; wait",
            src.display(),
            dest.display()
        ))?;
        t.record(W6_CP, Some(W6_BYTES), None, started.elapsed().as_secs_f64());
        sh(&format!("rm -rf {} && sync", dest.display()))?;
    }
    std::fs::remove_file(&joined)?;
    let aggregate = W6_BYTES as f64 / t.median(W6_SDK);
    t.max_goal("errors", errors as f64, 0.0);
    // Concurrency's own cost: the same bytes, the same memory warmed, taking turns.
    t.min_goal(
        "aggregate / the same 4 GiB as one stream, throughput",
        t.median(W6_ONE) / t.median(W6_SDK),
        0.8,
    );
    t.min_goal(
        "aggregate / W1 single-stream SDK upload throughput",
        aggregate / single_rate,
        0.8,
    );
    t.ratio_goal(W6_SDK, W6_CP, 1.25);
    t.notes.push(
        "Goals: the issue's, aggregate ≥ 0.8× one stream's throughput, against the same \
         4 GiB sent as one stream in this table (the runs taking turns) and against W1's \
         1 GiB stream, measured minutes earlier with a quarter of the volume to write; and \
         ≥ 0.8× `cp`'s throughput for the same files at once (≤ 1.25× its time)."
            .into(),
    );
    Ok(t)
}

/// The 4 GiB of `joined` uploaded as one stream into a fresh sandbox, from the same clean
/// start as a W6 run; the sandbox is deleted after the clock stops. Returns the seconds.
async fn w6_one_stream(env: &Env, joined: &Path) -> anyhow::Result<f64> {
    let id = env.client.create(&CreateSandbox::default()).await?.id;
    settle(joined, WARM_FOR_W6)?;
    let started = Instant::now();
    let file = std::fs::File::open(joined)?;
    let done = env
        .client
        .write_file(&id, "/workspace/one", file, &WriteOptions::default())
        .await?;
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        done.entry.size == W6_BYTES,
        "one stream wrote {} bytes",
        done.entry.size
    );
    env.client.delete(&id).await?;
    Ok(secs)
}

/// One W6 run: 16 fresh sandboxes, 64 uploads at once, the sandboxes deleted after the
/// clock stops. Returns the seconds and how many uploads failed.
async fn w6_uploads(env: &Env, src: &Path) -> anyhow::Result<(f64, usize)> {
    let mut ids = Vec::new();
    for _ in 0..16 {
        ids.push(env.client.create(&CreateSandbox::default()).await?.id);
    }
    settle(src, WARM_FOR_W6)?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..64 {
        let client = env.client.clone();
        let id = ids[n % 16].clone();
        let src = src.to_path_buf();
        tasks.push(tokio::spawn(async move {
            let file = std::fs::File::open(&src).map_err(airlock_client::Error::Local)?;
            client
                .write_file(
                    &id,
                    &format!("/workspace/u{n}"),
                    file,
                    &WriteOptions::default(),
                )
                .await
        }));
    }
    let mut failed = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(done)) if done.entry.size == 64 << 20 => {}
            _ => failed += 1,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    for id in ids {
        env.client.delete(&id).await?;
    }
    Ok((secs, failed))
}

/// The daemon's peak RSS growth while 4 GiB go up and come back down.
async fn memory(env: &Env) -> anyhow::Result<Table> {
    let mut t = Table::new("Memory: the daemon's RSS during a 4 GiB upload and download");
    let src = env.work.join("four.bin");
    sh(&format!("truncate -s 4G {}", src.display()))?;
    // Only the RSS is a goal here, but the rates beside it should not be cold pages'. The
    // source is sparse: there is nothing of it to read back.
    flush_and_warm(WARM_FOR_W6)?;
    let baseline = rss_kib(env.daemon_pid)?;
    let sampler = Sampler::start(env.daemon_pid);
    let started = Instant::now();
    let file = std::fs::File::open(&src)?;
    env.client
        .write_file(
            &env.id,
            "/workspace/four.bin",
            file,
            &WriteOptions::default(),
        )
        .await?;
    t.record(
        "4 GiB upload (SDK)",
        Some(4 * GIB),
        None,
        started.elapsed().as_secs_f64(),
    );
    let up_peak = sampler.stop();
    // The upload's dirty pages flushed, so writeback does not share the download's cores.
    sh("sync")?;
    let sampler = Sampler::start(env.daemon_pid);
    let started = Instant::now();
    let mut sink = tokio::io::sink();
    env.client
        .read_to(&env.id, "/workspace/four.bin", &mut sink)
        .await?;
    t.record(
        "4 GiB download (SDK, to /dev/null)",
        Some(4 * GIB),
        None,
        started.elapsed().as_secs_f64(),
    );
    let down_peak = sampler.stop();
    env.client
        .remove(&env.id, "/workspace/four.bin", false)
        .await?;
    t.max_goal(
        "peak RSS growth during upload, MiB",
        (up_peak.saturating_sub(baseline)) as f64 / 1024.0,
        64.0,
    );
    t.max_goal(
        "peak RSS growth during download, MiB",
        (down_peak.saturating_sub(baseline)) as f64 / 1024.0,
        64.0,
    );
    t.notes.push(format!(
        "Baseline RSS before: {:.1} MiB.",
        baseline as f64 / 1024.0
    ));
    Ok(t)
}

/// Samples a process's RSS every 10 ms on a thread, keeping the peak.
struct Sampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl Sampler {
    fn start(pid: u32) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid).unwrap_or(0));
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        });
        Self { stop, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for {pid}"))
}

/// Flushes dirty pages, reads `file` back into the page cache and warms `writes` bytes of
/// memory for the copy about to be timed ([`warm_memory`]).
fn settle(file: &Path, writes: usize) -> anyhow::Result<()> {
    sh(&format!("sync && cat {} > /dev/null", file.display()))?;
    warm_memory(writes);
    Ok(())
}

/// Flushes dirty pages and warms `writes` bytes of memory: `settle` with no local source
/// to read back first (downloads, and the memory run's sparse upload).
fn flush_and_warm(writes: usize) -> anyhow::Result<()> {
    sh("sync")?;
    warm_memory(writes);
    Ok(())
}

fn sh(line: &str) -> anyhow::Result<()> {
    run_shell(line)
}

fn sh_out(line: &str) -> anyhow::Result<String> {
    let out = Command::new("bash").args(["-c", line]).output()?;
    anyhow::ensure!(out.status.success(), "`{line}` failed");
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
