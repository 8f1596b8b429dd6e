//! This replica's session marker for a peer: a key under the peer's prefix,
//! leased with TTL `sync.stale_after`, renewed while the session lives. When
//! the session ends the renewals stop and the marker lapses `stale_after`
//! later, which is what lets housekeeping mark the imports stale.

use std::time::Duration;

use crate::backoff::Backoff;
use crate::shared::Shared;

/// A running marker task; dropping it stops the renewals.
pub struct Marker {
    task: tokio::task::JoinHandle<()>,
}

impl Marker {
    /// Starts keeping the marker of this replica's session `link` with `peer`
    /// alive. Each session has its own key (replica and link id), so one
    /// session ending never takes down the marker of another that still hears
    /// the peer.
    pub fn start(shared: &std::sync::Arc<Shared>, peer: &str, link: u64) -> Self {
        let shared = shared.clone();
        let peer = peer.to_string();
        let task = tokio::spawn(async move {
            let counter = shared.imports[&peer].live_markers.clone();
            let mut held = HeldGuard {
                counter,
                held: false,
            };
            let ttl = shared.cfg.sync.stale_after;
            let renew = (ttl / 3).clamp(Duration::from_millis(200), Duration::from_secs(5));
            let key = shared
                .keys
                .peer_session(&peer, &format!("{}-{link}", shared.replica));
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
            let mut lease = None;
            loop {
                let ok = async {
                    let id = match lease {
                        Some(id) => match shared.store.keep_alive(id).await {
                            Ok(_) => id,
                            Err(_) => {
                                lease = None;
                                anyhow::bail!("marker lease lapsed");
                            }
                        },
                        None => {
                            let id = shared.store.grant(ttl).await?;
                            shared
                                .store
                                .put(&key, shared.replica.as_bytes().to_vec(), Some(id))
                                .await?;
                            lease = Some(id);
                            id
                        }
                    };
                    Ok::<_, anyhow::Error>(id)
                }
                .await;
                match ok {
                    Ok(_) => {
                        held.set(true);
                        backoff.reset();
                        tokio::time::sleep(renew).await;
                    }
                    Err(e) => {
                        held.set(false);
                        tracing::debug!(%peer, error = %e, "session marker not held; retrying");
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                }
            }
        });
        Marker { task }
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Counts this marker in the peer's live-marker count while held, and uncounts
/// it when dropped (including when the task is aborted).
struct HeldGuard {
    counter: tokio::sync::watch::Sender<usize>,
    held: bool,
}

impl HeldGuard {
    fn set(&mut self, held: bool) {
        if held != self.held {
            self.held = held;
            self.counter
                .send_modify(|n| if held { *n += 1 } else { *n -= 1 });
        }
    }
}

impl Drop for HeldGuard {
    fn drop(&mut self) {
        self.set(false);
    }
}
