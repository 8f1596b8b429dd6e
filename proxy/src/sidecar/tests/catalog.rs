//! Tests of the catalog view: delta application in memory, and the Watch
//! driver against a real catalog API on an embedded store.

use std::sync::Arc;
use std::time::Duration;

use meshgw_federation::api::pb;
use meshgw_federation::model::{Protocol, ServiceName};

use crate::catalog::*;

fn inst(svc: &str, id: &str, port: u32, healthy: bool) -> pb::Instance {
    let (ns, name) = svc.split_once('/').unwrap();
    pb::Instance {
        id: id.into(),
        service: Some(pb::ServiceName {
            namespace: ns.into(),
            name: name.into(),
        }),
        address: "10.0.0.1".into(),
        port,
        protocol: pb::Protocol::Http as i32,
        locality: Some(pb::Locality {
            cluster: "a".into(),
            region: "r".into(),
            zone: "z1".into(),
        }),
        labels: [("version".to_string(), "v1".to_string())].into(),
        health: if healthy {
            pb::Health::Healthy
        } else {
            pb::Health::Unhealthy
        } as i32,
        weight: 0,
    }
}

fn import(peer: &str, svc: &str, healthy: u32, stale: bool) -> pb::Import {
    let (ns, name) = svc.split_once('/').unwrap();
    pb::Import {
        peer: peer.into(),
        summary: Some(pb::ServiceSummary {
            service: Some(pb::ServiceName {
                namespace: ns.into(),
                name: name.into(),
            }),
            source_cluster: peer.into(),
            healthy,
            total: healthy,
            weight: u64::from(healthy),
            zones: vec![format!("{peer}-z")],
            ..Default::default()
        }),
        stale,
        ..Default::default()
    }
}

fn svc(s: &str) -> ServiceName {
    ServiceName::parse(s).unwrap()
}

fn snapshot() -> pb::WatchResponse {
    pb::WatchResponse {
        revision: 10,
        reset: true,
        instances_upserted: vec![
            inst("default/echo", "i-2", 9000, true),
            inst("default/echo", "i-1", 9001, false),
            inst("default/web", "w-1", 80, true),
        ],
        imports_upserted: vec![
            import("b", "default/echo", 2, false),
            import("c", "default/echo", 1, true),
        ],
        ..Default::default()
    }
}

#[test]
fn reset_snapshot_builds_the_view() {
    let mut v = View::default();
    v.apply(&snapshot());
    assert_eq!(v.revision, 10);
    let echo = &v.local[&svc("default/echo")];
    assert_eq!(
        echo.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["i-1", "i-2"]
    );
    assert_eq!(echo[0].addr, "10.0.0.1:9001");
    assert!(!echo[0].healthy && echo[1].healthy);
    assert_eq!((echo[1].weight, echo[1].protocol), (1, Protocol::Http));
    assert_eq!(echo[1].labels["version"], "v1");
    assert_eq!(
        (echo[1].zone.as_str(), echo[1].region.as_str()),
        ("z1", "r")
    );
    let remote = &v.remote[&svc("default/echo")];
    assert_eq!(remote.len(), 2);
    assert_eq!(
        (
            remote[0].cluster.as_str(),
            remote[0].healthy,
            remote[0].stale
        ),
        ("b", 2, false)
    );
    assert_eq!(remote[0].zones, ["b-z"]);
    assert!(remote[1].stale);
}

#[test]
fn deltas_upsert_and_remove() {
    let mut v = View::default();
    v.apply(&snapshot());
    v.apply(&pb::WatchResponse {
        revision: 11,
        instances_upserted: vec![
            inst("default/echo", "i-1", 9001, true),
            inst("default/echo", "i-3", 9003, true),
        ],
        instances_removed: vec![pb::InstanceRef {
            service: Some(pb::ServiceName {
                namespace: "default".into(),
                name: "web".into(),
            }),
            id: "w-1".into(),
        }],
        imports_upserted: vec![import("c", "default/echo", 4, false)],
        imports_removed: vec![pb::ImportRef {
            peer: "b".into(),
            service: Some(pb::ServiceName {
                namespace: "default".into(),
                name: "echo".into(),
            }),
        }],
        ..Default::default()
    });
    assert_eq!(v.revision, 11);
    let echo = &v.local[&svc("default/echo")];
    assert_eq!(echo.len(), 3);
    assert!(echo[0].healthy, "i-1 replaced in place");
    assert!(
        !v.local.contains_key(&svc("default/web")),
        "last instance gone: service gone"
    );
    let remote = &v.remote[&svc("default/echo")];
    assert_eq!(remote.len(), 1);
    assert_eq!(
        (
            remote[0].cluster.as_str(),
            remote[0].healthy,
            remote[0].stale
        ),
        ("c", 4, false)
    );
    // Removing what is not there is harmless.
    let before = v.clone();
    v.apply(&pb::WatchResponse {
        revision: 11,
        instances_removed: vec![pb::InstanceRef {
            service: Some(pb::ServiceName {
                namespace: "nope".into(),
                name: "x".into(),
            }),
            id: "x".into(),
        }],
        ..Default::default()
    });
    assert_eq!(v, before);
}

#[test]
fn reset_replaces_everything_but_keeps_rtt_and_skips_bad_entries() {
    let mut v = View::default();
    v.apply(&snapshot());
    v.peer_rtt.insert("b".into(), Duration::from_millis(3));
    let mut bad = inst("default/web", "w-9", 80, true);
    bad.port = 0;
    v.apply(&pb::WatchResponse {
        revision: 20,
        reset: true,
        instances_upserted: vec![bad, inst("default/web", "w-2", 81, true)],
        ..Default::default()
    });
    assert_eq!(v.revision, 20);
    assert!(v.remote.is_empty());
    assert_eq!(v.local.len(), 1);
    assert_eq!(v.local[&svc("default/web")][0].id, "w-2");
    assert_eq!(v.peer_rtt["b"], Duration::from_millis(3));
}

#[test]
fn ipv6_addresses_are_bracketed_and_rtts_need_a_connection() {
    let mut i = inst("default/echo", "i-1", 9000, true);
    i.address = "fd00::1".into();
    let mut v = View::default();
    v.apply(&pb::WatchResponse {
        revision: 1,
        reset: true,
        instances_upserted: vec![i],
        ..Default::default()
    });
    assert_eq!(v.local[&svc("default/echo")][0].addr, "[fd00::1]:9000");
    let peers = [
        pb::PeerView {
            name: "b".into(),
            connected: true,
            rtt_ms: 12.5,
            ..Default::default()
        },
        pb::PeerView {
            name: "c".into(),
            connected: false,
            rtt_ms: 3.0,
            ..Default::default()
        },
    ];
    let rtt = peer_rtts(&peers);
    assert_eq!(rtt.len(), 1);
    assert_eq!(rtt["b"], Duration::from_micros(12_500));
}

mod driver {
    use super::*;
    use meshgw_federation::api::{CatalogApi, NoPeers, client, serve};
    use meshgw_federation::model::{Keys, Locality};
    use meshgw_federation::store::CatalogStore;
    use meshgw_federation::store::embedded::EmbeddedStore;
    use tokio::net::TcpListener;

    async fn wait_for(cat: &mut Catalog, what: &str, f: impl Fn(&View) -> bool) -> Arc<View> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let v = cat.current();
            if f(&v) {
                return v;
            }
            if tokio::time::timeout_at(deadline, cat.changed())
                .await
                .is_err()
            {
                panic!("timed out waiting for {what}; view: {v:#?}");
            }
        }
    }

    fn start(api: &CatalogApi, listener: TcpListener) -> tokio::sync::oneshot::Sender<()> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let api = api.clone();
        tokio::spawn(serve(api, listener, None, async move {
            let _ = stopped.await;
        }));
        stop
    }

    #[tokio::test]
    async fn follows_the_api_and_resumes_after_the_server_returns() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn CatalogStore> = Arc::new(EmbeddedStore::open(dir.path()).await.unwrap());
        let local = Locality {
            cluster: "a".into(),
            region: "r".into(),
            zone: "z".into(),
        };
        let new_api = || {
            CatalogApi::new(
                store.clone(),
                Keys::new("/meshgw"),
                local.clone(),
                Arc::new(NoPeers),
            )
        };
        let api = new_api();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = start(&api, listener);
        let mut c = client::connect(&addr.to_string(), None).await.unwrap();
        c.register(pb::RegisterRequest {
            instance: Some(inst("default/echo", "i-1", 9000, true)),
            ttl_seconds: 60,
        })
        .await
        .unwrap();

        let (mut cat, tx) = Catalog::from_view(View::default());
        let driver = tokio::spawn(run_watch(c.clone(), tx));
        let v = wait_for(&mut cat, "i-1", |v| {
            v.local.contains_key(&svc("default/echo"))
        })
        .await;
        let first = v.revision;
        assert!(first > 0);

        // The gateway goes away; meanwhile the catalog changes underneath.
        let _ = stop.send(());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let keys = Keys::new("/meshgw");
        let key = keys.instance(&svc("default/echo"), "i-1");
        store.delete(&key).await.unwrap();
        // A restarted gateway: a new API over the same store (a stopped
        // API ends every stream it serves, now and later).
        let listener = TcpListener::bind(addr).await.unwrap();
        let _stop = start(&new_api(), listener);

        let v = wait_for(&mut cat, "i-1 removed after resume", |v| v.local.is_empty()).await;
        assert!(v.revision > first, "resumed past {first}: {}", v.revision);
        driver.abort();
    }
}
