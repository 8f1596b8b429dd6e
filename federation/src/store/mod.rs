//! The `CatalogStore` contract: a small revisioned key-value store with leases,
//! prefix watches resumable from a revision, and conditional transactions.
//!
//! Two backends implement it: [`etcd::EtcdStore`] (several gateway replicas share
//! one etcd cluster) and [`embedded::EmbeddedStore`] (single node, persisted to
//! its data directory). Both follow etcd's semantics, so the gateway code above
//! them does not care which one it runs on:
//!
//! - every write bumps the store-wide `revision` by one (a transaction by one);
//! - a key has `create_revision`, `mod_revision` and a `version` (1 on create,
//!   +1 on each put, reset by delete);
//! - a key put with a lease is deleted when the lease expires or is revoked;
//! - `watch(prefix, Some(rev))` delivers every change with revision >= `rev`,
//!   in order, and fails with [`StoreError::Compacted`] if `rev` is older than
//!   the oldest revision the store still keeps history for.

pub mod embedded;
pub mod etcd;

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

/// A store-wide revision number (etcd's `revision`). Starts at 1 in an empty store.
pub type Revision = i64;

/// A lease identifier, as granted by [`CatalogStore::grant`].
pub type LeaseId = i64;

/// One key and its value, with the revision metadata etcd keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key.
    pub key: String,
    /// The raw value.
    pub value: Vec<u8>,
    /// Revision of the write that created the key.
    pub create_revision: Revision,
    /// Revision of the last write to the key.
    pub mod_revision: Revision,
    /// Number of puts since creation (1 after create).
    pub version: i64,
    /// Lease the key is attached to, or 0 for none.
    pub lease: LeaseId,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or updated.
    Put,
    /// The key was deleted (explicitly, by a prefix delete, or by lease expiry).
    Delete,
}

/// One change delivered by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// For a put, the new key-value. For a delete, the key with an empty value
    /// and `mod_revision` set to the revision of the delete.
    pub kv: KeyValue,
}

/// A batch of events that happened at one revision, or a progress notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchBatch {
    /// The store revision this batch brings the watcher up to.
    pub revision: Revision,
    /// The changes (empty for a progress notice).
    pub events: Vec<Event>,
}

/// The receiving end of a watch. Dropping it cancels the watch.
pub type WatchStream = mpsc::Receiver<Result<WatchBatch, StoreError>>;

/// A condition of a transaction, checked atomically before its operations run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key's `mod_revision` equals this (0 means: the key does not exist).
    ModRevision(String, Revision),
    /// The key's `create_revision` equals this (0 means: the key does not exist).
    CreateRevision(String, Revision),
    /// The key's value equals this (false if the key does not exist).
    Value(String, Vec<u8>),
}

/// An operation inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Put a key, optionally with a lease.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// Lease to attach, if any.
        lease: Option<LeaseId>,
    },
    /// Delete one key.
    Delete {
        /// The key.
        key: String,
    },
    /// Delete every key with this prefix.
    DeletePrefix {
        /// The prefix.
        prefix: String,
    },
}

/// A conditional transaction: if every compare holds, run `success`, else `failure`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    /// Conditions, all of which must hold.
    pub compare: Vec<Compare>,
    /// Operations run when they hold.
    pub success: Vec<Op>,
    /// Operations run when one does not.
    pub failure: Vec<Op>,
}

/// The result of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnResult {
    /// Whether the compares held (and `success` ran).
    pub succeeded: bool,
    /// The store revision after the transaction.
    pub revision: Revision,
}

/// Errors from a store. Each says whether retrying may help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached right now (etcd down, network). Retrying may help.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A watch asked for history the store no longer keeps.
    #[error(
        "revision {requested} was compacted (oldest kept: {compact_revision}); re-read the prefix and watch from its revision"
    )]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The oldest revision still available.
        compact_revision: Revision,
    },
    /// The lease does not exist (expired or revoked).
    #[error("lease {0:x} not found: it expired or was revoked; register again")]
    LeaseNotFound(LeaseId),
    /// The on-disk data is damaged or unreadable.
    #[error("store data corrupt: {0}")]
    Corrupt(String),
    /// Local I/O failed.
    #[error("store I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Anything else the backend reported.
    #[error("store error: {0}")]
    Other(String),
}

impl StoreError {
    /// Returns whether the same call may succeed if retried later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// The catalog store contract. See the module docs for the semantics.
#[async_trait]
pub trait CatalogStore: Send + Sync + 'static {
    /// Returns one key, or `None`.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Returns every key with `prefix`, sorted by key, and the store revision
    /// the read was made at (to watch from `revision + 1` without a gap).
    async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), StoreError>;

    /// Puts a key, optionally attached to a lease. Returns the new revision.
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Revision, StoreError>;

    /// Deletes one key. Returns the number of keys deleted (0 or 1) and the revision.
    async fn delete(&self, key: &str) -> Result<(u64, Revision), StoreError>;

    /// Deletes every key with `prefix`. Returns the number deleted and the revision.
    async fn delete_prefix(&self, prefix: &str) -> Result<(u64, Revision), StoreError>;

    /// Runs a conditional transaction atomically.
    async fn txn(&self, txn: Txn) -> Result<TxnResult, StoreError>;

    /// Grants a lease with `ttl` (rounded up to whole seconds, at least 1 s).
    async fn grant(&self, ttl: Duration) -> Result<LeaseId, StoreError>;

    /// Renews a lease. Returns its TTL, or `LeaseNotFound`.
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError>;

    /// Revokes a lease, deleting every key attached to it.
    async fn revoke(&self, lease: LeaseId) -> Result<(), StoreError>;

    /// Watches every key with `prefix`, from revision `from` (inclusive) or,
    /// with `None`, from the next write. Errors (`Compacted`, `Unavailable`)
    /// arrive on the stream, after which it ends.
    async fn watch(&self, prefix: &str, from: Option<Revision>) -> Result<WatchStream, StoreError>;

    /// Returns the current store revision.
    async fn current_revision(&self) -> Result<Revision, StoreError>;
}
