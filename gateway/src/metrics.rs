//! Prometheus metrics of the gateway, served on the admin port.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
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

/// Labels of a forwarded connection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ForwardLabels {
    /// This cluster.
    pub src_cluster: String,
    /// The other cluster (destination for outgoing, source for incoming).
    pub dst_cluster: String,
    /// `namespace/name`.
    pub service: String,
    /// `ok` or `error`.
    pub outcome: String,
}

/// Decrements the open-streams gauge when dropped.
pub struct OpenStream(Gauge);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.dec();
    }
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
    forwarded: Family<ForwardLabels, Counter>,
    open_streams: Family<PeerLabels, Gauge>,
    stream_bytes: Family<PeerLabels, Counter>,
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
            forwarded: Family::default(),
            open_streams: Family::default(),
            stream_bytes: Family::default(),
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
        registry.register(
            "forwarded_connections",
            "Connections forwarded across the tunnel, by outcome",
            m.forwarded.clone(),
        );
        registry.register(
            "forward_open_streams",
            "Forwarded connections open now",
            m.open_streams.clone(),
        );
        registry.register(
            "forward_bytes",
            "Bytes carried by forwarded connections (both directions)",
            m.stream_bytes.clone(),
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

    /// Counts a forwarded connection to or from `peer`.
    pub fn forwarded(
        &self,
        peer: &str,
        svc: &meshgw_federation::model::ServiceName,
        outcome: &str,
    ) {
        let l = ForwardLabels {
            src_cluster: self.cluster.clone(),
            dst_cluster: peer.to_string(),
            service: svc.to_string(),
            outcome: outcome.to_string(),
        };
        self.forwarded.get_or_create(&l).inc();
    }

    /// Counts an open forwarded stream until the guard drops.
    pub fn stream_open(&self, peer: &str) -> OpenStream {
        let g = self.open_streams.get_or_create(&self.labels(peer)).clone();
        g.inc();
        OpenStream(g)
    }

    /// Adds a finished stream's bytes.
    pub fn stream_bytes(&self, peer: &str, up: u64, down: u64) {
        self.stream_bytes
            .get_or_create(&self.labels(peer))
            .inc_by(up + down);
    }

    /// Returns the metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
