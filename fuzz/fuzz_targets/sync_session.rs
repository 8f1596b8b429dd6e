//! A sync session that has accepted a valid Hello (and queued a snapshot) is
//! fed arbitrary bytes in input-sized chunks, with virtual time advancing
//! between chunks: it must never panic and must keep its invariants.
#![no_main]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use meshgw_federation::model::{ServiceName, ServiceSummary};
use meshgw_federation::sync::{
    LocalInfo, Message, PROTOCOL_VERSION, Session, SessionConfig, SessionEvent, encode,
};

fn summary(cluster: &str) -> ServiceSummary {
    ServiceSummary {
        service: ServiceName::new("default", "web"),
        source_cluster: cluster.into(),
        healthy: 1,
        total: 1,
        weight: 1,
        zones: Default::default(),
        ports: Default::default(),
        subsets: Vec::new(),
        revision: 1,
    }
}

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let local = LocalInfo {
        cluster: "aws".into(),
        cloud: "aws".into(),
        region: "us-east-1".into(),
        zones: vec!["us-east-1a".into()],
        replica: "gw-0".into(),
    };
    let cfg = SessionConfig {
        max_unacked: 2,
        ..SessionConfig::default()
    };
    let mut s = Session::new(local, Some("gcp".into()), cfg, start);
    let hello = Message::Hello {
        protocol_version: PROTOCOL_VERSION,
        cluster: "gcp".into(),
        cloud: "gcp".into(),
        region: "europe-west1".into(),
        zones: vec![],
        replica: "gw-0".into(),
        capabilities: vec![],
    };
    s.handle_bytes(&encode(&hello).expect("hello encodes"), start);
    let exports: BTreeMap<_, _> = [(ServiceName::new("default", "web"), summary("aws"))].into();
    s.set_exports(exports, start).expect("valid exports");
    assert!(s.is_established());

    let chunk = data.first().map_or(1, |b| usize::from(*b % 16) + 1);
    let mut closed_events = 0;
    for (i, part) in data.chunks(chunk).enumerate() {
        let now = start + Duration::from_millis(i as u64 * 250);
        s.handle_bytes(part, now);
        if s.poll_timeout().is_some_and(|t| t <= now) {
            s.handle_timeout(now);
        }
        while s.poll_transmit().is_some() {}
        while let Some(e) = s.poll_event() {
            if matches!(e, SessionEvent::Closed(_)) {
                closed_events += 1;
            }
        }
        let st = s.stats();
        assert!(st.unacked <= 2 && st.last_seq_acked <= st.last_seq_sent);
        assert_eq!(s.is_closed(), closed_events == 1);
    }
    assert!(closed_events <= 1);
});
