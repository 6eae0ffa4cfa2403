//! What a 1 GiB upload costs each Rust client and the daemon: REST (the SDK's
//! `write_file`, its body sent by the kernel) and gRPC (`UploadFile` through the one-copy
//! encoder, `airlock_bench::grpc_upload`), alternating run by run after an uncounted
//! warm-up. Prints each run's time, the daemon's CPU and this process's CPU.
//!
//! By hand, for the faces table's gRPC upload: when one face takes longer, whether its
//! client or the daemon set the pace. `ONLY` (`rest` or `grpc`) runs one client alone, to
//! profile the daemon serving it (`perf record -p`).
//!
//! Usage: upload_clients AIRLOCK_BINARY REPS [ONLY]

use airlock_api::CreateSandbox;
use airlock_bench::grpc::GrpcFiles;
use airlock_bench::{BenchDaemon, Cost, airlock_binary, fresh_gib};
use airlock_client::WriteOptions;

const CLIENTS: [&str; 2] = ["REST write_file", "gRPC UploadFile"];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let binary = airlock_binary(&mut args);
    let reps: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(5);
    let clients: Vec<usize> = match args.next().as_deref() {
        None => vec![0, 1],
        Some("rest") => vec![0],
        Some("grpc") => vec![1],
        Some(other) => anyhow::bail!("ONLY is `rest` or `grpc`, not {other:?}"),
    };
    let work = std::path::PathBuf::from("/tmp/airlock-bench-upload-clients");
    let big = fresh_gib(&work)?;
    let daemon = BenchDaemon::start(&binary)?;
    let client = daemon.client();
    let id = client.create(&CreateSandbox::default()).await?.id;
    let mut grpc = GrpcFiles::connect(&daemon.url, &daemon.token).await?;
    println!("{}", Cost::HEADER);
    for rep in 0..=reps {
        for which in airlock_bench::in_turn(clients.clone(), rep) {
            // A new name each run, removed after it is timed: replacing a file would
            // charge its freeing to the next run.
            let remote = format!("/workspace/{which}-{rep}");
            let upload = async {
                match which {
                    0 => {
                        let file = std::fs::File::open(&big)?;
                        client
                            .write_file(&id, &remote, file, &WriteOptions::default())
                            .await?;
                    }
                    _ => grpc.upload(&id, &big, &remote).await?,
                }
                anyhow::Ok(())
            };
            let ((), cost) = Cost::of(&daemon, upload).await?;
            client.remove(&id, &remote, false).await?;
            if rep > 0 {
                println!("{}", cost.line(CLIENTS[which]));
            }
        }
    }
    drop(daemon);
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
