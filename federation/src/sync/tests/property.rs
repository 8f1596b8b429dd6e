//! Randomised (fixed-seed) convergence, reconnect, and bounded fuzz-style tests.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::pair::{Pair, Side};
use super::*;
use crate::sync::{CloseReason, Decoder};

const NAMES: [&str; 8] = [
    "web", "db", "api", "auth", "cart", "mail", "search", "queue",
];

/// Returns a random export set of `cluster` drawn from a small name pool.
fn random_set(rng: &mut StdRng, cluster: &str, revision: i64) -> ExportSet {
    let mut out = Vec::new();
    for n in NAMES {
        if rng.random_bool(0.5) {
            let ns = if rng.random_bool(0.5) {
                "default"
            } else {
                "prod"
            };
            out.push(summary(cluster, ns, n, rng.random_range(0..3), revision));
        }
    }
    set(out)
}

/// Asserts `imports` says the same as `exports`, revisions aside.
fn assert_converged(imports: &ExportSet, exports: &ExportSet, seed: u64) {
    assert_eq!(
        imports.keys().collect::<Vec<_>>(),
        exports.keys().collect::<Vec<_>>(),
        "seed {seed}"
    );
    for (k, s) in exports {
        assert!(imports[k].same_content(s), "seed {seed}: {k}");
    }
}

fn export(side: &mut Side, set: ExportSet, now: Instant) {
    side.session
        .set_exports(set, now)
        .expect("valid export set");
}

#[test]
fn random_export_histories_converge_on_both_sides() {
    for seed in 0..40 {
        let mut rng = StdRng::seed_from_u64(seed);
        let window = rng.random_range(1..5);
        let mut p = Pair::new(window);
        p.chunk = [1, 3, 17, usize::MAX][rng.random_range(0..4)];
        let (mut last_a, mut last_b) = (None, None);
        for step in 0..150i64 {
            match rng.random_range(0..10) {
                0..=3 => {
                    let s = random_set(&mut rng, "aws", step);
                    export(&mut p.a, s.clone(), p.now);
                    last_a = Some(s);
                }
                4 => {
                    let s = random_set(&mut rng, "gcp", step);
                    export(&mut p.b, s.clone(), p.now);
                    last_b = Some(s);
                }
                5..=6 => _ = p.deliver_a_to_b(),
                7..=8 => _ = p.deliver_b_to_a(),
                _ => p.advance(Duration::from_millis(rng.random_range(0..800))),
            }
            p.collect();
            for side in [&p.a, &p.b] {
                let st = side.session.stats();
                assert!(st.unacked <= window as u64, "seed {seed}: window overrun");
                assert!(!side.session.is_closed(), "seed {seed}: {:?}", side.events);
            }
        }
        p.drive();
        if let Some(s) = &last_a {
            assert_converged(&p.b.imports, s, seed);
        }
        if let Some(s) = &last_b {
            assert_converged(&p.a.imports, s, seed);
        }
        let st = p.a.session.stats();
        assert_eq!(st.last_seq_sent, st.last_seq_acked, "seed {seed}");
    }
}

#[test]
fn reconnect_snapshot_replaces_previous_imports() {
    let mut p = Pair::new(8);
    p.export_a(set([
        summary("aws", "default", "web", 2, 1),
        summary("aws", "data", "db", 1, 1),
    ]));
    p.drive();
    assert_eq!(p.b.imports.len(), 2);
    let kept = std::mem::take(&mut p.b.imports);

    // The tunnel breaks; db stops being exported meanwhile. New sessions:
    let now = p.now + Duration::from_secs(30);
    let a = Session::new(local("aws"), Some("gcp".into()), cfg(8), now);
    let b = Session::new(local("gcp"), None, cfg(8), now);
    let mut p = Pair::with_sessions(a, b, now);
    p.b.imports = kept; // what b's store still holds from the old session
    p.export_a(set([summary("aws", "default", "web", 3, 2)]));
    p.drive();
    assert_eq!(p.b.imports, set([summary("aws", "default", "web", 3, 2)]));
    assert!(matches!(p.b.events[1], SessionEvent::ImportSnapshot(_)));
}

#[test]
fn random_bytes_never_panic_the_decoder_or_a_session() {
    let mut rng = StdRng::seed_from_u64(7);
    let start = Instant::now();
    let valid = frame(&Message::Snapshot {
        seq: 1,
        services: vec![summary("gcp", "default", "web", 1, 1)],
    });
    for i in 0..3000 {
        let mut input: Vec<u8> = if i % 2 == 0 {
            (0..rng.random_range(0..64)).map(|_| rng.random()).collect()
        } else {
            // Mutate a valid frame so the JSON layer is reached.
            let mut v = valid.clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..v.len());
                v[at] = rng.random();
            }
            v
        };
        input.truncate(rng.random_range(0..=input.len()));
        let mut d = Decoder::new();
        d.push(&input);
        while let Ok(Some(_)) = d.next() {}

        let mut s = session_after_hello(4, start);
        for part in input.chunks(rng.random_range(1..9)) {
            s.handle_bytes(part, start);
        }
        sent(&mut s);
        if s.is_closed() {
            let closed = events(&mut s);
            assert!(matches!(
                closed.last(),
                Some(SessionEvent::Closed(
                    CloseReason::ProtocolError(_) | CloseReason::PeerSentError { .. }
                ))
            ));
        }
    }
}
