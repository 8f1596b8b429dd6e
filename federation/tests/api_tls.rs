//! Catalog API over mutual TLS with the mesh's SPIFFE verifiers: a trusted
//! sidecar gets through; untrusted clients and broken handshakes are refused
//! without stopping the server.

mod api_support;

use std::path::Path;
use std::sync::Arc;

use api_support::*;
use meshgw_federation::api::{NoPeers, client, pb};
use meshgw_identity::{
    Identity, SpiffeClientVerifier, SpiffeMatch, SpiffeServerVerifier, TrustEntry, load_certs, pki,
};
use tokio::io::AsyncWriteExt;

/// Creates a mesh root and the `local` cluster CA in `dir`.
fn mesh(dir: &Path) {
    pki::init_root(dir, "mesh.test", false).unwrap();
    pki::issue_cluster_ca(dir, "local").unwrap();
}

fn roots(dir: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    load_certs(&dir.join(pki::ROOT_CERT)).unwrap()
}

fn sidecar_config(dir: &Path, trusted_roots: &Path, gateway_id: &str) -> rustls::ClientConfig {
    let cert = pki::issue_workload(dir, "local", "default", "payments").unwrap();
    let id = Identity::load(&cert.cert, &cert.key).unwrap();
    let verifier =
        SpiffeServerVerifier::new("local gateway", roots(trusted_roots), gateway_id).unwrap();
    // No ALPN here: `connect` must add h2 itself.
    meshgw_identity::client_config(&id, Arc::new(verifier), &[]).unwrap()
}

#[tokio::test]
async fn mutual_tls_with_spiffe_verifiers() {
    let pki_dir = tempfile::tempdir().unwrap();
    let rogue_dir = tempfile::tempdir().unwrap();
    mesh(pki_dir.path());
    mesh(rogue_dir.path());

    let gw = pki::issue_gateway(pki_dir.path(), "local").unwrap();
    let gw_id = Identity::load(&gw.cert, &gw.key).unwrap();
    let clients = SpiffeClientVerifier::new(vec![TrustEntry {
        name: "local".into(),
        bundle: roots(pki_dir.path()),
        allowed: SpiffeMatch::TrustDomain("mesh.test".into()),
    }])
    .unwrap();
    // No ALPN here: `serve` must advertise h2 itself.
    let server_config = meshgw_identity::server_config(&gw_id, Arc::new(clients), &[]).unwrap();

    let (store, _dir) = embedded().await;
    let h = Harness::start_with(
        Arc::new(store),
        Arc::new(NoPeers),
        Some(Arc::new(server_config)),
    )
    .await;
    let addr = h.addr.to_string();

    // A connection that is not TLS at all: logged, dropped, server keeps going.
    let mut junk = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    drop(junk);

    // A sidecar with a certificate from another mesh's root is refused.
    let rogue = sidecar_config(rogue_dir.path(), pki_dir.path(), &gw.spiffe_id);
    let refused = match client::connect(&addr, Some(rogue)).await {
        Err(e) => e.to_string(),
        Ok(mut c) => c
            .list_peers(pb::ListPeersRequest {})
            .await
            .expect_err("untrusted client was served")
            .to_string(),
    };
    assert!(refused.contains("CertificateUnknown"), "{refused}");

    // A sidecar expecting another gateway identity refuses the server.
    let wrong = sidecar_config(
        pki_dir.path(),
        pki_dir.path(),
        "spiffe://mesh.test/cluster/other/gateway",
    );
    let err = client::connect(&addr, Some(wrong)).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("cannot connect")
            && msg.contains("expected spiffe://mesh.test/cluster/other/gateway"),
        "{msg}"
    );

    // A trusted sidecar registers and lists over TLS.
    let good = sidecar_config(pki_dir.path(), pki_dir.path(), &gw.spiffe_id);
    let mut c = client::connect(&addr, Some(good))
        .await
        .expect("trusted sidecar connects");
    let reg = register(&mut c, instance("payments", "p-1", 8443), 30).await;
    assert_eq!(reg.instance_id, "p-1");
    let view = local_view(&mut c, "payments").await.expect("listed");
    assert_eq!(view.healthy, 1);
    h.stop().await.unwrap();
}

#[tokio::test]
async fn client_rejects_bad_addresses() {
    for addr in ["", "127.0.0.1", "http://", "not a host:1"] {
        let err = client::connect(addr, None).await.unwrap_err();
        assert!(
            err.to_string().contains("invalid catalog API address"),
            "{addr:?}: {err}"
        );
    }
}
