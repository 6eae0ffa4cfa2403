//! `airlock agent`: the file engine inside a pod, serving the pod's root to the gateway.

use std::process::ExitCode;

use anyhow::Context;

use crate::args::AgentArgs;

pub fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AIRLOCK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let secret = std::fs::read_to_string(&args.secret_file)
        .with_context(|| format!("reading the secret from {}", args.secret_file.display()))?;
    let runtime = tokio::runtime::Runtime::new()?;
    let served = runtime.block_on(async {
        let stop = crate::stop_signals::stop_signals()?;
        airlock_agent::server::serve(&args.listen, &args.root, secret.trim(), args.chroot, stop)
            .await
    });
    // A file call blocked on a slow disk must not hold the pod's end past a moment.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served?;
    Ok(ExitCode::SUCCESS)
}
