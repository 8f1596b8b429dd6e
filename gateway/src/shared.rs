//! State shared by the gateway's tasks.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use meshgw_config::GatewayConfig;
use meshgw_federation::model::Keys;
use meshgw_federation::store::CatalogStore;
use tokio::sync::watch;

use crate::exports::{LocalInstances, LocalSummaries};
use crate::imports::PeerImports;
use crate::metrics::Metrics;
use crate::peers::PeerRegistry;

/// Everything the tunnel, sync and API tasks share.
pub struct Shared {
    /// The validated config.
    pub cfg: Arc<GatewayConfig>,
    /// The catalog store (etcd or embedded).
    pub store: Arc<dyn CatalogStore>,
    /// Key layout under the store prefix.
    pub keys: Keys,
    /// This replica's id, unique per process.
    pub replica: String,
    /// Live peer state.
    pub peers: Arc<PeerRegistry>,
    /// Per peer: the import writer's handles.
    pub imports: BTreeMap<String, PeerImports>,
    /// Local service summaries, updated by the exports task.
    pub exports: watch::Receiver<LocalSummaries>,
    /// Local instances, updated by the exports task.
    pub instances: watch::Receiver<LocalInstances>,
    /// The QUIC endpoint.
    pub endpoint: quinn::Endpoint,
    /// Per peer: the QUIC client config (trust bundle and expected SPIFFE ID).
    pub client_cfgs: HashMap<String, quinn::ClientConfig>,
    /// Metrics.
    pub metrics: Metrics,
    /// Forwarded connections open per local instance, for choosing one.
    pub instance_load: crate::forward::load::InstanceLoad,
}
