//! Checks only the embedded store can do: restart, a torn log tail, the lock.

use super::*;

#[tokio::test]
async fn restart_keeps_data_revision_and_leases_with_a_fresh_ttl() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s = EmbeddedStore::open(dir.path()).await?;
    s.put("/p/a", b"1".to_vec(), None).await?;
    let lease = s.grant(Duration::from_secs(2)).await?;
    let rev = s.put("/p/leased", b"2".to_vec(), Some(lease)).await?;
    let before = s.range("/").await?;
    drop(s);
    let s = EmbeddedStore::open(dir.path()).await?;
    let reopened = Instant::now();
    ensure!(s.range("/").await? == before && s.current_revision().await? == rev);
    ensure!(
        s.keep_alive(lease).await? == Duration::from_secs(2),
        "lease survived"
    );
    eventually(
        Duration::from_secs(6),
        "leased key expires after restart",
        || async { Ok(s.get("/p/leased").await?.is_none()) },
    )
    .await?;
    ensure!(
        reopened.elapsed() >= Duration::from_millis(1500),
        "TTL was not full"
    );
    ensure!(s.get("/p/a").await?.is_some());
    // A watch from the revision after a restart replays the log it was rebuilt from.
    let mut w = s.watch("/p/", Some(rev)).await?;
    ensure!(next(&mut w).await??.events[0].kv.key == "/p/leased");
    Ok(())
}

#[tokio::test]
async fn a_torn_last_record_is_dropped() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s = EmbeddedStore::open(dir.path()).await?;
    let ra = s.put("/a", b"1".to_vec(), None).await?;
    s.put("/b", b"2".to_vec(), None).await?;
    drop(s);
    let wal = dir.path().join("wal");
    let len = std::fs::metadata(&wal)?.len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&wal)?
        .set_len(len - 3)?;
    let s = EmbeddedStore::open(dir.path()).await?;
    ensure!(s.get("/a").await?.is_some() && s.get("/b").await?.is_none());
    ensure!(s.current_revision().await? == ra);
    let rc = s.put("/c", b"3".to_vec(), None).await?;
    drop(s);
    let s = EmbeddedStore::open(dir.path()).await?;
    ensure!(s.current_revision().await? == rc && s.get("/c").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn the_lock_keeps_a_second_store_out_of_the_data_dir() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let first = EmbeddedStore::open(dir.path()).await?;
    let err = EmbeddedStore::open(dir.path())
        .await
        .unwrap_err()
        .to_string();
    let pid = format!("pid {}", std::process::id());
    ensure!(err.contains("in use") && err.contains(&pid), "{err}");
    drop(first);
    // The lock goes with the last reference to the store, and a background
    // lease task may hold one for a moment after the drop: poll, bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match EmbeddedStore::open(dir.path()).await {
            Ok(_) => return Ok(()),
            Err(e) if std::time::Instant::now() < deadline && e.to_string().contains("in use") => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
