//! Data streams a peer gateway opens towards this cluster: read the route
//! header, check the service is exported to that peer, connect to a healthy
//! local instance's sidecar inbound, answer, then splice.

use std::sync::Arc;

use meshgw_federation::model::{Health, ServiceName};
use meshgw_proxy::route::{self, RouteStatus};
use meshgw_proxy::sidecar::splice::splice;
use tokio::net::TcpStream;

use super::pipe::read_frame;
use super::{SPLICE_BUF, answer};
use crate::shared::Shared;

/// Serves one data stream from `peer`.
pub async fn serve(
    shared: Arc<Shared>,
    peer: String,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let me = shared.cfg.cluster.name.clone();
    let timeout = shared.cfg.timeouts.connect;
    let h = match read_frame(&mut recv, route::decode_header, timeout).await {
        Ok(h) => h,
        Err(e) => {
            reply(&mut send, answer(&me, RouteStatus::BadHeader, e)).await;
            let _ = send.finish();
            return;
        }
    };
    let svc = ServiceName::new(&h.namespace, &h.service);
    if h.source_cluster != peer {
        let why = format!(
            "header says source cluster {} but the tunnel is from {peer}",
            h.source_cluster
        );
        reply(&mut send, answer(&me, RouteStatus::BadHeader, why)).await;
        let _ = send.finish();
        return;
    }
    if !shared.cfg.exports_to(&peer, &svc.namespace, &svc.name) {
        reply(
            &mut send,
            answer(
                &me,
                RouteStatus::NotExported,
                format!("{svc} is not exported to {peer}"),
            ),
        )
        .await;
        let _ = send.finish();
        return;
    }
    let mut targets: Vec<String> = shared
        .instances
        .borrow()
        .get(&svc)
        .into_iter()
        .flatten()
        .filter(|i| i.health == Health::Healthy)
        .map(|i| format!("{}:{}", i.address, i.port))
        .collect();
    shared.instance_load.order(&mut targets);
    let mut last_err = format!("no healthy instance of {svc}");
    let mut status = RouteStatus::NoInstance;
    let mut tcp: Option<(TcpStream, &String)> = None;
    // One budget for every attempt, so that the caller's gateway, which waits
    // twice as long, hears from us before it gives up on us.
    let deadline = tokio::time::Instant::now() + timeout;
    for addr in targets.iter().take(3) {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr.as_str())).await {
            Ok(Ok(s)) => {
                tcp = Some((s, addr));
                break;
            }
            Ok(Err(e)) => {
                last_err = format!("instance {addr} of {svc} refused: {e}");
                status = RouteStatus::NoInstance;
            }
            Err(_) => {
                last_err = format!(
                    "connect to instance {addr} of {svc} timed out (timeouts.connect = {timeout:?} for all attempts)"
                );
                status = RouteStatus::Timeout;
                break;
            }
        }
    }
    let Some((mut tcp, addr)) = tcp else {
        shared.metrics.forwarded(&peer, &svc, "error");
        reply(&mut send, answer(&me, status, last_err)).await;
        let _ = send.finish();
        return;
    };
    let _ = tcp.set_nodelay(true);
    if !reply(&mut send, answer(&me, RouteStatus::Ok, "connected")).await {
        return;
    }
    shared.metrics.forwarded(&peer, &svc, "ok");
    let _open = shared.metrics.stream_open(&peer);
    let _load = shared.instance_load.open(addr);
    let mut pipe = tokio::io::join(recv, send);
    let r = splice(&mut pipe, &mut tcp, shared.cfg.timeouts.idle, SPLICE_BUF).await;
    let (mut recv, mut send) = pipe.into_inner();
    match r {
        Ok((down, up)) => shared.metrics.stream_bytes(&peer, up, down),
        Err(e) => {
            // Tell both sides the pipe broke rather than ending it cleanly.
            let _ = send.reset(1u32.into());
            let _ = recv.stop(1u32.into());
            meshgw_proxy::reset::reset_on_drop(&tcp);
            tracing::debug!(%peer, service = %svc, error = %e, "inbound stream broke");
        }
    }
}

/// Writes an answer on the stream; returns whether it was written.
async fn reply(send: &mut quinn::SendStream, a: route::RouteAnswer) -> bool {
    send.write_all(&route::encode_answer(&a)).await.is_ok()
}
