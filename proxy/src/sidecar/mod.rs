//! `meshgw sidecar`: one sidecar next to one workload.
//!
//! [`run_until`] wires the parts: workload TLS, the admin server, the
//! inbound listener, registration with the local gateway (Register,
//! KeepAlive, SetHealth driven by app health checks, Deregister on
//! shutdown), the catalog watch, and the outbound listeners
//! ([`crate::outbound::run`]). On shutdown it stops accepting, deregisters,
//! and drains in-flight connections for up to `timeouts.drain`. Rotated
//! certificate files are picked up while it runs ([`rotate`]).

mod app_pool;
mod backoff;
pub mod forward;
pub mod health;
pub mod policy;
mod register;
pub mod rotate;
pub mod splice;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use meshgw_config::{AppProtocol, SidecarConfig};
use meshgw_federation::api::{ApiError, CatalogClient, client, pb};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::admin::{self, Ready};
use crate::catalog::{self, Catalog, View};
use crate::inbound::Inbound;
use crate::metrics::Metrics;
use crate::tls::{TlsError, WorkloadTls};

pub use backoff::Backoff;

/// Why the sidecar could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// The workload's certificate, key or bundle is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A listener could not be bound.
    #[error(
        "cannot bind {what} on TCP {addr}: {source}; is another sidecar running? set {key} to a free port"
    )]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The config key of its address.
        key: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
    /// The outbound side failed.
    #[error("outbound listeners failed: {0}")]
    Outbound(String),
    /// The span exporter could not start.
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
}

/// Completes once `rx` holds `true` (or its sender is gone).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Runs the sidecar until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn run(cfg: SidecarConfig) -> Result<(), SidecarError> {
    run_until(cfg, shutdown_signal()).await
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn bind(
    what: &'static str,
    key: &'static str,
    addr: SocketAddr,
) -> Result<TcpListener, SidecarError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| SidecarError::Bind {
            what,
            key,
            addr,
            source,
        })
}

/// Runs the sidecar until `shutdown` completes, then stops accepting,
/// deregisters, and drains for up to `timeouts.drain`.
pub async fn run_until(
    cfg: SidecarConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SidecarError> {
    let cfg = Arc::new(cfg);
    let tls = Arc::new(WorkloadTls::from_config(&cfg)?);
    let telemetry = crate::telemetry::Telemetry::start(
        &cfg.telemetry,
        &cfg.service.namespace,
        &cfg.service.name,
        &cfg.locality.cluster,
    )?;
    let metrics = Arc::new(Metrics::new(&cfg.locality.cluster));
    let ready = Arc::new(Ready::default());
    let admin_listener = bind("the admin server", "admin.listen", cfg.admin).await?;
    let inbound_listener =
        bind("the inbound listener", "inbound.listen", cfg.inbound.listen).await?;
    let bound = inbound_listener
        .local_addr()
        .map_err(|source| SidecarError::Bind {
            what: "the inbound listener",
            key: "inbound.listen",
            addr: cfg.inbound.listen,
            source,
        })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (catalog, catalog_tx) = Catalog::from_view(View::default());
    let (health_tx, health_rx) = watch::channel(false);

    tracing::info!(
        service = %format!("{}/{}", cfg.service.namespace, cfg.service.name),
        id = %tls.spiffe_id(),
        inbound = %bound,
        gateway = %cfg.gateway.api,
        "sidecar starting"
    );
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(admin::serve(
        admin_listener,
        ready.clone(),
        metrics.clone(),
        stop_rx.clone(),
    ));
    let inbound = Inbound::new(&cfg, tls.clone(), metrics.clone());
    tasks.spawn(rotate::run(tls.clone(), stop_rx.clone()));
    tasks.spawn(policy::run(cfg.clone(), inbound.policy(), stop_rx.clone()));
    tasks.spawn(inbound.serve(inbound_listener, stop_rx.clone()));
    let health = tokio::spawn(health::run(cfg.service.app, cfg.health.clone(), health_tx));
    let metrics_health = metrics.clone();
    let mut health_seen = health_rx.clone();
    let health_gauge = tokio::spawn(async move {
        while health_seen.changed().await.is_ok() {
            metrics_health.set_app_healthy(*health_seen.borrow_and_update());
        }
    });
    let control = tokio::spawn(control_plane(
        cfg.clone(),
        tls.clone(),
        instance(&cfg, bound),
        health_rx,
        catalog_tx,
        ready.clone(),
        metrics.clone(),
        stop_rx.clone(),
    ));
    let mut seen = catalog.clone();
    let ready_catalog = ready.clone();
    tokio::spawn(async move {
        if seen.changed().await.is_ok() {
            ready_catalog.set_catalog(true);
        }
    });
    let outbound_ctx = crate::outbound::Context {
        cfg: cfg.clone(),
        catalog,
        tls: tls.clone(),
        metrics: metrics.clone(),
        shutdown: stop_rx.clone(),
    };
    let mut outbound = tokio::spawn(crate::outbound::run(outbound_ctx));

    // Outbound returning Ok means it has nothing (more) to serve, e.g. no
    // outbound listeners are configured: keep running until shutdown.
    let outbound_failed = async {
        match (&mut outbound).await {
            Ok(Ok(())) => std::future::pending().await,
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("outbound task failed: {e}"),
        }
    };
    let failure = tokio::select! {
        _ = shutdown => {
            tracing::info!("shutting down: deregistering and draining");
            None
        }
        why = outbound_failed => {
            tracing::error!(error = %why, "sidecar stopping");
            Some(SidecarError::Outbound(why))
        }
    };
    stop_tx.send_replace(true);
    let drain = cfg.timeouts.drain;
    let _ = tokio::time::timeout(drain + Duration::from_secs(1), async {
        let _ = control.await;
        while tasks.join_next().await.is_some() {}
        if !outbound.is_finished() {
            let _ = outbound.await;
        }
    })
    .await;
    health.abort();
    health_gauge.abort();
    if let Some(t) = telemetry {
        t.shutdown().await;
    }
    tracing::info!("sidecar stopped");
    failure.map_or(Ok(()), Err)
}

/// Returns the instance this sidecar registers: its advertised inbound
/// address (with the bound port if the configured one is 0).
fn instance(cfg: &SidecarConfig, bound: SocketAddr) -> pb::Instance {
    let (host, port) = match cfg.inbound.advertise.rsplit_once(':') {
        Some((h, p)) => (
            h.trim_matches(['[', ']']).to_string(),
            p.parse::<u16>().unwrap_or(0),
        ),
        None => (bound.ip().to_string(), 0),
    };
    let port = if port == 0 { bound.port() } else { port };
    let protocol = match cfg.service.protocol {
        AppProtocol::Http => pb::Protocol::Http,
        AppProtocol::Grpc => pb::Protocol::Grpc,
        AppProtocol::Tcp => pb::Protocol::Tcp,
    };
    let bracketed = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    pb::Instance {
        id: format!("{}-{bracketed}:{port}", cfg.locality.zone),
        service: Some(pb::ServiceName {
            namespace: cfg.service.namespace.clone(),
            name: cfg.service.name.clone(),
        }),
        address: host,
        port: u32::from(port),
        protocol: protocol as i32,
        locality: Some(pb::Locality {
            cluster: cfg.locality.cluster.clone(),
            region: cfg.locality.region.clone(),
            zone: cfg.locality.zone.clone(),
        }),
        labels: cfg.service.labels.clone().into_iter().collect(),
        health: pb::Health::Unhealthy as i32,
        weight: cfg.service.weight,
    }
}

/// Connects to the gateway API (retrying with backoff until it answers),
/// then runs the catalog watch and the registration loop until shutdown.
#[allow(clippy::too_many_arguments)]
async fn control_plane(
    cfg: Arc<SidecarConfig>,
    tls: Arc<WorkloadTls>,
    instance: pb::Instance,
    health: watch::Receiver<bool>,
    catalog_tx: watch::Sender<Arc<View>>,
    ready: Arc<Ready>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let client = tokio::select! {
        _ = crate::sidecar::stopped(&mut shutdown) => return,
        c = connect(&cfg, &tls) => c,
    };
    let watch = tokio::spawn(catalog::run_watch(client.clone(), catalog_tx));
    let registrar = register::Registrar {
        client,
        instance,
        health,
        ready,
        metrics,
        lease: 0,
    };
    registrar.run(shutdown, cfg.timeouts.drain).await;
    watch.abort();
}

/// Connects to `gateway.api`, verifying `gateway.spiffe_id`; retries forever.
async fn connect(cfg: &SidecarConfig, tls: &WorkloadTls) -> CatalogClient<Channel> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let result = match tls.client_for(&cfg.gateway.spiffe_id, &[b"h2"]) {
            Ok(config) => client::connect(&cfg.gateway.api, Some((*config).clone())).await,
            Err(e) => Err(ApiError::InvalidAddress {
                addr: cfg.gateway.spiffe_id.clone(),
                reason: e.to_string(),
            }),
        };
        match result {
            Ok(c) => {
                tracing::info!(api = %cfg.gateway.api, "connected to the gateway catalog API");
                return c;
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?delay, "gateway API unavailable");
                tokio::time::sleep(delay).await;
            }
        }
    }
}
