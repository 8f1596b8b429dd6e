//! Writes what a peer exports into the local store under the peer's prefix.
//!
//! Sessions update an in-memory *desired* import set per peer; one writer task
//! per peer reconciles the store to it, retrying while the store is away, so
//! nothing received is lost when etcd is down. Writes are idempotent and
//! versioned: a record is replaced only by a summary with a newer source
//! revision (or to clear its stale mark), with a compare-and-swap on the
//! record's `mod_revision`, so gateway replicas sharing one etcd never undo
//! each other's newer writes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use meshgw_federation::model::{ImportRecord, Keys, ServiceName, ServiceSummary};
use meshgw_federation::store::{CatalogStore, Compare, Op, StoreError, Txn};
use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::peers::unix_ms;

/// How often a writer re-checks the store against its desired set.
const RESYNC: Duration = Duration::from_secs(5);

/// The import set a peer's sessions want in the store. `None` until a first
/// snapshot arrived, so an empty map is never mistaken for "delete everything".
pub type Desired = Option<Arc<BTreeMap<ServiceName, ServiceSummary>>>;

/// The handles one peer's sessions use to feed its writer.
#[derive(Clone)]
pub struct PeerImports {
    /// The desired set.
    pub desired: watch::Sender<Desired>,
    /// How many of this replica's sessions with the peer hold a live marker
    /// in the store. The writer writes only while it is above zero, so that
    /// housekeeping, which reads markers and imports in one range, never marks
    /// a freshly written import stale.
    pub live_markers: watch::Sender<usize>,
}

impl PeerImports {
    /// Creates the handles.
    pub fn new() -> Self {
        Self {
            desired: watch::channel(None).0,
            live_markers: watch::channel(0).0,
        }
    }

    /// Replaces the desired set with a snapshot.
    pub fn apply_snapshot(&self, services: Vec<ServiceSummary>) {
        let map = services
            .into_iter()
            .map(|s| (s.service.clone(), s))
            .collect();
        self.desired.send_replace(Some(Arc::new(map)));
    }

    /// Applies a delta to the desired set.
    pub fn apply_delta(&self, upserts: Vec<ServiceSummary>, removals: Vec<ServiceName>) {
        self.desired.send_modify(|d| {
            let mut map = d.as_deref().cloned().unwrap_or_default();
            for s in upserts {
                map.insert(s.service.clone(), s);
            }
            for r in &removals {
                map.remove(r);
            }
            *d = Some(Arc::new(map));
        });
    }
}

impl Default for PeerImports {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs one peer's writer forever.
pub async fn run_writer(store: Arc<dyn CatalogStore>, keys: Keys, peer: String, h: PeerImports) {
    let mut desired_rx = h.desired.subscribe();
    let mut live_rx = h.live_markers.subscribe();
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let desired = desired_rx.borrow_and_update().clone();
        let live = *live_rx.borrow_and_update() > 0;
        if let (Some(want), true) = (desired, live) {
            match reconcile(store.as_ref(), &keys, &peer, &want).await {
                Ok(true) => backoff.reset(),
                Ok(false) => continue, // lost a compare-and-swap race: re-read and go again
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "cannot write imports yet; will retry");
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
            }
        }
        tokio::select! {
            r = desired_rx.changed() => if r.is_err() { return },
            r = live_rx.changed() => if r.is_err() { return },
            // Another replica with an older view may have undone a write of
            // ours: re-check now and then (cheap: one range read per peer).
            _ = tokio::time::sleep(RESYNC) => {}
        }
    }
}

/// Makes the store hold exactly `want` for `peer`. Returns `Ok(false)` if a
/// concurrent write got in the way.
async fn reconcile(
    store: &dyn CatalogStore,
    keys: &Keys,
    peer: &str,
    want: &BTreeMap<ServiceName, ServiceSummary>,
) -> Result<bool, StoreError> {
    let (kvs, _) = store.range(&keys.peer_imports(peer)).await?;
    let mut stored: BTreeMap<ServiceName, (ImportRecord, i64)> = BTreeMap::new();
    for kv in kvs {
        let Some((_, svc)) = keys.parse_import(&kv.key) else {
            continue;
        };
        match serde_json::from_slice::<ImportRecord>(&kv.value) {
            Ok(r) => {
                stored.insert(svc, (r, kv.mod_revision));
            }
            // An unreadable record is replaced (mod_revision compare still guards it).
            Err(_) => {
                store.txn(cas_delete(&kv.key, kv.mod_revision)).await?;
            }
        }
    }
    let mut all_ok = true;
    for (svc, s) in want {
        let key = keys.import(peer, svc);
        let (need, rev) = match stored.get(svc) {
            None => (true, 0),
            Some((r, rev)) => {
                let newer = s.revision > r.summary.revision && !s.same_content(&r.summary);
                (newer || r.stale_since_ms.is_some(), *rev)
            }
        };
        if need {
            let rec = ImportRecord {
                summary: s.clone(),
                updated_at_ms: unix_ms(),
                stale_since_ms: None,
            };
            let value = serde_json::to_vec(&rec).expect("import record serialises");
            let t = Txn {
                compare: vec![Compare::ModRevision(key.clone(), rev)],
                success: vec![Op::Put {
                    key,
                    value,
                    lease: None,
                }],
                failure: vec![],
            };
            all_ok &= store.txn(t).await?.succeeded;
        }
    }
    for (svc, (_, rev)) in &stored {
        if !want.contains_key(svc) {
            let key = keys.import(peer, svc);
            all_ok &= store.txn(cas_delete(&key, *rev)).await?.succeeded;
        }
    }
    Ok(all_ok)
}

/// Returns a transaction deleting `key` only if it is still at `rev`.
pub fn cas_delete(key: &str, rev: i64) -> Txn {
    Txn {
        compare: vec![Compare::ModRevision(key.to_string(), rev)],
        success: vec![Op::Delete {
            key: key.to_string(),
        }],
        failure: vec![],
    }
}
