//! The development PKI: layout, key modes, refusals, and the key-mode check on load.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::Pki;
use meshgw_identity::{
    IdentityError, PkiError, init_root, issue_cluster_ca, issue_gateway, issue_workload,
    issuing_cluster_of, load_certs, load_key, pki, spiffe_id_of,
};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn issues_the_documented_layout_with_private_keys_0600() {
    let pki = Pki::new("mesh.local", &["aws-us"]);
    let d = pki.path();
    let gw = issue_gateway(d, "aws-us").unwrap();
    let wl = issue_workload(d, "aws-us", "shop", "cart").unwrap();

    assert_eq!(gw.cert, d.join("aws-us/gateway.pem"));
    assert_eq!(gw.key, d.join("aws-us/gateway.key"));
    assert_eq!(gw.spiffe_id, "spiffe://mesh.local/cluster/aws-us/gateway");
    assert_eq!(wl.cert, d.join("aws-us/shop.cart.pem"));
    assert_eq!(wl.spiffe_id, "spiffe://mesh.local/ns/shop/sa/cart");
    for key in [
        "root.key",
        "aws-us/ca.key",
        "aws-us/gateway.key",
        "aws-us/shop.cart.key",
    ] {
        assert_eq!(mode(&d.join(key)), 0o600, "{key}");
    }

    let chain = load_certs(&gw.cert).unwrap();
    assert_eq!(chain.len(), 2, "gateway.pem holds leaf + intermediate");
    assert_eq!(chain[1], load_certs(&d.join("aws-us/ca.pem")).unwrap()[0]);
    assert_eq!(
        spiffe_id_of(&chain[0]).as_deref(),
        Some(gw.spiffe_id.as_str())
    );
    assert_eq!(pki::trust_domain(d).unwrap(), "mesh.local");
}

#[test]
fn a_leaf_names_the_cluster_whose_ca_issued_it() {
    let pki = Pki::new("mesh.local", &["aws-us", "gcp-eu.1"]);
    let d = pki.path();
    let leaf = |cert: &std::path::Path| load_certs(cert).unwrap().remove(0);
    let us = issue_workload(d, "aws-us", "shop", "cart").unwrap();
    let eu = issue_workload(d, "gcp-eu.1", "shop", "cart").unwrap();
    let gw = issue_gateway(d, "aws-us").unwrap();
    assert_eq!(
        issuing_cluster_of(&leaf(&us.cert)).as_deref(),
        Some("aws-us")
    );
    assert_eq!(
        issuing_cluster_of(&leaf(&eu.cert)).as_deref(),
        Some("gcp-eu.1")
    );
    assert_eq!(
        issuing_cluster_of(&leaf(&gw.cert)).as_deref(),
        Some("aws-us")
    );
    // Issued by the root, not by a cluster CA: no cluster.
    let ca = leaf(&d.join("aws-us/ca.pem"));
    assert_eq!(issuing_cluster_of(&ca), None);
    assert_eq!(issuing_cluster_of(&leaf(&d.join("root.pem"))), None);
}

#[test]
fn reissuing_replaces_a_widened_key_with_a_0600_one() {
    let pki = Pki::new("mesh.local", &["aws-us"]);
    let gw = issue_gateway(pki.path(), "aws-us").unwrap();
    std::fs::set_permissions(&gw.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let again = issue_gateway(pki.path(), "aws-us").unwrap();
    assert_eq!(mode(&again.key), 0o600);
}

#[test]
fn init_root_refuses_to_overwrite_without_force() {
    let pki = Pki::new("mesh.local", &[]);
    let before = std::fs::read(pki.path().join("root.pem")).unwrap();
    let err = init_root(pki.path(), "mesh.local", false).unwrap_err();
    assert!(matches!(err, PkiError::RootExists { .. }));
    assert!(err.to_string().contains("pass --force"), "{err}");
    assert_eq!(std::fs::read(pki.path().join("root.pem")).unwrap(), before);

    init_root(pki.path(), "other.local", true).unwrap();
    assert_ne!(std::fs::read(pki.path().join("root.pem")).unwrap(), before);
    assert_eq!(pki::trust_domain(pki.path()).unwrap(), "other.local");
}

#[test]
fn issuing_without_a_root_or_cluster_ca_says_what_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let err = issue_cluster_ca(dir.path(), "aws-us").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("no mesh root in {}", dir.path().display())),
        "{msg}"
    );
    assert!(msg.contains("meshgw ca init --dir"), "{msg}");

    let pki = Pki::new("mesh.local", &[]);
    let err = issue_gateway(pki.path(), "aws-us").unwrap_err();
    assert!(matches!(err, PkiError::NoClusterCa { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "run `meshgw ca cluster --dir {} --name aws-us` first",
            pki.path().display()
        )),
        "{err}"
    );
}

#[test]
fn names_that_escape_the_directory_are_refused() {
    let pki = Pki::new("mesh.local", &["aws-us"]);
    assert!(matches!(
        issue_cluster_ca(pki.path(), "../evil"),
        Err(PkiError::InvalidName { .. })
    ));
    assert!(matches!(
        issue_workload(pki.path(), "aws-us", "shop", "a/b"),
        Err(PkiError::InvalidName { .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        init_root(dir.path(), "Mesh Local", false),
        Err(PkiError::InvalidName { .. })
    ));
}

#[test]
fn load_key_refuses_a_key_others_can_read() {
    let pki = Pki::new("mesh.local", &["aws-us"]);
    let gw = issue_gateway(pki.path(), "aws-us").unwrap();
    assert!(load_key(&gw.key).is_ok());

    std::fs::set_permissions(&gw.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = load_key(&gw.key).unwrap_err();
    assert!(matches!(
        err,
        IdentityError::KeyReadableByOthers { mode: 0o644, .. }
    ));
    let p = gw.key.display();
    assert_eq!(
        err.to_string(),
        format!(
            "private key {p} is readable by its group or others (mode 0644); run: chmod 600 {p}"
        )
    );
}

#[test]
fn loading_a_file_without_certificates_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.pem");
    std::fs::write(&path, "not a certificate\n").unwrap();
    let err = load_certs(&path).unwrap_err();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}
