//! Typed configuration for meshgw, loaded from TOML with validation that
//! reports every problem at once, each naming file, line and key.
//!
//! - [`GatewayConfig::load`] reads `meshgw gateway --config FILE` into a
//!   [`GatewayConfig`] (sections [`MeshConfig`], [`ClusterConfig`],
//!   [`ListenConfig`], [`StoreConfig`], [`TlsFiles`], [`SyncConfig`],
//!   [`PeerConfig`]s and [`ExportRule`]s), or returns [`ConfigErrors`].
//! - Each config kind is described by a static [`schema::TableSpec`] (for
//!   the gateway, [`GATEWAY_SCHEMA`]): allowed keys, types, defaults, docs.
//!   A generic walk over a span-preserving parse (`toml_edit`) rejects
//!   unknown keys with the nearest valid name suggested; typed readers take
//!   defaults from the schema and record errors with line numbers; semantic
//!   and file checks run last. Adding a config kind (e.g. the sidecar's)
//!   means a schema, typed structs, and their readers.
//! - [`SidecarConfig::load`] reads `meshgw sidecar --config FILE` the same
//!   way ([`SIDECAR_SCHEMA`]); [`load_any`] loads either kind, telling them
//!   apart by their tables (`[gateway]` for a sidecar, `[cluster]` for a
//!   gateway).
//! - Relative paths are resolved against the config file's directory; files
//!   named in the config must exist, and private keys must be mode 0600.
//!
//! Every key is documented in `docs/config.md`; a test keeps it in sync
//! with the schema.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checks;
mod error;
pub mod gateway;
mod read;
pub mod schema;
pub mod sidecar;
mod walk;

pub use error::{ConfigError, ConfigErrors};
pub use gateway::{
    ClusterConfig, EtcdAuth, EtcdConfig, EtcdTls, ExportRule, ForwardTimeouts, GATEWAY_SCHEMA,
    GatewayConfig, ListenConfig, MeshConfig, PeerConfig, StoreConfig, SyncConfig, TlsFiles,
};
pub use sidecar::{
    Access, AnyConfig, AppProtocol, AuthzConfig, AuthzRule, CallerPattern, GatewayRef,
    HealthConfig, HealthKind, InboundConfig, LocalityConfig, OutboundConfig, OutlierConfig,
    PathPattern, SIDECAR_SCHEMA, ServiceConfig, SidecarConfig, TelemetryConfig, Timeouts,
    UpstreamConfig, is_normal_path, load_any,
};
