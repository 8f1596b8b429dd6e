//! Handling of each message the peer sends.

use std::time::Instant;

use super::{Phase, Session};
use crate::model::{ServiceName, ServiceSummary, is_label};
use crate::sync::frame::{Message, PROTOCOL_VERSION};
use crate::sync::types::{CloseReason, PeerInfo, SessionEvent};

impl Session {
    /// Dispatches one decoded message; violations close the session.
    pub(super) fn on_message(&mut self, msg: Message, now: Instant) {
        let result = match msg {
            Message::Error { code, message } => {
                return self.close(CloseReason::PeerSentError { code, message }, now);
            }
            Message::Hello {
                protocol_version,
                cluster,
                cloud,
                region,
                zones,
                replica,
                capabilities,
            } if self.phase == Phase::AwaitingHello => {
                let peer = PeerInfo {
                    protocol_version,
                    cluster,
                    cloud,
                    region,
                    zones,
                    replica,
                    capabilities,
                };
                return self.on_hello(peer, now);
            }
            Message::Hello { .. } => Err("received a second hello".to_string()),
            other if self.phase == Phase::AwaitingHello => {
                Err(format!("received {} before hello", other.kind()))
            }
            Message::Snapshot { seq, services } => self.on_snapshot(seq, services, now),
            Message::Delta {
                seq,
                upserts,
                removals,
            } => self.on_delta(seq, upserts, removals, now),
            Message::Ack { seq } => self.on_ack(seq, now),
            Message::Heartbeat { seq } => self.importer.heartbeat(seq),
        };
        if let Err(e) = result {
            self.close(CloseReason::ProtocolError(e), now);
        }
    }

    fn on_hello(&mut self, peer: PeerInfo, now: Instant) {
        if peer.protocol_version != PROTOCOL_VERSION {
            let theirs = peer.protocol_version;
            let ours = PROTOCOL_VERSION;
            return self.close(CloseReason::VersionMismatch { ours, theirs }, now);
        }
        if !is_label(&peer.cluster) {
            let e = format!("hello names cluster `{}`, not a DNS label", peer.cluster);
            return self.close(CloseReason::ProtocolError(e), now);
        }
        if let Some(expected) = &self.expected_peer
            && *expected != peer.cluster
        {
            let reason = CloseReason::UnexpectedPeer {
                expected: expected.clone(),
                got: peer.cluster,
            };
            return self.close(reason, now);
        }
        self.importer.set_peer(peer.cluster.clone());
        self.peer = Some(peer.clone());
        self.phase = Phase::Open;
        self.events.push_back(SessionEvent::Established(peer));
        self.flush_exports(now);
    }

    fn on_snapshot(
        &mut self,
        seq: u64,
        services: Vec<ServiceSummary>,
        now: Instant,
    ) -> Result<(), String> {
        self.importer.snapshot(seq, &services)?;
        self.events
            .push_back(SessionEvent::ImportSnapshot(services));
        self.send(&Message::Ack { seq }, now);
        Ok(())
    }

    fn on_delta(
        &mut self,
        seq: u64,
        upserts: Vec<ServiceSummary>,
        removals: Vec<ServiceName>,
        now: Instant,
    ) -> Result<(), String> {
        self.importer.delta(seq, &upserts, &removals)?;
        self.events
            .push_back(SessionEvent::ImportDelta { upserts, removals });
        self.send(&Message::Ack { seq }, now);
        Ok(())
    }

    fn on_ack(&mut self, seq: u64, now: Instant) -> Result<(), String> {
        self.exporter.on_ack(seq)?;
        self.events.push_back(SessionEvent::Acked { seq });
        self.flush_exports(now);
        Ok(())
    }
}
