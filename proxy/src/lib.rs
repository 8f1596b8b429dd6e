//! meshgw data plane.
//!
//! - [`route`]: the route header a sidecar sends its gateway, and gateways
//!   send each other, before a proxied connection becomes an opaque pipe.
//! - [`sidecar`]: `meshgw sidecar`: registers the workload with the local
//!   gateway, checks the app's health, and runs the listeners.
//! - [`catalog`]: the sidecar's [`catalog::View`] of local instances and
//!   imports, kept current from the gateway's Watch stream.
//! - [`tls`]: the workload's mTLS configs ([`tls::WorkloadTls`]).
//! - [`inbound`]: the mTLS listener other sidecars connect to, forwarding to
//!   the app (TCP splice or HTTP/2 to HTTP/1.1 or h2c).
//! - [`accept`]: the pause after a failed `accept`.
//! - [`body`]: [`body::Coalesce`], which sends a body's end with its last frame.
//! - [`admin`] and [`metrics`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`outbound`]: the listeners the local app calls (`[[upstreams]]` TCP and
//!   `outbound.http`), routing by service name; [`balance`] chooses the
//!   target, [`connect`] dials it (directly, or through the local gateway
//!   with the route header and a nested mTLS session), and [`error`] says
//!   which hop failed and why; [`outlier`] ejects targets that keep failing.
//! - [`reset`]: a pipe that breaks ends its TCP connections with an RST.
//! - [`grpc`]: a gRPC call's `grpc-status` as the HTTP status outlier detection counts.
#![forbid(unsafe_code)]

pub mod accept;
pub mod admin;
pub mod balance;
pub mod body;
pub mod catalog;
pub mod connect;
pub mod error;
pub mod grpc;
pub mod inbound;
pub mod metrics;
pub mod outbound;
pub mod outlier;
pub mod reset;
pub mod route;
#[cfg(any(test, feature = "fuzzing"))]
pub mod route_check;
pub mod sidecar;
pub mod telemetry;
pub mod tls;

/// A hash map for the request path's lookups (service names, instance ids,
/// cluster names): foldhash, seeded per process, instead of SipHash, which
/// cost about 2,000 instructions per proxied request (callgrind).
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
