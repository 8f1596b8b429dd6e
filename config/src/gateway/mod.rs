//! The edge gateway's config file: [`GatewayConfig`] and its sections, the
//! [`GATEWAY_SCHEMA`] of allowed keys, and loading with validation.

mod parse;
mod peers;
mod schema;
mod store;
mod types;

#[cfg(test)]
mod tests;

pub use schema::GATEWAY_SCHEMA;
pub use types::{
    ClusterConfig, EtcdAuth, EtcdConfig, EtcdTls, ExportRule, ForwardTimeouts, GatewayConfig,
    ListenConfig, MeshConfig, PeerConfig, StoreConfig, SyncConfig, TlsFiles,
};
