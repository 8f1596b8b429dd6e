//! The tokio driver of one catalog sync session: shuttles bytes between the
//! QUIC control stream and the sans-IO [`Session`], feeds it the exports for
//! this peer, hands imports to the peer's writer, and keeps this replica's
//! session marker alive while the peer is heard.

mod marker;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use meshgw_federation::sync::{CloseReason, LocalInfo, Session, SessionConfig, SessionEvent};

use crate::exports::for_peer;
use crate::peers::unix_ms;
use crate::shared::Shared;

/// Runs the session until it closes; returns why it closed.
pub async fn run(
    shared: Arc<Shared>,
    peer: String,
    link: u64,
    conn: quinn::Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) -> Result<String> {
    let cfg = &shared.cfg;
    let local = LocalInfo {
        cluster: cfg.cluster.name.clone(),
        cloud: cfg.cluster.cloud.clone(),
        region: cfg.cluster.region.clone(),
        zones: vec![cfg.cluster.zone.clone()],
        replica: shared.replica.clone(),
    };
    let scfg = SessionConfig {
        heartbeat_interval: cfg.sync.heartbeat_interval,
        peer_timeout: cfg.sync.peer_timeout,
        max_unacked: 64,
    };
    let mut session = Session::new(local, Some(peer.clone()), scfg, Instant::now());
    let mut exports = shared.exports.clone();
    offer(
        &mut session,
        &peer,
        for_peer(cfg, &peer, &exports.borrow_and_update()),
    );
    let imports = shared.imports[&peer].clone();
    let mut marker: Option<marker::Marker> = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut stream_frames = 0;
    let reason = loop {
        while let Some(bytes) = session.poll_transmit() {
            send.write_all(&bytes).await?;
        }
        let mut closed = None;
        while let Some(ev) = session.poll_event() {
            match ev {
                SessionEvent::Established(info) => {
                    tracing::info!(%peer, replica = %info.replica, region = %info.region, "sync session established");
                    marker = Some(marker::Marker::start(&shared, &peer, link));
                }
                SessionEvent::ImportSnapshot(list) => {
                    tracing::debug!(%peer, services = list.len(), "import snapshot");
                    imports.apply_snapshot(list);
                    shared
                        .peers
                        .update_link(&peer, link, |l| l.last_sync_ms = unix_ms());
                }
                SessionEvent::ImportDelta { upserts, removals } => {
                    tracing::debug!(%peer, upserts = upserts.len(), removals = removals.len(), "import delta");
                    imports.apply_delta(upserts, removals);
                    shared
                        .peers
                        .update_link(&peer, link, |l| l.last_sync_ms = unix_ms());
                }
                SessionEvent::Acked { seq } => {
                    shared.metrics.acked(&peer, seq);
                }
                SessionEvent::Closed(r) => closed = Some(r),
            }
        }
        if let Some(r) = closed {
            // Flush a final error frame, if any, before closing.
            while let Some(bytes) = session.poll_transmit() {
                let _ = send.write_all(&bytes).await;
            }
            let _ = send.finish();
            break describe(&peer, &r);
        }
        // Stream frames arriving from the peer prove it alive when its
        // heartbeats come late: on a CPU-starved machine with bulk data on
        // the tunnel, data kept arriving while no sync frame did for the
        // whole peer timeout, and the tunnel (every stream on it) was closed.
        let seen = refresh_link(&shared, &peer, link, &conn);
        if seen != stream_frames {
            stream_frames = seen;
            session.handle_peer_activity(Instant::now());
        }
        let deadline = session
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + std::time::Duration::from_secs(1));
        // Bytes first: after a stall (a busy machine) the peer's frames and
        // the deadline can be ready together, and the frames must count. A
        // deadline passed meanwhile is still served (our heartbeats), so a
        // peer that keeps the stream busy never starves the timer.
        tokio::select! {
            biased;
            r = recv.read(&mut buf) => match r? {
                Some(n) => {
                    session.handle_bytes(&buf[..n], Instant::now());
                    if tokio::time::Instant::now() >= deadline {
                        session.handle_timeout(Instant::now());
                    }
                }
                None => break format!("peer {peer} closed the control stream"),
            },
            r = exports.changed() => {
                if r.is_err() { break "gateway shutting down".to_string() }
                let set = for_peer(cfg, &peer, &exports.borrow_and_update());
                offer(&mut session, &peer, set);
            }
            _ = tokio::time::sleep_until(deadline) => session.handle_timeout(Instant::now()),
        }
    };
    drop(marker);
    Ok(reason)
}

/// Hands the session a new export set. A set it rejects (a local record with
/// an invalid name) is logged; the session keeps exporting the previous one.
fn offer(session: &mut Session, peer: &str, set: meshgw_federation::sync::ExportSet) {
    if let Err(e) = session.set_exports(set, Instant::now()) {
        tracing::warn!(%peer, error = %e, "export set refused; the peer keeps the previous one");
    }
}

/// Copies QUIC's path figures into the peer registry and metrics; returns
/// the count of STREAM frames received on the connection so far.
fn refresh_link(shared: &Shared, peer: &str, link: u64, conn: &quinn::Connection) -> u64 {
    let stats = conn.stats();
    let rtt = conn.rtt();
    shared.peers.update_link(peer, link, |l| {
        l.rtt_ms = rtt.as_secs_f64() * 1000.0;
        l.lost_packets = stats.path.lost_packets;
        l.bytes_sent = stats.udp_tx.bytes;
        l.bytes_received = stats.udp_rx.bytes;
    });
    shared.metrics.tunnel(peer, rtt, &stats);
    stats.frame_rx.stream
}

/// Returns an operator-readable close reason.
fn describe(peer: &str, r: &CloseReason) -> String {
    match r {
        CloseReason::PeerTimedOut { .. } => {
            format!("peer {peer} went silent: no sync frame within sync.peer_timeout")
        }
        other => format!("sync session with {peer} closed: {other}"),
    }
}
