//! Deterministic tests of the balancer: fixed seeds, explicit `now`.

use std::collections::BTreeMap;

use meshgw_federation::model::Protocol;

use super::*;
use crate::catalog::RemoteCluster;

fn svc() -> ServiceName {
    ServiceName::new("default", "payments")
}

fn ep(id: &str, region: &str, zone: &str) -> LocalEndpoint {
    LocalEndpoint {
        id: id.into(),
        addr: format!("{id}.local:15006"),
        zone: zone.into(),
        region: region.into(),
        healthy: true,
        weight: 1,
        labels: BTreeMap::new(),
        protocol: Protocol::Http,
    }
}

fn remote(cluster: &str, healthy: u32, stale: bool) -> RemoteCluster {
    RemoteCluster {
        cluster: cluster.into(),
        healthy,
        weight: u64::from(healthy),
        zones: Vec::new(),
        stale,
    }
}

fn view(local: Vec<LocalEndpoint>, remote: Vec<RemoteCluster>) -> View {
    let mut v = View::default();
    v.local
        .insert(svc(), local.into_iter().map(Arc::new).collect());
    v.remote.insert(svc(), remote);
    v
}

fn balancer(seed: u64) -> Balancer {
    let here = Here {
        region: "eu".into(),
        zone: "eu-a".into(),
    };
    Balancer::new(here, OutlierPolicy::default(), Some(seed))
}

fn key(p: &Option<Pick>) -> String {
    p.as_ref()
        .map(|p| p.target.key())
        .unwrap_or_else(|| "none".into())
}

#[test]
fn prefers_same_zone_then_same_region_then_any_local() {
    let now = Instant::now();
    let far = ep("far", "us", "us-a");
    let region = ep("region", "eu", "eu-b");
    let zone = ep("zone", "eu", "eu-a");
    for seed in 0..20 {
        let b = balancer(seed);
        let all = view(vec![far.clone(), region.clone(), zone.clone()], vec![]);
        assert_eq!(key(&b.choose(&all, &svc(), now, &[])), "local/zone");
        let no_zone = view(vec![far.clone(), region.clone()], vec![]);
        assert_eq!(key(&b.choose(&no_zone, &svc(), now, &[])), "local/region");
        let only_far = view(vec![far.clone()], vec![remote("b", 3, false)]);
        assert_eq!(key(&b.choose(&only_far, &svc(), now, &[])), "local/far");
    }
}

#[test]
fn unhealthy_and_excluded_endpoints_are_skipped() {
    let now = Instant::now();
    let mut sick = ep("sick", "eu", "eu-a");
    sick.healthy = false;
    let v = view(vec![sick, ep("ok", "us", "us-a")], vec![]);
    let b = balancer(1);
    assert_eq!(key(&b.choose(&v, &svc(), now, &[])), "local/ok");
    assert_eq!(
        key(&b.choose(&v, &svc(), now, &["local/ok".into()])),
        "none"
    );
}

#[test]
fn p2c_prefers_the_endpoint_with_fewer_requests_in_flight() {
    let now = Instant::now();
    let v = view(vec![ep("a", "eu", "eu-a"), ep("b", "eu", "eu-a")], vec![]);
    let b = balancer(7);
    // With two endpoints p2c always compares both: picks alternate as each
    // held guard makes its endpoint the busier one.
    let first = b.choose(&v, &svc(), now, &[]).unwrap();
    let second = b.choose(&v, &svc(), now, &[]).unwrap();
    assert_ne!(first.target.key(), second.target.key());
    let busy = first.target.clone();
    let third = b.choose(&v, &svc(), now, &[]).unwrap();
    assert_eq!(
        b.in_flight(&svc(), &busy) + b.in_flight(&svc(), &second.target),
        3
    );
    drop((second, third));
    // Only `first` is held now: the other endpoint is chosen every time.
    for _ in 0..10 {
        let p = b.choose(&v, &svc(), now, &[]).unwrap();
        assert_ne!(p.target.key(), busy.key());
    }
    drop(first);
    assert_eq!(b.in_flight(&svc(), &busy), 0);
}

#[test]
fn weight_breaks_ties() {
    let now = Instant::now();
    let mut heavy = ep("heavy", "eu", "eu-a");
    heavy.weight = 5;
    let v = view(vec![ep("light", "eu", "eu-a"), heavy], vec![]);
    for seed in 0..20 {
        let b = balancer(seed);
        assert_eq!(key(&b.choose(&v, &svc(), now, &[])), "local/heavy");
    }
}

#[test]
fn three_failures_eject_for_ten_seconds_and_calls_spill_to_another_cluster() {
    let t0 = Instant::now();
    let local = ep("a", "eu", "eu-a");
    let v = view(vec![local.clone()], vec![remote("b", 2, false)]);
    let b = balancer(3);
    let target = Target::Local(Arc::new(local));
    b.report(&svc(), &target, false, t0);
    b.report(&svc(), &target, false, t0);
    assert_eq!(key(&b.choose(&v, &svc(), t0, &[])), "local/a");
    b.report(&svc(), &target, false, t0);
    assert_eq!(key(&b.choose(&v, &svc(), t0, &[])), "cluster/b");
    let almost = t0 + Duration::from_millis(9_999);
    assert_eq!(key(&b.choose(&v, &svc(), almost, &[])), "cluster/b");
    let back = t0 + Duration::from_secs(10);
    assert_eq!(key(&b.choose(&v, &svc(), back, &[])), "local/a");
}

#[test]
fn a_success_resets_the_failure_count() {
    let t0 = Instant::now();
    let local = ep("a", "eu", "eu-a");
    let v = view(vec![local.clone()], vec![remote("b", 2, false)]);
    let b = balancer(3);
    let target = Target::Local(Arc::new(local));
    for ok in [false, false, true, false, false] {
        b.report(&svc(), &target, ok, t0);
    }
    assert_eq!(key(&b.choose(&v, &svc(), t0, &[])), "local/a");
}

#[test]
fn an_ejected_endpoint_is_a_last_resort() {
    let t0 = Instant::now();
    let local = ep("a", "eu", "eu-a");
    let v = view(vec![local.clone()], vec![]);
    let b = balancer(3);
    for _ in 0..3 {
        b.report(&svc(), &Target::Local(Arc::new(local.clone())), false, t0);
    }
    assert_eq!(key(&b.choose(&v, &svc(), t0, &[])), "local/a");
}

#[test]
fn remote_clusters_rank_by_rtt_unknown_last_and_skip_stale_or_empty() {
    let now = Instant::now();
    let mut v = view(
        vec![],
        vec![
            remote("unknown", 1, false),
            remote("slow", 1, false),
            remote("fast-but-stale", 1, true),
            remote("fast-but-empty", 0, false),
            remote("fast", 1, false),
        ],
    );
    for (c, ms) in [
        ("slow", 80),
        ("fast", 12),
        ("fast-but-stale", 1),
        ("fast-but-empty", 1),
    ] {
        v.peer_rtt.insert(c.into(), Duration::from_millis(ms));
    }
    let b = balancer(0);
    assert_eq!(key(&b.choose(&v, &svc(), now, &[])), "cluster/fast");
    assert_eq!(
        key(&b.choose(&v, &svc(), now, &["cluster/fast".into()])),
        "cluster/slow"
    );
    let both = ["cluster/fast".to_string(), "cluster/slow".to_string()];
    assert_eq!(key(&b.choose(&v, &svc(), now, &both)), "cluster/unknown");
    for _ in 0..3 {
        b.report(
            &svc(),
            &Target::ViaGateway {
                cluster: "fast".into(),
            },
            false,
            now,
        );
    }
    assert_eq!(key(&b.choose(&v, &svc(), now, &[])), "cluster/slow");
}

#[test]
fn nothing_healthy_anywhere_is_none() {
    let now = Instant::now();
    let v = view(vec![], vec![remote("b", 1, true)]);
    assert!(balancer(0).choose(&v, &svc(), now, &[]).is_none());
    assert!(
        balancer(0)
            .choose(&View::default(), &svc(), now, &[])
            .is_none()
    );
}

#[test]
fn targets_the_catalog_drops_are_forgotten_unless_in_flight() {
    let now = Instant::now();
    let b = balancer(7);
    let mut v = view(
        vec![ep("a", "eu", "eu-a"), ep("b", "eu", "eu-a")],
        vec![remote("west", 1, false)],
    );
    v.revision = 1;
    let held = b.choose(&v, &svc(), now, &[]).unwrap();
    let other = if held.target.key() == "local/a" {
        "local/b"
    } else {
        "local/a"
    };
    let west = Target::ViaGateway {
        cluster: "west".into(),
    };
    b.report(&svc(), &west, false, now);
    {
        let inner = b.inner.lock().unwrap();
        assert!(inner.services[&svc()].clusters.contains_key("west"));
    }
    // Revision 2 lists neither instance nor the remote cluster.
    let mut gone = view(vec![ep("c", "eu", "eu-a")], vec![]);
    gone.revision = 2;
    let _ = b.choose(&gone, &svc(), now, &[]);
    {
        let inner = b.inner.lock().unwrap();
        let per = &inner.services[&svc()];
        let keys: Vec<String> = per.load.keys().map(|id| format!("local/{id}")).collect();
        assert!(keys.contains(&held.target.key()), "{keys:?}");
        assert!(!keys.iter().any(|k| k == other), "{keys:?}");
        assert!(
            per.local.is_empty() && per.clusters.is_empty(),
            "{:?} {:?}",
            per.local,
            per.clusters
        );
    }
    // The request in flight ends: the next revision forgets it too.
    drop(held);
    gone.revision = 3;
    let _ = b.choose(&gone, &svc(), now, &[]);
    let inner = b.inner.lock().unwrap();
    let keys: Vec<&String> = inner.services[&svc()].load.keys().collect();
    assert_eq!(keys, vec!["c"]);
}

#[test]
fn an_ejected_remote_cluster_is_a_last_resort_after_ejected_locals() {
    let t0 = Instant::now();
    let mut v = view(vec![], vec![remote("b", 1, false), remote("c", 1, false)]);
    v.peer_rtt.insert("b".into(), Duration::from_millis(5));
    v.peer_rtt.insert("c".into(), Duration::from_millis(50));
    let b = balancer(1);
    let cluster = |c: &str| Target::ViaGateway { cluster: c.into() };
    for _ in 0..3 {
        b.report(&svc(), &cluster("b"), false, t0);
    }
    assert_eq!(key(&b.choose(&v, &svc(), t0, &[])), "cluster/c");
    for _ in 0..3 {
        b.report(&svc(), &cluster("c"), false, t0);
    }
    // Both ejected: still the nearest, rather than no target at all.
    assert_eq!(key(&b.choose(&v, &svc(), t0, &[])), "cluster/b");
    // An ejected local instance comes before an ejected remote cluster.
    let local = ep("a", "eu", "eu-a");
    let v = View {
        local: [(svc(), vec![Arc::new(local.clone())])]
            .into_iter()
            .collect(),
        ..v
    };
    for _ in 0..3 {
        b.report(&svc(), &Target::Local(Arc::new(local.clone())), false, t0);
    }
    assert_eq!(key(&b.choose(&v, &svc(), t0, &[])), "local/a");
}

#[test]
fn five_5xx_in_a_row_eject_an_instance_until_the_window_ends() {
    let t0 = Instant::now();
    let (bad, good) = (ep("bad", "eu", "eu-a"), ep("good", "eu", "eu-a"));
    let v = view(vec![bad.clone(), good], vec![]);
    let b = balancer(7);
    let bad = Target::Local(Arc::new(bad));
    for status in [500, 503, 502, 504] {
        b.report_response(&svc(), &bad, status, t0);
        b.report(&svc(), &bad, true, t0); // the pooled connection "connects"
    }
    let picks = |b: &Balancer, at| {
        (0..40)
            .filter(|_| key(&b.choose(&v, &svc(), at, &[])) == "local/bad")
            .count()
    };
    assert!(picks(&b, t0) > 0, "four 5xx do not eject");
    b.report_response(&svc(), &bad, 500, t0);
    assert_eq!(picks(&b, t0), 0, "the fifth ejects");
    assert!(
        picks(&b, t0 + Duration::from_secs(10)) > 0,
        "back after 10 s"
    );
    // An answer below 500 in between resets the count.
    let b = balancer(7);
    for status in [500, 500, 500, 500, 404, 500] {
        b.report_response(&svc(), &bad, status, t0);
    }
    assert!(picks(&b, t0) > 0);
}
