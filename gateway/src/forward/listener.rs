//! The forward listener: local sidecars hand over connections bound for
//! another cluster. Reads the route header, picks the peer cluster (the one
//! the sidecar named, else the lowest-RTT peer exporting healthy instances),
//! opens a QUIC data stream to it, relays the peer's answer, then splices.

use std::sync::Arc;
use std::time::Instant;

use meshgw_federation::model::ServiceName;
use meshgw_proxy::reset::reset_on_drop;
use meshgw_proxy::route::{self, RouteAnswer, RouteHeader, RouteStatus};
use meshgw_proxy::sidecar::splice::splice;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::pipe::read_frame;
use super::{SPLICE_BUF, STREAM_DATA, answer};
use crate::shared::Shared;

/// Binds the forward listener.
pub async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot bind the forward port on TCP {addr}: {e}: is another gateway running? set listen.forward to a free port")
    })
}

/// Accepts sidecars' connections forever.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, shared: Arc<Shared>) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                meshgw_proxy::accept::failed("forward", &e).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, shared) = (acceptor.clone(), shared.clone());
        tokio::spawn(async move {
            let timeout = shared.cfg.timeouts.connect;
            let tls = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::warn!(%remote, error = %e, "refused a forward connection: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::warn!(%remote, "refused a forward connection: no TLS handshake within {timeout:?}");
                    return;
                }
            };
            handle(shared, tls).await;
        });
    }
}

async fn handle(
    shared: Arc<Shared>,
    mut tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
) {
    let me = shared.cfg.cluster.name.clone();
    let timeout = shared.cfg.timeouts.connect;
    let header = match read_frame(&mut tls, route::decode_header, timeout).await {
        Ok(h) => h,
        Err(e) => {
            let _ = tls
                .write_all(&route::encode_answer(&answer(
                    &me,
                    RouteStatus::BadHeader,
                    e,
                )))
                .await;
            return;
        }
    };
    let svc = ServiceName::new(&header.namespace, &header.service);
    let started = Instant::now();
    let (ans, quic) = match open(&shared, &header, &svc).await {
        Ok(v) => v,
        Err(a) => (a, None),
    };
    tracing::debug!(service = %svc, status = ?ans.status, reason = %ans.reason, "forward");
    if tls.write_all(&route::encode_answer(&ans)).await.is_err() {
        return;
    }
    let (Some((cluster, send, recv)), RouteStatus::Ok) = (quic, ans.status) else {
        shared.metrics.forwarded(
            header.target_cluster.as_deref().unwrap_or("-"),
            &svc,
            "error",
        );
        return;
    };
    shared.metrics.forwarded(&cluster, &svc, "ok");
    let _open = shared.metrics.stream_open(&cluster);
    let mut pipe = tokio::io::join(recv, send);
    let r = splice(&mut tls, &mut pipe, shared.cfg.timeouts.idle, SPLICE_BUF).await;
    let (mut recv, mut send) = pipe.into_inner();
    match r {
        Ok((up, down)) => {
            shared.metrics.stream_bytes(&cluster, up, down);
            tracing::debug!(service = %svc, %cluster, up, down, elapsed = ?started.elapsed(), "forward done");
        }
        Err(e) => {
            // Tell both sides the pipe broke rather than ending it cleanly.
            let _ = send.reset(1u32.into());
            let _ = recv.stop(1u32.into());
            reset_on_drop(tls.get_ref().0);
            tracing::debug!(service = %svc, %cluster, error = %e, "forward broke");
        }
    }
}

type Quic = (String, quinn::SendStream, quinn::RecvStream);

/// Picks the cluster, opens the data stream, and returns the peer's answer.
async fn open(
    shared: &Shared,
    h: &RouteHeader,
    svc: &ServiceName,
) -> Result<(RouteAnswer, Option<Quic>), RouteAnswer> {
    let me = &shared.cfg.cluster.name;
    let cluster = choose(shared, h, svc)?;
    let conn = shared.peers.best_conn(&cluster).ok_or_else(|| {
        answer(
            me,
            RouteStatus::PeerUnreachable,
            format!("no tunnel to {cluster} is up"),
        )
    })?;
    let timeout = shared.cfg.timeouts.connect;
    let hdr = RouteHeader {
        target_cluster: Some(cluster.clone()),
        source_cluster: me.clone(),
        ..h.clone()
    };
    // With this gateway's cluster names in it the header may no longer fit.
    let frame = route::encode_header(&hdr).map_err(|e| {
        answer(
            me,
            RouteStatus::BadHeader,
            format!("{e} once addressed to {cluster}"),
        )
    })?;
    let attempt = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        send.write_all(&[STREAM_DATA])
            .await
            .map_err(|e| e.to_string())?;
        send.write_all(&frame).await.map_err(|e| e.to_string())?;
        // Bounded by the whole exchange's limit below: the peer may spend
        // its own `timeouts.connect` on instances before it answers.
        let ans = read_frame(&mut recv, route::decode_answer, timeout * 2)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((ans, send, recv))
    };
    match tokio::time::timeout(timeout * 2, attempt).await {
        Ok(Ok((ans, send, recv))) => Ok((ans, Some((cluster, send, recv)))),
        Ok(Err(e)) => Err(answer(
            me,
            RouteStatus::PeerUnreachable,
            format!("stream to {cluster} failed: {e}"),
        )),
        // Named after the peer: it is the hop that did not answer.
        Err(_) => Err(answer(
            &cluster,
            RouteStatus::Timeout,
            format!(
                "no answer to gateway {me} within {:?} (2 × timeouts.connect)",
                timeout * 2
            ),
        )),
    }
}

/// Returns the cluster to send `svc` to.
fn choose(shared: &Shared, h: &RouteHeader, svc: &ServiceName) -> Result<String, RouteAnswer> {
    let me = &shared.cfg.cluster.name;
    let exports_healthy = |peer: &str| {
        shared.imports.get(peer).is_some_and(|imp| {
            imp.desired
                .borrow()
                .as_ref()
                .and_then(|m| m.get(svc).map(|s| s.healthy > 0))
                .unwrap_or(false)
        })
    };
    if let Some(t) = &h.target_cluster {
        if !shared.imports.contains_key(t) {
            return Err(answer(
                me,
                RouteStatus::NoInstance,
                format!("{t} is not a peer of {me}"),
            ));
        }
        if !shared.peers.is_connected(t) {
            return Err(answer(
                me,
                RouteStatus::PeerUnreachable,
                format!("no tunnel to {t} is up"),
            ));
        }
        if !exports_healthy(t) {
            return Err(answer(
                me,
                RouteStatus::NoInstance,
                format!("{t} exports no healthy {svc} to {me}"),
            ));
        }
        return Ok(t.clone());
    }
    let exporting: Vec<&String> = shared
        .imports
        .keys()
        .filter(|p| exports_healthy(p))
        .collect();
    exporting
        .iter()
        .filter(|p| shared.peers.is_connected(p))
        .min_by(|a, b| {
            let ra = shared.peers.rtt_ms(a).unwrap_or(f64::MAX);
            let rb = shared.peers.rtt_ms(b).unwrap_or(f64::MAX);
            ra.total_cmp(&rb)
        })
        .map(|p| (*p).clone())
        .ok_or_else(|| {
            if exporting.is_empty() {
                answer(
                    me,
                    RouteStatus::NoInstance,
                    format!("no peer exports a healthy {svc} to {me}"),
                )
            } else {
                answer(
                    me,
                    RouteStatus::PeerUnreachable,
                    format!("peers exporting {svc} are unreachable"),
                )
            }
        })
}
