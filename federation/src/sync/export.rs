//! The export half of a session: what the peer has, what it should have, and
//! the acknowledgement window between them.

use std::collections::BTreeMap;

use super::frame::Message;
use super::types::ExportError;
use crate::model::{ServiceName, ServiceSummary, is_label};

/// An export set keyed by service.
pub type ExportSet = BTreeMap<ServiceName, ServiceSummary>;

/// Tracks the export set and produces the snapshot and deltas that move the
/// peer from what it last received to the latest set.
#[derive(Debug)]
pub(crate) struct Exporter {
    /// The latest set from `set_exports`; `None` until it is first called.
    desired: Option<ExportSet>,
    /// What the peer has once it applies everything sent; `None` before the snapshot.
    sent: Option<ExportSet>,
    /// `desired` may differ from `sent`.
    dirty: bool,
    last_seq_sent: u64,
    last_seq_acked: u64,
    max_unacked: u64,
}

impl Exporter {
    /// Creates an exporter allowing `max_unacked` (at least 1) frames in flight.
    pub(crate) fn new(max_unacked: usize) -> Self {
        Self {
            desired: None,
            sent: None,
            dirty: false,
            last_seq_sent: 0,
            last_seq_acked: 0,
            max_unacked: max_unacked.max(1) as u64,
        }
    }

    /// Validates and records the complete export set of `local_cluster`.
    pub(crate) fn set(
        &mut self,
        exports: ExportSet,
        local_cluster: &str,
    ) -> Result<(), ExportError> {
        for (key, s) in &exports {
            if *key != s.service {
                return Err(ExportError::KeyMismatch {
                    key: key.clone(),
                    service: s.service.clone(),
                });
            }
            if !is_label(&key.namespace) || !is_label(&key.name) {
                return Err(ExportError::InvalidName(key.clone()));
            }
            if s.source_cluster != local_cluster {
                return Err(ExportError::ForeignSource {
                    service: key.clone(),
                    got: s.source_cluster.clone(),
                    local: local_cluster.to_string(),
                });
            }
        }
        self.desired = Some(exports);
        self.dirty = true;
        Ok(())
    }

    /// Returns the last sequence number used.
    pub(crate) fn last_seq_sent(&self) -> u64 {
        self.last_seq_sent
    }

    /// Returns the highest sequence number acknowledged.
    pub(crate) fn last_seq_acked(&self) -> u64 {
        self.last_seq_acked
    }

    /// Returns how many snapshots and deltas await an ack.
    pub(crate) fn unacked(&self) -> u64 {
        self.last_seq_sent - self.last_seq_acked
    }

    /// Returns whether a change may be waiting for the window to open.
    pub(crate) fn pending(&self) -> bool {
        self.dirty
    }

    /// Records the peer's cumulative ack; it must be new and for a sent seq.
    pub(crate) fn on_ack(&mut self, seq: u64) -> Result<(), String> {
        if seq > self.last_seq_sent {
            return Err(format!(
                "ack for seq {seq}, but the last seq sent is {}",
                self.last_seq_sent
            ));
        }
        if seq <= self.last_seq_acked {
            return Err(format!(
                "ack for seq {seq} repeats or goes back from ack {}",
                self.last_seq_acked
            ));
        }
        self.last_seq_acked = seq;
        Ok(())
    }

    /// Returns the next snapshot or delta to send, if the set changed and the
    /// window has room; the message covers every change so far (coalescing).
    pub(crate) fn next_message(&mut self) -> Option<Message> {
        if !self.dirty || self.unacked() >= self.max_unacked {
            return None;
        }
        let desired = self.desired.as_ref()?;
        self.dirty = false;
        let msg = match &mut self.sent {
            None => {
                self.sent = Some(desired.clone());
                Message::Snapshot {
                    seq: self.last_seq_sent + 1,
                    services: desired.values().cloned().collect(),
                }
            }
            Some(sent) => {
                let (upserts, removals) = diff(sent, desired);
                if upserts.is_empty() && removals.is_empty() {
                    return None;
                }
                for s in &upserts {
                    sent.insert(s.service.clone(), s.clone());
                }
                for name in &removals {
                    sent.remove(name);
                }
                Message::Delta {
                    seq: self.last_seq_sent + 1,
                    upserts,
                    removals,
                }
            }
        };
        self.last_seq_sent += 1;
        Some(msg)
    }
}

/// Returns the upserts and removals that turn `old` into `new`; a summary whose
/// only change is its revision is not an upsert.
pub fn diff(old: &ExportSet, new: &ExportSet) -> (Vec<ServiceSummary>, Vec<ServiceName>) {
    let upserts = new
        .iter()
        .filter(|(name, s)| old.get(*name).is_none_or(|o| !o.same_content(s)))
        .map(|(_, s)| s.clone())
        .collect();
    let removals = old
        .keys()
        .filter(|name| !new.contains_key(*name))
        .cloned()
        .collect();
    (upserts, removals)
}
