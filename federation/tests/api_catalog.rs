//! Catalog API over a real server, client and EmbeddedStore: registration,
//! health, leases, validation, and the service and peer listings.

mod api_support;

use std::sync::Arc;
use std::time::Duration;

use api_support::*;
use meshgw_federation::api::{PeerStatusSource, PeerView, pb};
use meshgw_federation::model::{Health, ImportRecord, Instance, ServiceName, ServiceSummary};
use meshgw_federation::store::CatalogStore;
use tonic::Code;

#[tokio::test]
async fn register_fills_defaults_and_lists_healthy() {
    let (store, _dir) = embedded().await;
    let store = Arc::new(store);
    let mut h = Harness::start(store.clone()).await;

    let resp = register(&mut h.client, instance("payments", "", 8443), 0).await;
    assert!(!resp.instance_id.is_empty(), "an id is generated");
    assert_ne!(resp.lease_id, 0);
    assert_eq!(resp.ttl_seconds, 10, "default TTL");

    let key = keys().instance(&ServiceName::new("default", "payments"), &resp.instance_id);
    let kv = store.get(&key).await.unwrap().expect("instance stored");
    assert_eq!(kv.lease, resp.lease_id, "attached to its lease");
    assert_eq!(kv.mod_revision, resp.revision);
    let stored: Instance = serde_json::from_slice(&kv.value).unwrap();
    assert_eq!(
        stored.locality,
        local(),
        "cluster, region and zone from the gateway"
    );
    assert_eq!((stored.health, stored.weight), (Health::Healthy, 1));

    let view = local_view(&mut h.client, "payments").await.expect("listed");
    assert_eq!(
        (view.cluster.as_str(), view.healthy, view.total),
        ("local", 1, 1)
    );
    assert_eq!(view.zones, ["z1"]);
    assert!(!view.stale);
    h.stop().await.unwrap();
}

#[tokio::test]
async fn set_health_updates_keeps_lease_and_rejects_unknown() {
    let (store, _dir) = embedded().await;
    let store = Arc::new(store);
    let mut h = Harness::start(store.clone()).await;
    let reg = register(&mut h.client, instance("payments", "p-1", 8443), 30).await;

    let set = |healthy| pb::SetHealthRequest {
        namespace: "default".into(),
        service: "payments".into(),
        instance_id: "p-1".into(),
        healthy,
    };
    let rev = h
        .client
        .set_health(set(false))
        .await
        .unwrap()
        .into_inner()
        .revision;
    assert!(rev > reg.revision);
    let view = local_view(&mut h.client, "payments").await.unwrap();
    assert_eq!((view.healthy, view.total), (0, 1));
    let kv = store
        .get(&keys().instance(&ServiceName::new("default", "payments"), "p-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kv.lease, reg.lease_id, "SetHealth keeps the lease");

    // Unchanged health is not rewritten.
    let again = h
        .client
        .set_health(set(false))
        .await
        .unwrap()
        .into_inner()
        .revision;
    assert_eq!(again, rev);
    h.client.set_health(set(true)).await.unwrap();
    assert_eq!(
        local_view(&mut h.client, "payments").await.unwrap().healthy,
        1
    );

    let mut unknown = set(true);
    unknown.instance_id = "nope".into();
    let err = h.client.set_health(unknown).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(
        err.message().contains("register it again"),
        "{}",
        err.message()
    );
    h.stop().await.unwrap();
}

#[tokio::test]
async fn bad_requests_name_the_field() {
    let (store, _dir) = embedded().await;
    let mut h = Harness::start(Arc::new(store)).await;
    type Edit = fn(&mut pb::Instance);
    let cases: [(&str, Edit); 5] = [
        ("instance.service.name", |i| {
            i.service.as_mut().unwrap().name.clear()
        }),
        ("instance.service.namespace", |i| {
            i.service.as_mut().unwrap().namespace = "Bad_NS".into()
        }),
        ("instance.port", |i| i.port = 0),
        ("instance.address", |i| i.address.clear()),
        ("instance.locality.cluster", |i| {
            i.locality = Some(pb::Locality {
                cluster: "elsewhere".into(),
                ..Default::default()
            })
        }),
    ];
    for (field, edit) in cases {
        let mut inst = instance("payments", "", 8443);
        edit(&mut inst);
        let err = h
            .client
            .register(pb::RegisterRequest {
                instance: Some(inst),
                ttl_seconds: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }
    let err = h
        .client
        .register(pb::RegisterRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        local_view(&mut h.client, "payments").await.is_none(),
        "nothing was stored"
    );
    h.stop().await.unwrap();
}

#[tokio::test]
async fn unrenewed_lease_expires_and_keep_alive_keeps_it() {
    let (store, _dir) = embedded().await;
    let mut h = Harness::start(Arc::new(store)).await;
    let lapsed = register(&mut h.client, instance("lapsed", "l-1", 80), 2).await;
    let kept = register(&mut h.client, instance("kept", "k-1", 80), 1).await;
    assert_eq!(
        (lapsed.ttl_seconds, kept.ttl_seconds),
        (2, 2),
        "TTL clamped to 2 s"
    );

    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut renewals = h
        .client
        .keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let started = tokio::time::Instant::now();
    // Renew `kept` twice a second until `lapsed` is gone, then for one more TTL.
    let mut gone_at = None;
    while gone_at.is_none_or(|t| started.elapsed() < t + Duration::from_secs(2)) {
        assert!(
            started.elapsed() < DEADLINE,
            "lease of `lapsed` never expired"
        );
        tx.send(pb::KeepAliveRequest {
            lease_id: kept.lease_id,
        })
        .await
        .unwrap();
        let r = next(&mut renewals).await.expect("renewed");
        assert_eq!((r.lease_id, r.ttl_seconds), (kept.lease_id, 2));
        assert!(
            local_view(&mut h.client, "kept").await.is_some(),
            "kept instance vanished"
        );
        if gone_at.is_none() && local_view(&mut h.client, "lapsed").await.is_none() {
            gone_at = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Renewing an expired lease ends the stream with NOT_FOUND.
    tx.send(pb::KeepAliveRequest {
        lease_id: lapsed.lease_id,
    })
    .await
    .unwrap();
    let err = next(&mut renewals).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        err.message().contains("register again"),
        "{}",
        err.message()
    );
    h.stop().await.unwrap();
}

#[tokio::test]
async fn deregister_revokes_lease_and_is_idempotent() {
    let (store, _dir) = embedded().await;
    let store = Arc::new(store);
    let mut h = Harness::start(store.clone()).await;
    let reg = register(&mut h.client, instance("payments", "p-1", 8443), 30).await;
    let req = pb::DeregisterRequest {
        namespace: "default".into(),
        service: "payments".into(),
        instance_id: "p-1".into(),
        lease_id: reg.lease_id,
    };
    let first = h.client.deregister(req.clone()).await.unwrap().into_inner();
    assert!(first.removed);
    assert!(local_view(&mut h.client, "payments").await.is_none());
    let err = store.keep_alive(reg.lease_id).await.unwrap_err();
    assert!(
        matches!(err, meshgw_federation::store::StoreError::LeaseNotFound(_)),
        "{err}"
    );
    let second = h.client.deregister(req).await.unwrap().into_inner();
    assert!(!second.removed);
    h.stop().await.unwrap();
}

struct Peers;

impl PeerStatusSource for Peers {
    fn peers(&self) -> Vec<PeerView> {
        vec![PeerView {
            name: "gcp".into(),
            connected: true,
            address: "10.1.0.1:7443".into(),
            rtt_ms: 12.5,
            ..Default::default()
        }]
    }
}

async fn put_import(store: &dyn CatalogStore, peer: &str, name: &str, stale: Option<u64>) {
    let svc = ServiceName::new("default", name);
    let rec = ImportRecord {
        summary: ServiceSummary {
            healthy: 3,
            total: 4,
            weight: 3,
            zones: ["eu-1a".to_string()].into(),
            ..ServiceSummary::from_instances(&svc, peer, 5, [])
        },
        updated_at_ms: 1_000,
        stale_since_ms: stale,
    };
    let key = keys().import(peer, &svc);
    store
        .put(&key, serde_json::to_vec(&rec).unwrap(), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn listings_merge_imports_and_peer_state() {
    let (store, _dir) = embedded().await;
    let store = Arc::new(store);
    let mut h = Harness::start_with(store.clone(), Arc::new(Peers), None).await;
    register(&mut h.client, instance("payments", "p-1", 8443), 30).await;
    put_import(store.as_ref(), "gcp", "payments", None).await;
    put_import(store.as_ref(), "gcp", "orders", Some(2_000)).await;
    put_import(store.as_ref(), "old", "orders", Some(3_000)).await;
    // A session marker under the same prefix is not an import.
    store
        .put(&keys().peer_session("gcp", "gw-1"), b"x".to_vec(), None)
        .await
        .unwrap();

    let services = h
        .client
        .list_services(pb::ListServicesRequest {})
        .await
        .unwrap()
        .into_inner()
        .services;
    let names: Vec<_> = services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["orders", "payments"]);
    let payments: Vec<_> = services[1]
        .clusters
        .iter()
        .map(|c| (c.cluster.as_str(), c.local))
        .collect();
    assert_eq!(payments, [("local", true), ("gcp", false)], "local first");
    let gcp = &services[1].clusters[1];
    assert_eq!(
        (gcp.healthy, gcp.total, gcp.stale, gcp.updated_at_ms),
        (3, 4, false, 1_000)
    );
    let stale = &services[0].clusters[0];
    assert_eq!(
        (stale.cluster.as_str(), stale.stale, stale.stale_since_ms),
        ("gcp", true, 2_000)
    );

    let peers = h
        .client
        .list_peers(pb::ListPeersRequest {})
        .await
        .unwrap()
        .into_inner()
        .peers;
    let summary: Vec<_> = peers
        .iter()
        .map(|p| (p.name.as_str(), p.connected, p.imports, p.stale_imports))
        .collect();
    assert_eq!(summary, [("gcp", true, 2, 1), ("old", false, 1, 1)]);
    assert_eq!(peers[0].rtt_ms, 12.5);
    assert!(peers[1].last_error.contains("not a configured peer"));
    h.stop().await.unwrap();
}
