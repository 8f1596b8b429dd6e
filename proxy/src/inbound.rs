//! The inbound listener: mTLS from other sidecars (directly, or through
//! gateways from other clusters) to the local app.
//!
//! After the handshake, the caller's SPIFFE ID comes from its certificate.
//! ALPN `meshgw-tcp` (or a `tcp` service) splices bytes to the app; ALPN
//! `h2` serves HTTP/2 and forwards each request, streaming, to the app over
//! HTTP/1.1 (`http`) or cleartext HTTP/2 (`grpc`), adding `x-meshgw-caller`.
//! A refused handshake is logged, counted, and never stops the listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use meshgw_config::{Access, AppProtocol, SidecarConfig, Timeouts};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::metrics::{Direction, Metrics};
use crate::sidecar::forward::{AppForwarder, Caller};
use crate::sidecar::policy::Policy;
use crate::sidecar::splice::splice;
use crate::tls::{ALPN_H2, WorkloadTls};

/// How long a caller has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The inbound side of one sidecar.
pub struct Inbound {
    app: SocketAddr,
    protocol: AppProtocol,
    timeouts: Timeouts,
    tls: Arc<WorkloadTls>,
    metrics: Arc<Metrics>,
    http: Arc<AppForwarder>,
    /// `[authz]` in force (reloaded with the config file).
    policy: Arc<Policy>,
    /// `namespace/name`, for logs.
    service: String,
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("app", &self.app)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl Inbound {
    /// Creates the inbound side for `cfg`'s app, accepting with `tls` (its
    /// current certificate at each handshake, so a rotation applies at once).
    pub fn new(cfg: &SidecarConfig, tls: Arc<WorkloadTls>, metrics: Arc<Metrics>) -> Arc<Self> {
        let service = format!("{}/{}", cfg.service.namespace, cfg.service.name);
        Arc::new(Self {
            app: cfg.service.app,
            protocol: cfg.service.protocol,
            timeouts: cfg.timeouts,
            tls,
            http: Arc::new(AppForwarder::new(cfg, service.clone(), metrics.clone())),
            metrics,
            policy: Policy::new(cfg.authz.clone()),
            service,
        })
    }

    /// The `[authz]` policy this inbound side judges callers by.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.clone()
    }

    /// Accepts connections on `listener` until `shutdown` turns true, then
    /// stops accepting and lets open connections finish for up to
    /// `timeouts.drain` (HTTP/2 callers get a GOAWAY), then closes the rest.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                _ = crate::sidecar::stopped(&mut shutdown) => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((tcp, remote)) => {
                        let me = self.clone();
                        conns.spawn(me.connection(tcp, remote, shutdown.clone()));
                    }
                    Err(e) => crate::accept::failed("inbound", &e).await,
                },
            }
        }
        drop(listener);
        let open = conns.len();
        if open > 0 {
            tracing::info!(open, drain = ?self.timeouts.drain, "inbound draining connections");
        }
        let drained = tokio::time::timeout(self.timeouts.drain, async {
            while conns.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = conns.len(),
                "inbound drain timed out; closing the rest"
            );
            conns.abort_all();
        }
    }

    async fn connection(
        self: Arc<Self>,
        tcp: TcpStream,
        remote: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) {
        let _ = tcp.set_nodelay(true);
        let acceptor = TlsAcceptor::from(self.tls.server());
        let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                self.metrics.handshake_failed(Direction::Inbound);
                tracing::warn!(%remote, error = %e, "refused inbound connection: TLS handshake failed; the caller needs a workload certificate of this mesh (`meshgw ca workload`)");
                return;
            }
            Err(_) => {
                self.metrics.handshake_failed(Direction::Inbound);
                tracing::warn!(%remote, "refused inbound connection: TLS handshake timed out after {HANDSHAKE_TIMEOUT:?}");
                return;
            }
        };
        let (_, session) = tls.get_ref();
        let caller =
            meshgw_identity::peer_spiffe_id(session.peer_certificates()).unwrap_or_default();
        let cluster = meshgw_identity::peer_cluster(session.peer_certificates());
        let h2 = session.alpn_protocol() == Some(ALPN_H2);
        let http = h2 && self.protocol != AppProtocol::Tcp;
        let (access, generation) = self.policy.access(&caller);
        let denied = match &access {
            Access::All => false,
            Access::Limited(_) if !http => {
                tracing::warn!(%remote, %caller, service = %self.service, "refused caller: its [[authz.rules]] limit methods or paths, which a TCP connection has none of (connection reset); add it to [authz] allow, or give it a rule without methods and paths");
                true
            }
            Access::Limited(_) => false,
            Access::Denied => {
                let answer = if http {
                    "its requests get 403"
                } else {
                    "connection reset"
                };
                tracing::warn!(%remote, %caller, service = %self.service, "refused caller: not in [authz] allow nor in any [[authz.rules]] ({answer}); add its SPIFFE ID (or a prefix/*) to allow or a rule if it should call this service");
                true
            }
        };
        if denied && !http {
            self.metrics.authz_denied(&caller);
            crate::reset::reset_on_drop(tls.get_ref().0);
            return;
        }
        self.metrics.conn_open(Direction::Inbound);
        if http {
            tracing::debug!(%remote, %caller, "inbound HTTP/2 connection");
            self.http
                .clone()
                .serve_h2(
                    tls,
                    Caller::new(&caller, cluster.as_deref()).with_policy(
                        self.policy.clone(),
                        access,
                        generation,
                    ),
                    shutdown,
                )
                .await;
        } else {
            self.splice_to_app(tls, remote, &caller).await;
        }
        self.metrics.conn_close(Direction::Inbound);
    }

    async fn splice_to_app(&self, mut tls: TlsStream<TcpStream>, remote: SocketAddr, caller: &str) {
        let app = match tokio::time::timeout(self.timeouts.connect, TcpStream::connect(self.app))
            .await
        {
            Ok(Ok(app)) => app,
            Ok(Err(e)) => {
                crate::reset::reset_on_drop(tls.get_ref().0);
                tracing::warn!(%remote, %caller, app = %self.app, error = %e, "cannot reach the app; is it listening on service.app?");
                return;
            }
            Err(_) => {
                crate::reset::reset_on_drop(tls.get_ref().0);
                tracing::warn!(%remote, %caller, app = %self.app, "connecting to the app timed out (timeouts.connect)");
                return;
            }
        };
        let mut app = app;
        let _ = app.set_nodelay(true);
        match splice(&mut tls, &mut app, self.timeouts.idle, 8 * 1024).await {
            Ok((up, down)) => {
                self.metrics.bytes(Direction::Inbound, up + down);
                tracing::debug!(%remote, %caller, up, down, "inbound TCP connection closed");
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                tracing::debug!(%remote, %caller, error = %e, "inbound TCP connection idle: closed");
            }
            Err(e) => {
                // A break on either side reaches the other as a reset.
                crate::reset::reset_on_drop(tls.get_ref().0);
                crate::reset::reset_on_drop(&app);
                tracing::debug!(%remote, %caller, error = %e, "inbound TCP connection broke: both sides reset");
            }
        }
    }
}
