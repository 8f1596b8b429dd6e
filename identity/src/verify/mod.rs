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

/// Signature algorithms of the ring provider, used for chains and handshakes.
pub(crate) fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}
