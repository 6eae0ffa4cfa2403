//! The Airlock daemon: the faces (REST now) over the transport-neutral service in
//! `airlock-service`, the token check, and the bounded accept loop. Faces only parse,
//! call the service and encode; every rule lives in the service.

#[doc(hidden)]
mod compat;
mod faces;
mod fetch;
pub mod fuzz_api;
mod grpc;
mod h2_frames;
mod h2_script;
mod h2_sendfile;
mod http;
mod observe;
mod origin;
mod page_cache;
mod repoll;
mod rest;
mod sendfile;

/// Settings of `airlock serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on, e.g. `127.0.0.1:7711`.
    pub listen: String,
    /// Directory holding all state.
    pub home: std::path::PathBuf,
    /// The service's own settings: upload expiry, tenant caps, audit, OIDC.
    pub service: airlock_service::Settings,
    /// Bounds on concurrent connections and on stalled clients.
    pub connections: ConnectionLimits,
    /// Accept OIDC bearers from this issuer.
    pub oidc: Option<OidcConfig>,
    /// What runs the sandboxes.
    pub backend: Backend,
}

/// A backend, the store its records live in, and the store of the daemon's tokens and
/// signing key, as [`Backend::Opened`] makes them.
pub type OpenedBackend = (
    Arc<dyn airlock_service::SandboxBackend>,
    Arc<dyn airlock_service::RecordStore>,
    Arc<dyn airlock_service::SecretStore>,
);

/// Makes a backend on the daemon's runtime.
pub type OpenBackend = Arc<
    dyn Fn() -> futures_util::future::BoxFuture<'static, std::io::Result<OpenedBackend>>
        + Send
        + Sync,
>;

/// What runs the sandboxes: this machine's engine, or one the binary brings (a
/// cluster's), so the faces' crate carries no backend's dependencies.
#[derive(Clone, Default)]
pub enum Backend {
    #[default]
    Local,
    Opened(OpenBackend),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Local => "Local",
            Self::Opened(_) => "Opened",
        })
    }
}

/// The service over the chosen backend.
async fn open_service(
    config: &ServeConfig,
    home: &std::path::Path,
    settings: Settings,
) -> std::io::Result<Service> {
    match &config.backend {
        Backend::Local => Service::open(home, settings).await,
        Backend::Opened(open) => {
            let (backend, records, secrets) = open().await?;
            Service::open_with(home, settings, backend, records, secrets).await
        }
    }
}
pub use airlock_service::{ApiError, AuditSettings, Service, Settings, TenantCaps};

/// The OIDC issuer `airlock serve` trusts, if any.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The issuer URL, exactly as its tokens name it.
    pub issuer: String,
    /// The audience its tokens must name.
    pub audience: String,
    /// The claim that names the tenant.
    pub tenant_claim: String,
}
/// The gRPC face's reader of a body's length-prefixed messages, one field's bytes handed
/// on as slices of the frames that carried them: how `UploadFile` reads its requests, and
/// how a client can read a `DownloadFile` answer (the benchmarks' does).
pub use grpc::unframe::{Part as GrpcPart, Unframed as GrpcUnframed};
/// One gRPC message with its 5-byte prefix, as the gRPC face frames what it sends.
pub use grpc::wire::message as grpc_framed;
pub use http::ConnectionLimits;

use std::sync::Arc;

use tokio::net::TcpListener;

/// Runs the daemon until `stop` completes (the CLI's: SIGTERM or SIGINT), then stops its
/// sandboxes. Call [`prepare_process`] first, before the async runtime starts. Whatever
/// `stop` waits for must be caught before this is called: once the daemon says where it
/// listens, a supervisor may stop it at any moment.
pub async fn serve(config: ServeConfig, stop: impl Future<Output = ()>) -> std::io::Result<()> {
    std::fs::create_dir_all(&config.home)?;
    let home = config.home.canonicalize()?;
    let started = std::time::SystemTime::now();
    let mut settings = config.service.clone();
    if let Some(oidc) = &config.oidc {
        let fetch = fetch::HttpFetch::new().map_err(std::io::Error::other)?;
        settings.oidc = Some(airlock_service::OidcSettings {
            issuer: oidc.issuer.clone(),
            audience: oidc.audience.clone(),
            tenant_claim: oidc.tenant_claim.clone(),
            fetch: Arc::new(fetch),
        });
    }
    let service = Arc::new(open_service(&config, &home, settings).await?);
    let listener = TcpListener::bind(&config.listen).await?;
    let address = listener.local_addr()?;
    // Tests and scripts that listen on port 0 learn the real port here. Written whole: a
    // reader that waits for the file to exist must not find it empty (the benchmark's
    // did, once, and asked for `http://`).
    airlock_service::replace_file(&home.join("listen"), address.to_string().as_bytes())?;
    tracing::info!(%address, home = %home.display(), "airlock daemon ready");
    let reaper = tokio::spawn(service.clone().expire_forever());
    let upload_reaper = tokio::spawn(service.clone().expire_uploads_forever());
    let pool_filler = tokio::spawn(service.clone().fill_pools_forever());
    let adopter = tokio::spawn(service.clone().adopt_forever());
    let settler = tokio::spawn(service.clone().settle_forever());
    tokio::spawn(service.clone().sweep_leftovers(started));
    let rest = rest::router(service.clone(), config.connections.idle_timeout);
    let grpc = grpc::router(service.clone());
    let app = faces::Faces::new(service.clone(), rest, grpc);
    http::serve(listener, app, config.connections, stop).await;
    reaper.abort();
    upload_reaper.abort();
    adopter.abort();
    settler.abort();
    tracing::info!("shutting down: stopping sandboxes");
    // The pool filler is not aborted before this: cancelled while it starts a sandbox,
    // it would leave that sandbox running with nothing to stop it. The shutdown waits
    // for that start to land in its pool, and the filler makes nothing after.
    service.shutdown().await;
    pool_filler.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Process-wide setup that must happen while the process is still single-threaded:
/// the daemon's private mount namespace.
pub fn prepare_process() -> std::io::Result<()> {
    if !rustix::process::geteuid().is_root() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "airlock serve must run as root: it creates namespaces, mounts and cgroups",
        ));
    }
    airlock_sandbox::Engine::enter_private_mount_namespace()
}
