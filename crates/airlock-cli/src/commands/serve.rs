//! `airlock serve`: the daemon.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use crate::args::{BackendKind, KubeArgs, KubeObjects, ServeArgs};

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
    if args.backend == BackendKind::Local && !args.slow_cgroup_moves {
        // In the private namespace prepare_process made: it ends with the daemon.
        if let Err(err) = airlock_sandbox::favor_cgroup_moves() {
            tracing::warn!(%err, "cgroup moves stay slow: favordynmods is not available");
        }
    }
    let home = args.home.unwrap_or_else(airlock_api::default_home);
    let backend = match args.backend {
        BackendKind::Local => airlock_server::Backend::Local,
        BackendKind::Kubernetes => kubernetes(kube_settings(args.kube)),
    };
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
        backend,
        connections: airlock_server::ConnectionLimits {
            max_connections: args.max_connections.max(1),
            header_timeout: args.header_timeout,
            idle_timeout: args.idle_timeout,
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let stop = crate::stop_signals::stop_signals()?;
        airlock_server::serve(config, stop).await
    })?;
    Ok(ExitCode::SUCCESS)
}

fn kube_settings(args: KubeArgs) -> airlock_kube::KubeSettings {
    airlock_kube::KubeSettings {
        namespace: args.kube_namespace,
        image: args.kube_image,
        images: args.kube_templates.into_iter().collect(),
        agent_image: args.kube_agent_image,
        runtime_class: args.runtime_class,
        agent_port: args.kube_agent_port,
        ready_timeout: args.kube_ready_timeout,
        kubeconfig: args.kubeconfig,
        objects: match args.kube_objects {
            KubeObjects::Auto => airlock_kube::Objects::Auto,
            KubeObjects::Pods => airlock_kube::Objects::Pods,
            KubeObjects::Sandboxes => airlock_kube::Objects::Sandboxes,
        },
    }
}

/// The Kubernetes backend, opened once the daemon's runtime runs.
fn kubernetes(settings: airlock_kube::KubeSettings) -> airlock_server::Backend {
    let settings = std::sync::Arc::new(settings);
    airlock_server::Backend::Opened(std::sync::Arc::new(move || {
        let settings = settings.clone();
        Box::pin(async move {
            let (backend, records, secrets) = airlock_kube::open(&settings).await?;
            Ok((
                std::sync::Arc::new(backend) as _,
                std::sync::Arc::new(records) as _,
                std::sync::Arc::new(secrets) as _,
            ))
        })
    }))
}
