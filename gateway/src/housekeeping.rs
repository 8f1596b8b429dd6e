//! Housekeeping run by one elected replica per cluster: marks a silent peer's
//! imports stale and removes them after the import TTL.
//!
//! Election: the replica that creates `{prefix}/leader` (compare
//! `create_revision == 0`) attached to its own lease leads until the lease
//! lapses. A peer is silent when the consistent range of `{prefix}/peers/{peer}/`
//! holds no session marker: markers are leased with TTL `stale_after` and kept
//! alive only while a session hears from the peer.

use std::sync::Arc;
use std::time::Duration;

use meshgw_federation::model::{ImportRecord, Keys};
use meshgw_federation::store::{CatalogStore, Compare, LeaseId, Op, StoreError, Txn};

use crate::imports::cas_delete;
use crate::peers::unix_ms;

/// How often the leader looks, and the leader lease's TTL.
const TICK: Duration = Duration::from_millis(500);
const LEADER_TTL: Duration = Duration::from_secs(3);

/// Settings for housekeeping.
#[derive(Debug, Clone)]
pub struct Housekeeping {
    /// The peers to look after.
    pub peers: Vec<String>,
    /// This replica's id.
    pub replica: String,
    /// How long stale imports are kept.
    pub import_ttl: Duration,
}

/// Runs forever: campaigns for leadership and, while leading, sweeps.
pub async fn run(store: Arc<dyn CatalogStore>, keys: Keys, hk: Housekeeping) {
    let mut lease: Option<LeaseId> = None;
    loop {
        tokio::time::sleep(TICK).await;
        match campaign(store.as_ref(), &keys, &hk.replica, &mut lease).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "housekeeping: store unavailable");
                continue;
            }
        }
        for peer in &hk.peers {
            if let Err(e) = sweep(store.as_ref(), &keys, peer, hk.import_ttl).await {
                tracing::debug!(%peer, error = %e, "housekeeping sweep failed; will retry");
            }
        }
    }
}

/// Returns whether this replica leads after renewing or trying to take the lead.
async fn campaign(
    store: &dyn CatalogStore,
    keys: &Keys,
    replica: &str,
    lease: &mut Option<LeaseId>,
) -> Result<bool, StoreError> {
    if let Some(id) = *lease {
        match store.keep_alive(id).await {
            Ok(_) => {}
            Err(StoreError::LeaseNotFound(_)) => *lease = None,
            Err(e) => return Err(e),
        }
    }
    let id = match *lease {
        Some(id) => id,
        None => {
            let id = store.grant(LEADER_TTL).await?;
            *lease = Some(id);
            id
        }
    };
    let key = keys.leader();
    let t = Txn {
        compare: vec![Compare::CreateRevision(key.clone(), 0)],
        success: vec![Op::Put {
            key: key.clone(),
            value: replica.as_bytes().to_vec(),
            lease: Some(id),
        }],
        failure: vec![],
    };
    if store.txn(t).await?.succeeded {
        tracing::info!(%replica, "took the housekeeping lead");
        return Ok(true);
    }
    Ok(store
        .get(&key)
        .await?
        .is_some_and(|kv| kv.value == replica.as_bytes() && kv.lease == id))
}

/// Marks a silent peer's imports stale, and removes those stale for longer than `ttl`.
async fn sweep(
    store: &dyn CatalogStore,
    keys: &Keys,
    peer: &str,
    ttl: Duration,
) -> Result<(), StoreError> {
    let (kvs, _) = store.range(&keys.peer_root(peer)).await?;
    if kvs.iter().any(|kv| keys.parse_session(&kv.key).is_some()) {
        return Ok(());
    }
    let now = unix_ms();
    for kv in kvs {
        if keys.parse_import(&kv.key).is_none() {
            continue;
        }
        let Ok(mut rec) = serde_json::from_slice::<ImportRecord>(&kv.value) else {
            continue;
        };
        match rec.stale_since_ms {
            None => {
                rec.stale_since_ms = Some(now);
                tracing::info!(%peer, service = %rec.summary.service, "peer silent: import marked stale");
                let t = Txn {
                    compare: vec![Compare::ModRevision(kv.key.clone(), kv.mod_revision)],
                    success: vec![Op::Put {
                        key: kv.key.clone(),
                        value: serde_json::to_vec(&rec).expect("import record serialises"),
                        lease: None,
                    }],
                    failure: vec![],
                };
                store.txn(t).await?;
            }
            Some(since) if now.saturating_sub(since) >= ttl.as_millis() as u64 => {
                tracing::info!(%peer, service = %rec.summary.service, "stale import expired: removed");
                store.txn(cas_delete(&kv.key, kv.mod_revision)).await?;
            }
            Some(_) => {}
        }
    }
    Ok(())
}
