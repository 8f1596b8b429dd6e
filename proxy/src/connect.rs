//! Opening a mesh connection to a service: choose a [`Target`] with the
//! [`Balancer`], dial it, and retry once on another target when the failure
//! happened before any byte of the caller was sent.
//!
//! - [`Target::Local`]: TCP to the instance's sidecar, then mTLS expecting the
//!   service's workload identity.
//! - [`Target::ViaGateway`]: TCP to `gateway.forward`, mTLS expecting the
//!   gateway's identity (ALPN `meshgw-forward`), the [route header](crate::route)
//!   and its answer, then a second mTLS session *inside* the first one, with
//!   the destination sidecar: the gateways only ever see ciphertext.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshgw_config::SidecarConfig;
use meshgw_federation::model::ServiceName;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use crate::balance::{Balancer, InFlight, Target};
use crate::catalog::Catalog;
use crate::error::{Hop, ProxyError, Reason};
use crate::route::{self, RouteHeader, RouteStatus};
use crate::tls::{WorkloadTls, service_spiffe_id};

/// ALPN protocol spoken to the local gateway's forward listener.
pub const FORWARD_ALPN: &[u8] = b"meshgw-forward";

/// The wait for a gateway's route answer, in multiples of `timeouts.connect`.
pub const ROUTE_ANSWER_CONNECTS: u32 = 3;

/// Any byte stream a mesh TLS session can run over (TCP, or another TLS session).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {
    /// The TCP connection at the bottom, to [reset](crate::reset) it when a pipe breaks.
    fn tcp(&self) -> &TcpStream;
}

impl Io for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Io for MeshStream {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0.tcp()
    }
}

/// A boxed [`Io`], so direct and nested connections share one type.
pub type BoxIo = Box<dyn Io>;

/// An established sidecar-to-sidecar mTLS stream.
pub type MeshStream = tokio_rustls::client::TlsStream<BoxIo>;

/// A connection (or pooled session) to a chosen target.
#[derive(Debug)]
pub struct Connected<T> {
    /// The stream, or whatever the attempt built over it.
    pub conn: T,
    /// Where it goes.
    pub target: Target,
    /// Counts the request in flight on the target while held.
    pub guard: InFlight,
}

/// Dials mesh connections for one sidecar.
#[derive(Clone)]
pub struct Dialer {
    cfg: Arc<SidecarConfig>,
    tls: Arc<WorkloadTls>,
    catalog: Catalog,
    balancer: Arc<Balancer>,
}

impl Dialer {
    /// Creates a dialer from the sidecar's config, TLS material, catalog and balancer.
    pub fn new(
        cfg: Arc<SidecarConfig>,
        tls: Arc<WorkloadTls>,
        catalog: Catalog,
        balancer: Arc<Balancer>,
    ) -> Self {
        Dialer {
            cfg,
            tls,
            catalog,
            balancer,
        }
    }

    /// Returns the sidecar's config.
    pub fn config(&self) -> &SidecarConfig {
        &self.cfg
    }

    /// Returns how many healthy instances of `svc` the catalog says
    /// `cluster` has (0 when it does not import the service).
    pub fn remote_healthy(&self, svc: &ServiceName, cluster: &str) -> u32 {
        self.catalog
            .current()
            .remote
            .get(svc)
            .and_then(|cs| cs.iter().find(|c| c.cluster == cluster))
            .map_or(0, |c| c.healthy)
    }

    /// Feeds the status of a response from `target` to outlier detection
    /// (5xx in a row eject it).
    pub fn report_response(&self, svc: &ServiceName, target: &Target, status: u16) {
        self.balancer
            .report_response(svc, target, status, Instant::now());
    }

    /// Chooses a target for `svc`, connects to it with ALPN `alpn`, and
    /// retries once on another target if the first failure is retryable.
    pub async fn connect(
        &self,
        svc: &ServiceName,
        port: u16,
        alpn: &[u8],
        traceparent: Option<&str>,
    ) -> Result<Connected<MeshStream>, ProxyError> {
        self.with_retry(svc, |t| async move {
            self.dial(&t, svc, port, alpn, traceparent).await
        })
        .await
    }

    /// Runs `attempt` on a chosen target for `svc`; on a retryable error,
    /// reports the failure to the balancer and runs it once more on another
    /// target. Successes and connect failures feed outlier detection.
    pub async fn with_retry<T, F, Fut>(
        &self,
        svc: &ServiceName,
        attempt: F,
    ) -> Result<Connected<T>, ProxyError>
    where
        F: FnMut(Target) -> Fut,
        Fut: Future<Output = Result<T, ProxyError>>,
    {
        self.with_retry_excluding(svc, Vec::new(), attempt).await
    }

    /// [`Dialer::with_retry`], never choosing a target whose key is in
    /// `tried` (unless nothing else is left, as the balancer's last resort).
    pub async fn with_retry_excluding<T, F, Fut>(
        &self,
        svc: &ServiceName,
        mut tried: Vec<String>,
        mut attempt: F,
    ) -> Result<Connected<T>, ProxyError>
    where
        F: FnMut(Target) -> Fut,
        Fut: Future<Output = Result<T, ProxyError>>,
    {
        let mut last: Option<ProxyError> = None;
        for round in 0..2 {
            let view = self.catalog.current();
            let now = Instant::now();
            let pick = self.balancer.choose(&view, svc, now, &tried).or_else(|| {
                // The caller's exclusions only steer: with nothing else
                // left, its target is still better than no target.
                (round == 0 && !tried.is_empty())
                    .then(|| self.balancer.choose(&view, svc, now, &[]))
                    .flatten()
            });
            let Some(pick) = pick else {
                return Err(last.unwrap_or_else(|| no_target(&view, svc)));
            };
            match attempt(pick.target.clone()).await {
                Ok(conn) => {
                    self.balancer
                        .report(svc, &pick.target, true, Instant::now());
                    return Ok(Connected {
                        conn,
                        target: pick.target,
                        guard: pick.guard,
                    });
                }
                Err(e) if e.retryable() => {
                    tracing::debug!(service = %svc, target = %pick.target.key(), error = %e, "connect failed");
                    self.balancer
                        .report(svc, &pick.target, false, Instant::now());
                    tried.push(pick.target.key());
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("two failed attempts"))
    }

    /// Makes one connection attempt to `target` (no balancing, no retry).
    pub async fn dial(
        &self,
        target: &Target,
        svc: &ServiceName,
        port: u16,
        alpn: &[u8],
        traceparent: Option<&str>,
    ) -> Result<MeshStream, ProxyError> {
        let limit = self.cfg.timeouts.connect;
        let io: BoxIo = match target {
            Target::Local(ep) => Box::new(tcp(&ep.addr, Hop::DestinationSidecar, limit).await?),
            Target::ViaGateway { cluster } => {
                Box::new(self.via_gateway(cluster, svc, port, traceparent).await?)
            }
        };
        let expected = service_spiffe_id(&self.cfg.mesh.trust_domain, &svc.namespace, &svc.name);
        let sni = format!("{}.{}.mesh", svc.name, svc.namespace);
        tls(
            self.client_for(&expected, alpn)?,
            &sni,
            io,
            Hop::DestinationSidecar,
            limit,
        )
        .await
    }

    async fn via_gateway(
        &self,
        cluster: &str,
        svc: &ServiceName,
        port: u16,
        traceparent: Option<&str>,
    ) -> Result<MeshStream, ProxyError> {
        let limit = self.cfg.timeouts.connect;
        let gw = &self.cfg.gateway;
        let io: BoxIo = Box::new(tcp(&gw.forward, Hop::LocalGateway, limit).await?);
        let config = self.client_for(&gw.spiffe_id, FORWARD_ALPN)?;
        let mut outer = tls(config, "gateway", io, Hop::LocalGateway, limit).await?;
        let header = RouteHeader {
            namespace: svc.namespace.clone(),
            service: svc.name.clone(),
            port,
            source_cluster: self.cfg.locality.cluster.clone(),
            target_cluster: Some(cluster.to_owned()),
            traceparent: traceparent.map(str::to_owned),
        };
        let exchange = async {
            let frame = route::encode_header(&header).map_err(std::io::Error::other)?;
            outer.write_all(&frame).await?;
            outer.flush().await?;
            read_answer(&mut outer).await
        };
        // The gateways answer within 2 × their timeouts.connect (the peer's
        // instance connects within 1 ×): waiting 3 × ours means that, with
        // equal settings, a hop further on that times out is named by the
        // gateway that saw it, not blamed on the local gateway.
        let answer_limit = limit * ROUTE_ANSWER_CONNECTS;
        let answer = match timeout(answer_limit, exchange).await {
            Err(_) => {
                return Err(ProxyError::new(
                    Hop::LocalGateway,
                    Reason::ConnectTimeout,
                    format!("no route answer from {} in {answer_limit:?}", gw.forward),
                ));
            }
            Ok(Err(e)) => return Err(io_error(Hop::LocalGateway, &gw.forward, e)),
            Ok(Ok(a)) => a,
        };
        if answer.status != RouteStatus::Ok {
            return Err(ProxyError::from_answer(
                &answer,
                &self.cfg.locality.cluster,
                cluster,
            ));
        }
        Ok(outer)
    }

    fn client_for(
        &self,
        expected: &str,
        alpn: &[u8],
    ) -> Result<Arc<rustls::ClientConfig>, ProxyError> {
        self.tls.client_for(expected, &[alpn]).map_err(|e| {
            ProxyError::new(
                Hop::LocalSidecar,
                Reason::Tls(e.to_string()),
                format!("client TLS configuration for {expected}"),
            )
        })
    }
}

/// Reads the gateway's answer frame exactly (no byte past it), so what
/// follows on the stream is left for the inner TLS session.
async fn read_answer<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<route::RouteAnswer> {
    let mut buf = vec![0u8; 6];
    r.read_exact(&mut buf).await?;
    let bad = |e: route::RouteError| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
    if let Some((a, _)) = route::decode_answer(&buf).map_err(bad)? {
        return Ok(a);
    }
    let len = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
    buf.resize(6 + len, 0);
    r.read_exact(&mut buf[6..]).await?;
    match route::decode_answer(&buf).map_err(bad)? {
        Some((a, _)) => Ok(a),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "truncated route answer",
        )),
    }
}

fn no_target(view: &crate::catalog::View, svc: &ServiceName) -> ProxyError {
    let known = view.local.contains_key(svc) || view.remote.contains_key(svc);
    let reason = if known {
        Reason::NoInstance
    } else {
        Reason::UnknownService
    };
    let detail = if known {
        "no healthy local instance and no healthy, fresh remote cluster"
    } else {
        "not in the catalog"
    };
    ProxyError::new(Hop::LocalSidecar, reason, detail)
}

async fn tcp(addr: &str, hop: Hop, limit: Duration) -> Result<TcpStream, ProxyError> {
    match timeout(limit, TcpStream::connect(addr)).await {
        Err(_) => Err(ProxyError::new(
            hop,
            Reason::ConnectTimeout,
            format!("TCP connect to {addr} took over {limit:?}"),
        )),
        Ok(Err(e)) => Err(io_error(hop, addr, e)),
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
    }
}

async fn tls(
    config: Arc<rustls::ClientConfig>,
    sni: &str,
    io: BoxIo,
    hop: Hop,
    limit: Duration,
) -> Result<MeshStream, ProxyError> {
    let name = ServerName::try_from(sni.to_owned()).map_err(|_| {
        ProxyError::new(
            Hop::LocalSidecar,
            Reason::Tls(format!("invalid server name {sni}")),
            sni.to_owned(),
        )
    })?;
    match timeout(limit, TlsConnector::from(config).connect(name, io)).await {
        Err(_) => Err(ProxyError::new(
            hop,
            Reason::ConnectTimeout,
            format!("TLS handshake with {sni} took over {limit:?}"),
        )),
        Ok(Err(e)) if e.kind() == io::ErrorKind::InvalidData => Err(ProxyError::new(
            hop,
            Reason::Tls(e.to_string()),
            format!("TLS handshake with {sni}"),
        )),
        Ok(Err(e)) => Err(io_error(hop, sni, e)),
        Ok(Ok(s)) => Ok(s),
    }
}

fn io_error(hop: Hop, what: &str, e: io::Error) -> ProxyError {
    let reason = match e.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => Reason::Refused,
        io::ErrorKind::InvalidData => Reason::BadHeader(e.to_string()),
        _ => Reason::Io(e.to_string()),
    };
    ProxyError::new(hop, reason, format!("{what}: {e}"))
}
