//! In-memory, virtual-time tests of the sync protocol.

mod exports;
mod handshake;
mod pair;
mod property;
mod timing;

use std::collections::BTreeSet;
use std::time::Duration;

use super::{
    Decoder, ExportSet, LocalInfo, Message, PROTOCOL_VERSION, Session, SessionConfig, SessionEvent,
    encode,
};
use crate::model::{PortSpec, Protocol, ServiceName, ServiceSummary};

/// Returns the identity of a gateway in `cluster`.
fn local(cluster: &str) -> LocalInfo {
    LocalInfo {
        cluster: cluster.into(),
        cloud: "test".into(),
        region: format!("{cluster}-region"),
        zones: vec![format!("{cluster}-a"), format!("{cluster}-b")],
        replica: format!("{cluster}-gw-0"),
    }
}

/// Returns a small config: 1 s heartbeats, 5 s peer timeout, a window of `window`.
fn cfg(window: usize) -> SessionConfig {
    SessionConfig {
        heartbeat_interval: Duration::from_secs(1),
        peer_timeout: Duration::from_secs(5),
        max_unacked: window,
    }
}

/// Returns a summary of `ns/name` in `cluster` with `healthy` instances.
fn summary(cluster: &str, ns: &str, name: &str, healthy: u32, revision: i64) -> ServiceSummary {
    ServiceSummary {
        service: ServiceName::new(ns, name),
        source_cluster: cluster.into(),
        healthy,
        total: healthy + 1,
        weight: u64::from(healthy) * 10,
        zones: BTreeSet::from([format!("{cluster}-a")]),
        ports: BTreeSet::from([PortSpec {
            port: 8080,
            protocol: Protocol::Http,
        }]),
        subsets: vec![],
        revision,
    }
}

/// Returns an export set of `summaries`.
fn set(summaries: impl IntoIterator<Item = ServiceSummary>) -> ExportSet {
    summaries
        .into_iter()
        .map(|s| (s.service.clone(), s))
        .collect()
}

/// Returns a valid Hello from `cluster` speaking `version`.
fn hello(cluster: &str, version: u32) -> Message {
    let l = local(cluster);
    Message::Hello {
        protocol_version: version,
        cluster: l.cluster,
        cloud: l.cloud,
        region: l.region,
        zones: l.zones,
        replica: l.replica,
        capabilities: vec!["future-thing".into()],
    }
}

/// Returns `msg` encoded as one frame.
fn frame(msg: &Message) -> Vec<u8> {
    encode(msg).expect("test frames fit")
}

/// Returns every frame `s` queued, decoded.
fn sent(s: &mut Session) -> Vec<Message> {
    let mut d = Decoder::new();
    while let Some(bytes) = s.poll_transmit() {
        d.push(&bytes);
    }
    std::iter::from_fn(|| d.next().expect("session frames decode")).collect()
}

/// Returns every event `s` queued.
fn events(s: &mut Session) -> Vec<SessionEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// Returns the Error frame and the close reason's text of a session that just closed.
fn closed_with(s: &mut Session) -> (String, String) {
    assert!(s.is_closed());
    let code = sent(s)
        .into_iter()
        .find_map(|m| match m {
            Message::Error { code, .. } => Some(code),
            _ => None,
        })
        .expect("an Error frame was queued");
    let reason = events(s)
        .into_iter()
        .find_map(|e| match e {
            SessionEvent::Closed(r) => Some(r.to_string()),
            _ => None,
        })
        .expect("a Closed event was queued");
    (code, reason)
}

/// Returns a session of cluster `aws` that has accepted a Hello from `gcp`,
/// with its Hello and Established event drained.
fn session_after_hello(window: usize, now: std::time::Instant) -> Session {
    let mut s = Session::new(local("aws"), Some("gcp".into()), cfg(window), now);
    s.handle_bytes(&frame(&hello("gcp", PROTOCOL_VERSION)), now);
    assert!(s.is_established());
    sent(&mut s);
    events(&mut s);
    s
}
