//! What a 1 GiB download costs each Rust client on its side: REST (the SDK's `read_to`),
//! gRPC with tonic's generated stubs, and gRPC with the one-copy reader
//! (`airlock_bench::grpc_download`), each into a sink, alternating run by run after an
//! uncounted warm-up. Prints each run's time, the daemon's CPU and this process's CPU.
//!
//! By hand, for the faces table's gRPC download: when the daemon spends the same on two
//! faces and one takes longer, the difference is in its client. `MAX_FRAME` is the largest
//! DATA frame the gRPC clients ask for (default 1 MiB; h2's own default is 16 KiB).
//!
//! Usage: download_clients AIRLOCK_BINARY REPS [MAX_FRAME]

use airlock_api::CreateSandbox;
use airlock_bench::grpc::GrpcFiles;
use airlock_bench::{BenchDaemon, Cost, airlock_binary, fresh_gib};
use airlock_client::WriteOptions;

const GIB: u64 = 1 << 30;
const CLIENTS: [&str; 3] = ["REST read_to", "gRPC stubs", "gRPC one-copy"];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let binary = airlock_binary(&mut args);
    let reps: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(5);
    let max_frame: u32 = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(1 << 20);
    let work = std::path::PathBuf::from("/tmp/airlock-bench-download-clients");
    let big = fresh_gib(&work)?;
    let daemon = BenchDaemon::start(&binary)?;
    let client = daemon.client();
    let id = client.create(&CreateSandbox::default()).await?.id;
    let mut grpc = GrpcFiles::connect_framed(&daemon.url, &daemon.token, max_frame).await?;
    let remote = "/workspace/big";
    let file = std::fs::File::open(&big)?;
    client
        .write_file(&id, remote, file, &WriteOptions::default())
        .await?;
    println!("{}", Cost::HEADER);
    for rep in 0..=reps {
        let order: Vec<usize> = airlock_bench::in_turn((0..CLIENTS.len()).collect(), rep);
        for which in order {
            let download = async {
                Ok(match which {
                    0 => {
                        client
                            .read_to(&id, remote, &mut tokio::io::sink())
                            .await?
                            .size
                    }
                    1 => {
                        grpc.download_into(&id, remote, &mut tokio::io::sink())
                            .await?
                    }
                    _ => grpc.download_discarding(&id, remote).await?,
                })
            };
            let (got, cost) = Cost::of(&daemon, download).await?;
            anyhow::ensure!(got == GIB, "{} moved {got} bytes", CLIENTS[which]);
            if rep > 0 {
                println!("{}", cost.line(CLIENTS[which]));
            }
        }
    }
    drop(daemon);
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
