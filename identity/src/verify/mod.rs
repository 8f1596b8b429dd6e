//! rustls certificate verifiers that authenticate peers by SPIFFE ID.
//!
//! Both verifiers validate the presented chain against a trust bundle with
//! rustls-webpki (no DNS name checks: meshgw names peers by SPIFFE ID, not by
//! host name), then compare the leaf's `spiffe://` URI SAN:
//!
//! - [`SpiffeServerVerifier`] (client side) expects one exact SPIFFE ID;
//! - [`SpiffeClientVerifier`] (server side) accepts a client that chains to
//!   the bundle of some [`TrustEntry`] whose [`SpiffeMatch`](crate::SpiffeMatch)
//!   accepts its ID.
//!
//! A refusal is returned to rustls as
//! `InvalidCertificate(CertificateError::Other(..))` wrapping a [`PeerRejected`]
//! whose message says who was refused and why, and is logged with `tracing::warn!`.

mod bundle;
mod client;
mod rejected;
mod server;

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls_pki_types::CertificateDer;

pub use client::{SpiffeClientVerifier, TrustEntry};
pub use rejected::PeerRejected;
pub use server::SpiffeServerVerifier;

use crate::load::spiffe_id_of;

/// Returns the SPIFFE ID of the leaf of a peer's certificate chain, as
/// returned by `peer_certificates()` after a handshake.
pub fn peer_spiffe_id(certs: Option<&[CertificateDer<'_>]>) -> Option<String> {
    certs?.first().and_then(spiffe_id_of)
}

/// Returns the cluster whose CA issued the leaf of a peer's verified
/// chain ([`issuing_cluster_of`](crate::load::issuing_cluster_of)).
pub fn peer_cluster(certs: Option<&[CertificateDer<'_>]>) -> Option<String> {
    certs?.first().and_then(crate::load::issuing_cluster_of)
}

/// Signature algorithms of the ring provider, used for chains and handshakes.
pub(crate) fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

#[cfg(test)]
mod tests {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::{CertificateError, Error};
    use rustls_pki_types::{ServerName, UnixTime};

    use super::*;
    use crate::pki::{init_root, issue_cluster_ca, issue_gateway};

    #[test]
    fn refusals_carry_a_downcastable_reason() {
        let dir = tempfile::tempdir().unwrap();
        init_root(dir.path(), "mesh.local", false).unwrap();
        issue_cluster_ca(dir.path(), "evil").unwrap();
        let evil =
            crate::load::load_certs(&issue_gateway(dir.path(), "evil").unwrap().cert).unwrap();
        let root = crate::load::load_certs(&dir.path().join("root.pem")).unwrap();
        let verifier =
            SpiffeServerVerifier::new("gcp-eu", root, "spiffe://mesh.local/cluster/gcp-eu/gateway")
                .unwrap();
        let name = ServerName::try_from("gcp-eu").unwrap();
        let err = verifier
            .verify_server_cert(&evil[0], &evil[1..], &name, &[], UnixTime::now())
            .unwrap_err();
        let Error::InvalidCertificate(CertificateError::Other(other)) = err else {
            panic!("unexpected error {err:?}");
        };
        let rejected = other.0.downcast_ref::<PeerRejected>().unwrap();
        assert_eq!(
            rejected,
            &PeerRejected::WrongSpiffeId {
                peer: "gcp-eu".into(),
                presented: "spiffe://mesh.local/cluster/evil/gateway".into(),
                expected: "spiffe://mesh.local/cluster/gcp-eu/gateway".into(),
            }
        );

        // Without the intermediate the chain cannot be built.
        let err = verifier
            .verify_server_cert(&evil[0], &[], &name, &[], UnixTime::now())
            .unwrap_err();
        assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    }

    /// A root in its own directory, with cluster `c`'s gateway issued from
    /// it: (root certificates, gateway chain).
    fn root_with_gateway(
        dir: &std::path::Path,
        c: &str,
    ) -> (Vec<CertificateDer<'static>>, Vec<CertificateDer<'static>>) {
        init_root(dir, "mesh.local", false).unwrap();
        issue_cluster_ca(dir, c).unwrap();
        let chain = crate::load::load_certs(&issue_gateway(dir, c).unwrap().cert).unwrap();
        (
            crate::load::load_certs(&dir.join("root.pem")).unwrap(),
            chain,
        )
    }

    #[test]
    fn replaced_bundles_apply_to_the_next_verification() {
        use rustls::server::danger::ClientCertVerifier;

        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (old_root, old_gw) = root_with_gateway(d1.path(), "b");
        let (new_root, new_gw) = root_with_gateway(d2.path(), "b");
        let id = "spiffe://mesh.local/cluster/b/gateway";
        let now = UnixTime::now();
        let name = ServerName::try_from("b").unwrap();

        // Dialling side: one peer's bundle.
        let server = SpiffeServerVerifier::new("b", old_root.clone(), id).unwrap();
        let dial = |gw: &[CertificateDer<'static>]| {
            server
                .verify_server_cert(&gw[0], &gw[1..], &name, &[], now)
                .is_ok()
        };
        assert!(dial(&old_gw) && !dial(&new_gw));
        assert!(
            !server.replace_bundle(old_root.clone()).unwrap(),
            "same bundle"
        );
        let both: Vec<_> = old_root.iter().chain(&new_root).cloned().collect();
        assert!(server.replace_bundle(both).unwrap());
        assert!(dial(&old_gw) && dial(&new_gw), "both roots trusted");
        let garbage = vec![CertificateDer::from(b"not a certificate".to_vec())];
        assert!(server.replace_bundle(garbage).is_err());
        assert!(server.replace_bundle(vec![]).is_err());
        assert!(dial(&new_gw), "a bad bundle changed nothing");
        assert!(server.replace_bundle(new_root.clone()).unwrap());
        assert!(!dial(&old_gw) && dial(&new_gw), "the old root is gone");

        // Accepting side: trust entries.
        let entry = |bundle: &Vec<CertificateDer<'static>>| TrustEntry {
            name: "b".into(),
            bundle: bundle.clone(),
            allowed: crate::SpiffeMatch::Exact(id.into()),
        };
        let client = SpiffeClientVerifier::new(vec![entry(&old_root)]).unwrap();
        let accept = |gw: &[CertificateDer<'static>]| {
            client.verify_client_cert(&gw[0], &gw[1..], now).is_ok()
        };
        assert!(accept(&old_gw) && !accept(&new_gw));
        assert!(
            !client.replace(vec![entry(&old_root)]).unwrap(),
            "same entries"
        );
        let bad = TrustEntry {
            bundle: vec![],
            ..entry(&new_root)
        };
        assert!(client.replace(vec![entry(&new_root), bad]).is_err());
        assert!(
            accept(&old_gw) && !accept(&new_gw),
            "a bad entry changed nothing"
        );
        assert!(client.replace(vec![entry(&new_root)]).unwrap());
        assert!(!accept(&old_gw) && accept(&new_gw));
        assert!(client.root_hint_subjects().is_empty());
    }

    #[test]
    fn empty_bundles_are_refused_at_construction() {
        let err = SpiffeServerVerifier::new("gcp-eu", vec![], "spiffe://m/cluster/gcp-eu/gateway")
            .unwrap_err();
        assert!(
            err.to_string().contains("trust bundle for gcp-eu is empty"),
            "{err}"
        );
    }
}
