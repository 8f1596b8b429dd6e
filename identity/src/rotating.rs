//! A certificate that can be replaced under a running process: rustls asks
//! [`RotatingCert`] for the current certificate and key at each handshake,
//! as server ([`ResolvesServerCert`]) and as client ([`ResolvesClientCert`]),
//! so every listener and dialer built on it presents a rotated certificate
//! from the next handshake on, without rebuilding its configuration.

use std::sync::{Arc, RwLock};

use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::error::IdentityError;
use crate::load::Identity;

/// The current certificate chain and key of one SPIFFE ID.
#[derive(Debug)]
pub struct RotatingCert {
    spiffe_id: String,
    current: RwLock<Arc<CertifiedKey>>,
}

fn certified(id: &Identity) -> Result<CertifiedKey, IdentityError> {
    Ok(CertifiedKey::from_der(
        id.chain.clone(),
        id.key.clone_key(),
        &crate::tls::provider(),
    )?)
}

impl RotatingCert {
    /// Starts with `id`; fails if its key does not belong to its certificate.
    pub fn new(id: &Identity) -> Result<Arc<Self>, IdentityError> {
        Ok(Arc::new(Self {
            spiffe_id: id.spiffe_id.clone(),
            current: RwLock::new(Arc::new(certified(id)?)),
        }))
    }

    /// The SPIFFE ID every certificate of this source names.
    pub fn spiffe_id(&self) -> &str {
        &self.spiffe_id
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Presents `id` from the next handshake on. Returns `false` (and
    /// changes nothing) when it is the certificate already presented; fails,
    /// keeping the current one, when its key does not match or it names
    /// another SPIFFE ID.
    pub fn replace(&self, id: &Identity) -> Result<bool, IdentityError> {
        if id.spiffe_id != self.spiffe_id {
            return Err(IdentityError::OtherSpiffeId {
                found: id.spiffe_id.clone(),
                expected: self.spiffe_id.clone(),
            });
        }
        if self.current().cert == id.chain {
            return Ok(false);
        }
        let next = Arc::new(certified(id)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(true)
    }
}

impl ResolvesServerCert for RotatingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for RotatingCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
