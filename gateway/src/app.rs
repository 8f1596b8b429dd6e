//! Wires a gateway together from its config: store, identity, tunnel
//! endpoint, sync sessions, import writers, housekeeping, API and admin.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use meshgw_config::GatewayConfig;
use meshgw_federation::api::{CatalogApi, WritePolicy};
use meshgw_federation::model::{Keys, Locality};
use meshgw_federation::store::CatalogStore;
use meshgw_identity::{Identity, RotatingCert};
use tokio::sync::watch;

use crate::admin::{self, Ready};
use crate::imports::{self, PeerImports};
use crate::metrics::Metrics;
use crate::peers::{PeerRegistry, RegistrySource};
use crate::shared::Shared;
use crate::trust::Trust;
use crate::{exports, forward, housekeeping, rotate, store, trust, tunnel};

/// Runs a gateway until SIGINT or SIGTERM.
pub async fn run(cfg: GatewayConfig) -> Result<()> {
    let cfg = Arc::new(cfg);
    let id = Identity::load(&cfg.tls.cert, &cfg.tls.key)
        .context("loading the gateway certificate (tls.cert, tls.key)")?;
    tracing::info!(cluster = %cfg.cluster.name, spiffe_id = %id.spiffe_id, "starting gateway");
    let store: Arc<dyn CatalogStore> = store::open(&cfg).await?;
    let keys = Keys::new(cfg.store.prefix());
    let replica = format!(
        "{}-{}-{:08x}",
        cfg.cluster.name,
        std::process::id(),
        rand::random::<u32>()
    );

    // One certificate source for every listener and dialer, replaced when
    // tls.cert and tls.key are rotated.
    let cert = RotatingCert::new(&id).context("the gateway certificate (tls.cert, tls.key)")?;
    tokio::spawn(rotate::run(cfg.clone(), cert.clone()));
    // One verifier per use, its bundles reloaded when their files change.
    let trust = Arc::new(Trust::load(&cfg)?);
    tokio::spawn(trust::run(cfg.clone(), trust.clone()));
    let endpoint = tunnel::bind(&cfg, tunnel::tls::server(&cfg, &cert, &trust)?)?;
    let client_cfgs = tunnel::tls::clients(&cfg, &cert, &trust)?;
    let api_listener = tokio::net::TcpListener::bind(cfg.listen.api).await.map_err(|e| {
        anyhow::anyhow!("cannot bind the API on TCP {}: {e}: is another gateway running? set listen.api to a free port", cfg.listen.api)
    })?;
    let admin_listener = admin::bind(cfg.listen.admin).await?;
    let forward_listener = forward::listener::bind(cfg.listen.forward).await?;

    let (exports_tx, exports_rx) = watch::channel(Arc::new(BTreeMap::new()));
    let (instances_tx, instances_rx) = watch::channel(Arc::new(Default::default()));
    let peer_names: Vec<String> = cfg.peers.iter().map(|p| p.name.clone()).collect();
    let imports: BTreeMap<String, PeerImports> = peer_names
        .iter()
        .map(|p| (p.clone(), PeerImports::new()))
        .collect();
    let registry = PeerRegistry::new(peer_names.iter().map(String::as_str));
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        store: store.clone(),
        keys: keys.clone(),
        replica: replica.clone(),
        peers: registry.clone(),
        imports: imports.clone(),
        exports: exports_rx,
        instances: instances_rx,
        endpoint: endpoint.clone(),
        client_cfgs,
        metrics: Metrics::new(&cfg.cluster.name),
        instance_load: Default::default(),
    });

    tokio::spawn(exports::run(
        store.clone(),
        keys.clone(),
        cfg.cluster.name.clone(),
        exports_tx,
        instances_tx,
    ));
    for (peer, h) in imports {
        tokio::spawn(imports::run_writer(store.clone(), keys.clone(), peer, h));
    }
    tokio::spawn(housekeeping::run(
        store.clone(),
        keys.clone(),
        housekeeping::Housekeeping {
            peers: peer_names.clone(),
            replica: replica.clone(),
            import_ttl: cfg.sync.import_ttl,
        },
    ));
    tokio::spawn(tunnel::accept_loop(shared.clone()));
    for p in cfg.peers.iter().filter(|p| !p.addresses.is_empty()) {
        tokio::spawn(tunnel::dial_loop(shared.clone(), p.name.clone()));
    }

    let ready = Arc::new(Ready::default());
    tokio::spawn(probe_store(store.clone(), ready.clone()));
    tokio::spawn(admin::serve(admin_listener, shared.clone(), ready));

    let api = CatalogApi::new(
        store.clone(),
        keys.clone(),
        Locality {
            cluster: cfg.cluster.name.clone(),
            region: cfg.cluster.region.clone(),
            zone: cfg.cluster.zone.clone(),
        },
        Arc::new(RegistrySource(registry, Instant::now())),
    )
    // A sidecar changes only its own service; `[api] admins` any.
    .with_write_policy(WritePolicy::Own {
        trust_domain: cfg.mesh.trust_domain.clone(),
        admins: cfg.api_admins.clone(),
    });
    let refresher = api.clone();
    tokio::spawn(async move {
        loop {
            let _ = refresher.refresh_view().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let api_tls = local_tls(&cert, &trust, &[b"h2"])?;
    let forward_tls = local_tls(&cert, &trust, &[b"meshgw-forward"])?;
    tokio::spawn(forward::listener::serve(
        forward_listener,
        forward_tls,
        shared.clone(),
    ));
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let api_task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop_rx.wait_for(|v| *v).await;
        };
        meshgw_federation::api::serve(api, api_listener, Some(api_tls), shutdown).await
    });
    tracing::info!(
        cluster = %cfg.cluster.name,
        tunnel = %cfg.listen.tunnel, api = %cfg.listen.api, admin = %cfg.listen.admin,
        %replica, "gateway ready"
    );

    wait_for_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    endpoint.close(0u32.into(), b"gateway shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(2), api_task).await;
    Ok(())
}

/// Returns TLS settings for listeners local workloads call (the API with
/// ALPN `h2`, the forward listener): callers must present a certificate of
/// this mesh's trust domain that chains to `tls.ca`.
fn local_tls(
    cert: &Arc<RotatingCert>,
    trust: &Trust,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>> {
    Ok(Arc::new(meshgw_identity::rotating_server_config(
        cert.clone(),
        trust.local.clone(),
        alpn,
    )?))
}

/// Marks the gateway ready while the store answers.
async fn probe_store(store: Arc<dyn CatalogStore>, ready: Arc<Ready>) {
    let mut was = None;
    loop {
        let ok = tokio::time::timeout(Duration::from_secs(2), store.current_revision())
            .await
            .is_ok_and(|r| r.is_ok());
        if was != Some(ok) {
            if ok {
                tracing::info!("catalog store reachable");
            } else {
                tracing::warn!(
                    "catalog store unreachable: serving the last view of the catalog this process has (none if it never reached the store); writes resume when it returns"
                );
            }
            was = Some(ok);
        }
        ready.set(ok);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
