//! The gateway-to-gateway catalog sync protocol, sans-IO.
//!
//! Two gateways hold one bidirectional control stream. Each side sends the
//! services it exports to the other and receives what the other exports to it:
//!
//! 1. Both send [`Message::Hello`] first. A peer with another
//!    [`PROTOCOL_VERSION`] or, when one is configured, another cluster name is
//!    refused with an [`Message::Error`] frame.
//! 2. Once the peer's Hello is accepted and the driver has called
//!    [`Session::set_exports`], a [`Message::Snapshot`] carries the full export set.
//! 3. Every later change is a [`Message::Delta`] against the last state sent.
//!    The receiver validates and applies each snapshot or delta and answers
//!    [`Message::Ack`]; at most [`SessionConfig::max_unacked`] may be in flight,
//!    and changes made while the window is full go out as one coalesced delta.
//! 4. A [`Message::Heartbeat`] goes out when nothing else was sent for
//!    [`SessionConfig::heartbeat_interval`]; a peer silent for
//!    [`SessionConfig::peer_timeout`] closes the session.
//!
//! [`frame`] holds the codec; [`Session`] the state machine, which takes bytes,
//! export sets and `now`, and returns frames, [`SessionEvent`]s and deadlines.

pub mod frame;

mod export;
mod import;
mod session;
mod types;

#[cfg(test)]
mod tests;

pub use export::{ExportSet, diff};
pub use frame::{Decoder, FrameError, MAX_FRAME, Message, PROTOCOL_VERSION, encode};
pub use session::Session;
pub use types::{
    CloseReason, ExportError, LocalInfo, PeerInfo, SessionConfig, SessionEvent, SessionStats,
};
