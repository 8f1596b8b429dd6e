//! The task behind each embedded watch: replays history from the requested
//! revision, then follows new revisions as they are committed.

use std::sync::Weak;

use tokio::sync::{mpsc, watch};

use super::Inner;
use crate::store::{Revision, StoreError, WatchBatch};

/// Batches read from history per lock acquisition.
const CHUNK: usize = 256;

/// Sends every batch at or after `next` matching `prefix` to `tx`, until the
/// receiver is dropped, the store is closed, or history is compacted past it.
pub(crate) async fn run(
    inner: Weak<Inner>,
    mut revs: watch::Receiver<Revision>,
    prefix: String,
    mut next: Revision,
    tx: mpsc::Sender<Result<WatchBatch, StoreError>>,
) {
    loop {
        revs.borrow_and_update();
        let fetched = match inner.upgrade() {
            Some(inner) => inner.with_state(|s| {
                s.history_from(&prefix, next, CHUNK)
                    .map(|b| (b, s.revision))
            }),
            None => return,
        };
        let (batches, current) = match fetched.and_then(|r| r) {
            Ok(v) => v,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let full = batches.len() == CHUNK;
        next = match batches.last() {
            Some(b) if full => b.revision + 1,
            _ => current + 1,
        };
        for b in batches {
            if tx.send(Ok(b)).await.is_err() {
                return;
            }
        }
        if full {
            continue;
        }
        tokio::select! {
            changed = revs.changed() => if changed.is_err() { return },
            () = tx.closed() => return,
        }
    }
}
