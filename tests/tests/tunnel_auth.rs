//! Tunnels are mutually authenticated: a peer whose certificate comes from
//! another CA, or that presents the wrong SPIFFE ID, is refused, and the log
//! says which peer and why.

use std::time::Duration;

use anyhow::{Result, ensure};
use meshgw_tests::gateway::{GatewayProc, GatewaySpec, PeerSpec, StoreSpec};
use meshgw_tests::pki::Pki;
use meshgw_tests::wait;

const T: Duration = Duration::from_secs(15);

fn spec(pki: &Pki, dir: &std::path::Path, cluster: &str) -> GatewaySpec {
    let (cert, key) = pki.gateway(cluster);
    let store = StoreSpec::Embedded(dir.join(format!(
        "{cluster}-{}",
        pki.dir.file_name().unwrap().to_string_lossy()
    )));
    GatewaySpec::new(&pki.trust_domain, cluster, store, cert, key, pki.root())
}

async fn log_has(g: &GatewayProc, what: &str, all: &[&str]) -> Result<String> {
    wait::until(what, T, || {
        let log = g.log_text();
        let hit = log
            .lines()
            .find(|l| all.iter().all(|w| l.contains(w)))
            .map(str::to_string);
        async move { Ok(hit) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_from_another_ca_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let good = Pki::init(&dir.path().join("good"), "mesh.test")?;
    let evil = Pki::init(&dir.path().join("evil"), "mesh.test")?;
    good.cluster("a")?;
    good.cluster("b")?;
    evil.cluster("b")?; // same name and SPIFFE ID, but another root

    let mut a = spec(&good, dir.path(), "a");
    let mut impostor = spec(&evil, dir.path(), "b");
    a.peers = vec![PeerSpec {
        name: "b".into(),
        addresses: vec![],
        spiffe_id: good.gateway_id("b"),
        bundle: good.root(),
    }];
    // The impostor trusts a (it has a's root) and dials it.
    impostor.peers = vec![PeerSpec {
        name: "a".into(),
        addresses: vec![a.tunnel],
        spiffe_id: good.gateway_id("a"),
        bundle: good.root(),
    }];
    let a = GatewayProc::start(a, dir.path()).await?;
    let impostor = GatewayProc::start(impostor, dir.path()).await?;

    let line = log_has(
        &a,
        "a refusing the impostor, naming peer b",
        &["peer b", "refused"],
    )
    .await;
    let line = line.map_err(|e| e.context(format!("a's log:\n{}", a.log_text())))?;
    ensure!(
        line.to_lowercase().contains("trust bundle") || line.contains("UnknownIssuer"),
        "the refusal does not say why: {line}"
    );
    // Nothing from the impostor is connected.
    let (_, metrics) = a.admin_get("/metrics")?;
    ensure!(
        !metrics
            .lines()
            .any(|l| l.starts_with("meshgw_peer_connected") && l.ends_with(" 1")),
        "a accepted the impostor:\n{metrics}"
    );
    drop(impostor);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_with_wrong_spiffe_id_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::init(&dir.path().join("pki"), "mesh.test")?;
    pki.cluster("a")?;
    pki.cluster("b")?;
    let mut a = spec(&pki, dir.path(), "a");
    let mut b = spec(&pki, dir.path(), "b");
    // a expects another identity for peer b than the one b's certificate carries.
    let wrong = "spiffe://mesh.test/cluster/b-prod/gateway";
    a.peers = vec![PeerSpec {
        name: "b".into(),
        addresses: vec![b.tunnel],
        spiffe_id: wrong.into(),
        bundle: pki.root(),
    }];
    b.peers = vec![PeerSpec {
        name: "a".into(),
        addresses: vec![],
        spiffe_id: pki.gateway_id("a"),
        bundle: pki.root(),
    }];
    let b = GatewayProc::start(b, dir.path()).await?;
    let a = GatewayProc::start(a, dir.path()).await?;

    let line = log_has(&a, "a refusing b's identity", &["peer b", wrong]).await;
    let line = line.map_err(|e| e.context(format!("a's log:\n{}", a.log_text())))?;
    ensure!(
        line.contains(&pki.gateway_id("b")),
        "the refusal does not name the presented ID: {line}"
    );
    let (_, metrics) = a.admin_get("/metrics")?;
    ensure!(
        !metrics
            .lines()
            .any(|l| l.starts_with("meshgw_peer_connected") && l.ends_with(" 1")),
        "a connected to b anyway:\n{metrics}"
    );
    drop(b);
    Ok(())
}
