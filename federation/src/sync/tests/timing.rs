//! Heartbeats and the peer timeout, in virtual time.

use std::time::{Duration, Instant};

use super::pair::Pair;
use super::*;
use crate::sync::CloseReason;

#[test]
fn peer_timeout_fires_at_the_deadline_and_not_before() {
    let start = Instant::now();
    let mut s = session_after_hello(8, start);
    // Last heard at `start`; heartbeats we send do not count as hearing.
    for secs in 1..5 {
        s.handle_timeout(start + Duration::from_secs(secs));
        assert!(!s.is_closed(), "closed after {secs}s");
    }
    assert_eq!(sent(&mut s).len(), 4, "one heartbeat per second");
    let just_before = start + Duration::from_secs(5) - Duration::from_millis(1);
    s.handle_timeout(just_before);
    assert!(!s.is_closed());
    assert_eq!(s.poll_timeout(), Some(start + Duration::from_secs(5)));
    s.handle_timeout(start + Duration::from_secs(5));
    let (code, reason) = closed_with(&mut s);
    assert_eq!(code, "timeout");
    assert!(reason.starts_with("peer sent nothing for 5s"), "{reason}");
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn a_silent_peer_times_out_in_the_pair() {
    let mut p = Pair::new(8);
    p.drive();
    p.drop_b_to_a = true;
    // a last heard b at `now`; its own heartbeats go out meanwhile.
    p.advance(Duration::from_secs(5) - Duration::from_millis(1));
    assert!(p.a.session.is_established());
    assert!(p.a.count("heartbeat") >= 4);
    p.advance(Duration::from_millis(1));
    assert!(matches!(
        p.a.events.last(),
        Some(SessionEvent::Closed(CloseReason::PeerTimedOut { .. }))
    ));
    // b hears a's timeout Error frame and closes too.
    assert!(matches!(
        p.b.events.last(),
        Some(SessionEvent::Closed(CloseReason::PeerSentError { code, .. })) if code == "timeout"
    ));
}

#[test]
fn the_peers_activity_elsewhere_postpones_its_timeout_but_only_once_open() {
    let start = Instant::now();
    // Before the hello, activity proves nothing about the session.
    let mut s = Session::new(local("aws"), Some("gcp".into()), cfg(8), start);
    s.handle_peer_activity(start + Duration::from_secs(4));
    s.handle_timeout(start + Duration::from_secs(5));
    assert!(
        s.is_closed(),
        "activity before the hello kept a session open"
    );

    let mut s = session_after_hello(8, start);
    // No frame since `start`, but the peer's data keeps arriving.
    for secs in 1..=12 {
        let now = start + Duration::from_secs(secs);
        s.handle_peer_activity(now);
        s.handle_timeout(now);
        assert!(!s.is_closed(), "closed after {secs}s of activity");
    }
    // Then nothing at all: the deadline runs from the last activity.
    s.handle_timeout(start + Duration::from_secs(17) - Duration::from_millis(1));
    assert!(!s.is_closed());
    s.handle_timeout(start + Duration::from_secs(17));
    let (code, _) = closed_with(&mut s);
    assert_eq!(code, "timeout");
}

#[test]
fn heartbeats_keep_an_idle_session_alive() {
    let mut p = Pair::new(8);
    p.export_a(set([summary("aws", "default", "web", 1, 1)]));
    p.drive();
    p.advance(Duration::from_secs(120));
    assert!(p.a.session.is_established() && p.b.session.is_established());
    // One heartbeat per interval per side, give or take the first one.
    let hb = p.a.count("heartbeat");
    assert!((119..=120).contains(&hb), "{hb} heartbeats");
    assert_eq!(
        p.a.frames.last(),
        Some(&Message::Heartbeat { seq: 1 }),
        "heartbeats carry the last seq sent"
    );
}

#[test]
fn other_frames_postpone_the_heartbeat() {
    let start = Instant::now();
    let mut s = session_after_hello(8, start);
    let t = start + Duration::from_millis(700);
    s.set_exports(set([summary("aws", "default", "web", 1, 1)]), t)
        .unwrap();
    assert_eq!(sent(&mut s)[0].kind(), "snapshot");
    // Next heartbeat is due 1 s after the snapshot, not after the hello.
    assert_eq!(s.poll_timeout(), Some(t + Duration::from_secs(1)));
    s.handle_timeout(start + Duration::from_secs(1));
    assert!(sent(&mut s).is_empty());
}

#[test]
fn received_frames_postpone_the_peer_timeout() {
    let start = Instant::now();
    let mut s = session_after_hello(8, start);
    let t = start + Duration::from_secs(4);
    s.handle_bytes(&frame(&Message::Heartbeat { seq: 0 }), t);
    s.handle_timeout(start + Duration::from_secs(6));
    assert!(!s.is_closed());
    assert_eq!(s.stats().last_heard, Some(t));
}

#[test]
fn heartbeat_with_a_seq_never_received_is_rejected() {
    let now = Instant::now();
    let mut s = session_after_hello(8, now);
    s.handle_bytes(&frame(&Message::Heartbeat { seq: 3 }), now);
    let reason = closed_with(&mut s).1;
    assert!(
        reason.contains("heartbeat says seq 3 was sent last, but seq 0"),
        "{reason}"
    );
}

#[test]
fn handshake_must_finish_within_the_peer_timeout() {
    let start = Instant::now();
    let mut s = Session::new(local("aws"), None, cfg(8), start);
    s.handle_timeout(start + Duration::from_secs(5));
    assert_eq!(closed_with(&mut s).0, "timeout");
}
