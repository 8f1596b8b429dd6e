//! The `CatalogStore` contract, run against both backends: every check is one
//! async fn taking a [`Backend`]; `contract!` generates a `#[tokio::test]` per
//! check for the embedded store and for a real single-member etcd. Checks that
//! only one backend can do (restart, torn log, lock; member failure) follow.
#![cfg(feature = "test-util")]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use meshgw_federation::store::embedded::EmbeddedStore;
use meshgw_federation::store::etcd::{EtcdOptions, EtcdStore};
use meshgw_federation::store::{
    CatalogStore, Compare, EventKind, Op, Revision, StoreError, Txn, WatchBatch, WatchStream,
};
use meshgw_federation::testutil::EtcdCluster;
use tokio::time::Instant;

type Compact = Box<dyn Fn(Revision) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send>;

/// A store under test, how to compact its history, and what keeps it alive.
struct Backend {
    store: Arc<dyn CatalogStore>,
    compact: Compact,
    _keep: Box<dyn std::any::Any + Send>,
}

async fn embedded() -> Result<Backend> {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(dir.path()).await?;
    let s = store.clone();
    Ok(Backend {
        store: Arc::new(store),
        compact: Box::new(move |rev| {
            let s = s.clone();
            Box::pin(async move { Ok(s.compact(rev)?) })
        }),
        _keep: Box::new(dir),
    })
}

fn etcd_options(endpoints: Vec<String>) -> EtcdOptions {
    let mut o = EtcdOptions::new(endpoints);
    o.dial_timeout = Duration::from_secs(2);
    o.request_timeout = Duration::from_secs(2);
    o
}

async fn etcd() -> Result<Backend> {
    let cluster = EtcdCluster::start(1).await?;
    let store = EtcdStore::connect(&etcd_options(cluster.endpoints())).await?;
    let s = store.clone();
    Ok(Backend {
        store: Arc::new(store),
        compact: Box::new(move |rev| {
            let s = s.clone();
            Box::pin(async move { Ok(s.compact(rev).await?) })
        }),
        _keep: Box::new(cluster),
    })
}

const WAIT: Duration = Duration::from_secs(10);

/// Returns the next non-empty batch (skipping progress notices), within 10 s.
async fn next(w: &mut WatchStream) -> Result<Result<WatchBatch, StoreError>> {
    loop {
        match tokio::time::timeout(WAIT, w.recv()).await {
            Err(_) => bail!("watch delivered nothing within {WAIT:?}"),
            Ok(None) => bail!("watch stream ended"),
            Ok(Some(Ok(b))) if b.events.is_empty() => continue,
            Ok(Some(r)) => return Ok(r),
        }
    }
}

/// Polls `f` until it returns true, failing after `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut f: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + limit;
    while !f().await? {
        ensure!(
            Instant::now() < deadline,
            "{what}: not true after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn put(key: &str, value: &[u8]) -> Op {
    Op::Put {
        key: key.into(),
        value: value.to_vec(),
        lease: None,
    }
}

async fn put_get_range_track_revisions_and_versions(b: Backend) -> Result<()> {
    let s = b.store;
    let r0 = s.current_revision().await?;
    let r1 = s.put("/t/a", b"1".to_vec(), None).await?;
    ensure!(
        r1 == r0 + 1,
        "a put bumps the revision by one: {r0} -> {r1}"
    );
    let kv = s.get("/t/a").await?.context("/t/a missing")?;
    ensure!((kv.create_revision, kv.mod_revision, kv.version, kv.lease) == (r1, r1, 1, 0));
    let r2 = s.put("/t/a", b"2".to_vec(), None).await?;
    let kv = s.get("/t/a").await?.context("/t/a missing")?;
    ensure!(kv.value == b"2" && (kv.create_revision, kv.mod_revision, kv.version) == (r1, r2, 2));
    s.put("/t/b", b"3".to_vec(), None).await?;
    let r4 = s.put("/u/c", b"4".to_vec(), None).await?;
    let (kvs, rev) = s.range("/t/").await?;
    let keys: Vec<_> = kvs.iter().map(|k| k.key.as_str()).collect();
    ensure!(
        keys == ["/t/a", "/t/b"],
        "range returns the prefix sorted: {keys:?}"
    );
    ensure!(rev == r4 && s.current_revision().await? == r4);
    ensure!(s.get("/t/missing").await?.is_none());
    Ok(())
}

async fn delete_and_delete_prefix(b: Backend) -> Result<()> {
    let s = b.store;
    for k in ["/d/a", "/d/b", "/d/c/x", "/e"] {
        s.put(k, b"v".to_vec(), None).await?;
    }
    let (n, r) = s.delete("/d/a").await?;
    ensure!(n == 1 && s.get("/d/a").await?.is_none());
    let (n, r_same) = s.delete("/d/a").await?;
    ensure!(
        n == 0 && r_same == r,
        "deleting nothing does not bump the revision"
    );
    let (n, r2) = s.delete_prefix("/d/").await?;
    ensure!(
        n == 2 && r2 == r + 1,
        "prefix delete is one revision: {n} {r} {r2}"
    );
    ensure!(s.range("/d/").await?.0.is_empty() && s.get("/e").await?.is_some());
    Ok(())
}

async fn txn_compares_pick_the_branch(b: Backend) -> Result<()> {
    let s = b.store;
    let r1 = s.put("/x", b"v1".to_vec(), None).await?;
    let cas = |rev| Txn {
        compare: vec![Compare::ModRevision("/x".into(), rev)],
        success: vec![put("/x", b"v2")],
        failure: vec![put("/fail", b"f")],
    };
    let t = s.txn(cas(r1)).await?;
    ensure!(t.succeeded && s.get("/x").await?.context("/x")?.version == 2);
    let t2 = s.txn(cas(r1)).await?;
    ensure!(
        !t2.succeeded && s.get("/fail").await?.is_some(),
        "stale CAS runs failure"
    );
    let create = Txn {
        compare: vec![Compare::CreateRevision("/new".into(), 0)],
        success: vec![put("/new", b"n")],
        failure: vec![],
    };
    ensure!(s.txn(create.clone()).await?.succeeded);
    let again = s.txn(create).await?;
    ensure!(!again.succeeded && again.revision == s.current_revision().await?);
    let by_value = |v: &[u8]| Txn {
        compare: vec![Compare::Value("/x".into(), v.to_vec())],
        success: vec![
            Op::Delete { key: "/x".into() },
            put("/m1", b"1"),
            put("/m2", b"2"),
        ],
        failure: vec![],
    };
    ensure!(!s.txn(by_value(b"v1")).await?.succeeded);
    let t3 = s.txn(by_value(b"v2")).await?;
    ensure!(t3.succeeded && s.get("/x").await?.is_none());
    let (m1, m2) = (
        s.get("/m1").await?.context("m1")?,
        s.get("/m2").await?.context("m2")?,
    );
    ensure!(
        m1.mod_revision == t3.revision && m2.mod_revision == t3.revision,
        "one txn, one revision"
    );
    let missing = Txn {
        compare: vec![Compare::Value("/nope".into(), vec![])],
        ..Txn::default()
    };
    ensure!(
        !s.txn(missing).await?.succeeded,
        "a value compare on a missing key fails"
    );
    let prefix = Txn {
        success: vec![Op::DeletePrefix {
            prefix: "/m".into(),
        }],
        ..Txn::default()
    };
    ensure!(s.txn(prefix).await?.succeeded && s.range("/m").await?.0.is_empty());
    Ok(())
}

async fn lease_expiry_deletes_keys_with_delete_events(b: Backend) -> Result<()> {
    let s = b.store;
    let lease = s.grant(Duration::from_secs(2)).await?;
    s.put("/l/k", b"v".to_vec(), Some(lease)).await?;
    ensure!(s.get("/l/k").await?.context("/l/k")?.lease == lease);
    let mut w = s.watch("/l/", None).await?;
    let started = Instant::now();
    let batch = next(&mut w).await??;
    ensure!(batch.events[0].kind == EventKind::Delete && batch.events[0].kv.key == "/l/k");
    ensure!(batch.events[0].kv.mod_revision == batch.revision);
    ensure!(
        started.elapsed() >= Duration::from_millis(1500),
        "expired too early"
    );
    ensure!(s.get("/l/k").await?.is_none());
    match s.keep_alive(lease).await {
        Err(StoreError::LeaseNotFound(id)) if id == lease => {}
        other => bail!("keep_alive of an expired lease: {other:?}"),
    }
    match s.put("/l/k2", vec![], Some(lease)).await {
        Err(StoreError::LeaseNotFound(id)) if id == lease => Ok(()),
        other => bail!("put with an expired lease: {other:?}"),
    }
}

async fn keep_alive_extends_and_revoke_deletes(b: Backend) -> Result<()> {
    let s = b.store;
    let lease = s.grant(Duration::from_millis(1500)).await?;
    s.put("/k/a", b"v".to_vec(), Some(lease)).await?;
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let ttl = s.keep_alive(lease).await?;
        ensure!(
            ttl == Duration::from_secs(2),
            "TTL rounds up to whole seconds: {ttl:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ensure!(
        s.get("/k/a").await?.is_some(),
        "key expired despite keep-alives"
    );
    s.revoke(lease).await?;
    ensure!(
        s.get("/k/a").await?.is_none(),
        "revoke deletes attached keys"
    );
    ensure!(matches!(
        s.revoke(lease).await,
        Err(StoreError::LeaseNotFound(_))
    ));
    Ok(())
}

async fn watch_from_a_past_revision_replays_in_order(b: Backend) -> Result<()> {
    let s = b.store;
    let r1 = s.put("/w/a", b"1".to_vec(), None).await?;
    let r2 = s.put("/w/b", b"2".to_vec(), None).await?;
    s.put("/other", b"x".to_vec(), None).await?;
    let (_, r3) = s.delete("/w/a").await?;
    let mut w = s.watch("/w/", Some(r1)).await?;
    let want = [
        (r1, EventKind::Put, "/w/a"),
        (r2, EventKind::Put, "/w/b"),
        (r3, EventKind::Delete, "/w/a"),
    ];
    for (rev, kind, key) in want {
        let b = next(&mut w).await??;
        ensure!(
            b.revision == rev && b.events.len() == 1,
            "batch {b:?}, wanted {rev}"
        );
        ensure!(
            b.events[0].kind == kind && b.events[0].kv.key == key,
            "{b:?}"
        );
    }
    let r4 = s.put("/w/c", b"3".to_vec(), None).await?;
    let b = next(&mut w).await??;
    ensure!(
        b.revision == r4 && b.events[0].kv.value == b"3",
        "live event after replay: {b:?}"
    );
    Ok(())
}

async fn watch_from_none_sees_only_new_writes(b: Backend) -> Result<()> {
    let s = b.store;
    s.put("/n/old", b"o".to_vec(), None).await?;
    let mut w = s.watch("/n/", None).await?;
    let r = s.put("/n/new", b"n".to_vec(), None).await?;
    let b = next(&mut w).await??;
    ensure!(
        b.revision == r && b.events.len() == 1 && b.events[0].kv.key == "/n/new",
        "{b:?}"
    );
    Ok(())
}

async fn watch_from_a_compacted_revision_fails(b: Backend) -> Result<()> {
    let s = b.store;
    let r1 = s.put("/c/a", b"1".to_vec(), None).await?;
    s.put("/c/a", b"2".to_vec(), None).await?;
    let r3 = s.put("/c/a", b"3".to_vec(), None).await?;
    (b.compact)(r3).await?;
    let mut w = s.watch("/c/", Some(r1)).await?;
    match next(&mut w).await? {
        Err(StoreError::Compacted {
            compact_revision, ..
        }) if compact_revision == r3 => {}
        other => bail!("watch from {r1} after compacting at {r3}: {other:?}"),
    }
    let mut w = s.watch("/c/", Some(r3)).await?;
    ensure!(
        next(&mut w).await??.revision == r3,
        "the compaction revision itself is kept"
    );
    Ok(())
}

async fn resumed_watch_misses_nothing(b: Backend) -> Result<()> {
    let s = b.store;
    let mut w = s.watch("/r/", None).await?;
    s.put("/r/a", b"1".to_vec(), None).await?;
    let last = next(&mut w).await??.revision;
    drop(w);
    let rb = s.put("/r/b", b"2".to_vec(), None).await?;
    let rc = s.put("/r/c", b"3".to_vec(), None).await?;
    let mut w = s.watch("/r/", Some(last + 1)).await?;
    ensure!(next(&mut w).await??.revision == rb);
    ensure!(next(&mut w).await??.revision == rc);
    Ok(())
}

macro_rules! contract {
    ($($check:ident),* $(,)?) => {
        mod embedded_backend {
            $(#[tokio::test]
            async fn $check() -> anyhow::Result<()> {
                super::$check(super::embedded().await?).await
            })*
        }
        mod etcd_backend {
            $(#[tokio::test]
            async fn $check() -> anyhow::Result<()> {
                super::$check(super::etcd().await?).await
            })*
        }
    };
}

contract!(
    put_get_range_track_revisions_and_versions,
    delete_and_delete_prefix,
    txn_compares_pick_the_branch,
    lease_expiry_deletes_keys_with_delete_events,
    keep_alive_extends_and_revoke_deletes,
    watch_from_a_past_revision_replays_in_order,
    watch_from_none_sees_only_new_writes,
    watch_from_a_compacted_revision_fails,
    resumed_watch_misses_nothing,
);

#[path = "store_contract/embedded_only.rs"]
mod embedded_only;
#[path = "store_contract/etcd_only.rs"]
mod etcd_only;
