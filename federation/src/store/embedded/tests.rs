//! Unit tests of the embedded store's persistence and history bound. The
//! behaviour shared with etcd is covered by `tests/store_contract.rs`.

use std::time::Duration;

use super::*;

fn opts() -> EmbeddedOptions {
    EmbeddedOptions {
        history_revisions: 5,
        snapshot_after_bytes: 300,
        fsync: false,
    }
}

async fn recv(w: &mut WatchStream) -> Result<crate::store::WatchBatch, StoreError> {
    tokio::time::timeout(Duration::from_secs(5), w.recv())
        .await
        .expect("watch delivered nothing within 5 s")
        .expect("watch stream ended")
}

#[tokio::test]
async fn history_older_than_the_bound_is_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open_with(dir.path(), opts()).await.unwrap();
    for i in 0..10 {
        s.put("/k", vec![i], None).await.unwrap();
    }
    // Revisions 2..=11 were written; only the last 5 (7..=11) are kept.
    let mut w = s.watch("/k", Some(6)).await.unwrap();
    match recv(&mut w).await {
        Err(StoreError::Compacted {
            requested: 6,
            compact_revision: 7,
        }) => {}
        other => panic!("expected Compacted(6, 7), got {other:?}"),
    }
    let mut w = s.watch("/k", Some(7)).await.unwrap();
    assert_eq!(recv(&mut w).await.unwrap().revision, 7);
}

#[tokio::test]
async fn snapshots_bound_the_log_and_reopen_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open_with(dir.path(), opts()).await.unwrap();
    let lease = s.grant(Duration::from_secs(60)).await.unwrap();
    for i in 0..50u8 {
        s.put(&format!("/k/{}", i % 7), vec![i; 20], Some(lease))
            .await
            .unwrap();
    }
    let before = s.range("/").await.unwrap();
    let wal_len = std::fs::metadata(dir.path().join("wal")).unwrap().len();
    assert!(
        wal_len < 400,
        "log was not folded into a snapshot: {wal_len} bytes"
    );
    assert!(dir.path().join("snapshot").exists());
    drop(s);
    let s = EmbeddedStore::open_with(dir.path(), opts()).await.unwrap();
    assert_eq!(s.range("/").await.unwrap(), before);
    // The lease came back with its keys: revoking it deletes all of them.
    s.revoke(lease).await.unwrap();
    assert!(s.range("/k/").await.unwrap().0.is_empty());
    // A new lease does not reuse the old id.
    assert_ne!(s.grant(Duration::from_secs(1)).await.unwrap(), lease);
}

#[tokio::test]
async fn damage_before_the_last_record_is_reported_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(dir.path()).await.unwrap();
    s.put("/a", b"1".to_vec(), None).await.unwrap();
    s.put("/b", b"2".to_vec(), None).await.unwrap();
    drop(s);
    let wal = dir.path().join("wal");
    let mut bytes = std::fs::read(&wal).unwrap();
    bytes[10] ^= 0xff; // inside the first record's payload
    std::fs::write(&wal, &bytes).unwrap();
    let err = EmbeddedStore::open(dir.path()).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Corrupt(_)), "{msg}");
    assert!(msg.contains("wal") && msg.contains("offset 0"), "{msg}");
    assert!(msg.contains("backup"), "{msg}");
}

#[tokio::test]
async fn a_zero_filled_tail_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(dir.path()).await.unwrap();
    s.put("/a", b"1".to_vec(), None).await.unwrap();
    drop(s);
    let wal = dir.path().join("wal");
    let len = std::fs::metadata(&wal).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&wal).unwrap();
    f.set_len(len + 4096).unwrap();
    drop(f);
    let s = EmbeddedStore::open(dir.path()).await.unwrap();
    assert_eq!(s.get("/a").await.unwrap().unwrap().value, b"1");
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), len);
    s.put("/b", b"2".to_vec(), None).await.unwrap();
    drop(s);
    let s = EmbeddedStore::open(dir.path()).await.unwrap();
    assert_eq!(s.current_revision().await.unwrap(), 3);
}

#[tokio::test]
async fn a_transaction_touching_one_key_twice_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(dir.path()).await.unwrap();
    let put = |k: &str| crate::store::Op::Put {
        key: k.into(),
        value: vec![],
        lease: None,
    };
    let txn = Txn {
        compare: vec![],
        success: vec![put("/a"), put("/a")],
        failure: vec![],
    };
    let err = s.txn(txn).await.unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
    assert_eq!(s.current_revision().await.unwrap(), 1);
}
