//! The client side's verifier of a server (peer gateway or sidecar).

use std::sync::{Arc, RwLock};

use rustls::DigitallySignedStruct;
use rustls::SignatureScheme;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use webpki::KeyUsage;

use super::PeerRejected;
use super::bundle::Bundle;
use crate::error::IdentityError;
use crate::load::spiffe_id_of;
use crate::spiffe::SpiffeMatch;

/// Verifies that a server chains to a trust bundle and presents exactly the
/// expected SPIFFE ID. The TLS server name is ignored. The bundle can be
/// replaced under running dialers ([`SpiffeServerVerifier::replace_bundle`]).
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    peer: String,
    /// The bundle in force, and the certificates it was parsed from.
    bundle: RwLock<Arc<(Bundle, Vec<CertificateDer<'static>>)>>,
    expected: String,
    algorithms: WebPkiSupportedAlgorithms,
}

impl SpiffeServerVerifier {
    /// Builds a verifier for `peer` (its name in logs and errors) that trusts
    /// the roots in `bundle` and expects the SPIFFE ID `expected`.
    pub fn new(
        peer: impl Into<String>,
        bundle: Vec<CertificateDer<'static>>,
        expected: impl Into<String>,
    ) -> Result<Self, IdentityError> {
        let peer = peer.into();
        let expected = expected.into();
        SpiffeMatch::Exact(expected.clone()).validate()?;
        Ok(SpiffeServerVerifier {
            bundle: RwLock::new(Arc::new((Bundle::new(&peer, &bundle)?, bundle))),
            peer,
            expected,
            algorithms: super::algorithms(),
        })
    }

    /// Trusts the roots in `bundle` instead of the current ones from the next
    /// handshake on. Returns `false` (and changes nothing) when they are the
    /// current ones; fails, keeping the current ones, when `bundle` is empty
    /// or does not parse.
    pub fn replace_bundle(
        &self,
        bundle: Vec<CertificateDer<'static>>,
    ) -> Result<bool, IdentityError> {
        if self.current().1 == bundle {
            return Ok(false);
        }
        let next = Arc::new((Bundle::new(&self.peer, &bundle)?, bundle));
        *self.bundle.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(true)
    }

    fn current(&self) -> Arc<(Bundle, Vec<CertificateDer<'static>>)> {
        self.bundle
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Returns the SPIFFE ID this verifier expects.
    pub fn expected(&self) -> &str {
        &self.expected
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), PeerRejected> {
        let peer = self.peer.clone();
        let Some(presented) = spiffe_id_of(end_entity) else {
            return Err(PeerRejected::NoSpiffeId { peer });
        };
        if let Err(reason) =
            self.current()
                .0
                .verify(end_entity, intermediates, now, KeyUsage::server_auth())
        {
            return Err(PeerRejected::Untrusted {
                peer,
                spiffe_id: presented,
                reason,
            });
        }
        if presented != self.expected {
            return Err(PeerRejected::WrongSpiffeId {
                peer,
                presented,
                expected: self.expected.clone(),
            });
        }
        Ok(())
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.check(end_entity, intermediates, now) {
            Ok(()) => Ok(ServerCertVerified::assertion()),
            Err(rejected) => {
                tracing::warn!(peer = %self.peer, error = %rejected, "refused TLS server certificate");
                Err(rejected.into())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
