//! The sidecar's outbound side: what the local app connects to.
//!
//! - [`tcp`]: one listener per `[[upstreams]]`, each bound to one service;
//!   every accepted connection is piped to a chosen target (ALPN `meshgw-tcp`).
//! - [`http`]: one listener on `outbound.http` (HTTP/1.1 and cleartext
//!   HTTP/2, so gRPC works) routing each request by its `Host`
//!   (`name.namespace.mesh[:port]`) over pooled HTTP/2 mesh connections;
//!   HTTP/1.1 upgrades (WebSocket) cross as extended CONNECT ([`upgrade`]).
//!
//! [`bind`] opens the listeners (so tests can bind port 0 and read the
//! addresses back); [`Outbound::serve`] runs them until the shutdown signal,
//! then stops accepting and lets connections in flight finish for up to
//! `timeouts.drain`.

mod host;
pub(crate) use host::{TRACEPARENT_NAME, incoming_traceparent};
pub mod http;
mod pipe;
mod pool;
pub mod tcp;
pub(crate) mod upgrade;

use std::net::SocketAddr;
use std::sync::Arc;

use meshgw_config::SidecarConfig;
use meshgw_federation::model::ServiceName;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::balance::{Balancer, Here, OutlierPolicy};
use crate::catalog::Catalog;
use crate::connect::Dialer;
use crate::metrics::Metrics;
use crate::tls::WorkloadTls;

/// Everything the outbound side needs, handed over by the sidecar's lifecycle.
pub struct Context {
    /// The sidecar's configuration.
    pub cfg: Arc<SidecarConfig>,
    /// The catalog view, kept current by the sidecar's watch.
    pub catalog: Catalog,
    /// The workload's TLS material.
    pub tls: Arc<WorkloadTls>,
    /// Request, connection and byte counters.
    pub metrics: Arc<Metrics>,
    /// Turns `true` when the sidecar shuts down.
    pub shutdown: watch::Receiver<bool>,
}

/// Why the outbound side could not start.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} for {what}: {source} (is another process using the port?)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Which listener (`outbound.http` or the upstream's service).
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// An upstream's service is not `namespace/name`.
    #[error("upstream on {addr}: service {service:?} is not namespace/name")]
    BadService {
        /// The upstream's listen address.
        addr: SocketAddr,
        /// The value configured.
        service: String,
    },
}

/// State shared by every outbound listener and connection.
pub(crate) struct Shared {
    pub cfg: Arc<SidecarConfig>,
    pub dialer: Dialer,
    pub metrics: Arc<Metrics>,
    pub pool: pool::Pool,
    /// `x-meshgw-source-cluster`'s value: `locality.cluster`.
    pub source_cluster: ::http::HeaderValue,
}

/// The bound outbound listeners, ready to [`serve`](Outbound::serve).
pub struct Outbound {
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    http: Option<TcpListener>,
    upstreams: Vec<(TcpListener, ServiceName, u16)>,
}

/// Binds `outbound.http` (if set) and every `[[upstreams]]` listener.
pub async fn bind(ctx: Context) -> Result<Outbound, OutboundError> {
    let cfg = ctx.cfg.clone();
    let here = Here {
        region: cfg.locality.region.clone(),
        zone: cfg.locality.zone.clone(),
    };
    let policy = OutlierPolicy::from(&cfg.outlier);
    let balancer = Arc::new(Balancer::new(here, policy, None).with_metrics(ctx.metrics.clone()));
    let dialer = Dialer::new(cfg.clone(), ctx.tls, ctx.catalog, balancer);
    let listen = |addr: SocketAddr, what: String| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| OutboundError::Bind { addr, what, source })
    };
    let http = match cfg.outbound.http {
        Some(addr) => Some(listen(addr, "outbound.http".into()).await?),
        None => None,
    };
    let mut upstreams = Vec::new();
    for up in &cfg.upstreams {
        let svc = ServiceName::parse(&up.service).ok_or_else(|| OutboundError::BadService {
            addr: up.listen,
            service: up.service.clone(),
        })?;
        let l = listen(up.listen, format!("upstream {svc}")).await?;
        upstreams.push((l, svc, up.port));
    }
    let shared = Arc::new(Shared {
        dialer,
        source_cluster: host::source_cluster_value(&cfg.locality.cluster),
        metrics: ctx.metrics,
        pool: pool::Pool::default(),
        cfg,
    });
    Ok(Outbound {
        shared,
        shutdown: ctx.shutdown,
        http,
        upstreams,
    })
}

/// Binds and serves the outbound listeners until shutdown (see [`bind`]).
pub async fn run(ctx: Context) -> Result<(), OutboundError> {
    bind(ctx).await?.serve().await;
    Ok(())
}

impl Outbound {
    /// Returns the bound address of the HTTP listener, if any.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Returns the bound address of each upstream listener, in config order.
    pub fn upstream_addrs(&self) -> Vec<SocketAddr> {
        self.upstreams
            .iter()
            .filter_map(|(l, _, _)| l.local_addr().ok())
            .collect()
    }

    /// Serves every listener until the shutdown signal, then drains.
    pub async fn serve(self) {
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(l) = self.http {
            tasks.spawn(http::serve(l, self.shared.clone(), self.shutdown.clone()));
        }
        for (l, svc, port) in self.upstreams {
            tasks.spawn(tcp::serve(
                l,
                svc,
                port,
                self.shared.clone(),
                self.shutdown.clone(),
            ));
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// Resolves when `shutdown` turns true (or its sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
