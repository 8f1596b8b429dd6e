//! Forwarding an etcd watch to a [`WatchStream`].
//!
//! When the etcd stream breaks (member down, leader lost), the forwarder sends
//! one `Unavailable` and ends; the caller re-watches from its last revision + 1,
//! which [`super::EtcdStore::watch`] serves from any live member.

use etcd_client::{WatchOptions, WatchResponse, WatchStream as EtcdWatch};
use tokio::sync::mpsc;

use super::conn::{Conn, Retry};
use super::convert;
use crate::store::{Revision, StoreError, WatchBatch, WatchStream};

type Tx = mpsc::Sender<Result<WatchBatch, StoreError>>;

/// Opens a watch on a live member and spawns its forwarder.
pub(crate) async fn start(
    conn: &Conn,
    prefix: &str,
    from: Option<Revision>,
) -> Result<WatchStream, StoreError> {
    let opts = WatchOptions::new()
        .with_prefix()
        .with_start_revision(from.unwrap_or(0));
    let (ws, first, ep) = conn
        .call(Retry::Idempotent, |mut c, ep| {
            let (prefix, opts) = (prefix.to_string(), opts.clone());
            async move {
                let mut ws = c.watch(prefix, Some(opts)).await?;
                let first = ws.message().await?;
                Ok((ws, first, ep))
            }
        })
        .await?;
    let next = from.unwrap_or_else(|| {
        let header = first.as_ref().and_then(|r| r.header());
        header.map_or(0, |h| h.revision() + 1)
    });
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(forward(ws, first, tx, next, ep));
    Ok(rx)
}

/// What to do after one etcd response.
enum Step {
    Continue,
    Stop,
}

async fn forward(
    mut ws: EtcdWatch,
    first: Option<WatchResponse>,
    tx: Tx,
    mut next: Revision,
    ep: String,
) {
    let mut msg = Ok(first);
    loop {
        let step = match msg {
            Ok(Some(resp)) => handle(resp, &tx, &mut next).await,
            Ok(None) => {
                let why = format!("etcd at {ep} closed the watch stream");
                broken(&tx, why, next).await
            }
            Err(e) => {
                broken(
                    &tx,
                    format!(
                        "watch on etcd at {ep} broke: {}",
                        super::errors::describe(&e)
                    ),
                    next,
                )
                .await
            }
        };
        if let Step::Stop = step {
            return;
        }
        msg = tokio::select! {
            m = ws.message() => m,
            () = tx.closed() => return,
        };
    }
}

async fn broken(tx: &Tx, why: String, next: Revision) -> Step {
    let msg = format!("{why}; re-watch from revision {next} (last seen + 1)");
    let _ = tx.send(Err(StoreError::Unavailable(msg))).await;
    Step::Stop
}

async fn handle(resp: WatchResponse, tx: &Tx, next: &mut Revision) -> Step {
    if resp.compact_revision() > 0 {
        let err = StoreError::Compacted {
            requested: *next,
            compact_revision: resp.compact_revision(),
        };
        let _ = tx.send(Err(err)).await;
        return Step::Stop;
    }
    if resp.canceled() {
        let why = format!("etcd cancelled the watch ({})", resp.cancel_reason());
        return broken(tx, why, *next).await;
    }
    if resp.created() && resp.events().is_empty() {
        return Step::Continue;
    }
    let header_rev = resp.header().map_or(0, |h| h.revision());
    let batches = match convert::batches(resp.events(), header_rev) {
        Ok(b) => b,
        Err(e) => {
            let _ = tx.send(Err(e)).await;
            return Step::Stop;
        }
    };
    for b in batches {
        if !b.events.is_empty() {
            *next = b.revision + 1;
        }
        if tx.send(Ok(b)).await.is_err() {
            return Step::Stop;
        }
    }
    Step::Continue
}
