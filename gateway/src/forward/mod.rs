//! Cross-cluster forwarding.
//!
//! ```text
//! sidecar ──mTLS──► forward listener ──QUIC data stream──► peer gateway ──TCP──► instance's sidecar inbound
//!          route header ─────────────► route header ──────► (picks a healthy local instance)
//!          ◄── answer ◄─────────────── answer ◄──────────────
//!          ═══════════ opaque pipe: the sidecar-to-sidecar TLS session ═══════════
//! ```
//!
//! [`listener`] accepts sidecars' connections and sends them to the chosen
//! peer; [`inbound`] serves data streams a peer opens towards this cluster.
//! Gateways route on the header only and never see application bytes.

pub mod inbound;
pub mod listener;
pub mod load;
mod pipe;

use meshgw_proxy::route::{RouteAnswer, RouteStatus};

/// First byte of a QUIC data stream (after it: a route header, then the pipe).
pub const STREAM_DATA: u8 = 0x02;

/// Each direction's copy buffer when a gateway splices a forwarded
/// connection: large, for throughput; the count of open streams bounds it.
const SPLICE_BUF: usize = 64 * 1024;

/// Returns an answer with `status` and a reason naming this gateway's cluster as the hop.
pub fn answer(cluster: &str, status: RouteStatus, why: impl std::fmt::Display) -> RouteAnswer {
    RouteAnswer {
        status,
        reason: format!("gateway {cluster}: {why}"),
    }
}
