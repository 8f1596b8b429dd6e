//! Two sessions joined by in-memory byte pipes, with a virtual clock.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{cfg, local};
use crate::model::{ServiceName, ServiceSummary};
use crate::sync::{Message, Session, SessionConfig, SessionEvent};

/// One side of a [`Pair`]: its session, what it emitted, and its imports as a
/// store would hold them after applying every import event.
pub(super) struct Side {
    pub session: Session,
    pub events: Vec<SessionEvent>,
    pub imports: BTreeMap<ServiceName, ServiceSummary>,
    /// Bytes written by this side and not yet delivered to the other.
    pub outbox: Vec<u8>,
    /// Every frame this side wrote, decoded, in order.
    pub frames: Vec<Message>,
    decoder: crate::sync::Decoder,
}

impl Side {
    fn new(session: Session) -> Self {
        Self {
            session,
            events: Vec::new(),
            imports: BTreeMap::new(),
            outbox: Vec::new(),
            frames: Vec::new(),
            decoder: crate::sync::Decoder::new(),
        }
    }

    /// Moves queued transmits to the outbox and applies queued events.
    fn collect(&mut self) {
        while let Some(bytes) = self.session.poll_transmit() {
            self.decoder.push(&bytes);
            self.outbox.extend_from_slice(&bytes);
        }
        while let Some(m) = self.decoder.next().expect("sessions write valid frames") {
            self.frames.push(m);
        }
        while let Some(e) = self.session.poll_event() {
            match &e {
                SessionEvent::ImportSnapshot(all) => {
                    self.imports = all.iter().map(|s| (s.service.clone(), s.clone())).collect();
                }
                SessionEvent::ImportDelta { upserts, removals } => {
                    for s in upserts {
                        self.imports.insert(s.service.clone(), s.clone());
                    }
                    for name in removals {
                        self.imports.remove(name);
                    }
                }
                _ => {}
            }
            self.events.push(e);
        }
    }

    /// Returns how many frames of type `kind` this side wrote.
    pub fn count(&self, kind: &str) -> usize {
        self.frames.iter().filter(|m| m.kind() == kind).count()
    }
}

/// Two sessions, `a` (cluster `aws`) and `b` (cluster `gcp`), and a clock.
pub(super) struct Pair {
    pub a: Side,
    pub b: Side,
    pub now: Instant,
    /// Bytes per delivery call; `usize::MAX` delivers everything at once.
    pub chunk: usize,
    /// Drops everything `b` writes instead of delivering it (a broken link).
    pub drop_b_to_a: bool,
}

impl Pair {
    /// Returns a pair that expect each other, with config `cfg(window)`.
    pub fn new(window: usize) -> Self {
        Self::with_config(cfg(window), cfg(window))
    }

    /// Returns a pair with separate configs for `a` and `b`.
    pub fn with_config(a: SessionConfig, b: SessionConfig) -> Self {
        let now = Instant::now();
        Self::with_sessions(
            Session::new(local("aws"), Some("gcp".into()), a, now),
            Session::new(local("gcp"), None, b, now),
            now,
        )
    }

    /// Returns a pair of existing sessions at virtual time `now`.
    pub fn with_sessions(a: Session, b: Session, now: Instant) -> Self {
        let mut p = Self {
            a: Side::new(a),
            b: Side::new(b),
            now,
            chunk: usize::MAX,
            drop_b_to_a: false,
        };
        p.a.collect();
        p.b.collect();
        p
    }

    /// Delivers what `a` wrote to `b`, `chunk` bytes per call.
    pub fn deliver_a_to_b(&mut self) -> bool {
        let moved = deliver(&mut self.a, &mut self.b, self.chunk, self.now);
        self.a.collect();
        moved
    }

    /// Delivers what `b` wrote to `a`, `chunk` bytes per call.
    pub fn deliver_b_to_a(&mut self) -> bool {
        if self.drop_b_to_a {
            self.b.outbox.clear();
            return false;
        }
        let moved = deliver(&mut self.b, &mut self.a, self.chunk, self.now);
        self.b.collect();
        moved
    }

    /// Moves both sides' transmits to their outboxes and applies their events.
    pub fn collect(&mut self) {
        self.a.collect();
        self.b.collect();
    }

    /// Delivers in both directions until neither side has anything to write.
    pub fn drive(&mut self) {
        self.collect();
        while self.deliver_a_to_b() | self.deliver_b_to_a() {}
    }

    /// Advances the clock to `now + d`, firing every timer due on the way (in
    /// order) and delivering everything after each.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = [self.a.session.poll_timeout(), self.b.session.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    for side in [&mut self.a, &mut self.b] {
                        if side.session.poll_timeout().is_some_and(|t| t <= self.now) {
                            side.session.handle_timeout(self.now);
                        }
                    }
                    self.drive();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    /// Calls `set_exports` on `a` and collects what it wrote.
    pub fn export_a(&mut self, set: crate::sync::ExportSet) {
        self.a
            .session
            .set_exports(set, self.now)
            .expect("test exports are valid");
        self.a.collect();
    }
}

/// Moves `from`'s outbox into `to`'s session; returns whether anything moved.
fn deliver(from: &mut Side, to: &mut Side, chunk: usize, now: Instant) -> bool {
    if from.outbox.is_empty() {
        return false;
    }
    let bytes = std::mem::take(&mut from.outbox);
    for part in bytes.chunks(chunk.max(1)) {
        to.session.handle_bytes(part, now);
    }
    to.collect();
    true
}
