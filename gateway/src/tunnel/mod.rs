//! QUIC tunnels between gateways: one endpoint that accepts peers and dials
//! the peers it has addresses for, reconnecting with backoff.
//!
//! Every connection carries streams that start with one type byte:
//! [`STREAM_CONTROL`] for the catalog sync session (opened by the dialer), and
//! later data streams. A gateway that can only dial out still federates fully
//! over the one connection it opened, because the sync session is symmetric.

pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::backoff::Backoff;
use crate::peers::LinkState;
use crate::shared::Shared;
use crate::{control, forward};

/// First byte of the catalog sync control stream.
pub const STREAM_CONTROL: u8 = 0x01;

/// QUIC send priority of the control stream (data streams keep the default 0).
const CONTROL_PRIORITY: i32 = 100;

/// QUIC application close code for a normal shutdown.
const CLOSE_NORMAL: u32 = 0;
/// QUIC application close code for a sync protocol failure.
const CLOSE_PROTOCOL: u32 = 1;

/// Accepts incoming tunnels forever.
pub async fn accept_loop(shared: Arc<Shared>) {
    while let Some(incoming) = shared.endpoint.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(%remote, error = %e, "refused incoming tunnel: handshake failed (see the certificate check above for which peer and why)");
                    return;
                }
            };
            let Some(id) = tls::peer_id(&conn) else {
                conn.close(CLOSE_PROTOCOL.into(), b"no SPIFFE ID");
                return;
            };
            let Some(peer) = shared.cfg.peers.iter().find(|p| p.spiffe_id == id) else {
                tracing::warn!(%remote, spiffe_id = %id, "refused incoming tunnel: no configured peer has this SPIFFE ID");
                conn.close(CLOSE_PROTOCOL.into(), b"unknown peer");
                return;
            };
            let name = peer.name.clone();
            tracing::info!(peer = %name, %remote, "accepted tunnel");
            serve_connection(shared, name, conn, false).await;
        });
    }
}

/// Dials `peer` forever: tries each address in turn, keeps the connection while
/// it lives, and backs off (exponentially, with jitter) between failures.
pub async fn dial_loop(shared: Arc<Shared>, peer: String) {
    let Some(pc) = shared.cfg.peers.iter().find(|p| p.name == peer).cloned() else {
        return;
    };
    let client = shared.client_cfgs[&peer].clone();
    let s = &shared.cfg.sync;
    let mut backoff = Backoff::new(s.backoff_initial, s.backoff_max);
    let server_name = pc.server_name.clone().unwrap_or_else(|| pc.name.clone());
    loop {
        for addr in &pc.addresses {
            let resolved = match tokio::net::lookup_host(addr.as_str()).await {
                Ok(mut it) => it.next(),
                Err(e) => {
                    let msg = format!("cannot resolve {addr}: {e}: check peers.addresses");
                    tracing::warn!(%peer, "{msg}");
                    shared.peers.set_error(&peer, &msg);
                    None
                }
            };
            let Some(sa) = resolved else { continue };
            let attempt = async {
                let connecting = shared
                    .endpoint
                    .connect_with(client.clone(), sa, &server_name)?;
                Ok::<_, anyhow::Error>(connecting.await?)
            };
            match tokio::time::timeout(s.connect_timeout, attempt).await {
                Ok(Ok(conn)) => {
                    tracing::info!(%peer, address = %sa, "tunnel up");
                    let started = tokio::time::Instant::now();
                    serve_connection(shared.clone(), peer.clone(), conn, true).await;
                    if started.elapsed() > Duration::from_secs(10) {
                        backoff.reset();
                    }
                }
                Ok(Err(e)) => {
                    let msg = format!("connection to peer {peer} at {sa} failed: {e}");
                    tracing::warn!(%peer, address = %sa, error = %e, "tunnel connect failed: is UDP {} open in its firewall, and do its certificate and SPIFFE ID match peers.spiffe_id?", sa.port());
                    shared.peers.set_error(&peer, &msg);
                }
                Err(_) => {
                    let msg = format!(
                        "connection to peer {peer} at {sa} timed out after {:?}: is UDP {} open in its firewall?",
                        s.connect_timeout,
                        sa.port()
                    );
                    tracing::warn!(%peer, "{msg}");
                    shared.peers.set_error(&peer, &msg);
                }
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Runs one established connection until it closes.
async fn serve_connection(
    shared: Arc<Shared>,
    peer: String,
    conn: quinn::Connection,
    outbound: bool,
) {
    let link = shared.peers.link_up(
        &peer,
        LinkState {
            address: conn.remote_address().to_string(),
            outbound,
            conn: Some(conn.clone()),
            ..Default::default()
        },
    );
    // The listener side receives the control stream from the stream acceptor.
    let (ctl_tx, ctl_rx) = tokio::sync::oneshot::channel();
    let acceptor = tokio::spawn(accept_streams(
        shared.clone(),
        peer.clone(),
        conn.clone(),
        (!outbound).then_some(ctl_tx),
    ));
    let reason = match run_control(&shared, &peer, link, &conn, outbound, ctl_rx).await {
        Ok(r) => r,
        Err(e) => format!("{e:#}"),
    };
    acceptor.abort();
    tracing::info!(%peer, %reason, "tunnel closed");
    conn.close(CLOSE_NORMAL.into(), reason.as_bytes());
    shared.peers.link_down(&peer, link, &reason);
}

type StreamPair = (quinn::SendStream, quinn::RecvStream);

/// Accepts the streams the peer opens: the control stream (listener side
/// only, handed to the session) and data streams (served by [`forward::inbound`]).
async fn accept_streams(
    shared: Arc<Shared>,
    peer: String,
    conn: quinn::Connection,
    control: Option<tokio::sync::oneshot::Sender<StreamPair>>,
) {
    // Each stream's type byte is read in its own task, so a stream whose
    // first byte is late never holds up the streams opened after it.
    let control = Arc::new(std::sync::Mutex::new(control));
    while let Ok((send, recv)) = conn.accept_bi().await {
        tokio::spawn(dispatch_stream(
            shared.clone(),
            peer.clone(),
            control.clone(),
            send,
            recv,
        ));
    }
}

/// Reads a new stream's type byte and hands the stream to the session
/// (control, at most one per connection) or to [`forward::inbound`] (data).
async fn dispatch_stream(
    shared: Arc<Shared>,
    peer: String,
    control: Arc<std::sync::Mutex<Option<tokio::sync::oneshot::Sender<StreamPair>>>>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let mut kind = [0u8; 1];
    let timeout = shared.cfg.timeouts.connect;
    match tokio::time::timeout(timeout, recv.read_exact(&mut kind)).await {
        Ok(Ok(())) => {}
        _ => {
            let _ = recv.stop(CLOSE_PROTOCOL.into());
            return;
        }
    }
    match kind[0] {
        STREAM_CONTROL => {
            let tx = control.lock().expect("control slot lock").take();
            match tx {
                Some(tx) => {
                    let _ = tx.send((send, recv));
                }
                None => {
                    tracing::warn!(%peer, "second control stream on one connection; refused");
                    let _ = send.reset(CLOSE_PROTOCOL.into());
                }
            }
        }
        forward::STREAM_DATA => forward::inbound::serve(shared, peer, send, recv).await,
        other => {
            tracing::warn!(%peer, kind = other, "unknown stream type; refused");
            let _ = send.reset(CLOSE_PROTOCOL.into());
        }
    }
}

/// Opens (dialer) or receives (listener) the control stream and runs the sync session on it.
async fn run_control(
    shared: &Arc<Shared>,
    peer: &str,
    link: u64,
    conn: &quinn::Connection,
    outbound: bool,
    accepted: tokio::sync::oneshot::Receiver<StreamPair>,
) -> Result<String> {
    let (send, recv) = if outbound {
        let (mut send, recv) = conn.open_bi().await?;
        send.write_all(&[STREAM_CONTROL]).await?;
        (send, recv)
    } else {
        tokio::select! {
            r = accepted => r.map_err(|_| anyhow::anyhow!("connection closed before its control stream"))?,
            e = conn.closed() => return Ok(format!("connection closed before its control stream: {e}")),
        }
    };
    // Sync frames (heartbeats above all) go before data streams' bytes, so a
    // busy data plane never starves the session into a peer timeout.
    let _ = send.set_priority(CONTROL_PRIORITY);
    control::run(
        shared.clone(),
        peer.to_string(),
        link,
        conn.clone(),
        send,
        recv,
    )
    .await
}

/// Binds the tunnel endpoint.
pub fn bind(
    cfg: &meshgw_config::GatewayConfig,
    server: quinn::ServerConfig,
) -> Result<quinn::Endpoint> {
    quinn::Endpoint::server(server, cfg.listen.tunnel).map_err(|e| {
        anyhow::anyhow!(
            "cannot bind the tunnel on UDP {}: {e}: is another gateway running, or set listen.tunnel to a free port",
            cfg.listen.tunnel
        )
    })
}
