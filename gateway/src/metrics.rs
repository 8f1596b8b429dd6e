//! Prometheus metrics of the gateway, served on the admin port.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels naming the local and the peer cluster.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    /// This cluster.
    pub src_cluster: String,
    /// The peer cluster.
    pub dst_cluster: String,
}

/// The gateway's metrics.
pub struct Metrics {
    cluster: String,
    registry: Registry,
    rtt: Family<PeerLabels, Gauge<f64, AtomicU64>>,
    lost: Family<PeerLabels, Gauge>,
    tx: Family<PeerLabels, Gauge>,
    rx: Family<PeerLabels, Gauge>,
    acked: Family<PeerLabels, Gauge>,
    connected: Family<PeerLabels, Gauge>,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new(cluster: &str) -> Self {
        let mut registry = Registry::with_prefix("meshgw");
        let m = Metrics {
            cluster: cluster.to_string(),
            rtt: Family::default(),
            lost: Family::default(),
            tx: Family::default(),
            rx: Family::default(),
            acked: Family::default(),
            connected: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "tunnel_rtt_seconds",
            "Smoothed QUIC RTT to the peer",
            m.rtt.clone(),
        );
        registry.register(
            "tunnel_lost_packets",
            "Packets QUIC declared lost on the tunnel",
            m.lost.clone(),
        );
        registry.register(
            "tunnel_tx_bytes",
            "UDP bytes sent on the tunnel",
            m.tx.clone(),
        );
        registry.register(
            "tunnel_rx_bytes",
            "UDP bytes received on the tunnel",
            m.rx.clone(),
        );
        registry.register(
            "sync_acked_seq",
            "Last export sequence the peer acknowledged",
            m.acked.clone(),
        );
        registry.register(
            "peer_connected",
            "1 if at least one tunnel to the peer is up",
            m.connected.clone(),
        );
        Metrics { registry, ..m }
    }

    fn labels(&self, peer: &str) -> PeerLabels {
        PeerLabels {
            src_cluster: self.cluster.clone(),
            dst_cluster: peer.to_string(),
        }
    }

    /// Records a tunnel's path figures.
    pub fn tunnel(&self, peer: &str, rtt: Duration, stats: &quinn::ConnectionStats) {
        let l = self.labels(peer);
        self.rtt.get_or_create(&l).set(rtt.as_secs_f64());
        self.lost
            .get_or_create(&l)
            .set(stats.path.lost_packets as i64);
        self.tx.get_or_create(&l).set(stats.udp_tx.bytes as i64);
        self.rx.get_or_create(&l).set(stats.udp_rx.bytes as i64);
    }

    /// Records an acknowledged export sequence.
    pub fn acked(&self, peer: &str, seq: u64) {
        self.acked.get_or_create(&self.labels(peer)).set(seq as i64);
    }

    /// Records whether a peer is connected.
    pub fn connected(&self, peer: &str, up: bool) {
        self.connected
            .get_or_create(&self.labels(peer))
            .set(i64::from(up));
    }

    /// Returns the metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
