//! Live state of each configured peer, shared by the tunnel tasks that update
//! it and the API, admin and metrics that read it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use meshgw_federation::api::{PeerStatusSource, PeerView};

/// What one tunnel connection to a peer looks like right now.
#[derive(Debug, Clone, Default)]
pub struct LinkState {
    /// Remote UDP address.
    pub address: String,
    /// Whether we dialed (true) or accepted (false).
    pub outbound: bool,
    /// Smoothed RTT in milliseconds.
    pub rtt_ms: f64,
    /// Packets QUIC declared lost.
    pub lost_packets: u64,
    /// UDP bytes sent.
    pub bytes_sent: u64,
    /// UDP bytes received.
    pub bytes_received: u64,
    /// Unix ms of the last sync frame received.
    pub last_sync_ms: u64,
    /// The QUIC connection, for opening data streams.
    pub conn: Option<quinn::Connection>,
}

/// One peer's state.
#[derive(Debug, Default)]
struct PeerEntry {
    links: BTreeMap<u64, LinkState>,
    last_error: String,
}

/// Every configured peer's live state.
#[derive(Debug, Default)]
pub struct PeerRegistry {
    peers: Mutex<BTreeMap<String, PeerEntry>>,
    next_link: Mutex<u64>,
}

/// Returns the current Unix time in milliseconds.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl PeerRegistry {
    /// Creates a registry with one entry per configured peer.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Arc<Self> {
        let reg = PeerRegistry::default();
        {
            let mut peers = reg.peers.lock().unwrap();
            for n in names {
                peers.insert(n.to_string(), PeerEntry::default());
            }
        }
        Arc::new(reg)
    }

    /// Records a new live link to `peer` and returns its id.
    pub fn link_up(&self, peer: &str, link: LinkState) -> u64 {
        let id = {
            let mut n = self.next_link.lock().unwrap();
            *n += 1;
            *n
        };
        let mut peers = self.peers.lock().unwrap();
        let e = peers.entry(peer.to_string()).or_default();
        e.links.insert(id, link);
        e.last_error.clear();
        id
    }

    /// Updates a live link's figures.
    pub fn update_link(&self, peer: &str, id: u64, f: impl FnOnce(&mut LinkState)) {
        if let Some(l) = self
            .peers
            .lock()
            .unwrap()
            .get_mut(peer)
            .and_then(|e| e.links.get_mut(&id))
        {
            f(l);
        }
    }

    /// Removes a link that closed, remembering why.
    pub fn link_down(&self, peer: &str, id: u64, reason: &str) {
        let mut peers = self.peers.lock().unwrap();
        if let Some(e) = peers.get_mut(peer) {
            e.links.remove(&id);
            e.last_error = reason.to_string();
        }
    }

    /// Records a failed attempt to reach `peer`.
    pub fn set_error(&self, peer: &str, reason: &str) {
        if let Some(e) = self.peers.lock().unwrap().get_mut(peer) {
            e.last_error = reason.to_string();
        }
    }

    /// Returns whether at least one link to `peer` is up.
    pub fn is_connected(&self, peer: &str) -> bool {
        self.peers
            .lock()
            .unwrap()
            .get(peer)
            .is_some_and(|e| !e.links.is_empty())
    }

    /// Returns the connection of the lowest-RTT live link to `peer`.
    pub fn best_conn(&self, peer: &str) -> Option<quinn::Connection> {
        let peers = self.peers.lock().unwrap();
        peers
            .get(peer)?
            .links
            .values()
            .filter(|l| l.conn.as_ref().is_some_and(|c| c.close_reason().is_none()))
            .min_by(|a, b| a.rtt_ms.total_cmp(&b.rtt_ms))
            .and_then(|l| l.conn.clone())
    }

    /// Returns the smoothed RTT of the best link to `peer`, in ms.
    pub fn rtt_ms(&self, peer: &str) -> Option<f64> {
        let peers = self.peers.lock().unwrap();
        peers
            .get(peer)?
            .links
            .values()
            .map(|l| l.rtt_ms)
            .min_by(f64::total_cmp)
    }

    /// Returns the best (lowest-RTT) live link to each peer.
    pub fn snapshot(&self) -> Vec<(String, Option<LinkState>, String)> {
        self.peers
            .lock()
            .unwrap()
            .iter()
            .map(|(name, e)| {
                let best = e
                    .links
                    .values()
                    .min_by(|a, b| a.rtt_ms.total_cmp(&b.rtt_ms))
                    .cloned();
                (name.clone(), best, e.last_error.clone())
            })
            .collect()
    }
}

/// Feeds peer state to the gRPC API's `ListPeers`.
pub struct RegistrySource(pub Arc<PeerRegistry>, pub Instant);

impl PeerStatusSource for RegistrySource {
    fn peers(&self) -> Vec<PeerView> {
        self.0
            .snapshot()
            .into_iter()
            .map(|(name, link, last_error)| {
                let l = link.clone().unwrap_or_default();
                PeerView {
                    name,
                    connected: link.is_some(),
                    address: l.address,
                    rtt_ms: l.rtt_ms,
                    lost_packets: l.lost_packets,
                    bytes_sent: l.bytes_sent,
                    bytes_received: l.bytes_received,
                    last_sync_ms: l.last_sync_ms,
                    last_error,
                    ..Default::default()
                }
            })
            .collect()
    }
}
