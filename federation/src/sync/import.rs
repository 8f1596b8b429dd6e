//! The import half of a session: validation of what the peer sends.

use std::collections::BTreeSet;

use crate::model::{ServiceName, ServiceSummary, is_label};

/// Checks the peer's snapshots, deltas and heartbeats against its Hello and
/// the sequence numbers seen so far.
#[derive(Debug, Default)]
pub(crate) struct Importer {
    peer_cluster: String,
    last_seq: u64,
    has_snapshot: bool,
}

impl Importer {
    /// Sets the cluster every imported summary must come from (from its Hello).
    pub(crate) fn set_peer(&mut self, peer_cluster: String) {
        self.peer_cluster = peer_cluster;
    }

    /// Returns the last sequence number accepted.
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Validates a snapshot; on success it is the new base for deltas.
    pub(crate) fn snapshot(&mut self, seq: u64, services: &[ServiceSummary]) -> Result<(), String> {
        self.check_seq("snapshot", seq)?;
        let mut seen = BTreeSet::new();
        for s in services {
            self.check_summary(s)?;
            if !seen.insert(&s.service) {
                return Err(format!("snapshot seq {seq} lists {} twice", s.service));
            }
        }
        self.last_seq = seq;
        self.has_snapshot = true;
        Ok(())
    }

    /// Validates a delta, which must follow a snapshot.
    pub(crate) fn delta(
        &mut self,
        seq: u64,
        upserts: &[ServiceSummary],
        removals: &[ServiceName],
    ) -> Result<(), String> {
        if !self.has_snapshot {
            return Err(format!("delta seq {seq} before any snapshot"));
        }
        self.check_seq("delta", seq)?;
        let mut seen = BTreeSet::new();
        for s in upserts {
            self.check_summary(s)?;
            if !seen.insert(&s.service) {
                return Err(format!("delta seq {seq} names {} twice", s.service));
            }
        }
        for name in removals {
            check_name(name)?;
            if !seen.insert(name) {
                return Err(format!("delta seq {seq} names {name} twice"));
            }
        }
        self.last_seq = seq;
        Ok(())
    }

    /// Validates a heartbeat: it carries the last seq the peer sent, which the
    /// ordered stream must already have delivered.
    pub(crate) fn heartbeat(&self, seq: u64) -> Result<(), String> {
        if seq != self.last_seq {
            return Err(format!(
                "heartbeat says seq {seq} was sent last, but seq {} was received last",
                self.last_seq
            ));
        }
        Ok(())
    }

    fn check_seq(&self, kind: &str, seq: u64) -> Result<(), String> {
        if seq <= self.last_seq {
            return Err(format!(
                "{kind} seq {seq} does not follow seq {} (replayed or out of order)",
                self.last_seq
            ));
        }
        Ok(())
    }

    fn check_summary(&self, s: &ServiceSummary) -> Result<(), String> {
        check_name(&s.service)?;
        if s.source_cluster != self.peer_cluster {
            return Err(format!(
                "service {} claims source cluster `{}` but the peer is `{}`",
                s.service, s.source_cluster, self.peer_cluster
            ));
        }
        Ok(())
    }
}

fn check_name(name: &ServiceName) -> Result<(), String> {
    if is_label(&name.namespace) && is_label(&name.name) {
        Ok(())
    } else {
        Err(format!(
            "service name `{name}` is not two DNS labels (namespace/name)"
        ))
    }
}
