//! The sync session state machine: one per control stream, no I/O, no clock.

use std::collections::VecDeque;
use std::time::Instant;

use super::export::{ExportSet, Exporter};
use super::frame::{Decoder, FrameError, Message, PROTOCOL_VERSION, encode};
use super::import::Importer;
use super::types::{
    CloseReason, ExportError, LocalInfo, PeerInfo, SessionConfig, SessionEvent, SessionStats,
};
mod receive;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingHello,
    Open,
    Closed,
}

/// One side of a gateway-to-gateway control stream.
///
/// Feed it received bytes ([`handle_bytes`](Self::handle_bytes)), export sets
/// ([`set_exports`](Self::set_exports)) and timer expiries
/// ([`handle_timeout`](Self::handle_timeout)); drain
/// [`poll_transmit`](Self::poll_transmit) and [`poll_event`](Self::poll_event)
/// after each call, and arm a timer at [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct Session {
    local: LocalInfo,
    expected_peer: Option<String>,
    cfg: SessionConfig,
    phase: Phase,
    decoder: Decoder,
    peer: Option<PeerInfo>,
    importer: Importer,
    exporter: Exporter,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<SessionEvent>,
    started: Instant,
    last_sent: Instant,
    last_heard: Option<Instant>,
    frames_in: u64,
    bytes_in: u64,
    frames_out: u64,
    bytes_out: u64,
}

impl Session {
    /// Creates a session and queues our Hello.
    ///
    /// `expected_peer` is the peer cluster from config; `None` accepts whichever
    /// cluster the peer announces (the TLS layer has already authenticated it).
    pub fn new(
        local: LocalInfo,
        expected_peer: Option<String>,
        cfg: SessionConfig,
        now: Instant,
    ) -> Self {
        let exporter = Exporter::new(cfg.max_unacked);
        let mut s = Self {
            local,
            expected_peer,
            cfg,
            phase: Phase::AwaitingHello,
            decoder: Decoder::new(),
            peer: None,
            importer: Importer::default(),
            exporter,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            started: now,
            last_sent: now,
            last_heard: None,
            frames_in: 0,
            bytes_in: 0,
            frames_out: 0,
            bytes_out: 0,
        };
        let hello = Message::Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster: s.local.cluster.clone(),
            cloud: s.local.cloud.clone(),
            region: s.local.region.clone(),
            zones: s.local.zones.clone(),
            replica: s.local.replica.clone(),
            capabilities: Vec::new(),
        };
        s.send(&hello, now);
        s
    }

    /// Processes bytes read from the stream, split anywhere.
    pub fn handle_bytes(&mut self, data: &[u8], now: Instant) {
        if self.phase == Phase::Closed || data.is_empty() {
            return;
        }
        self.bytes_in += data.len() as u64;
        // Any progress on the stream proves the peer alive, even mid-frame.
        self.last_heard = Some(now);
        self.decoder.push(data);
        while self.phase != Phase::Closed {
            match self.decoder.next() {
                Ok(Some(msg)) => {
                    self.frames_in += 1;
                    self.on_message(msg, now);
                }
                Ok(None) => break,
                Err(e) => self.close(CloseReason::ProtocolError(e.to_string()), now),
            }
        }
    }

    /// Records that the peer is alive by evidence other than this stream:
    /// its data streams' bytes arriving on the same connection. With bulk
    /// data on the connection the peer's heartbeats can arrive late, and a
    /// busy peer must not read as a silent one. Counts only once the
    /// session is open.
    pub fn handle_peer_activity(&mut self, now: Instant) {
        if self.phase == Phase::Open {
            self.last_heard = Some(now);
        }
    }

    /// Replaces the complete set of services exported to this peer and sends
    /// what changed since the last snapshot or delta (when the window allows).
    ///
    /// Rejects the whole set, keeping the previous one, if a summary is keyed
    /// wrongly, has an invalid name, or names another source cluster.
    pub fn set_exports(&mut self, exports: ExportSet, now: Instant) -> Result<(), ExportError> {
        self.exporter.set(exports, &self.local.cluster)?;
        self.flush_exports(now);
        Ok(())
    }

    /// Sends a heartbeat or closes a silent session, as due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        if now >= self.peer_deadline() {
            let timeout = self.cfg.peer_timeout;
            self.close(CloseReason::PeerTimedOut { timeout }, now);
        } else if now >= self.heartbeat_deadline() {
            let seq = self.exporter.last_seq_sent();
            self.send(&Message::Heartbeat { seq }, now);
        }
    }

    /// Returns the next encoded frame to write to the stream.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// Returns the next event for the driver.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Returns when [`handle_timeout`](Self::handle_timeout) must next be called;
    /// `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.phase != Phase::Closed).then(|| self.heartbeat_deadline().min(self.peer_deadline()))
    }

    /// Returns sequence numbers, counters and the peer.
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            last_seq_sent: self.exporter.last_seq_sent(),
            last_seq_acked: self.exporter.last_seq_acked(),
            unacked: self.exporter.unacked(),
            last_seq_received: self.importer.last_seq(),
            exports_pending: self.exporter.pending(),
            last_heard: self.last_heard,
            frames_in: self.frames_in,
            bytes_in: self.bytes_in,
            frames_out: self.frames_out,
            bytes_out: self.bytes_out,
            peer: self.peer.clone(),
        }
    }

    /// Returns whether the peer's Hello was accepted and the session is open.
    pub fn is_established(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Returns whether the session is closed; only queued transmits remain.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    fn heartbeat_deadline(&self) -> Instant {
        self.last_sent + self.cfg.heartbeat_interval
    }

    fn peer_deadline(&self) -> Instant {
        self.last_heard.unwrap_or(self.started) + self.cfg.peer_timeout
    }

    /// Queues `msg`; a frame over the limit closes the session instead.
    fn send(&mut self, msg: &Message, now: Instant) {
        match encode(msg) {
            Ok(frame) => {
                self.frames_out += 1;
                self.bytes_out += frame.len() as u64;
                self.last_sent = now;
                self.transmits.push_back(frame);
            }
            Err(FrameError::TooLarge { len, max }) => {
                let kind = msg.kind();
                self.close(
                    CloseReason::FrameTooLarge {
                        kind,
                        bytes: len,
                        max,
                    },
                    now,
                );
            }
            Err(e @ FrameError::Malformed { .. }) => {
                let reason = format!("could not encode our {}: {e}", msg.kind());
                self.close(CloseReason::ProtocolError(reason), now);
            }
        }
    }

    /// Sends the snapshot or the coalesced delta if one is due and allowed.
    fn flush_exports(&mut self, now: Instant) {
        if self.phase != Phase::Open {
            return;
        }
        if let Some(msg) = self.exporter.next_message() {
            self.send(&msg, now);
        }
    }

    /// Closes the session, telling the peer why unless it told us.
    fn close(&mut self, reason: CloseReason, now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        if !matches!(reason, CloseReason::PeerSentError { .. }) {
            let err = Message::Error {
                code: reason.code().to_string(),
                message: peer_message(&reason),
            };
            // Sent before the phase changes; an Error frame is always small.
            self.send(&err, now);
        }
        self.phase = Phase::Closed;
        self.events.push_back(SessionEvent::Closed(reason));
    }
}

/// Returns the explanation for the peer, written from its point of view.
fn peer_message(reason: &CloseReason) -> String {
    match reason {
        CloseReason::PeerTimedOut { timeout } => {
            format!("nothing received from you for {timeout:?}")
        }
        CloseReason::ProtocolError(e) => e.clone(),
        CloseReason::VersionMismatch { ours, theirs } => {
            format!("this gateway speaks sync protocol version {ours}, not {theirs}")
        }
        CloseReason::UnexpectedPeer { expected, got } => {
            format!("this gateway expects peer cluster `{expected}`, not `{got}`")
        }
        other => other.to_string(),
    }
}
