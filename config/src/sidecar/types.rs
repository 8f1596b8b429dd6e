//! The typed sidecar configuration, as handed to the sidecar's constructors.
//! See `docs/config.md` ("Sidecar config") for every key, its default and its
//! meaning.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::gateway::{MeshConfig, TlsFiles};

/// The whole configuration of one sidecar (`meshgw sidecar --config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarConfig {
    /// `[mesh]`: the mesh this workload belongs to.
    pub mesh: MeshConfig,
    /// `[locality]`: where this workload runs.
    pub locality: LocalityConfig,
    /// `[gateway]`: the local gateway.
    pub gateway: GatewayRef,
    /// `[service]`: the service this workload is an instance of.
    pub service: ServiceConfig,
    /// `[inbound]`: the mTLS listener for other sidecars.
    pub inbound: InboundConfig,
    /// `[outbound]`: listeners for the local app.
    pub outbound: OutboundConfig,
    /// `[[upstreams]]`: TCP listeners bound to one service each, in file order.
    pub upstreams: Vec<UpstreamConfig>,
    /// `[health]`: checks of the local app.
    pub health: HealthConfig,
    /// `[tls]`: the workload certificate, key and mesh trust bundle.
    pub tls: TlsFiles,
    /// `[admin] listen`: the admin HTTP server's address.
    pub admin: SocketAddr,
    /// `[timeouts]`: proxy timeouts.
    pub timeouts: Timeouts,
    /// `[outlier]`: when a failing target leaves load balancing, and for how long.
    pub outlier: OutlierConfig,
    /// `[telemetry]`: where request spans are exported.
    pub telemetry: TelemetryConfig,
    /// `[authz]`: the callers allowed at the inbound listener; `None`
    /// (no table) allows every caller with a certificate of the mesh.
    pub authz: Option<super::AuthzConfig>,
    /// `[runtime] workers`: threads that run the proxy (1: one thread, no
    /// hand-offs between threads).
    pub workers: usize,
    /// The absolute path of the file this configuration was read from.
    pub source: PathBuf,
}

/// `[locality]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalityConfig {
    /// Cluster name, a DNS label.
    pub cluster: String,
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
}

/// `[gateway]`: how to reach the local gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRef {
    /// Catalog API address, `host:port`.
    pub api: String,
    /// Forward listener address, `host:port`.
    pub forward: String,
    /// SPIFFE ID the gateway's certificate must carry.
    pub spiffe_id: String,
}

/// What the local app speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppProtocol {
    /// HTTP/1.1.
    Http,
    /// gRPC over cleartext HTTP/2 (prior knowledge).
    Grpc,
    /// Opaque TCP.
    Tcp,
}

impl AppProtocol {
    /// Returns the name as written in the config: `http`, `grpc` or `tcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            AppProtocol::Http => "http",
            AppProtocol::Grpc => "grpc",
            AppProtocol::Tcp => "tcp",
        }
    }
}

/// `[service]`: the local instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Namespace, a DNS label.
    pub namespace: String,
    /// Name, a DNS label.
    pub name: String,
    /// Protocol the app speaks.
    pub protocol: AppProtocol,
    /// Where the app listens.
    pub app: SocketAddr,
    /// Load-balancing weight, at least 1.
    pub weight: u32,
    /// Instance labels.
    pub labels: BTreeMap<String, String>,
}

/// `[inbound]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundConfig {
    /// Listening address.
    pub listen: SocketAddr,
    /// `host:port` registered in the catalog (`listen` when not set; its port
    /// may then be 0, meaning the port actually bound).
    pub advertise: String,
}

/// `[outbound]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboundConfig {
    /// HTTP listener routing by `Host: name.namespace.mesh`, if any.
    pub http: Option<SocketAddr>,
}

/// `[[upstreams]]`: one TCP listener bound to one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Listening address.
    pub listen: SocketAddr,
    /// Target service, `namespace/name`.
    pub service: String,
    /// Target port; 0 means the service's registered port.
    pub port: u16,
}

/// How the app is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthKind {
    /// HTTP GET of `path`, expecting a 2xx status.
    Http {
        /// Request path, starting with `/`.
        path: String,
    },
    /// A TCP connect to the app.
    Tcp,
    /// No checks: always healthy.
    None,
}

/// `[health]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// The kind of check.
    pub kind: HealthKind,
    /// Time between checks.
    pub interval: Duration,
    /// Timeout of one check.
    pub timeout: Duration,
    /// Consecutive failures that make the instance unhealthy.
    pub unhealthy_after: u32,
    /// Consecutive successes that make it healthy again.
    pub healthy_after: u32,
}

/// `[timeouts]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// One TCP/TLS connect.
    pub connect: Duration,
    /// Idle proxied connection.
    pub idle: Duration,
    /// One HTTP request, until response headers.
    pub request: Duration,
    /// Drain on shutdown.
    pub drain: Duration,
}

/// `[outlier]`: outlier detection of the targets a sidecar calls (local
/// instances, remote clusters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierConfig {
    /// Failed connection attempts in a row that eject a target.
    pub consecutive_connect_failures: u32,
    /// Server errors (5xx, failing gRPC statuses, timeouts) in a row that
    /// eject a target.
    pub consecutive_5xx: u32,
    /// How long a first ejection lasts; each further one while on
    /// probation lasts one more of these.
    pub base_ejection_time: Duration,
    /// The longest ejection.
    pub max_ejection_time: Duration,
}

impl Default for OutlierConfig {
    /// The `[outlier]` defaults: 3 connect failures or 5 server errors, 10 s, at most 5 min.
    fn default() -> Self {
        Self {
            consecutive_connect_failures: 3,
            consecutive_5xx: 5,
            base_ejection_time: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(300),
        }
    }
}

/// `[telemetry]`: OpenTelemetry traces of the requests the sidecar proxies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// `otlp_endpoint`: the OTLP/gRPC collector (`http://host:4317`); none:
    /// no spans are recorded (the `traceparent` is still propagated).
    pub otlp_endpoint: Option<String>,
    /// `sample_percent`, in millionths (1% = 10 000): the share of new
    /// traces recorded; a request that arrives with a `traceparent` follows
    /// its sampled flag.
    pub sample_ppm: u32,
}

impl TelemetryConfig {
    /// The share of new traces recorded, 0.0 to 1.0.
    pub fn sample_ratio(&self) -> f64 {
        f64::from(self.sample_ppm) / 1_000_000.0
    }
}

impl Default for TelemetryConfig {
    /// No export, 1% of new traces once an endpoint is set.
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            sample_ppm: 10_000,
        }
    }
}
