//! Loading certificates, private keys and whole identities from PEM files.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;

use crate::error::IdentityError;

/// Returns every certificate in the PEM file at `path`, in file order.
///
/// Fails if the file cannot be read, is not PEM, or holds no certificate.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| IdentityError::Pem {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(IdentityError::NoCertificates {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Returns the private key in the PEM file at `path`.
///
/// Refuses a key file that its group or other users may read: a mesh key
/// must be mode 0600 (or stricter).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, IdentityError> {
    let meta = std::fs::metadata(path).map_err(|source| IdentityError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::KeyReadableByOthers {
            path: path.to_owned(),
            mode,
        });
    }
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|source| match source {
        rustls_pki_types::pem::Error::NoItemsFound => IdentityError::NoPrivateKey {
            path: path.to_owned(),
        },
        source => IdentityError::Pem {
            path: path.to_owned(),
            source,
        },
    })
}

/// The common name `meshgw ca cluster` gives the CA of `cluster`.
pub(crate) fn cluster_ca_common_name(cluster: &str) -> String {
    format!("{CLUSTER_CA_PREFIX}{cluster}{CLUSTER_CA_SUFFIX}")
}

const CLUSTER_CA_PREFIX: &str = "meshgw cluster ";
const CLUSTER_CA_SUFFIX: &str = " CA";

/// Returns the cluster whose CA (made by `meshgw ca cluster`) issued a
/// certificate: the name in its issuer's common name
/// (`meshgw cluster <cluster> CA`), or `None` for a certificate another
/// CA issued (the mesh root itself, or an operator's own).
///
/// The issuer's organization must be the trust domain of the certificate's
/// SPIFFE ID (as `meshgw ca` makes them). Only meaningful for a certificate
/// whose chain has been verified: path validation requires the issuer name
/// to be the signing CA's subject, and a cluster CA (path length 0) cannot
/// make another CA, so the name is as trustworthy as the root that vouched
/// for the chain — which, like every root in a trust bundle, could vouch
/// for any cluster name as it can for any SPIFFE ID.
pub fn issuing_cluster_of(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let issuer = parsed.issuer();
    let cn = issuer.iter_common_name().next()?.as_str().ok()?;
    let cluster = cn
        .strip_prefix(CLUSTER_CA_PREFIX)?
        .strip_suffix(CLUSTER_CA_SUFFIX)?;
    crate::spiffe::check_segment(cluster).ok()?;
    // `meshgw ca` names a cluster CA's organization after its trust domain:
    // it must be the leaf's, so that another mesh's CA (a second root in
    // the bundle) cannot speak for this mesh's clusters by its name alone.
    let org = issuer.iter_organization().next()?.as_str().ok()?;
    let id = spiffe_id_of(cert)?;
    let td = id.strip_prefix("spiffe://")?.split('/').next()?;
    (org == td).then(|| cluster.to_owned())
}

/// Returns the `spiffe://` URI SAN of a certificate, if it has one.
pub fn spiffe_id_of(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let san = parsed.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|name| match name {
        GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some((*uri).to_owned()),
        _ => None,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, IdentityError> {
    std::fs::read(path).map_err(|source| IdentityError::Read {
        path: path.to_owned(),
        source,
    })
}

/// A certificate chain, its private key and the SPIFFE ID of the leaf.
pub struct Identity {
    /// The leaf certificate first, then its intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
    /// The leaf's SPIFFE ID.
    pub spiffe_id: String,
}

impl Identity {
    /// Loads an identity from a chain file (leaf first) and a key file.
    ///
    /// Fails if the key is readable by others or the leaf has no SPIFFE ID.
    /// Whether the key matches the certificate is checked when a TLS
    /// configuration is built from the identity.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, IdentityError> {
        let chain = load_certs(cert)?;
        let spiffe_id = spiffe_id_of(&chain[0]).ok_or_else(|| IdentityError::NoSpiffeId {
            path: PathBuf::from(cert),
        })?;
        let key = load_key(key)?;
        Ok(Identity {
            chain,
            key,
            spiffe_id,
        })
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            spiffe_id: self.spiffe_id.clone(),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("spiffe_id", &self.spiffe_id)
            .field("chain_len", &self.chain.len())
            .field("key", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
        SanType,
    };

    use super::*;

    /// A leaf for `spiffe://mesh.local/ns/shop/sa/cart` signed by a CA whose
    /// subject is `O=<org>, CN=<cn>`.
    fn leaf_under(org: &str, cn: &str) -> CertificateDer<'static> {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, org);
        dn.push(DnType::CommonName, cn);
        ca.distinguished_name = dn;
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let issuer = Issuer::new(ca, ca_key);
        let mut leaf = CertificateParams::default();
        let uri = "spiffe://mesh.local/ns/shop/sa/cart".try_into().unwrap();
        leaf.subject_alt_names = vec![SanType::URI(uri)];
        let key = KeyPair::generate().unwrap();
        leaf.signed_by(&key, &issuer).unwrap().der().clone()
    }

    #[test]
    fn the_cluster_needs_the_issuer_of_this_trust_domain() {
        let ours = leaf_under("mesh.local", "meshgw cluster eu CA");
        assert_eq!(issuing_cluster_of(&ours).as_deref(), Some("eu"));
        let foreign = leaf_under("other.mesh", "meshgw cluster eu CA");
        assert_eq!(issuing_cluster_of(&foreign), None);
        let not_a_cluster = leaf_under("mesh.local", "Example Corp CA");
        assert_eq!(issuing_cluster_of(&not_a_cluster), None);
        let bad_name = leaf_under("mesh.local", "meshgw cluster e/u CA");
        assert_eq!(issuing_cluster_of(&bad_name), None);
    }
}
