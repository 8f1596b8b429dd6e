//! The sidecar's config file: [`SidecarConfig`] and its sections, the
//! [`SIDECAR_SCHEMA`] of allowed keys, loading with validation, and
//! [`load_any`], which tells a sidecar config from a gateway config.

mod any;
mod authz;
mod parse;
mod schema;
mod sections;
mod types;

#[cfg(test)]
mod tests;

pub use any::{AnyConfig, load_any};
pub(crate) use authz::read_patterns;
pub use authz::{Access, AuthzConfig, AuthzRule, CallerPattern, PathPattern, is_normal_path};
pub use schema::SIDECAR_SCHEMA;
pub use types::{
    AppProtocol, GatewayRef, HealthConfig, HealthKind, InboundConfig, LocalityConfig,
    OutboundConfig, OutlierConfig, ServiceConfig, SidecarConfig, TelemetryConfig, Timeouts,
    UpstreamConfig,
};
