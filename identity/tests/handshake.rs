//! Real TLS 1.3 handshakes in memory between identities issued by the dev PKI.

mod common;

use common::{Pki, exact, handshake, load};
use meshgw_identity::{SpiffeMatch, TrustEntry, issue_workload};

#[tokio::test]
async fn gateways_of_one_mesh_authenticate_each_other() {
    let pki = Pki::new("mesh.local", &["aws-us", "gcp-eu"]);
    let a = pki.gateway("aws-us");
    let b = pki.gateway("gcp-eu");
    let (client, server) = handshake(
        &a,
        "gcp-eu",
        pki.root(),
        &pki.gateway_id("gcp-eu"),
        &b,
        vec![exact("aws-us", &pki, &pki.gateway_id("aws-us"))],
    )
    .await;
    assert_eq!(client, Ok(Some(pki.gateway_id("gcp-eu"))));
    assert_eq!(server, Ok(Some(pki.gateway_id("aws-us"))));
}

#[tokio::test]
async fn client_refuses_server_from_another_root() {
    let ours = Pki::new("mesh.local", &["aws-us"]);
    let theirs = Pki::new("evil.example", &["gcp-eu"]);
    let (client, server) = handshake(
        &ours.gateway("aws-us"),
        "gcp-eu",
        ours.root(),
        &ours.gateway_id("gcp-eu"),
        &theirs.gateway("gcp-eu"),
        vec![exact("aws-us", &ours, &ours.gateway_id("aws-us"))],
    )
    .await;
    let client = client.unwrap_err();
    assert!(
        client.contains(&format!(
            "certificate of {} does not chain to the trust bundle of peer gcp-eu: UnknownIssuer",
            theirs.gateway_id("gcp-eu")
        )),
        "{client}"
    );
    let server = server.unwrap_err();
    assert!(server.contains("received fatal alert"), "{server}");
}

#[tokio::test]
async fn server_refuses_client_from_a_recreated_root() {
    // Same trust domain, so the foreign root has the same name as ours.
    let ours = Pki::new("mesh.local", &["gcp-eu"]);
    let theirs = Pki::new("mesh.local", &["aws-us"]);
    let (client, server) = handshake(
        &theirs.gateway("aws-us"),
        "gcp-eu",
        ours.root(),
        &ours.gateway_id("gcp-eu"),
        &ours.gateway("gcp-eu"),
        vec![exact("aws-us", &ours, &ours.gateway_id("aws-us"))],
    )
    .await;
    let server = server.unwrap_err();
    assert!(
        server.contains(&format!(
            "client {} is not trusted: does not chain to the trust bundle of peer aws-us: \
             InvalidSignatureForPublicKey (a CA in the bundle has the issuer's name but not its key",
            ours.gateway_id("aws-us")
        )),
        "{server}"
    );
    let client = client.unwrap_err();
    assert!(client.contains("received fatal alert"), "{client}");
}

#[tokio::test]
async fn client_refuses_wrong_spiffe_id_from_the_right_ca() {
    let pki = Pki::new("mesh.local", &["aws-us", "evil"]);
    let (client, _server) = handshake(
        &pki.gateway("aws-us"),
        "gcp-eu",
        pki.root(),
        &pki.gateway_id("gcp-eu"),
        &pki.gateway("evil"),
        vec![exact("aws-us", &pki, &pki.gateway_id("aws-us"))],
    )
    .await;
    let client = client.unwrap_err();
    assert!(
        client.contains(
            "peer gcp-eu presented SPIFFE ID spiffe://mesh.local/cluster/evil/gateway, \
             expected spiffe://mesh.local/cluster/gcp-eu/gateway"
        ),
        "{client}"
    );
}

#[tokio::test]
async fn server_refuses_wrong_spiffe_id_from_the_right_ca() {
    let pki = Pki::new("mesh.local", &["aws-us", "evil", "gcp-eu"]);
    let (client, server) = handshake(
        &pki.gateway("evil"),
        "gcp-eu",
        pki.root(),
        &pki.gateway_id("gcp-eu"),
        &pki.gateway("gcp-eu"),
        vec![exact("aws-us", &pki, &pki.gateway_id("aws-us"))],
    )
    .await;
    let server = server.unwrap_err();
    assert!(
        server.contains(
            "client spiffe://mesh.local/cluster/evil/gateway is not trusted: chains to the trust \
             bundle of peer aws-us but that peer may only present exactly \
             spiffe://mesh.local/cluster/aws-us/gateway"
        ),
        "{server}"
    );
    assert!(client.is_err());
}

#[tokio::test]
async fn trust_domain_matcher_accepts_its_workloads_only() {
    let local = Pki::new("mesh.local", &["aws-us"]);
    let other = Pki::new("other.example", &["gcp-eu"]);
    let gateway = local.gateway("aws-us");
    // Both roots are trusted, but only IDs of mesh.local are allowed.
    let entries = || {
        vec![TrustEntry {
            name: "local".into(),
            bundle: [local.root(), other.root()].concat(),
            allowed: SpiffeMatch::TrustDomain("mesh.local".into()),
        }]
    };

    let cart = load(&issue_workload(local.path(), "aws-us", "shop", "cart").unwrap());
    let (client, server) = handshake(
        &cart,
        "aws-us",
        local.root(),
        &local.gateway_id("aws-us"),
        &gateway,
        entries(),
    )
    .await;
    assert_eq!(client, Ok(Some(local.gateway_id("aws-us"))));
    assert_eq!(
        server,
        Ok(Some("spiffe://mesh.local/ns/shop/sa/cart".into()))
    );

    let stranger = load(&issue_workload(other.path(), "gcp-eu", "shop", "cart").unwrap());
    let (client, server) = handshake(
        &stranger,
        "aws-us",
        local.root(),
        &local.gateway_id("aws-us"),
        &gateway,
        entries(),
    )
    .await;
    let server = server.unwrap_err();
    assert!(
        server.contains(
            "client spiffe://other.example/ns/shop/sa/cart is not trusted: chains to the trust \
             bundle of peer local but that peer may only present any ID in spiffe://mesh.local/"
        ),
        "{server}"
    );
    assert!(client.is_err());
}

#[tokio::test]
async fn meshes_with_different_roots_federate_through_their_bundles() {
    let us = Pki::new("us.example", &["aws-us"]);
    let eu = Pki::new("eu.example", &["gcp-eu"]);
    let (client, server) = handshake(
        &us.gateway("aws-us"),
        "gcp-eu",
        eu.root(),
        &eu.gateway_id("gcp-eu"),
        &eu.gateway("gcp-eu"),
        vec![
            exact("local", &eu, &eu.gateway_id("gcp-eu")),
            exact("aws-us", &us, &us.gateway_id("aws-us")),
        ],
    )
    .await;
    assert_eq!(
        client,
        Ok(Some("spiffe://eu.example/cluster/gcp-eu/gateway".into()))
    );
    assert_eq!(
        server,
        Ok(Some("spiffe://us.example/cluster/aws-us/gateway".into()))
    );
}
