//! Configuration, events, close reasons and statistics of a sync [`Session`](super::Session).

use std::time::{Duration, Instant};

use crate::model::{ServiceName, ServiceSummary};

/// Timing and flow-control settings of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Sends a heartbeat when nothing else was sent for this long.
    pub heartbeat_interval: Duration,
    /// Closes the session when nothing was received for this long.
    pub peer_timeout: Duration,
    /// Snapshots and deltas that may be unacknowledged at once (at least 1);
    /// further export changes are coalesced into one delta sent on the next ack.
    pub max_unacked: usize,
}

impl Default for SessionConfig {
    /// Returns 5 s heartbeats, a 20 s peer timeout and a window of 64.
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(5),
            peer_timeout: Duration::from_secs(20),
            max_unacked: 64,
        }
    }
}

/// Who this gateway is, announced in its Hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalInfo {
    /// This gateway's cluster name; every exported summary must carry it.
    pub cluster: String,
    /// Cloud, e.g. `aws`.
    pub cloud: String,
    /// Region, e.g. `us-east-1`.
    pub region: String,
    /// Zones of the cluster.
    pub zones: Vec<String>,
    /// This gateway replica's id.
    pub replica: String,
}

/// Who the peer is, as announced in its Hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Protocol version the peer speaks.
    pub protocol_version: u32,
    /// Peer cluster name; every summary it sends must carry it.
    pub cluster: String,
    /// Peer cloud.
    pub cloud: String,
    /// Peer region.
    pub region: String,
    /// Peer zones.
    pub zones: Vec<String>,
    /// Peer gateway replica id.
    pub replica: String,
    /// Extensions the peer advertises.
    pub capabilities: Vec<String>,
}

/// Something the driver must act on, returned by [`Session::poll_event`](super::Session::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The peer's Hello was accepted.
    Established(PeerInfo),
    /// Replace all imports from this peer with these services.
    ImportSnapshot(Vec<ServiceSummary>),
    /// Apply these changes to the imports from this peer.
    ImportDelta {
        /// Services added or changed.
        upserts: Vec<ServiceSummary>,
        /// Services the peer no longer exports.
        removals: Vec<ServiceName>,
    },
    /// The peer has applied our exports up to `seq` (for a sync-lag metric).
    Acked {
        /// Highest sequence number the peer applied.
        seq: u64,
    },
    /// The session is over; write any remaining transmits, then close the stream.
    Closed(CloseReason),
}

/// Why a session closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// Nothing was received from the peer for the peer timeout.
    #[error("peer sent nothing for {timeout:?}: is the tunnel up and the peer gateway running?")]
    PeerTimedOut {
        /// The configured peer timeout.
        timeout: Duration,
    },
    /// The peer broke the protocol; the message names what it sent.
    #[error("peer broke the sync protocol: {0}")]
    ProtocolError(String),
    /// The peer speaks another protocol version.
    #[error(
        "peer speaks sync protocol version {theirs} but this gateway speaks {ours}: upgrade the older gateway"
    )]
    VersionMismatch {
        /// Our version, [`PROTOCOL_VERSION`](super::PROTOCOL_VERSION).
        ours: u32,
        /// The version the peer announced.
        theirs: u32,
    },
    /// The peer reported an error and closed.
    #[error("peer closed the session with error `{code}`: {message}")]
    PeerSentError {
        /// The peer's error code.
        code: String,
        /// The peer's explanation.
        message: String,
    },
    /// The peer announced a different cluster than the one configured.
    #[error(
        "expected peer cluster `{expected}` but the peer says it is `{got}`: check the peer's address and cluster name in the config"
    )]
    UnexpectedPeer {
        /// The configured peer cluster.
        expected: String,
        /// The cluster the peer announced.
        got: String,
    },
    /// A frame we had to send does not fit in [`MAX_FRAME`](super::MAX_FRAME).
    #[error(
        "our {kind} frame encodes to {bytes} bytes, over the {max}-byte frame limit: export fewer services to this peer"
    )]
    FrameTooLarge {
        /// The message type, e.g. `snapshot`.
        kind: &'static str,
        /// Size of the encoded payload.
        bytes: u64,
        /// The limit.
        max: usize,
    },
}

impl CloseReason {
    /// Returns the code sent to the peer in the Error frame for this reason.
    pub fn code(&self) -> &'static str {
        match self {
            CloseReason::PeerTimedOut { .. } => "timeout",
            CloseReason::ProtocolError(_) => "protocol",
            CloseReason::VersionMismatch { .. } => "version",
            CloseReason::PeerSentError { .. } => "peer_error",
            CloseReason::UnexpectedPeer { .. } => "unexpected_peer",
            CloseReason::FrameTooLarge { .. } => "frame_too_large",
        }
    }
}

/// An export set rejected by [`Session::set_exports`](super::Session::set_exports).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// A summary names another source cluster than this gateway's.
    #[error(
        "export of {service} names source cluster `{got}`, but this gateway is cluster `{local}`"
    )]
    ForeignSource {
        /// The offending service.
        service: ServiceName,
        /// The source cluster in its summary.
        got: String,
        /// This gateway's cluster.
        local: String,
    },
    /// A map key differs from the service named in its summary.
    #[error("export keyed as {key} carries a summary of {service}")]
    KeyMismatch {
        /// The map key.
        key: ServiceName,
        /// The service in the summary.
        service: ServiceName,
    },
    /// A service name is not two DNS labels.
    #[error("export of `{0}` has an invalid name: namespace and name must be DNS labels")]
    InvalidName(ServiceName),
}

/// Counters and sequence numbers of a session, for status and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionStats {
    /// Last sequence number used for a snapshot or delta we sent (0: none yet).
    pub last_seq_sent: u64,
    /// Highest sequence number the peer acknowledged.
    pub last_seq_acked: u64,
    /// Snapshots and deltas sent but not yet acknowledged.
    pub unacked: u64,
    /// Last sequence number received from the peer.
    pub last_seq_received: u64,
    /// Whether export changes are waiting for the window to open.
    pub exports_pending: bool,
    /// When the last frame was received.
    pub last_heard: Option<Instant>,
    /// Frames received.
    pub frames_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Frames queued for transmission.
    pub frames_out: u64,
    /// Bytes queued for transmission.
    pub bytes_out: u64,
    /// The peer, once its Hello was accepted.
    pub peer: Option<PeerInfo>,
}
