//! Checks only etcd can do: losing a member of a 3-member cluster, and the
//! whole cluster going away for a while.

use super::*;

/// Watches `prefix` until an event for `key` arrives, re-watching from the
/// last seen revision + 1 whenever the stream reports `Unavailable`.
async fn await_key(s: &EtcdStore, prefix: &str, mut from: Revision, key: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut w = s.watch(prefix, Some(from)).await;
    loop {
        ensure!(Instant::now() < deadline, "no event for {key} within 20 s");
        let stream = match &mut w {
            Ok(stream) => stream,
            Err(e) if e.is_retryable() => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                w = s.watch(prefix, Some(from)).await;
                continue;
            }
            Err(e) => bail!("watch failed: {e}"),
        };
        match next(stream).await? {
            Ok(b) if b.events.iter().any(|e| e.kv.key == key) => return Ok(()),
            Ok(b) => from = b.revision + 1,
            Err(e) if e.is_retryable() => w = s.watch(prefix, Some(from)).await,
            Err(e) => bail!("watch error: {e}"),
        }
    }
}

async fn put_eventually(s: &EtcdStore, key: &str) -> Result<Revision> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match s.put(key, b"v".to_vec(), None).await {
            Ok(r) => return Ok(r),
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => bail!("put {key}: {e}"),
        }
    }
}

#[tokio::test]
async fn three_members_survive_losing_one() -> Result<()> {
    let mut cluster = EtcdCluster::start(3).await?;
    let s = EtcdStore::connect(&etcd_options(cluster.endpoints())).await?;
    let r1 = s.put("/ha/a", b"1".to_vec(), None).await?;
    let mut w = s.watch("/ha/", Some(r1)).await?;
    ensure!(next(&mut w).await??.revision == r1);
    // Member 0 is the first endpoint, so the store and its watch are on it.
    cluster.kill_member(0);
    let started = Instant::now();
    let r2 = put_eventually(&s, "/ha/b").await?;
    ensure!(s.get("/ha/b").await?.is_some() && s.range("/ha/").await?.0.len() == 2);
    await_key(&s, "/ha/", r1 + 1, "/ha/b").await?;
    eprintln!(
        "writes and watches recovered {:?} after the kill",
        started.elapsed()
    );
    // Leases work on the surviving members too.
    let lease = s.grant(Duration::from_secs(5)).await?;
    s.keep_alive(lease).await?;
    cluster.restart_member(0).await?;
    let r3 = put_eventually(&s, "/ha/c").await?;
    ensure!(r3 > r2);
    Ok(())
}

#[tokio::test]
async fn etcd_down_is_unavailable_then_recovers() -> Result<()> {
    let mut cluster = EtcdCluster::start(1).await?;
    let s = EtcdStore::connect(&etcd_options(cluster.endpoints())).await?;
    s.put("/down/a", b"1".to_vec(), None).await?;
    cluster.stop_all();
    match s.get("/down/a").await {
        Err(e @ StoreError::Unavailable(_)) => {
            let msg = e.to_string();
            ensure!(
                msg.contains(&cluster.endpoint(0)) && msg.contains("is etcd running"),
                "{msg}"
            );
        }
        other => bail!("get with etcd down: {other:?}"),
    }
    cluster.start_all().await?;
    eventually(Duration::from_secs(15), "reads work again", || async {
        Ok(s.get("/down/a").await.is_ok_and(|kv| kv.is_some()))
    })
    .await?;
    put_eventually(&s, "/down/b").await?;
    Ok(())
}
