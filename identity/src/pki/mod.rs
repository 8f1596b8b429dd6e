//! Development PKI behind `meshgw ca`: a mesh root, per-cluster intermediates,
//! and gateway and workload certificates carrying SPIFFE IDs.
//!
//! Layout of a PKI directory `D`:
//!
//! ```text
//! D/root.pem, D/root.key                  mesh root CA (self-signed)
//! D/<cluster>/ca.pem, ca.key              cluster intermediate, signed by the root
//! D/<cluster>/gateway.pem, gateway.key    gateway leaf + intermediate
//! D/<cluster>/<ns>.<service>.pem, .key    workload leaf + intermediate
//! ```
//!
//! Keys are ECDSA P-256 and are written with mode 0600; the trust domain is
//! recorded in the root's `spiffe://<td>` URI SAN (see [`trust_domain`]).
//! Re-issuing a leaf or intermediate replaces its files atomically, which is
//! how certificates are rotated; only the root refuses to be replaced
//! without `force`.

mod files;
mod params;

use std::path::{Path, PathBuf};

use crate::error::PkiError;
use crate::load::{load_certs, spiffe_id_of};
use crate::spiffe::{self, check_segment, check_trust_domain};
use files::{PUBLIC_MODE, SECRET_MODE, ensure_dir, load_issuer, write_file};

/// File name of the mesh root certificate in a PKI directory.
pub const ROOT_CERT: &str = "root.pem";
/// File name of the mesh root key in a PKI directory.
pub const ROOT_KEY: &str = "root.key";

/// Paths and SPIFFE ID of a certificate written by [`issue_gateway`] or [`issue_workload`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// The chain file: leaf, then the cluster intermediate.
    pub cert: PathBuf,
    /// The private key file (mode 0600).
    pub key: PathBuf,
    /// The SPIFFE ID in the leaf's URI SAN.
    pub spiffe_id: String,
}

/// Creates the mesh root CA for `trust_domain` in `dir`; returns the path of `root.pem`.
///
/// Refuses to replace an existing root unless `force` is set.
pub fn init_root(dir: &Path, trust_domain: &str, force: bool) -> Result<PathBuf, PkiError> {
    check_trust_domain(trust_domain).map_err(|reason| PkiError::InvalidName {
        what: "trust domain",
        value: trust_domain.to_owned(),
        reason,
    })?;
    let cert_path = dir.join(ROOT_CERT);
    let key_path = dir.join(ROOT_KEY);
    if !force && (cert_path.exists() || key_path.exists()) {
        return Err(PkiError::RootExists {
            dir: dir.to_owned(),
        });
    }
    ensure_dir(dir)?;
    let key = params::new_key("the mesh root")?;
    let cert = params::root(trust_domain)?
        .self_signed(&key)
        .map_err(|source| PkiError::Generate {
            what: "the mesh root certificate".into(),
            source,
        })?;
    write_file(&key_path, key.serialize_pem().as_bytes(), SECRET_MODE)?;
    write_file(&cert_path, cert.pem().as_bytes(), PUBLIC_MODE)?;
    Ok(cert_path)
}

/// Returns the trust domain of the mesh root in `dir`.
pub fn trust_domain(dir: &Path) -> Result<String, PkiError> {
    let cert_path = dir.join(ROOT_CERT);
    if !cert_path.exists() {
        return Err(PkiError::NoRoot {
            dir: dir.to_owned(),
        });
    }
    let root = load_certs(&cert_path)?;
    spiffe_id_of(&root[0])
        .and_then(|id| spiffe::trust_domain_of(&id).map(str::to_owned))
        .ok_or_else(|| PkiError::BadCa {
            path: cert_path,
            reason: "it has no spiffe://<trust-domain> URI SAN".into(),
        })
}

/// Creates the intermediate CA of `cluster`, signed by the root in `dir`;
/// returns the path of `<cluster>/ca.pem`.
pub fn issue_cluster_ca(dir: &Path, cluster: &str) -> Result<PathBuf, PkiError> {
    check_name("cluster name", cluster)?;
    let td = trust_domain(dir)?;
    let (root, _) = load_issuer(&dir.join(ROOT_CERT), &dir.join(ROOT_KEY))?;
    let key = params::new_key(&format!("the CA of cluster {cluster}"))?;
    let cert = params::intermediate(&td, cluster)
        .signed_by(&key, &root)
        .map_err(|source| PkiError::Generate {
            what: format!("the CA certificate of cluster {cluster}"),
            source,
        })?;
    let cluster_dir = dir.join(cluster);
    ensure_dir(&cluster_dir)?;
    write_file(
        &cluster_dir.join("ca.key"),
        key.serialize_pem().as_bytes(),
        SECRET_MODE,
    )?;
    let cert_path = cluster_dir.join("ca.pem");
    write_file(&cert_path, cert.pem().as_bytes(), PUBLIC_MODE)?;
    Ok(cert_path)
}

/// Issues the gateway certificate of `cluster`
/// (`spiffe://<td>/cluster/<cluster>/gateway`) as `<cluster>/gateway.pem`.
pub fn issue_gateway(dir: &Path, cluster: &str) -> Result<IssuedCert, PkiError> {
    check_name("cluster name", cluster)?;
    let td = trust_domain(dir)?;
    let id = spiffe::gateway_id(&td, cluster);
    issue_leaf(
        dir,
        cluster,
        "gateway",
        &format!("meshgw gateway {cluster}"),
        &td,
        id,
    )
}

/// Issues the certificate of workload `service` in `namespace`
/// (`spiffe://<td>/ns/<namespace>/sa/<service>`) as `<cluster>/<namespace>.<service>.pem`.
pub fn issue_workload(
    dir: &Path,
    cluster: &str,
    namespace: &str,
    service: &str,
) -> Result<IssuedCert, PkiError> {
    check_name("cluster name", cluster)?;
    check_name("namespace", namespace)?;
    check_name("service name", service)?;
    let td = trust_domain(dir)?;
    let id = spiffe::workload_id(&td, namespace, service);
    let stem = format!("{namespace}.{service}");
    issue_leaf(
        dir,
        cluster,
        &stem,
        &format!("{service}.{namespace}"),
        &td,
        id,
    )
}

fn issue_leaf(
    dir: &Path,
    cluster: &str,
    stem: &str,
    common_name: &str,
    trust_domain: &str,
    spiffe_id: String,
) -> Result<IssuedCert, PkiError> {
    let cluster_dir = dir.join(cluster);
    let ca_cert = cluster_dir.join("ca.pem");
    if !ca_cert.exists() {
        return Err(PkiError::NoClusterCa {
            dir: dir.to_owned(),
            cluster: cluster.to_owned(),
        });
    }
    let (issuer, ca_pem) = load_issuer(&ca_cert, &cluster_dir.join("ca.key"))?;
    let key = params::new_key(&spiffe_id)?;
    let cert = params::leaf(trust_domain, common_name, &spiffe_id)?
        .signed_by(&key, &issuer)
        .map_err(|source| PkiError::Generate {
            what: format!("the certificate of {spiffe_id}"),
            source,
        })?;
    let key_path = cluster_dir.join(format!("{stem}.key"));
    let cert_path = cluster_dir.join(format!("{stem}.pem"));
    write_file(&key_path, key.serialize_pem().as_bytes(), SECRET_MODE)?;
    let chain = format!("{}{}", cert.pem(), ca_pem);
    write_file(&cert_path, chain.as_bytes(), PUBLIC_MODE)?;
    Ok(IssuedCert {
        cert: cert_path,
        key: key_path,
        spiffe_id,
    })
}

fn check_name(what: &'static str, value: &str) -> Result<(), PkiError> {
    check_segment(value).map_err(|reason| PkiError::InvalidName {
        what,
        value: value.to_owned(),
        reason,
    })
}
