//! `[[upstreams]]`: a local TCP listener bound to one service. Each accepted
//! connection is piped, with the idle timeout and half-closes, to a target
//! chosen by the balancer over mesh mTLS with ALPN `meshgw-tcp`. A connection
//! that breaks on one side is reset on the other.

use std::sync::Arc;

use meshgw_federation::model::ServiceName;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::pipe::{End, pipe};
use super::{Shared, stopped};
use crate::balance::Target;
use crate::connect::Io;
use crate::metrics::Direction;
use crate::reset::reset_on_drop;
use crate::tls::ALPN_TCP;

/// Accepts connections on `listener` for `svc` (target `port`) until
/// shutdown, then waits up to `timeouts.drain` for open connections.
pub(crate) async fn serve(
    listener: TcpListener,
    svc: ServiceName,
    port: u16,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let (shared, svc) = (shared.clone(), svc.clone());
                    conns.spawn(async move {
                        tracing::debug!(%peer, service = %svc, "outbound TCP connection");
                        proxy(stream, &svc, port, &shared).await;
                    });
                }
                Err(e) => crate::accept::failed("upstream", &e).await,
            },
        }
    }
    drop(listener);
    let drain = shared.cfg.timeouts.drain;
    if tokio::time::timeout(drain, async { while conns.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::info!(service = %svc, open = conns.len(), "drain time over: closing TCP connections");
        conns.shutdown().await;
    }
}

async fn proxy(mut app: TcpStream, svc: &ServiceName, port: u16, shared: &Shared) {
    let _ = app.set_nodelay(true);
    let connected = match shared.dialer.connect(svc, port, ALPN_TCP, None).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(service = %svc, error = %e, "outbound TCP connection refused: no target reachable");
            // Reset rather than close: the app must not take a refusal for an empty answer.
            reset_on_drop(&app);
            return;
        }
    };
    let metrics = &shared.metrics;
    metrics.conn_open(Direction::Outbound);
    let idle = shared.cfg.timeouts.idle;
    let mut conn = connected.conn;
    let end = pipe(&mut app, &mut conn, idle, |_, n| {
        metrics.bytes(Direction::Outbound, n)
    })
    .await;
    metrics.conn_close(Direction::Outbound);
    let target = match &connected.target {
        Target::Local(ep) => ep.addr.clone(),
        Target::ViaGateway { cluster } => format!("cluster {cluster}"),
    };
    match end {
        Ok(End::Closed(up, down)) => {
            tracing::debug!(service = %svc, %target, up, down, "TCP connection closed")
        }
        Ok(End::Idle) => {
            tracing::debug!(service = %svc, %target, ?idle, "TCP connection idle: closed")
        }
        Err(e) => {
            // A break on either side reaches the other as a reset.
            reset_on_drop(&app);
            reset_on_drop(conn.tcp());
            tracing::debug!(service = %svc, %target, error = %e, "TCP connection broke: both sides reset")
        }
    }
}
