//! ListServices and ListPeers: what `meshgw status` shows.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use tonic::Status;

use super::error::store_status;
use super::{CatalogApi, pb};
use crate::model::{ImportRecord, Instance, ServiceName, ServiceSummary};
use crate::store::KeyValue;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn decode<T: serde::de::DeserializeOwned>(kv: &KeyValue) -> Option<T> {
    serde_json::from_slice(&kv.value)
        .inspect_err(
            |e| tracing::warn!(key = %kv.key, error = %e, "skipping undecodable catalog value"),
        )
        .ok()
}

fn cluster_view(s: &ServiceSummary, local: bool) -> pb::ClusterView {
    pb::ClusterView {
        cluster: s.source_cluster.clone(),
        local,
        healthy: s.healthy,
        total: s.total,
        weight: s.weight,
        zones: s.zones.iter().cloned().collect(),
        ..Default::default()
    }
}

impl CatalogApi {
    /// Reads all peers' import records: `(peer, record)`.
    async fn imports(&self) -> Result<Vec<(String, ImportRecord)>, Status> {
        let (kvs, _) = self
            .store
            .range(&self.keys.imports())
            .await
            .map_err(store_status)?;
        Ok(kvs
            .iter()
            .filter_map(|kv| {
                let (peer, _) = self.keys.parse_import(&kv.key)?;
                Some((peer, decode(kv)?))
            })
            .collect())
    }

    /// Reads the catalog view from the store and remembers it, so that
    /// ListServices can answer from the last view while the store is away.
    /// The gateway calls it periodically; every successful ListServices
    /// refreshes it too.
    pub async fn refresh_view(&self) -> Result<(), Status> {
        self.do_list_services().await.map(|_| ())
    }

    /// Answers ListServices: from the store, or, when the store is
    /// unavailable, from the last view read (marked by the response metadata
    /// `meshgw-view: last-known`).
    pub(crate) async fn list_services_or_last(
        &self,
    ) -> Result<tonic::Response<pb::ListServicesResponse>, Status> {
        match self.do_list_services().await {
            Ok(v) => Ok(tonic::Response::new(v)),
            Err(e) if e.code() == tonic::Code::Unavailable => {
                let last = self.last_view.lock().expect("view lock").clone();
                let Some(v) = last else { return Err(e) };
                tracing::debug!(error = %e.message(), "store unavailable: answering ListServices from the last view");
                let mut resp = tonic::Response::new(v);
                resp.metadata_mut()
                    .insert("meshgw-view", "last-known".parse().expect("ascii"));
                Ok(resp)
            }
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn do_list_services(&self) -> Result<pb::ListServicesResponse, Status> {
        let (kvs, revision) = self
            .store
            .range(&self.keys.instances())
            .await
            .map_err(store_status)?;
        let mut local: BTreeMap<ServiceName, Vec<Instance>> = BTreeMap::new();
        for i in kvs.iter().filter_map(decode::<Instance>) {
            local.entry(i.service.clone()).or_default().push(i);
        }
        let mut views: BTreeMap<ServiceName, Vec<pb::ClusterView>> = BTreeMap::new();
        let now = now_ms();
        for (svc, list) in &local {
            let s = ServiceSummary::from_instances(svc, &self.local.cluster, revision, list);
            let mut v = cluster_view(&s, true);
            v.updated_at_ms = now;
            views.entry(svc.clone()).or_default().push(v);
        }
        for (_, rec) in self.imports().await? {
            let mut v = cluster_view(&rec.summary, false);
            v.stale = rec.stale_since_ms.is_some();
            v.stale_since_ms = rec.stale_since_ms.unwrap_or(0);
            v.updated_at_ms = rec.updated_at_ms;
            views
                .entry(rec.summary.service.clone())
                .or_default()
                .push(v);
        }
        let services = views
            .into_iter()
            .map(|(svc, mut clusters)| {
                clusters.sort_by(|a, b| b.local.cmp(&a.local).then(a.cluster.cmp(&b.cluster)));
                pb::ServiceView {
                    namespace: svc.namespace,
                    name: svc.name,
                    clusters,
                }
            })
            .collect();
        let resp = pb::ListServicesResponse { services, revision };
        *self.last_view.lock().expect("view lock") = Some(resp.clone());
        Ok(resp)
    }

    pub(crate) async fn do_list_peers(&self) -> Result<pb::ListPeersResponse, Status> {
        let mut counts: BTreeMap<String, (u32, u32)> = BTreeMap::new();
        // Without the store, peers still show (live tunnel state), without import counts.
        let imports = match self.imports().await {
            Ok(v) => v,
            Err(e) if e.code() == tonic::Code::Unavailable => Vec::new(),
            Err(e) => return Err(e),
        };
        for (peer, rec) in imports {
            let c = counts.entry(peer).or_default();
            c.0 += 1;
            c.1 += u32::from(rec.stale_since_ms.is_some());
        }
        let mut peers = self.peers.peers();
        for p in &mut peers {
            let (imports, stale) = counts.remove(&p.name).unwrap_or_default();
            p.imports = imports;
            p.stale_imports = stale;
        }
        // Imports left by a peer no longer configured still show, disconnected.
        peers.extend(
            counts
                .into_iter()
                .map(|(name, (imports, stale))| pb::PeerView {
                    name,
                    imports,
                    stale_imports: stale,
                    last_error: "not a configured peer: its imports are left over".into(),
                    ..Default::default()
                }),
        );
        peers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(pb::ListPeersResponse { peers })
    }
}
