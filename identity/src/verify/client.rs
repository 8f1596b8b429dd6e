//! The server side's verifier of clients (peer gateways, sidecars).

use std::sync::{Arc, RwLock};

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
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// The entries in force, and what they were parsed from (to tell whether
/// a reload changes anything).
#[derive(Debug)]
struct Entries {
    parsed: Vec<ParsedEntry>,
    source: Vec<TrustEntry>,
}

impl Entries {
    fn parse(source: Vec<TrustEntry>) -> Result<Self, IdentityError> {
        let parsed = source
            .iter()
            .map(|entry| {
                entry.allowed.validate()?;
                Ok(ParsedEntry {
                    bundle: Bundle::new(&entry.name, &entry.bundle)?,
                    name: entry.name.clone(),
                    allowed: entry.allowed.clone(),
                })
            })
            .collect::<Result<Vec<_>, IdentityError>>()?;
        Ok(Self { parsed, source })
    }
}

/// Verifies client certificates (client authentication is mandatory): a
/// client is accepted if its chain validates to the bundle of a
/// [`TrustEntry`] whose matcher accepts its SPIFFE ID.
///
/// The entries can be replaced under running listeners
/// ([`SpiffeClientVerifier::replace`]), as a trust bundle is during a CA
/// rotation; every configuration sharing the verifier uses the new ones
/// from the next handshake on. No `certificate_authorities` hints are sent:
/// every mesh client has one certificate, and hints fixed in a
/// configuration would go stale at the first reload.
#[derive(Debug)]
pub struct SpiffeClientVerifier {
    entries: RwLock<Arc<Entries>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl SpiffeClientVerifier {
    /// Builds a verifier from trust entries; fails if an entry's bundle is
    /// empty or unparsable, or its matcher is malformed.
    pub fn new(entries: Vec<TrustEntry>) -> Result<Self, IdentityError> {
        Ok(SpiffeClientVerifier {
            entries: RwLock::new(Arc::new(Entries::parse(entries)?)),
            algorithms: super::algorithms(),
        })
    }

    /// Trusts `entries` instead of the current ones from the next handshake
    /// on. Returns `false` (and changes nothing) when they are the current
    /// ones; fails, keeping the current ones, when one does not parse.
    pub fn replace(&self, entries: Vec<TrustEntry>) -> Result<bool, IdentityError> {
        if self.current().source == entries {
            return Ok(false);
        }
        let next = Arc::new(Entries::parse(entries)?);
        *self.entries.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(true)
    }

    fn current(&self) -> Arc<Entries> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Returns the name of the entry that accepts the client, or why none does.
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<String, PeerRejected> {
        let Some(spiffe_id) = spiffe_id_of(end_entity) else {
            return Err(PeerRejected::NoSpiffeId {
                peer: "client".into(),
            });
        };
        let entries = self.current();
        let mut tried = Vec::with_capacity(entries.parsed.len());
        for entry in &entries.parsed {
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
                Ok(()) => return Ok(entry.name.clone()),
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
        &[]
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
