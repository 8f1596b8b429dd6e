//! The whole sidecar against a real catalog API (TLS, embedded store):
//! it registers, turns healthy once the app answers, reports ready, and
//! deregisters on shutdown.

use std::sync::Arc;
use std::time::Duration;

use meshgw_federation::api::{CatalogApi, NoPeers, serve};
use meshgw_federation::model::{Health, Instance, Keys, Locality};
use meshgw_federation::store::CatalogStore;
use meshgw_federation::store::embedded::EmbeddedStore;
use meshgw_identity::{
    Identity, SpiffeClientVerifier, SpiffeMatch, TrustEntry, issue_gateway, load_certs,
    server_config,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Pki, closed_port, config};
use crate::sidecar::run_until;

async fn instances(store: &dyn CatalogStore) -> Vec<Instance> {
    let (kvs, _) = store.range("/meshgw/instances/").await.unwrap();
    kvs.iter()
        .map(|kv| serde_json::from_slice(&kv.value).unwrap())
        .collect()
}

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return String::new();
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out
}

#[tokio::test]
async fn registers_turns_healthy_and_deregisters_on_shutdown() {
    let pki = Pki::new("mesh.test");
    let gw = issue_gateway(pki.dir.path(), "a").unwrap();
    let verifier = SpiffeClientVerifier::new(vec![TrustEntry {
        name: "local".into(),
        bundle: load_certs(&pki.root()).unwrap(),
        allowed: SpiffeMatch::TrustDomain("mesh.test".into()),
    }])
    .unwrap();
    let id = Identity::load(&gw.cert, &gw.key).unwrap();
    let tls = server_config(&id, Arc::new(verifier), &[b"h2"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn CatalogStore> = Arc::new(EmbeddedStore::open(dir.path()).await.unwrap());
    let local = Locality {
        cluster: "a".into(),
        region: "a-region".into(),
        zone: "a-zone-a".into(),
    };
    let api = CatalogApi::new(
        store.clone(),
        Keys::new("/meshgw"),
        local,
        Arc::new(NoPeers),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_addr = listener.local_addr().unwrap();
    tokio::spawn(serve(
        api,
        listener,
        Some(Arc::new(tls)),
        std::future::pending(),
    ));

    // The app starts only later: the instance registers unhealthy first.
    let app_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app = app_listener.local_addr().unwrap();
    drop(app_listener);
    let mut cfg = config(&pki, app, "tcp");
    cfg.gateway.api = api_addr.to_string();
    cfg.admin = closed_port().await;
    cfg.health.interval = Duration::from_millis(100);
    cfg.health.timeout = Duration::from_millis(100);
    let admin = cfg.admin;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sidecar = tokio::spawn(run_until(cfg, async move {
        let _ = stopped.await;
    }));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let registered = loop {
        let all = instances(store.as_ref()).await;
        if let Some(i) = all.first() {
            break i.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "never registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(registered.health, Health::Unhealthy, "no app yet");
    assert_eq!(registered.address, "127.0.0.1");
    assert_ne!(registered.port, 0, "the bound inbound port is advertised");
    assert_eq!(registered.locality.zone, "a-zone-a");

    let _app = TcpListener::bind(app).await.unwrap();
    loop {
        let all = instances(store.as_ref()).await;
        if all.first().is_some_and(|i| i.health == Health::Healthy) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never turned healthy: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        let r = get(admin, "/readyz").await;
        if r.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never ready: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = get(admin, "/metrics").await;
    assert!(metrics.contains("meshgw_sidecar_registered 1"), "{metrics}");

    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), sidecar)
        .await
        .expect("the sidecar stops within the drain time")
        .unwrap();
    result.unwrap();
    assert!(instances(store.as_ref()).await.is_empty(), "deregistered");
}
