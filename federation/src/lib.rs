//! meshgw control plane.
//!
//! - [`model`]: services, instances, the summaries clusters exchange, key layout.
//! - [`store`]: the [`store::CatalogStore`] contract and its etcd and embedded backends.
//! - [`sync`]: the gateway-to-gateway catalog sync protocol (sans-IO codec and state machine).
//! - [`api`]: the gRPC catalog API sidecars and operators use.
//! - [`error_text`]: an error and its causes as one line, for operators.
#![forbid(unsafe_code)]

pub mod api;
pub mod error_text;
pub mod model;
pub mod store;
pub mod sync;
#[cfg(feature = "test-util")]
pub mod testutil;
