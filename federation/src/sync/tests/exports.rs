//! Snapshots, deltas, acks and the flow-control window.

use std::time::Instant;

use super::pair::Pair;
use super::*;
use crate::sync::ExportError;

fn web(healthy: u32, rev: i64) -> ServiceSummary {
    summary("aws", "default", "web", healthy, rev)
}

fn db(healthy: u32, rev: i64) -> ServiceSummary {
    summary("aws", "data", "db", healthy, rev)
}

#[test]
fn exports_set_before_hello_go_out_as_snapshot_after_it() {
    let mut p = Pair::new(8);
    p.export_a(set([web(2, 1)]));
    assert_eq!(p.a.count("snapshot"), 0, "not before the peer's hello");
    p.drive();
    assert_eq!(p.a.count("snapshot"), 1);
    assert_eq!(p.b.imports, set([web(2, 1)]));
    assert!(p.a.events.contains(&SessionEvent::Acked { seq: 1 }));
    let st = p.a.session.stats();
    assert_eq!((st.last_seq_sent, st.last_seq_acked, st.unacked), (1, 1, 0));
    assert_eq!(p.b.session.stats().last_seq_received, 1);
}

#[test]
fn snapshot_then_delta_upserts_and_removals() {
    let mut p = Pair::new(8);
    p.drive();
    p.export_a(set([web(2, 1), db(1, 1)]));
    p.drive();
    p.export_a(set([web(3, 2), db(1, 1)]));
    p.drive();
    let Some(Message::Delta {
        seq,
        upserts,
        removals,
    }) = p.a.frames.last()
    else {
        panic!("{:?}", p.a.frames)
    };
    assert_eq!(
        (*seq, upserts.as_slice(), removals.len()),
        (2, &[web(3, 2)][..], 0)
    );
    assert_eq!(p.b.imports, set([web(3, 2), db(1, 1)]));

    p.export_a(set([web(3, 2)]));
    p.drive();
    assert_eq!(
        p.b.events.last(),
        Some(&SessionEvent::ImportDelta {
            upserts: vec![],
            removals: vec![ServiceName::new("data", "db")],
        })
    );
    assert_eq!(p.b.imports, set([web(3, 2)]));
    assert_eq!(p.a.session.stats().last_seq_acked, 3);
}

#[test]
fn identical_or_revision_only_re_export_sends_nothing() {
    let mut p = Pair::new(8);
    p.drive();
    p.export_a(set([web(2, 1)]));
    p.drive();
    let frames = p.a.frames.len();
    p.export_a(set([web(2, 1)]));
    p.export_a(set([web(2, 7)]));
    p.drive();
    assert_eq!(p.a.frames.len(), frames);
    assert!(!p.a.session.stats().exports_pending);
}

#[test]
fn full_window_coalesces_changes_into_one_delta() {
    let mut p = Pair::new(2);
    p.drive();
    p.export_a(set([web(1, 1)]));
    p.export_a(set([web(2, 2)]));
    // Window of 2 is now full: these wait, whatever happens in between.
    for i in 3..20 {
        p.export_a(set([web(i, i64::from(i)), db(i, 1)]));
    }
    p.export_a(set([web(30, 30)]));
    assert_eq!((p.a.count("snapshot"), p.a.count("delta")), (1, 1));
    assert!(p.a.session.stats().exports_pending);

    p.deliver_a_to_b(); // b applies seq 1 and 2 and acks both
    assert_eq!(p.a.count("delta"), 1, "acks not delivered yet");
    p.deliver_b_to_a();
    assert_eq!(p.a.count("delta"), 2, "one coalesced delta after the acks");
    let Some(Message::Delta {
        seq: 3,
        upserts,
        removals,
    }) = p.a.frames.last()
    else {
        panic!("{:?}", p.a.frames.last())
    };
    assert_eq!(
        (upserts.as_slice(), removals.len()),
        (&[web(30, 30)][..], 0)
    );
    p.drive();
    assert_eq!(p.b.imports, set([web(30, 30)]));
    assert!(!p.a.session.stats().exports_pending);
}

#[test]
fn byte_at_a_time_delivery_decodes_everything() {
    let mut p = Pair::new(4);
    p.chunk = 1;
    p.export_a(set([web(1, 1), db(2, 1)]));
    p.drive();
    p.export_a(set([web(5, 2)]));
    p.drive();
    assert!(p.a.session.is_established() && p.b.session.is_established());
    assert_eq!(p.b.imports, set([web(5, 2)]));
    assert_eq!(p.a.session.stats().last_seq_acked, 2);
    assert_eq!(p.b.session.stats().frames_in, 3);
}

#[test]
fn replayed_seq_and_delta_before_snapshot_are_rejected() {
    let now = Instant::now();
    let mut s = session_after_hello(8, now);
    let delta = |seq| Message::Delta {
        seq,
        upserts: vec![summary("gcp", "default", "web", 1, 1)],
        removals: vec![],
    };
    s.handle_bytes(&frame(&delta(1)), now);
    assert!(
        closed_with(&mut s)
            .1
            .contains("delta seq 1 before any snapshot")
    );

    let mut s = session_after_hello(8, now);
    let snap = Message::Snapshot {
        seq: 4,
        services: vec![],
    };
    s.handle_bytes(&frame(&snap), now);
    s.handle_bytes(&frame(&delta(4)), now);
    let reason = closed_with(&mut s).1;
    assert!(
        reason.contains("delta seq 4 does not follow seq 4"),
        "{reason}"
    );
}

#[test]
fn acks_for_unsent_or_repeated_seqs_are_rejected() {
    let now = Instant::now();
    let mut s = session_after_hello(8, now);
    s.handle_bytes(&frame(&Message::Ack { seq: 1 }), now);
    assert!(
        closed_with(&mut s)
            .1
            .contains("ack for seq 1, but the last seq sent is 0")
    );

    let mut s = session_after_hello(8, now);
    s.set_exports(set([web(1, 1)]), now).unwrap();
    s.handle_bytes(&frame(&Message::Ack { seq: 1 }), now);
    s.handle_bytes(&frame(&Message::Ack { seq: 1 }), now);
    assert!(closed_with(&mut s).1.contains("ack for seq 1 repeats"));
}

#[test]
fn invalid_export_sets_are_refused_whole() {
    let now = Instant::now();
    let mut s = session_after_hello(8, now);
    let foreign = set([web(1, 1), summary("gcp", "default", "api", 1, 1)]);
    let e = s.set_exports(foreign, now).unwrap_err();
    assert_eq!(
        e.to_string(),
        "export of default/api names source cluster `gcp`, but this gateway is cluster `aws`"
    );
    let mut mis = set([web(1, 1)]);
    mis.insert(ServiceName::new("default", "other"), web(1, 1));
    assert!(matches!(
        s.set_exports(mis, now),
        Err(ExportError::KeyMismatch { .. })
    ));
    let bad = set([summary("aws", "Default", "web", 1, 1)]);
    assert!(matches!(
        s.set_exports(bad, now),
        Err(ExportError::InvalidName(_))
    ));
    assert!(sent(&mut s).is_empty(), "nothing was sent for refused sets");
    assert!(!s.stats().exports_pending);
}
