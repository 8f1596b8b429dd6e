//! The Watch stream: a snapshot, then changes, surviving store outages.
//!
//! One store watch covers the whole catalog root (`{p}/`), so instances and
//! imports arrive in one revision order and every response's `revision` is a
//! safe resume point; keys that are neither (session markers, the leader key)
//! are filtered out.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::error::store_status;
use super::{CatalogApi, pb};
use crate::model::{ImportRecord, Instance, Keys};
use crate::store::{Event, EventKind, KeyValue, Revision, StoreError};

/// The stream handed to tonic.
pub(crate) type WatchResponses = ReceiverStream<Result<pb::WatchResponse, Status>>;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Returns the prefix under which instances and imports both live.
pub(crate) fn catalog_root(keys: &Keys) -> String {
    let instances = keys.instances();
    instances
        .strip_suffix("instances/")
        .unwrap_or(&instances)
        .to_string()
}

/// Starts a watch task for one client and returns its response stream.
pub(crate) fn spawn(api: CatalogApi, resume: Revision) -> WatchResponses {
    let (tx, rx) = mpsc::channel(16);
    let closed = api.closed();
    let watcher = Watcher {
        api,
        tx: tx.clone(),
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = watcher.run(resume) => {}
            _ = closed => {
                let _ = tx.send(Err(CatalogApi::closing_status())).await;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// Why the current store watch ended.
enum Next {
    /// Re-read everything and send a reset snapshot.
    Snapshot,
    /// Watch from the last revision now.
    Watch,
    /// Watch again from the last revision after a backoff.
    Retry,
    /// The client is gone or got a terminal error.
    Stop,
}

struct Watcher {
    api: CatalogApi,
    tx: mpsc::Sender<Result<pb::WatchResponse, Status>>,
}

impl Watcher {
    async fn run(self, resume: Revision) {
        let mut last = resume;
        let mut next = if resume > 0 && self.resumable(resume).await {
            Next::Watch
        } else {
            Next::Snapshot
        };
        let mut backoff = FIRST_BACKOFF;
        let mut outage = false;
        loop {
            if matches!(next, Next::Snapshot) {
                match self.snapshot().await {
                    Ok(resp) => {
                        last = resp.revision;
                        backoff = FIRST_BACKOFF;
                        if self.tx.send(Ok(resp)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) if e.is_retryable() => {
                        outage = self.note_outage(outage, &e);
                        if !self.pause(&mut backoff).await {
                            return;
                        }
                        continue;
                    }
                    Err(e) => return self.fail(e).await,
                }
            }
            next = match self.api.store.watch(&self.root(), Some(last + 1)).await {
                Ok(stream) => {
                    self.follow(stream, &mut last, &mut backoff, &mut outage)
                        .await
                }
                Err(StoreError::Compacted { .. }) => Next::Snapshot,
                Err(e) if e.is_retryable() => {
                    outage = self.note_outage(outage, &e);
                    Next::Retry
                }
                Err(e) => return self.fail(e).await,
            };
            match next {
                Next::Stop => return,
                Next::Retry if !self.pause(&mut backoff).await => return,
                _ => {}
            }
        }
    }

    /// Forwards one store watch until it ends; returns what to do next.
    async fn follow(
        &self,
        mut stream: crate::store::WatchStream,
        last: &mut Revision,
        backoff: &mut Duration,
        outage: &mut bool,
    ) -> Next {
        loop {
            let item = tokio::select! {
                _ = self.tx.closed() => return Next::Stop,
                item = stream.recv() => item,
            };
            match item {
                Some(Ok(batch)) => {
                    if std::mem::take(outage) {
                        tracing::info!(revision = *last, "catalog watch resumed");
                    }
                    *backoff = FIRST_BACKOFF;
                    *last = (*last).max(batch.revision);
                    if let Some(resp) = self.delta(batch.revision, &batch.events)
                        && self.tx.send(Ok(resp)).await.is_err()
                    {
                        return Next::Stop;
                    }
                }
                Some(Err(StoreError::Compacted { .. })) => return Next::Snapshot,
                Some(Err(e)) if e.is_retryable() => {
                    *outage = self.note_outage(*outage, &e);
                    return Next::Retry;
                }
                Some(Err(e)) => {
                    self.fail(e).await;
                    return Next::Stop;
                }
                None => return Next::Retry,
            }
        }
    }

    /// Returns whether history after `resume` can be replayed from this store:
    /// a revision beyond the store's (another store, a restore) cannot.
    async fn resumable(&self, resume: Revision) -> bool {
        match self.api.store.current_revision().await {
            Ok(current) => resume <= current,
            Err(_) => true,
        }
    }

    fn root(&self) -> String {
        catalog_root(&self.api.keys)
    }

    fn note_outage(&self, already: bool, e: &StoreError) -> bool {
        if !already {
            tracing::warn!(error = %e, "catalog watch lost the store; clients keep their last view while it retries");
        }
        true
    }

    /// Sleeps for the backoff (doubling it); returns false if the client left meanwhile.
    async fn pause(&self, backoff: &mut Duration) -> bool {
        let d = *backoff;
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
        tokio::select! {
            _ = self.tx.closed() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }

    async fn fail(&self, e: StoreError) {
        tracing::warn!(error = %e, "catalog watch failed");
        let _ = self.tx.send(Err(store_status(e))).await;
    }

    async fn snapshot(&self) -> Result<pb::WatchResponse, StoreError> {
        let (kvs, revision) = self.api.store.range(&self.root()).await?;
        let mut resp = pb::WatchResponse {
            revision,
            reset: true,
            ..Default::default()
        };
        for kv in &kvs {
            self.apply(EventKind::Put, kv, &mut resp);
        }
        Ok(resp)
    }

    fn delta(&self, revision: Revision, events: &[Event]) -> Option<pb::WatchResponse> {
        let mut resp = pb::WatchResponse {
            revision,
            ..Default::default()
        };
        for ev in events {
            self.apply(ev.kind, &ev.kv, &mut resp);
        }
        let empty = resp.instances_upserted.is_empty()
            && resp.instances_removed.is_empty()
            && resp.imports_upserted.is_empty()
            && resp.imports_removed.is_empty();
        (!empty).then_some(resp)
    }

    /// Adds one change to `resp`. A value that does not decode is reported as
    /// removed, so clients never route on something the gateway cannot read.
    fn apply(&self, kind: EventKind, kv: &KeyValue, resp: &mut pb::WatchResponse) {
        let keys = &self.api.keys;
        if let Some((service, id)) = keys.parse_instance(&kv.key) {
            let put = (kind == EventKind::Put)
                .then(|| decoded::<Instance>(kv))
                .flatten();
            match put {
                Some(i) => resp.instances_upserted.push((&i).into()),
                None => resp.instances_removed.push(pb::InstanceRef {
                    service: Some((&service).into()),
                    id,
                }),
            }
        } else if let Some((peer, service)) = keys.parse_import(&kv.key) {
            let put = (kind == EventKind::Put)
                .then(|| decoded::<ImportRecord>(kv))
                .flatten();
            match put {
                Some(rec) => resp
                    .imports_upserted
                    .push(pb::Import::from_record(&peer, &rec)),
                None => resp.imports_removed.push(pb::ImportRef {
                    peer,
                    service: Some((&service).into()),
                }),
            }
        }
    }
}

fn decoded<T: serde::de::DeserializeOwned>(kv: &KeyValue) -> Option<T> {
    match serde_json::from_slice(&kv.value) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(key = %kv.key, error = %e, "undecodable catalog value; reporting it as removed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_covers_instances_and_imports() {
        let k = Keys::new("/meshgw/");
        let root = catalog_root(&k);
        assert_eq!(root, "/meshgw/");
        assert!(k.instances().starts_with(&root) && k.imports().starts_with(&root));
    }
}
