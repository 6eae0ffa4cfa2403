//! `airlock serve`: the daemon.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use crate::args::ServeArgs;

/// Sets up the process (private mount namespace, logging) and runs the daemon.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // Before any thread exists: the mount namespace can only be unshared single-threaded.
    airlock_server::prepare_process()?;
    let filter = EnvFilter::try_from_env("AIRLOCK_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    let home = args.home.unwrap_or_else(airlock_api::default_home);
    let config = airlock_server::ServeConfig {
        listen: args.listen,
        home,
        service: airlock_server::Settings {
            upload_expiry: args.upload_expiry,
            caps: airlock_server::TenantCaps {
                watches: args.max_watches_per_tenant,
                execs: args.max_execs_per_tenant,
                uploads: args.max_uploads_per_tenant,
            },
            audit: airlock_server::AuditSettings {
                path: args.audit_log,
                max_bytes: args.audit_log_max_mb.saturating_mul(1 << 20),
                keep: args.audit_log_keep,
            },
            // Filled in by the daemon, which owns the HTTP client it needs.
            oidc: None,
            warm_pools: args.warm_pools,
        },
        oidc: args
            .oidc_issuer
            .zip(args.oidc_audience)
            .map(|(issuer, audience)| airlock_server::OidcConfig {
                issuer,
                audience,
                tenant_claim: args.oidc_tenant_claim,
            }),
        connections: airlock_server::ConnectionLimits {
            max_connections: args.max_connections.max(1),
            header_timeout: args.header_timeout,
            idle_timeout: args.idle_timeout,
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(airlock_server::serve(config))?;
    Ok(ExitCode::SUCCESS)
}
