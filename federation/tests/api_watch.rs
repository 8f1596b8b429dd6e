//! The Watch stream over a real server, client and EmbeddedStore: snapshot
//! then deltas, resume, compaction, store outages, lease expiry, shutdown.

mod api_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use api_support::*;
use async_trait::async_trait;
use meshgw_federation::api::pb;
use meshgw_federation::store::embedded::EmbeddedStore;
use meshgw_federation::store::{
    CatalogStore, KeyValue, LeaseId, Revision, StoreError, Txn, TxnResult, WatchStream,
};
use tokio::sync::{broadcast, mpsc};
use tonic::Code;

fn deregister_req(id: &str, name: &str) -> pb::DeregisterRequest {
    pb::DeregisterRequest {
        namespace: "default".into(),
        service: name.into(),
        instance_id: id.into(),
        lease_id: 0,
    }
}

#[tokio::test]
async fn fresh_watch_gets_snapshot_then_deltas() {
    let (store, _dir) = embedded().await;
    let store = Arc::new(store);
    let mut h = Harness::start(store.clone()).await;
    let a = register(&mut h.client, instance("payments", "a", 80), 30).await;

    let req = pb::WatchRequest { resume_revision: 0 };
    let mut w = h.client.watch(req).await.unwrap().into_inner();
    let snap = next(&mut w).await.unwrap();
    assert!(snap.reset);
    assert_eq!(upserted_ids(&snap), ["a"]);
    assert!(snap.revision >= a.revision);

    let b = register(&mut h.client, instance("payments", "b", 81), 30).await;
    let d = next(&mut w).await.unwrap();
    assert!(!d.reset);
    assert_eq!(
        (upserted_ids(&d), d.revision),
        (vec!["b".to_string()], b.revision)
    );
    assert_eq!(
        d.instances_upserted[0].locality.as_ref().unwrap().cluster,
        "local"
    );

    // Session markers and the leader key share the root but are not reported.
    store
        .put(&keys().peer_session("gcp", "gw-1"), b"x".to_vec(), None)
        .await
        .unwrap();
    store
        .put(&keys().leader(), b"gw-1".to_vec(), None)
        .await
        .unwrap();
    h.client
        .deregister(deregister_req("a", "payments"))
        .await
        .unwrap();
    let d = next(&mut w).await.unwrap();
    assert_eq!(
        removed_ids(&d),
        ["a"],
        "next change after the filtered ones: {d:?}"
    );
    assert_eq!(
        d.instances_removed[0].service.as_ref().unwrap().name,
        "payments"
    );
    assert!(d.instances_upserted.is_empty() && d.imports_upserted.is_empty());
    h.stop().await.unwrap();
}

#[tokio::test]
async fn resume_sends_only_later_changes() {
    let (store, _dir) = embedded().await;
    let mut h = Harness::start(Arc::new(store)).await;
    let a = register(&mut h.client, instance("payments", "a", 80), 30).await;
    register(&mut h.client, instance("payments", "b", 80), 30).await;

    let req = pb::WatchRequest {
        resume_revision: a.revision,
    };
    let mut w = h.client.watch(req).await.unwrap().into_inner();
    let first = next(&mut w).await.unwrap();
    assert!(!first.reset, "resume must not resend a snapshot");
    assert_eq!(upserted_ids(&first), ["b"]);
    register(&mut h.client, instance("payments", "c", 80), 30).await;
    assert_eq!(upserted_ids(&next(&mut w).await.unwrap()), ["c"]);
    h.stop().await.unwrap();
}

#[tokio::test]
async fn resume_from_compacted_or_unknown_revision_resets() {
    let (store, _dir) = embedded().await;
    let store = Arc::new(store);
    let mut h = Harness::start(store.clone()).await;
    let a = register(&mut h.client, instance("payments", "a", 80), 30).await;
    let b = register(&mut h.client, instance("payments", "b", 80), 30).await;
    store.compact(b.revision).unwrap();

    for resume in [a.revision - 1, b.revision + 1_000] {
        let req = pb::WatchRequest {
            resume_revision: resume,
        };
        let mut w = h.client.watch(req).await.unwrap().into_inner();
        let snap = next(&mut w).await.unwrap();
        assert!(snap.reset, "resume from {resume}");
        let mut ids = upserted_ids(&snap);
        ids.sort();
        assert_eq!(ids, ["a", "b"]);
    }
    let err = h
        .client
        .watch(pb::WatchRequest {
            resume_revision: -1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    h.stop().await.unwrap();
}

#[tokio::test]
async fn expired_lease_is_reported_removed() {
    let (store, _dir) = embedded().await;
    let mut h = Harness::start(Arc::new(store)).await;
    let mut w = h
        .client
        .watch(pb::WatchRequest { resume_revision: 0 })
        .await
        .unwrap()
        .into_inner();
    assert!(next(&mut w).await.unwrap().reset);
    register(&mut h.client, instance("payments", "short", 80), 2).await;
    assert_eq!(upserted_ids(&next(&mut w).await.unwrap()), ["short"]);
    // The lease runs out after ~2 s; `next` waits up to DEADLINE for it.
    let gone = next(&mut w).await.unwrap();
    assert_eq!(removed_ids(&gone), ["short"]);
    h.stop().await.unwrap();
}

/// An EmbeddedStore whose watches can be broken with `Unavailable`, as when
/// etcd goes away: open watches end with the error, and the next
/// `fail_next` watch calls fail with it.
struct FlakyStore {
    inner: EmbeddedStore,
    outage: broadcast::Sender<()>,
    fail_next: AtomicUsize,
    watch_calls: AtomicUsize,
}

impl FlakyStore {
    fn break_watches(&self, fail_next: usize) {
        self.fail_next.store(fail_next, Ordering::SeqCst);
        let _ = self.outage.send(());
    }
}

#[async_trait]
impl CatalogStore for FlakyStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.inner.get(key).await
    }
    async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), StoreError> {
        self.inner.range(prefix).await
    }
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Revision, StoreError> {
        self.inner.put(key, value, lease).await
    }
    async fn delete(&self, key: &str) -> Result<(u64, Revision), StoreError> {
        self.inner.delete(key).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<(u64, Revision), StoreError> {
        self.inner.delete_prefix(prefix).await
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResult, StoreError> {
        self.inner.txn(txn).await
    }
    async fn grant(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        self.inner.grant(ttl).await
    }
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        self.inner.keep_alive(lease).await
    }
    async fn revoke(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.inner.revoke(lease).await
    }
    async fn current_revision(&self) -> Result<Revision, StoreError> {
        self.inner.current_revision().await
    }
    async fn watch(&self, prefix: &str, from: Option<Revision>) -> Result<WatchStream, StoreError> {
        self.watch_calls.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(StoreError::Unavailable("etcd is down (injected)".into()));
        }
        let mut upstream = self.inner.watch(prefix, from).await?;
        let mut outage = self.outage.subscribe();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = outage.recv() => {
                        let _ = tx.send(Err(StoreError::Unavailable("connection reset (injected)".into()))).await;
                        return;
                    }
                    item = upstream.recv() => match item {
                        Some(item) => if tx.send(item).await.is_err() { return },
                        None => return,
                    },
                }
            }
        });
        Ok(rx)
    }
}

#[tokio::test]
async fn store_outage_keeps_the_stream_and_resumes_without_reset() {
    let (inner, _dir) = embedded().await;
    let store = Arc::new(FlakyStore {
        inner,
        outage: broadcast::channel(4).0,
        fail_next: AtomicUsize::new(0),
        watch_calls: AtomicUsize::new(0),
    });
    let mut h = Harness::start(store.clone()).await;
    register(&mut h.client, instance("payments", "a", 80), 30).await;
    let mut w = h
        .client
        .watch(pb::WatchRequest { resume_revision: 0 })
        .await
        .unwrap()
        .into_inner();
    assert!(next(&mut w).await.unwrap().reset);
    assert_eq!(store.watch_calls.load(Ordering::SeqCst), 1);

    // The watch breaks and the next two re-watches fail; writes go on meanwhile.
    store.break_watches(2);
    register(&mut h.client, instance("payments", "b", 80), 30).await;
    let d = next(&mut w)
        .await
        .expect("stream stays open through the outage");
    assert!(!d.reset, "resumed from the last revision, no snapshot");
    assert_eq!(upserted_ids(&d), ["b"]);
    assert!(
        store.watch_calls.load(Ordering::SeqCst) >= 4,
        "re-watched after failures"
    );
    h.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_ends_open_streams_and_returns() {
    let (store, _dir) = embedded().await;
    let mut h = Harness::start(Arc::new(store)).await;
    let mut w = h
        .client
        .watch(pb::WatchRequest { resume_revision: 0 })
        .await
        .unwrap()
        .into_inner();
    assert!(next(&mut w).await.unwrap().reset);
    let (_tx, rx) = mpsc::channel::<pb::KeepAliveRequest>(1);
    let mut ka = h
        .client
        .keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut client = h.client.clone();
    h.stop().await.expect("serve returns despite open streams");
    for err in [
        next(&mut w).await.unwrap_err(),
        next(&mut ka).await.unwrap_err(),
    ] {
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        assert!(err.message().contains("shutting down"), "{}", err.message());
    }
    assert!(
        client.list_peers(pb::ListPeersRequest {}).await.is_err(),
        "server is gone"
    );
}
