//! The in-memory state of the embedded store: keys with their revision
//! metadata, leases, and the bounded watch history.
//!
//! Writes are split in two steps so that nothing changes unless the log write
//! succeeded: `plan_*` checks a request against the state and returns the
//! [`Record`] to persist; [`State::apply`] (also used by replay) applies it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::codec::{Effect, Record};
use crate::store::{
    Compare, Event, EventKind, KeyValue, LeaseId, Op, Revision, StoreError, Txn, WatchBatch,
};

/// One stored key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) value: Vec<u8>,
    pub(crate) create_revision: Revision,
    pub(crate) mod_revision: Revision,
    pub(crate) version: i64,
    pub(crate) lease: LeaseId,
}

/// One live lease.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    pub(crate) ttl_secs: u64,
    pub(crate) deadline: Instant,
    pub(crate) keys: BTreeSet<String>,
}

/// Everything the embedded store knows.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) kvs: BTreeMap<String, Stored>,
    pub(crate) revision: Revision,
    pub(crate) leases: HashMap<LeaseId, Lease>,
    pub(crate) next_lease: LeaseId,
    /// One batch per revision that changed keys, oldest first.
    history: VecDeque<WatchBatch>,
    /// The oldest revision a watch may start from.
    pub(crate) compact_rev: Revision,
    history_limit: usize,
}

/// Returns the keys of `kvs` that start with `prefix`.
fn prefixed<'a, V>(
    kvs: &'a BTreeMap<String, V>,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a String, &'a V)> {
    kvs.range(prefix.to_string()..)
        .take_while(move |(k, _)| k.starts_with(prefix))
}

impl State {
    /// Returns an empty store at revision 1.
    pub(crate) fn new(history_limit: usize) -> Self {
        Self {
            kvs: BTreeMap::new(),
            revision: 1,
            leases: HashMap::new(),
            next_lease: 1,
            history: VecDeque::new(),
            compact_rev: 1,
            history_limit: history_limit.max(1),
        }
    }

    /// Returns `key` as a [`KeyValue`].
    pub(crate) fn get(&self, key: &str) -> Option<KeyValue> {
        self.kvs.get(key).map(|s| to_kv(key, s))
    }

    /// Returns every key with `prefix`, sorted.
    pub(crate) fn range(&self, prefix: &str) -> Vec<KeyValue> {
        prefixed(&self.kvs, prefix)
            .map(|(k, s)| to_kv(k, s))
            .collect()
    }

    fn check_lease(&self, lease: Option<LeaseId>) -> Result<LeaseId, StoreError> {
        match lease {
            None | Some(0) => Ok(0),
            Some(id) if self.leases.contains_key(&id) => Ok(id),
            Some(id) => Err(StoreError::LeaseNotFound(id)),
        }
    }

    fn write(&self, effects: Vec<Effect>) -> Option<Record> {
        (!effects.is_empty()).then(|| Record::Write {
            rev: self.revision + 1,
            effects,
        })
    }

    /// Plans a put.
    pub(crate) fn plan_put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Record, StoreError> {
        let lease = self.check_lease(lease)?;
        let key = key.to_string();
        Ok(self
            .write(vec![Effect::Put { key, value, lease }])
            .expect("one effect"))
    }

    /// Plans deleting every key with `prefix` (or exactly `key` when `exact`).
    pub(crate) fn plan_delete(&self, key: &str, exact: bool) -> Option<Record> {
        let effects = if exact {
            self.kvs
                .contains_key(key)
                .then(|| Effect::Delete { key: key.into() })
                .into_iter()
                .collect()
        } else {
            prefixed(&self.kvs, key)
                .map(|(k, _)| Effect::Delete { key: k.clone() })
                .collect()
        };
        self.write(effects)
    }

    fn holds(&self, c: &Compare) -> bool {
        let stored = |k: &String| self.kvs.get(k);
        match c {
            Compare::ModRevision(k, r) => stored(k).map_or(0, |s| s.mod_revision) == *r,
            Compare::CreateRevision(k, r) => stored(k).map_or(0, |s| s.create_revision) == *r,
            Compare::Value(k, v) => stored(k).is_some_and(|s| &s.value == v),
        }
    }

    /// Plans a transaction. Returns whether the compares held, and the record
    /// to persist if the chosen branch changes anything.
    pub(crate) fn plan_txn(&self, txn: &Txn) -> Result<(bool, Option<Record>), StoreError> {
        let ok = txn.compare.iter().all(|c| self.holds(c));
        let ops = if ok { &txn.success } else { &txn.failure };
        let mut effects = Vec::new();
        let mut touched = BTreeSet::new();
        for op in ops {
            let keys: Vec<Effect> = match op {
                Op::Put { key, value, lease } => vec![Effect::Put {
                    key: key.clone(),
                    value: value.clone(),
                    lease: self.check_lease(*lease)?,
                }],
                Op::Delete { key } => self.plan_delete(key, true).map_or(vec![], effects_of),
                Op::DeletePrefix { prefix } => {
                    self.plan_delete(prefix, false).map_or(vec![], effects_of)
                }
            };
            for fx in keys {
                let key = match &fx {
                    Effect::Put { key, .. } | Effect::Delete { key } => key.clone(),
                };
                if !touched.insert(key.clone()) {
                    return Err(StoreError::Other(format!(
                        "transaction touches key {key:?} twice; etcd rejects this too — merge the operations"
                    )));
                }
                effects.push(fx);
            }
        }
        Ok((ok, self.write(effects)))
    }

    /// Plans a new lease of `ttl` (rounded up to whole seconds, at least 1 s).
    pub(crate) fn plan_grant(&self, ttl: Duration) -> Record {
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        Record::Grant {
            id: self.next_lease,
            // Clamped so that the deadline can never overflow the clock, and
            // so the record passes the decoder's range check on replay.
            ttl_secs: secs.clamp(1, super::codec::MAX_TTL_SECS),
        }
    }

    /// Plans the end of lease `id` (revoke or expiry), deleting its keys.
    pub(crate) fn plan_end_lease(&self, id: LeaseId) -> Result<Record, StoreError> {
        let lease = self.leases.get(&id).ok_or(StoreError::LeaseNotFound(id))?;
        let effects = lease
            .keys
            .iter()
            .map(|k| Effect::Delete { key: k.clone() })
            .collect();
        Ok(Record::EndLease {
            id,
            rev: self.revision + 1,
            effects,
        })
    }

    /// Returns the leases whose deadline is at or before `now`, and the next deadline.
    pub(crate) fn due_leases(&self, now: Instant) -> (Vec<LeaseId>, Option<Instant>) {
        let due = self
            .leases
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        let next = self.leases.values().map(|l| l.deadline).min();
        (due, next)
    }

    /// Renews lease `id` from `now`; returns its TTL.
    pub(crate) fn keep_alive(&mut self, id: LeaseId, now: Instant) -> Result<Duration, StoreError> {
        let lease = self
            .leases
            .get_mut(&id)
            .ok_or(StoreError::LeaseNotFound(id))?;
        let ttl = Duration::from_secs(lease.ttl_secs);
        lease.deadline = now + ttl;
        Ok(ttl)
    }

    /// Applies a persisted record. Returns the watch batch it produced, if any.
    pub(crate) fn apply(&mut self, rec: &Record, now: Instant) -> Option<WatchBatch> {
        match rec {
            Record::Write { rev, effects } => Some(self.apply_effects(*rev, effects)),
            Record::Grant { id, ttl_secs } => {
                let lease = Lease {
                    ttl_secs: *ttl_secs,
                    deadline: now + Duration::from_secs(*ttl_secs),
                    keys: BTreeSet::new(),
                };
                self.leases.insert(*id, lease);
                self.next_lease = self.next_lease.max(id + 1);
                None
            }
            Record::EndLease { id, rev, effects } => {
                let batch = (!effects.is_empty()).then(|| self.apply_effects(*rev, effects));
                self.leases.remove(id);
                batch
            }
        }
    }

    fn apply_effects(&mut self, rev: Revision, effects: &[Effect]) -> WatchBatch {
        self.revision = rev;
        let events = effects
            .iter()
            .map(|fx| self.apply_effect(rev, fx))
            .collect();
        let batch = WatchBatch {
            revision: rev,
            events,
        };
        self.history.push_back(batch.clone());
        while self.history.len() > self.history_limit {
            let old = self.history.pop_front().expect("non-empty");
            self.compact_rev = old.revision + 1;
        }
        batch
    }

    fn detach(&mut self, key: &str, lease: LeaseId) {
        if let Some(l) = self.leases.get_mut(&lease) {
            l.keys.remove(key);
        }
    }

    fn apply_effect(&mut self, rev: Revision, fx: &Effect) -> Event {
        match fx {
            Effect::Put { key, value, lease } => {
                let old = self.kvs.get(key).cloned();
                if let Some(old) = &old {
                    self.detach(key, old.lease);
                }
                if let Some(l) = self.leases.get_mut(lease) {
                    l.keys.insert(key.clone());
                }
                let stored = Stored {
                    value: value.clone(),
                    create_revision: old.as_ref().map_or(rev, |o| o.create_revision),
                    mod_revision: rev,
                    version: old.as_ref().map_or(1, |o| o.version + 1),
                    lease: *lease,
                };
                let kv = to_kv(key, &stored);
                self.kvs.insert(key.clone(), stored);
                Event {
                    kind: EventKind::Put,
                    kv,
                }
            }
            Effect::Delete { key } => {
                if let Some(old) = self.kvs.remove(key) {
                    self.detach(key, old.lease);
                }
                Event {
                    kind: EventKind::Delete,
                    kv: KeyValue {
                        key: key.clone(),
                        value: Vec::new(),
                        create_revision: 0,
                        mod_revision: rev,
                        version: 0,
                        lease: 0,
                    },
                }
            }
        }
    }

    /// Forgets history older than `rev`, as etcd's compaction does.
    pub(crate) fn compact(&mut self, rev: Revision) -> Result<(), StoreError> {
        if rev > self.revision {
            return Err(StoreError::Other(format!(
                "cannot compact at revision {rev}: the store is only at {}",
                self.revision
            )));
        }
        while self.history.front().is_some_and(|b| b.revision < rev) {
            self.history.pop_front();
        }
        self.compact_rev = self.compact_rev.max(rev);
        Ok(())
    }

    /// Returns the batches with revision >= `from` whose events match `prefix`
    /// (at most `max`), or `Compacted` if `from` is older than the history.
    pub(crate) fn history_from(
        &self,
        prefix: &str,
        from: Revision,
        max: usize,
    ) -> Result<Vec<WatchBatch>, StoreError> {
        if from < self.compact_rev {
            return Err(StoreError::Compacted {
                requested: from,
                compact_revision: self.compact_rev,
            });
        }
        let start = self.history.partition_point(|b| b.revision < from);
        Ok(self
            .history
            .range(start..)
            .filter_map(|b| {
                let events: Vec<Event> = b
                    .events
                    .iter()
                    .filter(|e| e.kv.key.starts_with(prefix))
                    .cloned()
                    .collect();
                (!events.is_empty()).then_some(WatchBatch {
                    revision: b.revision,
                    events,
                })
            })
            .take(max)
            .collect())
    }

    /// Marks the end of replay: history before the replayed records is gone.
    pub(crate) fn set_compact_rev(&mut self, rev: Revision) {
        self.compact_rev = rev;
    }
}

fn effects_of(rec: Record) -> Vec<Effect> {
    match rec {
        Record::Write { effects, .. } | Record::EndLease { effects, .. } => effects,
        Record::Grant { .. } => vec![],
    }
}

fn to_kv(key: &str, s: &Stored) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: s.value.clone(),
        create_revision: s.create_revision,
        mod_revision: s.mod_revision,
        version: s.version,
        lease: s.lease,
    }
}
