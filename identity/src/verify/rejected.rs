//! Why a peer's certificate was refused.

use std::fmt;
use std::sync::Arc;

use rustls::{CertificateError, OtherError};

/// The reason a peer's certificate was refused, carried inside the rustls
/// error (`Error::InvalidCertificate(CertificateError::Other(..))`); callers
/// may downcast `OtherError.0` to this type.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerRejected {
    /// The leaf has no `spiffe://` URI SAN.
    #[error(
        "peer {peer} presented a certificate without a spiffe:// URI SAN: issue it with `meshgw ca`"
    )]
    NoSpiffeId {
        /// The peer's configured name (or `client` when unknown).
        peer: String,
    },

    /// The chain does not validate against the peer's trust bundle.
    #[error(
        "certificate of {spiffe_id} does not chain to the trust bundle of peer {peer}: {reason}"
    )]
    Untrusted {
        /// The peer's configured name.
        peer: String,
        /// The SPIFFE ID the certificate claims.
        spiffe_id: String,
        /// The webpki reason, e.g. `UnknownIssuer` or `CertExpired`.
        reason: String,
    },

    /// The chain is valid but the SPIFFE ID is not the expected one.
    #[error("peer {peer} presented SPIFFE ID {presented}, expected {expected}")]
    WrongSpiffeId {
        /// The peer's configured name.
        peer: String,
        /// The SPIFFE ID in the certificate.
        presented: String,
        /// What was expected.
        expected: String,
    },

    /// A client's certificate is not accepted by any trust entry.
    #[error("client {spiffe_id} is not trusted: {tried}")]
    ClientNotTrusted {
        /// The SPIFFE ID the client presented.
        spiffe_id: String,
        /// What each trust entry said, `; `-separated.
        tried: String,
    },
}

/// Prints like `Display`, so rustls' messages (which use `Debug` for
/// `CertificateError::Other`) stay readable.
impl fmt::Debug for PeerRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<PeerRejected> for rustls::Error {
    fn from(rejected: PeerRejected) -> Self {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(rejected))))
    }
}
