//! Hello exchange and the ways a peer is refused.

use std::time::Instant;

use super::pair::Pair;
use super::*;
use crate::sync::{CloseReason, MAX_FRAME};

#[test]
fn hellos_establish_both_sides_with_peer_info() {
    let mut p = Pair::new(64);
    p.drive();
    assert!(p.a.session.is_established() && p.b.session.is_established());
    assert_eq!(p.a.frames[0].kind(), "hello");
    let SessionEvent::Established(peer) = &p.a.events[0] else {
        panic!("a: {:?}", p.a.events)
    };
    assert_eq!(
        (peer.cluster.as_str(), peer.region.as_str()),
        ("gcp", "gcp-region")
    );
    assert_eq!(peer.replica, "gcp-gw-0");
    assert_eq!(peer.protocol_version, PROTOCOL_VERSION);
    assert_eq!(p.b.session.stats().peer.unwrap().cluster, "aws");
    // Nothing is exported until set_exports is called.
    assert_eq!(p.a.count("snapshot") + p.b.count("snapshot"), 0);
}

#[test]
fn version_mismatch_sends_version_error_and_closes() {
    let now = Instant::now();
    let mut s = Session::new(local("aws"), None, cfg(8), now);
    sent(&mut s);
    s.handle_bytes(&frame(&hello("gcp", PROTOCOL_VERSION + 1)), now);
    let (code, reason) = closed_with(&mut s);
    assert_eq!(code, "version");
    assert_eq!(
        reason,
        "peer speaks sync protocol version 2 but this gateway speaks 1: upgrade the older gateway"
    );
}

#[test]
fn the_peer_sees_the_version_error_as_peer_sent_error() {
    let now = Instant::now();
    let newer = Session::new(local("gcp"), None, cfg(8), now);
    let mut p = Pair::with_sessions(Session::new(local("aws"), None, cfg(8), now), newer, now);
    // Replace b's Hello by one announcing version 9.
    p.b.outbox = frame(&hello("gcp", 9));
    p.drive();
    assert!(p.a.session.is_closed() && p.b.session.is_closed());
    let last = p.b.events.last().unwrap();
    let SessionEvent::Closed(CloseReason::PeerSentError { code, message }) = last else {
        panic!("{last:?}")
    };
    assert_eq!(code, "version");
    assert_eq!(
        message,
        "this gateway speaks sync protocol version 1, not 9"
    );
}

#[test]
fn unexpected_peer_is_refused() {
    let now = Instant::now();
    let mut s = Session::new(local("aws"), Some("gcp".into()), cfg(8), now);
    s.handle_bytes(&frame(&hello("azure", PROTOCOL_VERSION)), now);
    let (code, reason) = closed_with(&mut s);
    assert_eq!(code, "unexpected_peer");
    assert!(reason.contains("expected peer cluster `gcp` but the peer says it is `azure`"));
}

#[test]
fn frame_before_hello_is_a_protocol_error() {
    let now = Instant::now();
    let mut s = Session::new(local("aws"), None, cfg(8), now);
    s.handle_bytes(&frame(&Message::Ack { seq: 1 }), now);
    let (code, reason) = closed_with(&mut s);
    assert_eq!(code, "protocol");
    assert_eq!(
        reason,
        "peer broke the sync protocol: received ack before hello"
    );
}

#[test]
fn second_hello_and_bad_cluster_name_are_protocol_errors() {
    let now = Instant::now();
    let mut s = session_after_hello(8, now);
    s.handle_bytes(&frame(&hello("gcp", PROTOCOL_VERSION)), now);
    assert!(closed_with(&mut s).1.contains("second hello"));

    let mut s = Session::new(local("aws"), None, cfg(8), now);
    s.handle_bytes(&frame(&hello("GCP/../x", PROTOCOL_VERSION)), now);
    assert!(closed_with(&mut s).1.contains("not a DNS label"));
}

#[test]
fn forged_source_cluster_is_rejected_naming_the_service() {
    let now = Instant::now();
    let mut s = session_after_hello(8, now);
    let forged = Message::Snapshot {
        seq: 1,
        services: vec![
            summary("gcp", "default", "web", 1, 1),
            summary("azure", "default", "payments", 1, 1),
        ],
    };
    s.handle_bytes(&frame(&forged), now);
    let (code, reason) = closed_with(&mut s);
    assert_eq!(code, "protocol");
    assert!(
        reason.contains(
            "service default/payments claims source cluster `azure` but the peer is `gcp`"
        ),
        "{reason}"
    );
}

#[test]
fn invalid_service_names_are_rejected() {
    let now = Instant::now();
    let mut s = session_after_hello(8, now);
    let snap = Message::Snapshot {
        seq: 1,
        services: vec![summary("gcp", "default", "web", 1, 1)],
    };
    s.handle_bytes(&frame(&snap), now);
    let bad = Message::Delta {
        seq: 2,
        upserts: vec![],
        removals: vec![ServiceName::new("Default", "web")],
    };
    s.handle_bytes(&frame(&bad), now);
    assert!(
        closed_with(&mut s)
            .1
            .contains("`Default/web` is not two DNS labels")
    );
}

#[test]
fn oversize_frame_closes_with_the_size_named() {
    let now = Instant::now();
    let mut s = session_after_hello(8, now);
    let len = MAX_FRAME as u32 + 1;
    s.handle_bytes(&len.to_be_bytes(), now);
    let (code, reason) = closed_with(&mut s);
    assert_eq!(code, "protocol");
    assert!(reason.ends_with("frame of 16777217 bytes exceeds the 16777216-byte limit"));
}

#[test]
fn unknown_message_type_closes_naming_it() {
    let now = Instant::now();
    let mut s = session_after_hello(8, now);
    let payload = br#"{"type":"teleport"}"#;
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    s.handle_bytes(&bytes, now);
    assert!(closed_with(&mut s).1.contains("unknown variant `teleport`"));
}

#[test]
fn peer_error_closes_without_answering_and_later_input_is_ignored() {
    let now = Instant::now();
    let mut s = session_after_hello(8, now);
    let err = Message::Error {
        code: "shutdown".into(),
        message: "gateway is restarting".into(),
    };
    s.handle_bytes(&frame(&err), now);
    assert!(s.is_closed());
    assert!(sent(&mut s).is_empty(), "no Error frame is sent back");
    assert_eq!(
        events(&mut s),
        [SessionEvent::Closed(CloseReason::PeerSentError {
            code: "shutdown".into(),
            message: "gateway is restarting".into(),
        })]
    );
    let before = s.stats();
    s.handle_bytes(&frame(&Message::Ack { seq: 1 }), now);
    s.set_exports(set([summary("aws", "default", "web", 1, 1)]), now)
        .unwrap();
    s.handle_timeout(now + std::time::Duration::from_secs(60));
    assert!(sent(&mut s).is_empty() && events(&mut s).is_empty());
    assert_eq!(s.stats().frames_in, before.frames_in);
    assert_eq!(s.poll_timeout(), None);
}
