//! Harness for meshgw's end-to-end tests: real `meshgw` processes, real etcd
//! servers, real gRPC clients, on loopback ports picked free at run time.
//!
//! - [`bin`]: where the `meshgw` binary is, and running its subcommands.
//! - [`pki`]: a development PKI made with `meshgw ca`.
//! - [`gateway`]: a gateway process from a rendered config; killed on drop.
//! - [`mesh`]: several clusters wired as full-mesh peers.
//! - [`client`]: a tonic client of a gateway's catalog API.
//! - [`wait`]: polling with a deadline, never sleep-and-hope.
//! - [`metrics`]: summing Prometheus series in assertions.

pub mod apps;
pub mod bin;
pub mod client;
pub mod forward;
pub mod gateway;
pub mod mesh;
pub mod metrics;
pub mod otlp;
pub mod pki;
pub mod ports;
pub mod relay;
pub mod sidecar;
pub mod wait;
pub mod ws;

pub use meshgw_federation::testutil::EtcdCluster;
