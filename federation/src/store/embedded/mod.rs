//! [`EmbeddedStore`]: a single-node [`CatalogStore`] with etcd's semantics,
//! persisted to its data dir.
//!
//! - `state`: keys, leases and the bounded watch history, in memory;
//! - `persist`: the append-only, checksummed log (`wal`, flushed before a
//!   write returns) and the `snapshot` it is folded into when it grows;
//! - `lock`: the `LOCK` file that keeps a second process out of the data dir;
//! - `watch`: one task per watch; a lease task deletes expired leases' keys.
//!
//! Leases survive a restart with a fresh full TTL, as in etcd. History for
//! watches covers the last [`EmbeddedOptions::history_revisions`] revisions
//! since the process started (plus the log replayed at open).

mod codec;
mod lock;
mod persist;
mod state;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use self::codec::Record;
use self::persist::Wal;
use self::state::State;
use super::{CatalogStore, KeyValue, LeaseId, Revision, StoreError, Txn, TxnResult, WatchStream};

/// Tunes an [`EmbeddedStore`]. `Default` gives production values.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Revisions of watch history kept in memory (default 10 000); watching
    /// from an older revision fails with [`StoreError::Compacted`].
    pub history_revisions: usize,
    /// Log size in bytes after which it is folded into a snapshot (default 4 MiB).
    pub snapshot_after_bytes: u64,
    /// Whether each write is fsync'd before it returns (default true). When
    /// false it is only flushed to the OS, which survives a process crash but
    /// not a power loss.
    pub fsync: bool,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            history_revisions: 10_000,
            snapshot_after_bytes: 4 * 1024 * 1024,
            fsync: true,
        }
    }
}

/// A single-node catalog store persisted under one data dir. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

/// The state (read by every call, on the runtime's threads) and the log
/// (written by one writer at a time, on a blocking thread) have locks of
/// their own: a write holds the state lock only to plan and to apply, never
/// across its fsync, so reads, watches and lease keep-alives never wait for
/// the disk (on a one-thread gateway that wait stopped all forwarding).
pub(crate) struct Inner {
    state: Mutex<State>,
    /// Held by a writer from planning to applying: writes are serialized.
    wal: Mutex<Wal>,
    revs: tokio::sync::watch::Sender<Revision>,
    leases_changed: Arc<Notify>,
    dir: PathBuf,
    _lock: lock::DirLock,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Wakes the lease task so it sees the store is gone and exits.
        self.leases_changed.notify_one();
    }
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `data_dir` with default options.
    /// Must be called inside a tokio runtime.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(data_dir, EmbeddedOptions::default()).await
    }

    /// Opens (creating if needed) the store in `data_dir`: takes the dir's
    /// lock, loads the snapshot and replays the log.
    pub async fn open_with(data_dir: &Path, opts: EmbeddedOptions) -> Result<Self, StoreError> {
        let dir = data_dir.to_path_buf();
        let (core, lock) = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|e| {
                StoreError::Other(format!(
                    "cannot create store data dir {}: {e}; check its parent exists and is writable",
                    dir.display()
                ))
            })?;
            let lock = lock::acquire(&dir)?;
            let (state, wal) = persist::load(
                &dir,
                opts.history_revisions,
                opts.fsync,
                opts.snapshot_after_bytes,
            )?;
            Ok::<_, StoreError>(((state, wal), lock))
        })
        .await
        .map_err(|e| StoreError::Other(format!("opening the embedded store panicked: {e}")))??;
        let (state, wal) = core;
        let (revs, _) = tokio::sync::watch::channel(state.revision);
        let inner = Arc::new(Inner {
            state: Mutex::new(state),
            wal: Mutex::new(wal),
            revs,
            leases_changed: Arc::new(Notify::new()),
            dir: data_dir.to_path_buf(),
            _lock: lock,
        });
        tokio::spawn(run_leases(
            Arc::downgrade(&inner),
            inner.leases_changed.clone(),
        ));
        Ok(Self { inner })
    }

    /// Returns the data dir this store persists to.
    pub fn data_dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Forgets watch history older than `rev`, as etcd's compaction does:
    /// watching from an earlier revision then fails with `Compacted`.
    pub fn compact(&self, rev: Revision) -> Result<(), StoreError> {
        self.inner.with_state_mut(|s| s.compact(rev))?
    }

    /// Runs a write on a blocking thread: plans it, logs it, applies it.
    async fn commit<T: Send + 'static>(
        &self,
        plan: impl FnOnce(&State) -> Result<(T, Option<Record>), StoreError> + Send + 'static,
    ) -> Result<(T, Revision), StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.commit(plan))
            .await
            .map_err(|e| StoreError::Other(format!("embedded store write panicked: {e}")))?
    }
}

fn poisoned() -> StoreError {
    StoreError::Other(
        "embedded store state is poisoned by an earlier panic; restart the process".into(),
    )
}

impl Inner {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        self.state.lock().map_err(|_| poisoned())
    }

    pub(crate) fn with_state<T>(&self, f: impl FnOnce(&State) -> T) -> Result<T, StoreError> {
        Ok(f(&*self.lock()?))
    }

    fn with_state_mut<T>(&self, f: impl FnOnce(&mut State) -> T) -> Result<T, StoreError> {
        Ok(f(&mut *self.lock()?))
    }

    /// Plans a write against the current state, logs it (fsync), then
    /// applies it. Writers are serialized by the log's lock, so the state a
    /// plan saw is the state its record is applied to (keep-alives only
    /// move lease deadlines; leases end through writes).
    fn commit<T>(
        &self,
        plan: impl FnOnce(&State) -> Result<(T, Option<Record>), StoreError>,
    ) -> Result<(T, Revision), StoreError> {
        let mut wal = self.wal.lock().map_err(|_| poisoned())?;
        let (out, rec) = plan(&*self.lock()?)?;
        let Some(rec) = rec else {
            return Ok((out, self.lock()?.revision));
        };
        wal.append(&rec)?;
        let (batch, revision, snapshot) = {
            let mut state = self.lock()?;
            let batch = state.apply(&rec, Instant::now());
            let snapshot = wal.wants_snapshot().then(|| wal.encode_snapshot(&state));
            (batch, state.revision, snapshot)
        };
        if let Some(bytes) = snapshot
            && let Err(e) = wal.write_snapshot(&bytes)
        {
            tracing::warn!(dir = %self.dir.display(), error = %e,
                "writing the store snapshot failed; the log keeps growing until it succeeds");
        }
        drop(wal);
        if batch.is_some() {
            self.revs.send_replace(revision);
        }
        if !matches!(rec, Record::Write { .. }) {
            self.leases_changed.notify_one();
        }
        Ok((out, revision))
    }

    /// Ends every lease past its deadline; returns the next deadline.
    fn expire_due(&self) -> Result<Option<Instant>, StoreError> {
        let now = Instant::now();
        let (due, _) = self.with_state(|s| s.due_leases(now))?;
        for id in due {
            match self.commit(|s| Ok(((), Some(s.plan_end_lease(id)?)))) {
                Ok(_) | Err(StoreError::LeaseNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.with_state(|s| s.due_leases(now).1)
    }
}

/// Expires leases at their deadlines until the store is dropped.
async fn run_leases(inner: Weak<Inner>, changed: Arc<Notify>) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let next = tokio::task::spawn_blocking(move || strong.expire_due()).await;
        let next = match next {
            Ok(Ok(next)) => next,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "expiring leases failed; retrying in 1 s");
                Some(Instant::now() + Duration::from_secs(1))
            }
            Err(_) => return,
        };
        let next = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = changed.notified() => {}
        }
    }
}

#[async_trait]
impl CatalogStore for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.inner.with_state(|s| s.get(key))
    }

    async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), StoreError> {
        self.inner.with_state(|s| (s.range(prefix), s.revision))
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Revision, StoreError> {
        let key = key.to_string();
        let plan = move |s: &State| Ok(((), Some(s.plan_put(&key, value, lease)?)));
        Ok(self.commit(plan).await?.1)
    }

    async fn delete(&self, key: &str) -> Result<(u64, Revision), StoreError> {
        self.delete_matching(key, true).await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<(u64, Revision), StoreError> {
        self.delete_matching(prefix, false).await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult, StoreError> {
        let (succeeded, revision) = self.commit(move |s| s.plan_txn(&txn)).await?;
        Ok(TxnResult {
            succeeded,
            revision,
        })
    }

    async fn grant(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let plan = move |s: &State| {
            let rec = s.plan_grant(ttl);
            let Record::Grant { id, .. } = rec else {
                unreachable!("plan_grant returns a grant")
            };
            Ok((id, Some(rec)))
        };
        Ok(self.commit(plan).await?.0)
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        self.inner
            .with_state_mut(|s| s.keep_alive(lease, Instant::now()))?
    }

    async fn revoke(&self, lease: LeaseId) -> Result<(), StoreError> {
        let plan = move |s: &State| Ok(((), Some(s.plan_end_lease(lease)?)));
        self.commit(plan).await.map(|_| ())
    }

    async fn watch(&self, prefix: &str, from: Option<Revision>) -> Result<WatchStream, StoreError> {
        let (tx, rx) = mpsc::channel(64);
        let current = self.inner.with_state(|s| s.revision)?;
        let next = from.unwrap_or(current + 1);
        tokio::spawn(watch::run(
            Arc::downgrade(&self.inner),
            self.inner.revs.subscribe(),
            prefix.to_string(),
            next,
            tx,
        ));
        Ok(rx)
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        self.inner.with_state(|s| s.revision)
    }
}

impl EmbeddedStore {
    async fn delete_matching(&self, key: &str, exact: bool) -> Result<(u64, Revision), StoreError> {
        let key = key.to_string();
        let plan = move |s: &State| {
            let rec = s.plan_delete(&key, exact);
            let n = match &rec {
                Some(Record::Write { effects, .. }) => effects.len() as u64,
                _ => 0,
            };
            Ok((n, rec))
        };
        self.commit(plan).await
    }
}

#[cfg(test)]
mod tests;
