//! A RotatingCert replaced under configurations already built: the next
//! handshake presents the new certificate, on the server and the client
//! side; a certificate for another SPIFFE ID or with a foreign key is
//! refused and the current one stays.

mod common;

use std::sync::Arc;

use common::{Pki, exact, load};
use meshgw_identity::{
    Identity, IdentityError, RotatingCert, SpiffeClientVerifier, SpiffeServerVerifier,
    issue_gateway, rotating_client_config, rotating_server_config,
};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// One handshake over an in-memory pipe: the server's leaf as the client
/// saw it, the client's leaf as the server saw it, and whether the server
/// ran a full or a resumed handshake; or why either side failed.
async fn handshake(
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
) -> Result<(Vec<u8>, Vec<u8>, rustls::HandshakeKind), String> {
    let err = |e: std::io::Error| e.to_string();
    let leaf = |certs: Option<&[rustls::pki_types::CertificateDer<'_>]>| {
        certs
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .ok_or_else(|| "no peer certificate".to_string())
    };
    let (c_io, s_io) = tokio::io::duplex(64 * 1024);
    let client_side = async move {
        let name = ServerName::try_from("peer.mesh").unwrap();
        let mut tls = TlsConnector::from(client)
            .connect(name, c_io)
            .await
            .map_err(err)?;
        let mut one = [0u8; 1];
        tls.read_exact(&mut one).await.map_err(err)?;
        leaf(tls.get_ref().1.peer_certificates())
    };
    let server_side = async move {
        let mut tls = TlsAcceptor::from(server).accept(s_io).await.map_err(err)?;
        let kind = tls
            .get_ref()
            .1
            .handshake_kind()
            .ok_or("no handshake kind")?;
        tls.write_all(b"!").await.map_err(err)?;
        tls.flush().await.map_err(err)?;
        Ok::<_, String>((leaf(tls.get_ref().1.peer_certificates())?, kind))
    };
    let (c, s) = tokio::join!(client_side, server_side);
    let (client_leaf, kind) = s?;
    Ok((c?, client_leaf, kind))
}

/// One handshake that must succeed; returns (the server's leaf as the
/// client saw it, the client's leaf as the server saw it).
async fn leaves(
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
) -> (Vec<u8>, Vec<u8>) {
    let (server_leaf, client_leaf, _) = handshake(client, server).await.unwrap();
    (server_leaf, client_leaf)
}

#[tokio::test]
async fn the_next_handshake_presents_a_replaced_certificate_on_both_sides() {
    let pki = Pki::new("mesh.local", &["a", "b"]);
    let (a, b) = (pki.gateway("a"), pki.gateway("b"));
    let a_cert = RotatingCert::new(&a).unwrap();
    let b_cert = RotatingCert::new(&b).unwrap();
    let server = Arc::new(
        rotating_server_config(
            a_cert.clone(),
            Arc::new(
                SpiffeClientVerifier::new(vec![exact("b", &pki, &pki.gateway_id("b"))]).unwrap(),
            ),
            &[b"meshgw/1"],
        )
        .unwrap(),
    );
    // Every handshake a full one (the rotating configs never resume): a
    // resumed session would show the certificates of the session it resumes.
    let client = Arc::new(
        rotating_client_config(
            b_cert.clone(),
            Arc::new(SpiffeServerVerifier::new("a", pki.root(), pki.gateway_id("a")).unwrap()),
            &[b"meshgw/1"],
        )
        .unwrap(),
    );
    assert_eq!(
        leaves(client.clone(), server.clone()).await,
        (a.chain[0].to_vec(), b.chain[0].to_vec())
    );
    assert!(
        !a_cert.replace(&a).unwrap(),
        "the same certificate is no rotation"
    );

    let (a2, b2) = (
        load(&issue_gateway(pki.path(), "a").unwrap()),
        load(&issue_gateway(pki.path(), "b").unwrap()),
    );
    assert_ne!(a2.chain[0], a.chain[0]);
    assert!(a_cert.replace(&a2).unwrap() && b_cert.replace(&b2).unwrap());
    assert_eq!(
        leaves(client.clone(), server.clone()).await,
        (a2.chain[0].to_vec(), b2.chain[0].to_vec()),
        "the configurations built before present the new certificates"
    );

    // b's certificate in a's place: refused, a's stays.
    let err = a_cert.replace(&b2).unwrap_err();
    assert!(matches!(err, IdentityError::OtherSpiffeId { .. }), "{err}");
    assert!(err.to_string().contains(&pki.gateway_id("b")), "{err}");
    // a's new certificate with b's key: refused, a's stays.
    let a3 = load(&issue_gateway(pki.path(), "a").unwrap());
    let mismatched = Identity {
        chain: a3.chain.clone(),
        key: b2.key.clone_key(),
        spiffe_id: a3.spiffe_id.clone(),
    };
    let err = a_cert.replace(&mismatched).unwrap_err();
    assert!(matches!(err, IdentityError::Tls { .. }), "{err}");
    assert_eq!(leaves(client, server).await.0, a2.chain[0].to_vec());
}

#[tokio::test]
async fn no_session_is_resumed_so_a_root_dropped_from_the_bundle_is_refused_at_once() {
    let pki = Pki::new("mesh.local", &["a", "b"]);
    let other = Pki::new("mesh.local", &["c"]);
    let a_cert = RotatingCert::new(&pki.gateway("a")).unwrap();
    let b_cert = RotatingCert::new(&pki.gateway("b")).unwrap();
    let verifier =
        Arc::new(SpiffeClientVerifier::new(vec![exact("b", &pki, &pki.gateway_id("b"))]).unwrap());
    let server =
        Arc::new(rotating_server_config(a_cert, verifier.clone(), &[b"meshgw/1"]).unwrap());
    // A client that would resume if it could: the server must not let it.
    let mut client = rotating_client_config(
        b_cert,
        Arc::new(SpiffeServerVerifier::new("a", pki.root(), pki.gateway_id("a")).unwrap()),
        &[b"meshgw/1"],
    )
    .unwrap();
    client.resumption = rustls::client::Resumption::default();
    let client = Arc::new(client);
    for i in 0..2 {
        let kind = handshake(client.clone(), server.clone()).await.map(|h| h.2);
        assert_eq!(kind, Ok(rustls::HandshakeKind::Full), "handshake {i}");
    }
    // The operator drops b's root from the bundle: the very next
    // connection from b is refused, ticket or not.
    let entry = meshgw_identity::TrustEntry {
        name: "b".into(),
        bundle: other.root(),
        allowed: meshgw_identity::SpiffeMatch::Exact(pki.gateway_id("b")),
    };
    assert!(verifier.replace(vec![entry]).unwrap());
    let refused = handshake(client, server).await;
    assert!(
        refused.is_err(),
        "b was let in after its root was dropped: {refused:?}"
    );
}
