//! The typed gateway configuration, as handed to the gateway's constructors.
//! See `docs/config.md` for every key, its default and its meaning.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The whole configuration of one edge gateway (`meshgw gateway --config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// `[mesh]`: the mesh this gateway belongs to.
    pub mesh: MeshConfig,
    /// `[cluster]`: the cluster this gateway serves.
    pub cluster: ClusterConfig,
    /// `[listen]`: listening addresses.
    pub listen: ListenConfig,
    /// `[store]`: the catalog backend.
    pub store: StoreConfig,
    /// `[tls]`: the gateway's own certificate, key and trust bundle.
    pub tls: TlsFiles,
    /// `[sync]`: catalog federation timers.
    pub sync: SyncConfig,
    /// `[timeouts]`: timeouts of forwarded connections.
    pub timeouts: ForwardTimeouts,
    /// `[runtime] workers`: threads that run the gateway (`None`: one per CPU
    /// core; 1: one thread, no hand-offs between threads).
    pub workers: Option<usize>,
    /// `[api] admins`: callers that may change any service through the
    /// catalog API (others only their own).
    pub api_admins: Vec<crate::CallerPattern>,
    /// `[[peers]]`: gateways of other clusters, in file order.
    pub peers: Vec<PeerConfig>,
    /// `[[exports]]`: which local services are offered to which peers.
    pub exports: Vec<ExportRule>,
    /// The absolute path of the file this configuration was read from.
    pub source: PathBuf,
}

/// `[mesh]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshConfig {
    /// SPIFFE trust domain, e.g. `mesh.example`.
    pub trust_domain: String,
}

/// `[cluster]`: identity and locality of this cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Unique cluster name, a DNS label.
    pub name: String,
    /// Cloud, free text (`aws`, `gcp`, `vm`, ...).
    pub cloud: String,
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
}

/// `[listen]`: where the gateway listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenConfig {
    /// UDP address of the QUIC tunnel.
    pub tunnel: SocketAddr,
    /// TCP address of the gRPC catalog API (mTLS).
    pub api: SocketAddr,
    /// TCP address of the admin HTTP server.
    pub admin: SocketAddr,
    /// TCP address (mTLS) where local sidecars hand over cross-cluster connections.
    pub forward: SocketAddr,
}

/// `[store]`: where the cluster catalog is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// A single-node store persisted under `data_dir`.
    Embedded {
        /// Directory of the store (absolute).
        data_dir: PathBuf,
        /// Key prefix, starting with `/`.
        prefix: String,
    },
    /// An etcd cluster shared by the gateway replicas of this cluster.
    Etcd(EtcdConfig),
}

impl StoreConfig {
    /// Returns the key prefix under which everything is stored.
    pub fn prefix(&self) -> &str {
        match self {
            StoreConfig::Embedded { prefix, .. } => prefix,
            StoreConfig::Etcd(etcd) => &etcd.prefix,
        }
    }
}

/// `[store]` with `kind = "etcd"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Endpoints, e.g. `http://127.0.0.1:2379`; never empty.
    pub endpoints: Vec<String>,
    /// Key prefix, starting with `/`.
    pub prefix: String,
    /// Timeout to connect.
    pub dial_timeout: Duration,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// `[store.tls]`, if etcd is reached over TLS.
    pub tls: Option<EtcdTls>,
    /// `[store.auth]`, if etcd requires a user and password.
    pub auth: Option<EtcdAuth>,
}

/// `[store.tls]`: TLS files for etcd (absolute paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    /// CA bundle for etcd's server certificate.
    pub ca: PathBuf,
    /// Client certificate; present exactly when `key` is.
    pub cert: Option<PathBuf>,
    /// Client private key; present exactly when `cert` is.
    pub key: Option<PathBuf>,
}

/// `[store.auth]`: etcd user and password file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdAuth {
    /// User name.
    pub username: String,
    /// File holding the password (absolute path).
    pub password_file: PathBuf,
}

/// `[tls]`: the gateway's own identity files (absolute paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Trust bundle for local sidecars and operators.
    pub ca: PathBuf,
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key of `cert`.
    pub key: PathBuf,
}

/// `[sync]`: catalog federation timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncConfig {
    /// How often a session sends a heartbeat.
    pub heartbeat_interval: Duration,
    /// A session is dead after no frame for this long.
    pub peer_timeout: Duration,
    /// Imports go stale this long after the last live session.
    pub stale_after: Duration,
    /// Stale imports are removed after this long.
    pub import_ttl: Duration,
    /// Timeout of one connection attempt.
    pub connect_timeout: Duration,
    /// First reconnect delay.
    pub backoff_initial: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
}

/// `[timeouts]`: timeouts of the connections a gateway forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardTimeouts {
    /// Each setup step: TLS handshake, route header, connect to an instance.
    pub connect: Duration,
    /// A forwarded connection silent both ways for this long is closed.
    pub idle: Duration,
}

/// `[[peers]]`: one gateway of another cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's cluster name.
    pub name: String,
    /// Tunnel addresses (`host:port`) to dial; empty means the peer dials us.
    pub addresses: Vec<String>,
    /// SPIFFE ID the peer's certificate must carry.
    pub spiffe_id: String,
    /// CA certificates the peer's chain must validate to (absolute path).
    pub trust_bundle: PathBuf,
    /// TLS SNI to send; `None` means the peer's name (see [`Self::sni`]).
    pub server_name: Option<String>,
}

impl PeerConfig {
    /// Returns the TLS server name to send: `server_name`, else the peer name.
    pub fn sni(&self) -> &str {
        self.server_name.as_deref().unwrap_or(&self.name)
    }
}

/// `[[exports]]`: one rule offering local services to peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRule {
    /// `namespace/name` or `namespace/*`.
    pub service: String,
    /// Peer names, or `*` for all peers.
    pub to: Vec<String>,
}

impl ExportRule {
    /// Returns whether this rule covers service `namespace/name` for `peer`.
    pub fn matches(&self, peer: &str, namespace: &str, name: &str) -> bool {
        let service_ok = match self.service.split_once('/') {
            Some((ns, "*")) => ns == namespace,
            Some((ns, n)) => ns == namespace && n == name,
            None => false,
        };
        service_ok && self.to.iter().any(|p| p == "*" || p == peer)
    }
}

impl GatewayConfig {
    /// Returns whether service `namespace/name` is exported to `peer`: some
    /// rule names the service exactly or as `namespace/*`, and lists the
    /// peer or `*`.
    pub fn exports_to(&self, peer: &str, namespace: &str, name: &str) -> bool {
        self.exports
            .iter()
            .any(|r| r.matches(peer, namespace, name))
    }
}
