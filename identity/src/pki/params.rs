//! Certificate parameters for the root, the cluster intermediates and leaves.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::error::PkiError;

/// Validity of the mesh root.
const ROOT_VALIDITY: Duration = Duration::days(10 * 365);
/// Validity of a cluster intermediate.
const INTERMEDIATE_VALIDITY: Duration = Duration::days(5 * 365);
/// Validity of gateway and workload certificates.
const LEAF_VALIDITY: Duration = Duration::days(365);
/// How far `notBefore` is back-dated, to tolerate clock skew between hosts.
const BACKDATE: Duration = Duration::minutes(5);

/// Generates a fresh ECDSA P-256 key pair.
pub(crate) fn new_key(what: &str) -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|source| PkiError::Generate {
        what: format!("a P-256 key for {what}"),
        source,
    })
}

fn uri_san(uri: &str) -> Result<SanType, PkiError> {
    let value = uri.try_into().map_err(|source| PkiError::Generate {
        what: format!("a URI SAN for {uri}"),
        source,
    })?;
    Ok(SanType::URI(value))
}

fn base(common_name: &str, trust_domain: &str, validity: Duration) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, trust_domain);
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
    params.use_authority_key_identifier_extension = true;
    params
}

/// Parameters of the self-signed mesh root; its URI SAN `spiffe://<td>`
/// records the trust domain for later commands.
pub(crate) fn root(trust_domain: &str) -> Result<CertificateParams, PkiError> {
    let mut params = base("meshgw mesh root CA", trust_domain, ROOT_VALIDITY);
    params.use_authority_key_identifier_extension = false;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.subject_alt_names = vec![uri_san(&format!("spiffe://{trust_domain}"))?];
    Ok(params)
}

/// Parameters of a cluster intermediate CA (path length 0: it signs leaves only).
pub(crate) fn intermediate(trust_domain: &str, cluster: &str) -> CertificateParams {
    let mut params = base(
        &crate::load::cluster_ca_common_name(cluster),
        trust_domain,
        INTERMEDIATE_VALIDITY,
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// Parameters of a gateway or workload certificate for `spiffe_id`,
/// usable for both TLS server and client authentication.
pub(crate) fn leaf(
    trust_domain: &str,
    common_name: &str,
    spiffe_id: &str,
) -> Result<CertificateParams, PkiError> {
    let mut params = base(common_name, trust_domain, LEAF_VALIDITY);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let localhost = "localhost"
        .try_into()
        .map_err(|source| PkiError::Generate {
            what: "a DNS SAN for localhost".into(),
            source,
        })?;
    params.subject_alt_names = vec![uri_san(spiffe_id)?, SanType::DnsName(localhost)];
    Ok(params)
}
