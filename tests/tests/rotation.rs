//! Certificate rotation under running sidecars and gateways: a certificate
//! and key rewritten in place (as cert-manager or `meshgw ca` does) are
//! served to new connections without a restart, and calls keep working.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use meshgw_identity::{Identity, SpiffeServerVerifier, client_config, load_certs};
use meshgw_tests::apps;
use meshgw_tests::mesh::{Backend, Mesh, MeshBuilder};
use meshgw_tests::sidecar::SidecarProc;
use meshgw_tests::wait;
use rustls::pki_types::ServerName;

/// The leaf certificate `sidecar`'s inbound listener presents, to a caller
/// holding `caller`'s certificate.
async fn presented(caller: &SidecarProc, sidecar: &SidecarProc, id: &str) -> Result<Vec<u8>> {
    presented_at(caller, sidecar.spec.inbound, id, b"h2").await
}

/// The leaf certificate the TLS listener at `addr` (expected to be `id`)
/// presents to a caller holding `caller`'s certificate, offering `alpn`.
async fn presented_at(
    caller: &SidecarProc,
    addr: SocketAddr,
    id: &str,
    alpn: &[u8],
) -> Result<Vec<u8>> {
    let (ca, cert, key) = &caller.spec.tls;
    let verifier = SpiffeServerVerifier::new(id, load_certs(ca)?, id)?;
    let config = client_config(&Identity::load(cert, key)?, Arc::new(verifier), &[alpn])?;
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            ServerName::try_from("payments.default.mesh")?.to_owned(),
            tcp,
        )
        .await?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .context("no certificate")?[0]
        .to_vec();
    Ok(leaf)
}

fn leaf(path: &Path) -> Result<Vec<u8>> {
    Ok(load_certs(path)?[0].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_workload_certificate_is_served_without_a_restart() -> Result<()> {
    let m = MeshBuilder::new()
        .cluster("a", Backend::Embedded, 1)
        .start()
        .await?;
    let pay = apps::http("payments-a").await?;
    let server = m.sidecar("a", "default/payments", "http", pay.addr).await?;
    let orders = apps::http("orders").await?;
    let client = m
        .sidecar("a", "default/orders", "http", orders.addr)
        .await?;
    let id = "spiffe://mesh.test/ns/default/sa/payments";
    let first = leaf(&server.spec.tls.1)?;
    ensure!(presented(&client, &server, id).await? == first);
    let (status, _, body) = client.curl("payments.default.mesh", "/", &[])?;
    ensure!(
        status == 200 && body.contains("name=payments-a"),
        "{status} {body}"
    );

    // Rotate: a new certificate and key in the same files.
    let (cert, key) = m.pki.workload("a", "default", "payments")?;
    ensure!(
        (&cert, &key) == (&server.spec.tls.1, &server.spec.tls.2),
        "issued in place"
    );
    let second = leaf(&cert)?;
    ensure!(second != first, "the new certificate is the old one");
    wait::until(
        "the sidecar serves the new certificate",
        Duration::from_secs(15),
        || async { Ok((presented(&client, &server, id).await? == second).then_some(())) },
    )
    .await
    .map_err(|e| e.context(server.log_text()))?;
    ensure!(
        server
            .log_text()
            .contains("new connections use the new certificate"),
        "the rotation is not logged:\n{}",
        server.log_text()
    );
    // Calls keep working, from the caller's pooled connection and from a
    // caller that connects afresh.
    let (status, _, body) = client.curl("payments.default.mesh", "/", &[])?;
    ensure!(
        status == 200 && body.contains("name=payments-a"),
        "{status} {body}"
    );
    let fresh_app = apps::http("checkout").await?;
    let fresh = m
        .sidecar("a", "default/checkout", "http", fresh_app.addr)
        .await?;
    let (status, _, body) = fresh.curl("payments.default.mesh", "/", &[])?;
    ensure!(
        status == 200 && body.contains("name=payments-a"),
        "{status} {body}"
    );
    Ok(())
}

/// `payments` in cluster a (exported), and its caller `orders` in b;
/// fields drop in order, before the mesh they run in.
struct Crossing {
    client: SidecarProc,
    _server: SidecarProc,
    _apps: [apps::App; 2],
}

/// Starts clusters a and b, `payments` in a and `orders` in b, and waits
/// until b's catalog lists `payments`.
async fn crossing() -> Result<(Mesh, Crossing)> {
    let m = MeshBuilder::two_clusters("a").start().await?;
    let pay = apps::http("payments-a").await?;
    let server = m.sidecar("a", "default/payments", "http", pay.addr).await?;
    let orders = apps::http("orders").await?;
    let client = m
        .sidecar("b", "default/orders", "http", orders.addr)
        .await?;
    m.sees("b", "default/payments", "a", 1, None).await?;
    let x = Crossing {
        client,
        _server: server,
        _apps: [pay, orders],
    };
    Ok((m, x))
}

/// `Some(())` if a call from `client` to `payments` is answered by a's app.
fn crosses(client: &SidecarProc) -> Result<Option<()>> {
    let (status, _, body) = client.curl("payments.default.mesh", "/", &[])?;
    Ok((status == 200 && body.contains("name=payments-a")).then_some(()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_gateway_certificate_is_served_without_a_restart_and_peers_still_connect()
-> Result<()> {
    let (mut m, x) = crossing().await?;
    let client = &x.client;
    ensure!(crosses(client)?.is_some(), "no call crosses at the start");
    // a's local caller: a workload of a, to see what a's listeners present.
    let probe_app = apps::http("probe").await?;
    let probe = m
        .sidecar("a", "default/probe", "http", probe_app.addr)
        .await?;
    let gw_id = m.pki.gateway_id("a");
    let (gw_cert, _) = m.pki.gateway("a");
    let (forward, api) = (
        m.clusters["a"].gateways[0].spec.forward,
        m.clusters["a"].gateways[0].spec.api,
    );
    let first = leaf(&gw_cert)?;
    ensure!(presented_at(&probe, forward, &gw_id, b"meshgw-forward").await? == first);

    m.pki.reissue_gateway("a")?;
    let second = leaf(&gw_cert)?;
    ensure!(second != first, "the new certificate is the old one");
    wait::until(
        "gateway a serves the new certificate",
        Duration::from_secs(15),
        || async {
            Ok(
                (presented_at(&probe, forward, &gw_id, b"meshgw-forward").await? == second)
                    .then_some(()),
            )
        },
    )
    .await
    .map_err(|e| e.context(m.logs()))?;
    ensure!(
        presented_at(&probe, api, &gw_id, b"h2").await? == second,
        "the catalog API still presents the old certificate"
    );
    ensure!(
        m.clusters["a"].gateways[0]
            .log_text()
            .contains("new tunnel, forward and API connections use the new certificate"),
        "the rotation is not logged:\n{}",
        m.logs()
    );
    // b dials a afresh (a full QUIC handshake with a's new certificate),
    // federates again and its callers reach payments.
    m.gw("b").restart().await?;
    m.sees("b", "default/payments", "a", 1, None).await?;
    wait::until(
        "a call from b crosses again",
        Duration::from_secs(20),
        || async { crosses(client) },
    )
    .await
    .map_err(|e| e.context(m.logs()))?;
    Ok(())
}

/// Writes `contents` to `path` the way an operator's tooling does: a new
/// file renamed over the old one.
fn replace_file(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_root_added_to_the_trust_bundle_is_trusted_without_restarting_the_gateway()
-> Result<()> {
    let (mut m, x) = crossing().await?;
    let client = &x.client;
    ensure!(crosses(client)?.is_some(), "no call crosses at the start");

    // A CA rotation: a second root, and gateway b's certificate from it.
    let new_dir = tempfile::tempdir()?;
    let new_pki = meshgw_tests::pki::Pki::init(new_dir.path(), &m.pki.trust_domain)?;
    new_pki.cluster("b")?;
    let (new_cert, new_key) = new_pki.gateway("b");
    let (cert, key) = m.pki.gateway("b");
    std::fs::copy(&new_cert, &cert)?;
    std::fs::copy(&new_key, &key)?;
    // b dials a afresh with it; a, trusting only the old root, refuses it.
    m.gw("b").restart().await?;
    let refusal = "does not chain to the trust bundle of peer b";
    wait::until(
        "gateway a refuses b's certificate from the new root",
        Duration::from_secs(20),
        || async {
            Ok(m.clusters["a"].gateways[0]
                .log_text()
                .contains(refusal)
                .then_some(()))
        },
    )
    .await
    .map_err(|e| e.context(m.logs()))?;

    // The operator adds the new root to the bundle every process reads.
    let mut bundle = std::fs::read(m.pki.root())?;
    bundle.extend(std::fs::read(new_pki.root())?);
    replace_file(&m.pki.root(), &bundle)?;
    wait::until(
        "gateway a reloads its trust bundles",
        Duration::from_secs(15),
        || async {
            Ok(m.clusters["a"].gateways[0]
                .log_text()
                .contains("new tunnel, forward and API connections use the new bundles")
                .then_some(()))
        },
    )
    .await
    .map_err(|e| e.context(m.logs()))?;
    // b's next dial is accepted, the catalogs federate again and calls cross,
    // a never restarted.
    wait::until(
        "a call from b crosses again",
        Duration::from_secs(30),
        || async { crosses(client) },
    )
    .await
    .map_err(|e| e.context(m.logs()))?;

    // A bundle file that does not parse is refused and the bundles in force
    // stay: putting the good file back changes nothing (no second reload),
    // and b, dialling afresh with its new-root certificate, is accepted.
    replace_file(&m.pki.root(), b"not a certificate\n")?;
    wait::until(
        "gateway a refuses the broken bundle",
        Duration::from_secs(15),
        || async {
            Ok(m.clusters["a"].gateways[0]
                .log_text()
                .contains("do not load; still using the previous bundles")
                .then_some(()))
        },
    )
    .await
    .map_err(|e| e.context(m.logs()))?;
    replace_file(&m.pki.root(), &bundle)?;
    m.gw("b").restart().await?;
    wait::until(
        "a call from b crosses after b reconnects",
        Duration::from_secs(30),
        || async { crosses(client) },
    )
    .await
    .map_err(|e| e.context(m.logs()))?;
    let reloads = m.clusters["a"].gateways[0]
        .log_text()
        .matches("use the new bundles")
        .count();
    ensure!(reloads == 1, "{reloads} reloads:\n{}", m.logs());
    Ok(())
}
