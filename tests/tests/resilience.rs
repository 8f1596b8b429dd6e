//! The failure model of the control plane: gateways crash and restart, a
//! peer goes silent (imports go stale, then are dropped, then come back), a
//! cluster's etcd goes away for a while, and one of two replicas dies.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use meshgw_tests::client::Api;
use meshgw_tests::mesh::{Backend, MeshBuilder};
use meshgw_tests::wait;

const T: Duration = Duration::from_secs(20);

/// Waits until `api` sees `svc` from `src` with `healthy` healthy instances and the given staleness.
async fn sees(api: &Api, svc: &str, src: &str, healthy: u32, stale: bool) -> Result<()> {
    let what = format!("{svc} from {src}: {healthy} healthy, stale={stale}");
    wait::until(&what, T, || {
        let mut api = api.clone();
        async move {
            let v = api.cluster_view(svc, src).await?;
            match v {
                Some(v) if v.healthy == healthy && v.stale == stale => Ok(Some(())),
                other => anyhow::bail!("saw {other:?}"),
            }
        }
    })
    .await
}

/// Returns the last export sequence `peer` acknowledged to `gw`, from its metrics.
fn acked_by(gw: &meshgw_tests::gateway::GatewayProc, peer: &str) -> Result<u64> {
    let (_, body) = gw.admin_get("/metrics")?;
    let label = format!("dst_cluster=\"{peer}\"");
    let line = body
        .lines()
        .find(|l| l.starts_with("meshgw_sync_acked_seq") && l.contains(&label))
        .ok_or_else(|| anyhow::anyhow!("no meshgw_sync_acked_seq for {peer} in:\n{body}"))?;
    Ok(line.rsplit(' ').next().unwrap_or("").parse()?)
}

async fn gone(api: &Api, svc: &str, src: &str) -> Result<()> {
    wait::until(&format!("{svc} from {src} removed"), T, || {
        let mut api = api.clone();
        async move { Ok(api.cluster_view(svc, src).await?.is_none().then_some(())) }
    })
    .await
}

/// `sync.import_ttl` of the crash/restart scenario: short, to keep the test
/// quick, yet long enough that nothing is dropped before it is looked at.
const IMPORT_TTL: Duration = Duration::from_secs(4);

/// B crashes and restarts with its imports kept in its store; A crashes, its
/// imports go stale in B and C and are dropped after the TTL; A returns and
/// they come back. Run on etcd and on the embedded store.
async fn crash_restart_stale_and_return(backend: Backend) -> Result<()> {
    let ttl = format!("{}s", IMPORT_TTL.as_secs());
    let mut m = MeshBuilder::new()
        .cluster("a", backend, 1)
        .cluster("b", backend, 1)
        .cluster("c", backend, 1)
        .export("a", "default/*", &["*"])
        .sync("import_ttl", &ttl)
        .start()
        .await?;
    let a = Api::connect(&m, "a").await?;
    let b = Api::connect(&m, "b").await?;
    let c = Api::connect(&m, "c").await?;
    let r: Result<()> = async {
        let _k1 = a
            .clone()
            .register_kept("default/payments", "p1", 60)
            .await?;
        let _k2 = a
            .clone()
            .register_kept("default/payments", "p2", 60)
            .await?;
        sees(&b, "default/payments", "a", 2, false).await?;
        sees(&c, "default/payments", "a", 2, false).await?;
        let before = b
            .clone()
            .cluster_view("default/payments", "a")
            .await?
            .ok_or_else(|| anyhow::anyhow!("B lost A's payments"))?;

        // B crashes; a change happens in A meanwhile (C gets it, so A exported
        // it); then A crashes too, and only then B restarts.
        m.gw("b").kill();
        let _k3 = a
            .clone()
            .register_kept("default/payments", "p3", 60)
            .await?;
        sees(&c, "default/payments", "a", 3, false).await?;
        m.gw("a").kill();
        m.gw("b").restart().await?;
        // Straight after the restart B still serves A's imports. With A dead no
        // resync can have happened, and C never re-exports what it imports, so
        // the only place they can come from is B's store: the record B wrote
        // before the crash (same content, same `updated_at_ms`; 2 instances,
        // not A's current 3). Whether it is already marked stale depends on
        // when B's housekeeping sees no live session marker for A, so either
        // is right; it is not dropped before `import_ttl` after that.
        let v = b.clone().cluster_view("default/payments", "a").await?;
        ensure!(
            v.as_ref().is_some_and(|v| v.healthy == 2
                && v.total == 2
                && v.updated_at_ms == before.updated_at_ms),
            "B's imports not kept in its store over its restart: before {before:?}, after {v:?}"
        );

        // A returns: the resync brings B up to date (and clears any stale mark).
        m.gw("a").restart().await?;
        sees(&b, "default/payments", "a", 3, false).await?;
        sees(&c, "default/payments", "a", 3, false).await?;

        // A crashes: B and C mark A's imports stale, then drop them after the TTL.
        m.gw("a").kill();
        let t0 = Instant::now();
        sees(&b, "default/payments", "a", 3, true).await?;
        sees(&c, "default/payments", "a", 3, true).await?;
        gone(&b, "default/payments", "a").await?;
        gone(&c, "default/payments", "a").await?;
        ensure!(
            t0.elapsed() >= IMPORT_TTL,
            "stale imports dropped before import_ttl: {:?}",
            t0.elapsed()
        );

        // A returns (its instances' leases outlived the outage): imports come back fresh.
        m.gw("a").restart().await?;
        sees(&b, "default/payments", "a", 3, false).await?;
        sees(&c, "default/payments", "a", 3, false).await?;
        Ok(())
    }
    .await;
    r.map_err(|e| e.context(m.logs()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_crash_restart_stale_and_return() -> Result<()> {
    crash_restart_stale_and_return(Backend::Etcd(1)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_crash_restart_stale_and_return_on_embedded_store() -> Result<()> {
    crash_restart_stale_and_return(Backend::Embedded).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_outage_keeps_gateway_up_and_loses_nothing() -> Result<()> {
    let mut m = MeshBuilder::new()
        .cluster("a", Backend::Etcd(1), 1)
        .cluster("b", Backend::Etcd(1), 1)
        .export("a", "default/*", &["*"])
        .start()
        .await?;
    let a = Api::connect(&m, "a").await?;
    let b = Api::connect(&m, "b").await?;
    let r: Result<()> = async {
        let _k1 = a
            .clone()
            .register_kept("default/payments", "p1", 60)
            .await?;
        sees(&b, "default/payments", "a", 1, false).await?;

        // B's etcd goes away.
        m.clusters
            .get_mut("b")
            .unwrap()
            .etcd
            .as_mut()
            .unwrap()
            .stop_all();
        wait::until("B not ready", T, || {
            let r = m.clusters["b"].gateways[0].admin_get("/readyz");
            async move { Ok(r.ok().filter(|(code, _)| *code == 503).map(|_| ())) }
        })
        .await?;
        ensure!(m.gw("b").is_running(), "B's gateway died with its etcd");
        ensure!(
            m.gw("b").admin_get("/healthz")?.0 == 200,
            "B's gateway not healthy"
        );
        // B answers from its last view.
        let v = b.clone().cluster_view("default/payments", "a").await?;
        ensure!(
            v.is_some_and(|v| v.healthy == 1),
            "B lost its view while etcd is down"
        );

        // A registers more while B's etcd is down, and B's session acknowledges
        // both changes (it holds them until its etcd can take them).
        let before = acked_by(&m.clusters["a"].gateways[0], "b")?;
        let _k2 = a.clone().register_kept("default/billing", "b1", 60).await?;
        let _k3 = a
            .clone()
            .register_kept("default/payments", "p2", 60)
            .await?;
        wait::until("A's two changes acknowledged by B", T, || {
            let now = acked_by(&m.clusters["a"].gateways[0], "b");
            async move { Ok((now? >= before + 2).then_some(())) }
        })
        .await?;

        // etcd returns: B catches up; nothing registered meanwhile is lost.
        m.clusters
            .get_mut("b")
            .unwrap()
            .etcd
            .as_mut()
            .unwrap()
            .start_all()
            .await?;
        sees(&b, "default/payments", "a", 2, false).await?;
        sees(&b, "default/billing", "a", 1, false).await?;
        ensure!(m.gw("b").is_running(), "B's gateway exited");
        Ok(())
    }
    .await;
    r.map_err(|e| e.context(m.logs()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_etcd_survive_either_dying() -> Result<()> {
    let mut m = MeshBuilder::new()
        .cluster("a", Backend::Etcd(1), 2)
        .cluster("b", Backend::Etcd(1), 1)
        .export("a", "default/*", &["*"])
        .start()
        .await?;
    let a0 = Api::connect_replica(&m, "a", 0).await?;
    let a1 = Api::connect_replica(&m, "a", 1).await?;
    let b = Api::connect(&m, "b").await?;
    let r: Result<()> = async {
        // Keep-alives fail over between the replicas, as a sidecar's would.
        let both = Api::connect_all(&m, "a").await?;
        let _k1 = a0
            .clone()
            .register_kept_via("default/payments", "p1", 4, &both)
            .await?;
        let _k2 = a1
            .clone()
            .register_kept_via("default/payments", "p2", 4, &both)
            .await?;
        sees(&b, "default/payments", "a", 2, false).await?;

        for (dead, live) in [(0usize, &a1), (1, &a0)] {
            m.clusters.get_mut("a").unwrap().gateways[dead].kill();
            // For longer than stale_after + peer_timeout, B never loses or staleness-marks anything.
            let until = Instant::now() + Duration::from_secs(5);
            while Instant::now() < until {
                let v = b.clone().cluster_view("default/payments", "a").await?;
                ensure!(
                    v.as_ref().is_some_and(|v| v.healthy >= 2 && !v.stale),
                    "B lost A's services after replica {dead} died: {v:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let id = format!("p-after-{dead}");
            let _k = live
                .clone()
                .register_kept_via("default/payments", &id, 60, &both)
                .await?;
            sees(&b, "default/payments", "a", 3, false).await?;
            live.clone().deregister("default/payments", &id, 0).await?;
            sees(&b, "default/payments", "a", 2, false).await?;
            m.clusters.get_mut("a").unwrap().gateways[dead]
                .restart()
                .await?;
        }
        Ok(())
    }
    .await;
    r.map_err(|e| e.context(m.logs()))
}
