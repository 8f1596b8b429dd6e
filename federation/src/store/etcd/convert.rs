//! Conversions between the contract's types and etcd-client's.

use etcd_client::{Compare as EC, CompareOp, DeleteOptions, PutOptions, TxnOp};

use crate::store::{Compare, Event, EventKind, KeyValue, Op, StoreError, WatchBatch};

/// Converts an etcd key-value; keys must be UTF-8 (the catalog writes only UTF-8).
pub(crate) fn kv(k: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
    let key = String::from_utf8(k.key().to_vec()).map_err(|_| {
        StoreError::Other(format!(
            "etcd key {:?} is not UTF-8; something other than meshgw writes under the store prefix",
            String::from_utf8_lossy(k.key())
        ))
    })?;
    Ok(KeyValue {
        key,
        value: k.value().to_vec(),
        create_revision: k.create_revision(),
        mod_revision: k.mod_revision(),
        version: k.version(),
        lease: k.lease(),
    })
}

/// Converts a transaction condition.
pub(crate) fn compare(c: &Compare) -> EC {
    match c {
        Compare::ModRevision(k, r) => EC::mod_revision(k.as_str(), CompareOp::Equal, *r),
        Compare::CreateRevision(k, r) => EC::create_revision(k.as_str(), CompareOp::Equal, *r),
        Compare::Value(k, v) => EC::value(k.as_str(), CompareOp::Equal, v.clone()),
    }
}

/// Converts a transaction operation.
pub(crate) fn op(o: &Op) -> TxnOp {
    match o {
        Op::Put { key, value, lease } => {
            let opts = lease.map(|l| PutOptions::new().with_lease(l));
            TxnOp::put(key.as_str(), value.clone(), opts)
        }
        Op::Delete { key } => TxnOp::delete(key.as_str(), None),
        Op::DeletePrefix { prefix } => {
            TxnOp::delete(prefix.as_str(), Some(DeleteOptions::new().with_prefix()))
        }
    }
}

/// Splits a watch response's events into one batch per revision, in order.
/// A response without events becomes a progress notice at `header_rev`.
pub(crate) fn batches(
    events: &[etcd_client::Event],
    header_rev: i64,
) -> Result<Vec<WatchBatch>, StoreError> {
    let mut out: Vec<WatchBatch> = Vec::new();
    for e in events {
        let Some(k) = e.kv() else { continue };
        let mut kv = kv(k)?;
        let kind = match e.event_type() {
            etcd_client::EventType::Put => EventKind::Put,
            etcd_client::EventType::Delete => {
                kv.value.clear();
                EventKind::Delete
            }
        };
        let rev = kv.mod_revision;
        let event = Event { kind, kv };
        match out.last_mut() {
            Some(b) if b.revision == rev => b.events.push(event),
            _ => out.push(WatchBatch {
                revision: rev,
                events: vec![event],
            }),
        }
    }
    if out.is_empty() {
        out.push(WatchBatch {
            revision: header_rev,
            events: vec![],
        });
    }
    Ok(out)
}
