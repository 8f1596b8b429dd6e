//! Catalog federation across three clusters, each with its own store: what is
//! exported arrives with the right health, what is not never leaves, and every
//! change (lease expiry, health, deregistration) reaches every peer.
//! Runs once on etcd and once on the embedded store.

use std::time::Duration;

use anyhow::Result;
use meshgw_tests::client::Api;
use meshgw_tests::mesh::{Backend, Mesh, MeshBuilder};
use meshgw_tests::wait;

const T: Duration = Duration::from_secs(15);

async fn mesh(backend: Backend) -> Result<Mesh> {
    MeshBuilder::new()
        .cluster("a", backend, 1)
        .cluster("b", backend, 1)
        .cluster("c", backend, 1)
        .export("a", "default/payments", &["*"])
        .export("a", "default/billing", &["b"])
        .start()
        .await
}

/// Waits until `viewer` sees `svc` from cluster `src` with `healthy`/`total`.
async fn sees(api: &mut Api, svc: &str, src: &str, healthy: u32, total: u32) -> Result<()> {
    let what = format!("{svc} from {src} with {healthy}/{total} healthy");
    wait::until(&what, T, || {
        let mut api = api.clone();
        async move {
            let v = api.cluster_view(svc, src).await?;
            match v {
                Some(v) if v.healthy == healthy && v.total == total && !v.stale => Ok(Some(())),
                other => anyhow::bail!("saw {other:?}"),
            }
        }
    })
    .await
}

async fn scenario(backend: Backend) -> Result<()> {
    let m = mesh(backend).await?;
    let mut a = Api::connect(&m, "a").await?;
    let mut b = Api::connect(&m, "b").await?;
    let mut c = Api::connect(&m, "c").await?;

    // Not exported, and exported to b only: registered first, so that once
    // payments (registered after) is visible in c, c has seen everything.
    let (_, _internal) = a.register_kept("default/internal", "i1", 20).await?;
    let (_, _billing) = a.register_kept("default/billing", "b1", 20).await?;
    let (l1, _k1) = a.register_kept("default/payments", "p1", 20).await?;
    let (_, _k2) = a.register_kept("default/payments", "p2", 20).await?;
    // p3's lease is short and its keep-alive stops below.
    let (_, k3) = a.register_kept("default/payments", "p3", 2).await?;

    let r: Result<()> = async {
        sees(&mut b, "default/payments", "a", 3, 3).await?;
        sees(&mut c, "default/payments", "a", 3, 3).await?;
        sees(&mut b, "default/billing", "a", 1, 1).await?;
        assert!(
            c.cluster_view("default/billing", "a").await?.is_none(),
            "billing is exported to b only, yet c sees it"
        );
        for api in [&mut b, &mut c] {
            assert!(
                api.cluster_view("default/internal", "a").await?.is_none(),
                "internal is not exported, yet a peer sees it"
            );
        }
        // The local view in a has all three.
        assert_eq!(
            a.cluster_view("default/internal", "a")
                .await?
                .map(|v| v.healthy),
            Some(1)
        );

        // Lease expiry: p3's keep-alives stop, its lease (2 s) lapses.
        drop(k3);
        sees(&mut b, "default/payments", "a", 2, 2).await?;
        sees(&mut c, "default/payments", "a", 2, 2).await?;

        // Health change.
        a.set_health("default/payments", "p2", false).await?;
        sees(&mut b, "default/payments", "a", 1, 2).await?;
        sees(&mut c, "default/payments", "a", 1, 2).await?;

        // Deregistration; the last one removes the service from the peers.
        a.deregister("default/payments", "p1", l1).await?;
        sees(&mut b, "default/payments", "a", 0, 1).await?;
        a.deregister("default/payments", "p2", 0).await?;
        for api in [&mut b, &mut c] {
            wait::until("payments gone from the peer", T, || {
                let mut api = api.clone();
                async move {
                    Ok(api
                        .cluster_view("default/payments", "a")
                        .await?
                        .is_none()
                        .then_some(()))
                }
            })
            .await?;
        }
        Ok(())
    }
    .await;
    r.map_err(|e| e.context(m.logs()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_on_etcd() -> Result<()> {
    scenario(Backend::Etcd(1)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_on_embedded_store() -> Result<()> {
    scenario(Backend::Embedded).await
}

/// A gateway behind NAT (no peer has an address for it) dials out and
/// federates fully, both ways, over the one connection it opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_behind_nat_federates_both_ways_over_its_own_connection() -> Result<()> {
    let m = MeshBuilder::new()
        .cluster("a", Backend::Embedded, 1)
        .cluster("nat", Backend::Embedded, 1)
        .unreachable("nat")
        .export("a", "default/*", &["*"])
        .export("nat", "default/*", &["*"])
        .start()
        .await?;
    let mut a = Api::connect(&m, "a").await?;
    let mut n = Api::connect(&m, "nat").await?;
    let r: Result<()> = async {
        let _ka = a.register_kept("default/payments", "p1", 20).await?;
        let _kn = n.register_kept("default/orders", "o1", 20).await?;
        sees(&mut n, "default/payments", "a", 1, 1).await?;
        sees(&mut a, "default/orders", "nat", 1, 1).await?;
        // a never dialed: its only link to nat is the inbound one.
        let log = m.clusters["a"].gateways[0].log_text();
        anyhow::ensure!(
            !log.contains("tunnel up"),
            "a dialed nat although it has no address for it"
        );
        anyhow::ensure!(
            log.contains("accepted tunnel"),
            "a has no inbound tunnel from nat"
        );
        Ok(())
    }
    .await;
    r.map_err(|e| e.context(m.logs()))
}

/// The `tonic::Status` code and message an API call failed with.
fn status_of(r: Result<impl std::fmt::Debug>) -> Result<(tonic::Code, String)> {
    let e = match r {
        Ok(v) => anyhow::bail!("expected a refusal, got {v:?}"),
        Err(e) => e,
    };
    let s = e
        .downcast_ref::<tonic::Status>()
        .ok_or_else(|| anyhow::anyhow!("not a gRPC status: {e:#}"))?;
    Ok((s.code(), s.message().to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_changes_only_its_own_service_through_the_api() -> Result<()> {
    // Two clusters: a's gateway holds leases of its own (sync session
    // markers), which no workload may renew.
    let m = MeshBuilder::two_clusters("a").start().await?;
    let gw = &m.clusters["a"].gateways[0];
    let mut orders = Api::connect_as(gw, &m.pki, "default", "orders").await?;
    let mut admin = Api::connect(&m, "a").await?;
    // Its own service: register, report health, deregister.
    let lease = orders.register("default/orders", "o1", 60).await?;
    orders.set_health("default/orders", "o1", false).await?;
    orders.deregister("default/orders", "o1", lease).await?;
    // Another service: every write is refused, naming who, what and how.
    let (code, msg) = status_of(orders.register("default/payments", "p1", 60).await)?;
    anyhow::ensure!(
        code == tonic::Code::PermissionDenied
            && msg.contains(
                "spiffe://mesh.test/ns/default/sa/orders may not change default/payments"
            )
            && msg.contains("[api] admins"),
        "{code:?}: {msg}"
    );
    // An admin (the harness's client, in [api] admins) registers payments;
    // orders can neither mark it down nor remove it.
    let lease = admin.register("default/payments", "p1", 60).await?;
    let (code, _) = status_of(orders.set_health("default/payments", "p1", false).await)?;
    anyhow::ensure!(code == tonic::Code::PermissionDenied, "SetHealth: {code:?}");
    let (code, _) = status_of(orders.deregister("default/payments", "p1", lease).await)?;
    anyhow::ensure!(
        code == tonic::Code::PermissionDenied,
        "Deregister: {code:?}"
    );
    // Nor keep its lease alive (which would keep a dead instance listed);
    // its own lease, and payments' for an admin, renew.
    let own = orders.register("default/orders", "o2", 60).await?;
    anyhow::ensure!(orders.keep_alive_once(own).await? == 60, "own lease");
    match orders.keep_alive_once(lease).await {
        Err(s) if s.code() == tonic::Code::PermissionDenied => anyhow::ensure!(
            s.message().contains("renewing lease")
                && s.message().contains("may not change default/payments"),
            "{s:?}"
        ),
        r => anyhow::bail!("orders renewed payments' lease: {r:?}"),
    }
    anyhow::ensure!(admin.keep_alive_once(lease).await? == 60, "admin");
    // Nor any lease that is not a registration's, such as the gateway's
    // own (the embedded store numbers leases 1, 2, 3...).
    for id in (1..=20).filter(|&id| id != own && id != lease) {
        match orders.keep_alive_once(id).await {
            Err(s) if s.code() == tonic::Code::NotFound => {
                anyhow::ensure!(s.message().contains("register the instance again"), "{s:?}")
            }
            Err(s) if s.code() == tonic::Code::PermissionDenied => {}
            r => anyhow::bail!("orders renewed lease {id}, which is not its own: {r:?}"),
        }
    }
    let view = admin.cluster_view("default/payments", "a").await?;
    anyhow::ensure!(
        view.as_ref().is_some_and(|v| v.healthy == 1),
        "payments should be untouched: {view:?}"
    );
    admin.deregister("default/payments", "p1", lease).await?;
    Ok(())
}
