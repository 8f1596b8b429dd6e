//! The sidecar's view of the catalog, kept current from the local gateway's
//! `Watch` stream (local instances and imports) and `ListPeers` (tunnel RTT).
//!
//! [`View::apply`] is the sans-IO core: it folds one `WatchResponse` (a reset
//! snapshot or a delta) into a view. [`run_watch`] is the thin driver that
//! streams responses, resumes from the last revision after a reconnect, and
//! publishes each new view on a watch channel that [`Catalog`] handles read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use meshgw_federation::api::CatalogClient;
use meshgw_federation::api::pb;
use meshgw_federation::model::{Health, Instance, Protocol, ServiceName};
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::FastMap;

/// One healthy-or-not instance of a service in this cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEndpoint {
    /// Instance id, unique within the service.
    pub id: String,
    /// `host:port` of the instance's sidecar inbound listener.
    pub addr: String,
    /// Zone the instance runs in.
    pub zone: String,
    /// Region the instance runs in.
    pub region: String,
    /// Whether its sidecar last reported it healthy.
    pub healthy: bool,
    /// Load-balancing weight (at least 1).
    pub weight: u32,
    /// Instance labels, e.g. `version`.
    pub labels: BTreeMap<String, String>,
    /// Protocol the instance's app speaks.
    pub protocol: Protocol,
}

/// A service as another cluster exports it (a summary, no addresses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCluster {
    /// The exporting cluster (the peer's name).
    pub cluster: String,
    /// Healthy instances there.
    pub healthy: u32,
    /// Total weight of the healthy instances.
    pub weight: u64,
    /// Zones with at least one healthy instance.
    pub zones: Vec<String>,
    /// Whether the peer went silent and the import is stale.
    pub stale: bool,
}

/// Everything the sidecar knows about where services run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    /// Instances registered in this cluster, by service, sorted by id.
    pub local: FastMap<ServiceName, Vec<Arc<LocalEndpoint>>>,
    /// Imports from other clusters, by service, sorted by cluster.
    pub remote: FastMap<ServiceName, Vec<RemoteCluster>>,
    /// Smoothed tunnel RTT from the local gateway to each connected peer.
    pub peer_rtt: FastMap<String, Duration>,
    /// The catalog revision this view is current to (0: nothing received yet).
    pub revision: i64,
}

/// Returns `host:port`, bracketing an IPv6 host.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl LocalEndpoint {
    /// Returns the endpoint of a registered instance.
    pub fn from_instance(i: &Instance) -> Self {
        Self {
            id: i.id.clone(),
            addr: join_host_port(&i.address, i.port),
            zone: i.locality.zone.clone(),
            region: i.locality.region.clone(),
            healthy: i.health == Health::Healthy,
            weight: i.weight.max(1),
            labels: i.labels.clone(),
            protocol: i.protocol,
        }
    }
}

impl View {
    /// Folds one Watch response into the view: a reset replaces every
    /// instance and import (keeping `peer_rtt`), a delta upserts and removes.
    /// Entries that do not convert (invalid names, ports) are logged and
    /// skipped, so one bad record never hides the others.
    pub fn apply(&mut self, resp: &pb::WatchResponse) {
        if resp.reset {
            self.local.clear();
            self.remote.clear();
        }
        for r in &resp.instances_removed {
            let Some(svc) = service_of(r.service.as_ref()) else {
                continue;
            };
            remove_where(&mut self.local, &svc, |e| e.id == r.id);
        }
        for msg in &resp.instances_upserted {
            match Instance::try_from(msg.clone()) {
                Ok(inst) => {
                    let ep = Arc::new(LocalEndpoint::from_instance(&inst));
                    upsert(&mut self.local, inst.service, ep, |a, b| a.id.cmp(&b.id));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring an invalid instance from the catalog")
                }
            }
        }
        for r in &resp.imports_removed {
            let Some(svc) = service_of(r.service.as_ref()) else {
                continue;
            };
            remove_where(&mut self.remote, &svc, |c| c.cluster == r.peer);
        }
        for imp in &resp.imports_upserted {
            let Some(s) = imp.summary.as_ref() else {
                continue;
            };
            let Some(svc) = service_of(s.service.as_ref()) else {
                continue;
            };
            let rc = RemoteCluster {
                cluster: imp.peer.clone(),
                healthy: s.healthy,
                weight: s.weight,
                zones: s.zones.clone(),
                stale: imp.stale,
            };
            upsert(&mut self.remote, svc, rc, |a, b| a.cluster.cmp(&b.cluster));
        }
        self.revision = resp.revision;
    }
}

fn service_of(s: Option<&pb::ServiceName>) -> Option<ServiceName> {
    let s = s?;
    let name = ServiceName::new(&s.namespace, &s.name);
    if meshgw_federation::model::is_label(&s.namespace)
        && meshgw_federation::model::is_label(&s.name)
    {
        Some(name)
    } else {
        tracing::warn!(service = %name, "ignoring a catalog entry with an invalid service name");
        None
    }
}

/// Replaces the entry equal under `order` to `item` (or inserts it, sorted).
fn upsert<T>(
    map: &mut FastMap<ServiceName, Vec<T>>,
    svc: ServiceName,
    item: T,
    order: impl Fn(&T, &T) -> std::cmp::Ordering,
) {
    let list = map.entry(svc).or_default();
    match list.binary_search_by(|e| order(e, &item)) {
        Ok(i) => list[i] = item,
        Err(i) => list.insert(i, item),
    }
}

fn remove_where<T>(
    map: &mut FastMap<ServiceName, Vec<T>>,
    svc: &ServiceName,
    f: impl Fn(&T) -> bool,
) {
    if let Some(list) = map.get_mut(svc) {
        list.retain(|e| !f(e));
        if list.is_empty() {
            map.remove(svc);
        }
    }
}

/// The catalog watch ended: the task feeding it stopped.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the catalog watch stopped (the sidecar is shutting down)")]
pub struct CatalogClosed;

/// A cheap, cloneable handle on the latest [`View`].
#[derive(Debug, Clone)]
pub struct Catalog {
    rx: watch::Receiver<Arc<View>>,
}

impl Catalog {
    /// Returns a catalog starting at `v` and the sender that updates it
    /// (tests publish views by hand; the sidecar hands it to [`run_watch`]).
    pub fn from_view(v: View) -> (Self, watch::Sender<Arc<View>>) {
        let (tx, rx) = watch::channel(Arc::new(v));
        (Self { rx }, tx)
    }

    /// Returns the latest view.
    pub fn current(&self) -> Arc<View> {
        self.rx.borrow().clone()
    }

    /// Waits until a view newer than the last one seen through this handle
    /// is published; fails once the sender is gone.
    pub async fn changed(&mut self) -> Result<(), CatalogClosed> {
        self.rx.changed().await.map_err(|_| CatalogClosed)
    }
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often peer RTTs are refreshed.
pub const PEERS_EVERY: Duration = Duration::from_secs(2);

/// Keeps `tx` current from the gateway at `client` until every receiver is
/// dropped: a Watch stream (snapshot, then deltas; after a lost stream it
/// re-watches from the last revision, with backoff from 100 ms to 5 s), and
/// `ListPeers` every 2 s for the peers' RTT.
pub async fn run_watch(client: CatalogClient<Channel>, tx: watch::Sender<Arc<View>>) {
    let peers = poll_peers(client.clone(), tx.clone());
    let watch = follow(client, tx.clone());
    tokio::select! {
        _ = tx.closed() => {}
        _ = peers => {}
        _ = watch => {}
    }
}

async fn follow(mut client: CatalogClient<Channel>, tx: watch::Sender<Arc<View>>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let resume = tx.borrow().revision;
        let req = pb::WatchRequest {
            resume_revision: resume,
        };
        match client.watch(req).await {
            Ok(resp) => {
                let mut stream = resp.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(msg)) => {
                            backoff = FIRST_BACKOFF;
                            tx.send_modify(|v| Arc::make_mut(v).apply(&msg));
                        }
                        Ok(None) => {
                            tracing::info!(revision = resume, "catalog watch ended; resuming");
                            break;
                        }
                        Err(status) => {
                            tracing::warn!(code = ?status.code(), message = status.message(), "catalog watch lost; resuming from the last revision");
                            break;
                        }
                    }
                }
            }
            Err(status) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "cannot watch the catalog: is the gateway up? retrying");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn poll_peers(mut client: CatalogClient<Channel>, tx: watch::Sender<Arc<View>>) {
    let mut tick = tokio::time::interval(PEERS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(resp) = client.list_peers(pb::ListPeersRequest {}).await else {
            continue;
        };
        let rtt = peer_rtts(&resp.into_inner().peers);
        tx.send_if_modified(|v| {
            if v.peer_rtt == rtt {
                return false;
            }
            Arc::make_mut(v).peer_rtt = rtt;
            true
        });
    }
}

/// Returns the RTT of each connected peer that has measured one.
pub fn peer_rtts(peers: &[pb::PeerView]) -> FastMap<String, Duration> {
    peers
        .iter()
        .filter(|p| p.connected && p.rtt_ms.is_finite() && p.rtt_ms >= 0.0)
        .map(|p| (p.name.clone(), Duration::from_secs_f64(p.rtt_ms / 1000.0)))
        .collect()
}
