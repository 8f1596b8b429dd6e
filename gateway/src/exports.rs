//! Watches the local instances in the store and keeps a summary per service,
//! published on a `watch` channel for every peer session to filter and send.
//!
//! The watch resumes from the last revision seen after the store goes away
//! (etcd down) and re-reads everything after a compaction, so the published
//! view is never older than needed and never torn.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use meshgw_federation::model::{Instance, Keys, ServiceName, ServiceSummary};
use meshgw_federation::store::{CatalogStore, EventKind, Revision, StoreError};
use tokio::sync::watch;

use crate::backoff::Backoff;

/// Every local service's summary, keyed by service.
pub type LocalSummaries = Arc<BTreeMap<ServiceName, ServiceSummary>>;

/// Every local instance, by service: where forwarded connections go.
pub type LocalInstances = Arc<HashMap<ServiceName, Vec<Instance>>>;

/// Local instances grouped by service.
#[derive(Default)]
struct LocalView {
    services: HashMap<ServiceName, BTreeMap<String, Instance>>,
    summaries: BTreeMap<ServiceName, ServiceSummary>,
}

impl LocalView {
    fn apply_put(&mut self, keys: &Keys, key: &str, value: &[u8]) -> Option<ServiceName> {
        let (svc, id) = keys.parse_instance(key)?;
        match serde_json::from_slice::<Instance>(value) {
            Ok(i) => {
                self.services.entry(svc.clone()).or_default().insert(id, i);
                Some(svc)
            }
            Err(e) => {
                tracing::warn!(%key, error = %e, "ignoring unreadable instance record");
                None
            }
        }
    }

    fn apply_delete(&mut self, keys: &Keys, key: &str) -> Option<ServiceName> {
        let (svc, id) = keys.parse_instance(key)?;
        if let Some(m) = self.services.get_mut(&svc) {
            m.remove(&id);
            if m.is_empty() {
                self.services.remove(&svc);
            }
        }
        Some(svc)
    }

    fn resummarise(&mut self, svc: &ServiceName, cluster: &str, rev: Revision) {
        match self.services.get(svc) {
            Some(m) => {
                let s = ServiceSummary::from_instances(svc, cluster, rev, m.values());
                let changed = self
                    .summaries
                    .get(svc)
                    .is_none_or(|old| !old.same_content(&s));
                if changed {
                    self.summaries.insert(svc.clone(), s);
                }
            }
            None => {
                self.summaries.remove(svc);
            }
        }
    }
}

/// Runs forever, publishing local summaries on `tx`.
pub async fn run(
    store: Arc<dyn CatalogStore>,
    keys: Keys,
    cluster: String,
    tx: watch::Sender<LocalSummaries>,
    instances: watch::Sender<LocalInstances>,
) {
    let publish = |view: &LocalView| {
        tx.send_replace(Arc::new(view.summaries.clone()));
        let all = view
            .services
            .iter()
            .map(|(s, m)| (s.clone(), m.values().cloned().collect()))
            .collect();
        instances.send_replace(Arc::new(all));
    };
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut view = LocalView::default();
    let mut next: Option<Revision> = None;
    loop {
        if next.is_none() {
            match store.range(&keys.instances()).await {
                Ok((kvs, rev)) => {
                    view = LocalView::default();
                    for kv in &kvs {
                        view.apply_put(&keys, &kv.key, &kv.value);
                    }
                    let svcs: Vec<_> = view.services.keys().cloned().collect();
                    for s in &svcs {
                        view.resummarise(s, &cluster, rev);
                    }
                    publish(&view);
                    next = Some(rev + 1);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read local instances; exports keep their last view");
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
            }
        }
        let from = next.expect("set above");
        let mut stream = match store.watch(&keys.instances(), Some(from)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch local instances; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        while let Some(item) = stream.recv().await {
            match item {
                Ok(batch) => {
                    backoff.reset();
                    let mut touched = Vec::new();
                    for ev in &batch.events {
                        let s = match ev.kind {
                            EventKind::Put => view.apply_put(&keys, &ev.kv.key, &ev.kv.value),
                            EventKind::Delete => view.apply_delete(&keys, &ev.kv.key),
                        };
                        touched.extend(s.map(|s| (s, ev.kv.mod_revision)));
                    }
                    for (s, rev) in &touched {
                        view.resummarise(s, &cluster, *rev);
                    }
                    next = Some(batch.revision + 1);
                    if !touched.is_empty() {
                        publish(&view);
                    }
                }
                Err(StoreError::Compacted { .. }) => {
                    tracing::info!("instance watch compacted; re-reading all instances");
                    next = None;
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "instance watch broke; resuming from revision {}", next.unwrap_or(0));
                    break;
                }
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Returns the part of `all` exported to `peer` under the config's rules.
pub fn for_peer(
    cfg: &meshgw_config::GatewayConfig,
    peer: &str,
    all: &BTreeMap<ServiceName, ServiceSummary>,
) -> BTreeMap<ServiceName, ServiceSummary> {
    all.iter()
        .filter(|(s, _)| cfg.exports_to(peer, &s.namespace, &s.name))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
