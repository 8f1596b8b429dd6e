//! The server side's verifier of clients (peer gateways, sidecars).

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};
use webpki::KeyUsage;

use super::PeerRejected;
use super::bundle::Bundle;
use crate::error::IdentityError;
use crate::load::spiffe_id_of;
use crate::spiffe::SpiffeMatch;

/// One source of trusted clients: a trust bundle and the SPIFFE IDs it may vouch for.
#[derive(Debug, Clone)]
pub struct TrustEntry {
    /// Who this entry stands for in logs and errors: a peer name, or `local`.
    pub name: String,
    /// Root certificates a client's chain must lead to.
    pub bundle: Vec<CertificateDer<'static>>,
    /// Which SPIFFE IDs this entry accepts.
    pub allowed: SpiffeMatch,
}

#[derive(Debug)]
struct ParsedEntry {
    name: String,
    bundle: Bundle,
    allowed: SpiffeMatch,
}

/// Verifies client certificates (client authentication is mandatory): a
/// client is accepted if its chain validates to the bundle of a
/// [`TrustEntry`] whose matcher accepts its SPIFFE ID.
#[derive(Debug)]
pub struct SpiffeClientVerifier {
    entries: Vec<ParsedEntry>,
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl SpiffeClientVerifier {
    /// Builds a verifier from trust entries; fails if an entry's bundle is
    /// empty or unparsable, or its matcher is malformed.
    pub fn new(entries: Vec<TrustEntry>) -> Result<Self, IdentityError> {
        let entries = entries
            .into_iter()
            .map(|entry| {
                entry.allowed.validate()?;
                Ok(ParsedEntry {
                    bundle: Bundle::new(&entry.name, &entry.bundle)?,
                    name: entry.name,
                    allowed: entry.allowed,
                })
            })
            .collect::<Result<Vec<_>, IdentityError>>()?;
        let hints = entries.iter().flat_map(|e| e.bundle.subjects()).collect();
        Ok(SpiffeClientVerifier {
            entries,
            hints,
            algorithms: super::algorithms(),
        })
    }

    /// Returns the name of the entry that accepts the client, or why none does.
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<&str, PeerRejected> {
        let Some(spiffe_id) = spiffe_id_of(end_entity) else {
            return Err(PeerRejected::NoSpiffeId {
                peer: "client".into(),
            });
        };
        let mut tried = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            match entry
                .bundle
                .verify(end_entity, intermediates, now, KeyUsage::client_auth())
            {
                Err(reason) => tried.push(format!(
                    "does not chain to the trust bundle of peer {}: {reason}",
                    entry.name
                )),
                Ok(()) if !entry.allowed.matches(&spiffe_id) => tried.push(format!(
                    "chains to the trust bundle of peer {} but that peer may only present {}",
                    entry.name, entry.allowed
                )),
                Ok(()) => return Ok(&entry.name),
            }
        }
        if tried.is_empty() {
            tried.push("no trust entries are configured".into());
        }
        Err(PeerRejected::ClientNotTrusted {
            spiffe_id,
            tried: tried.join("; "),
        })
    }
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.check(end_entity, intermediates, now) {
            Ok(entry) => {
                tracing::debug!(peer = %entry, "accepted TLS client certificate");
                Ok(ClientCertVerified::assertion())
            }
            Err(rejected) => {
                tracing::warn!(error = %rejected, "refused TLS client certificate");
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
