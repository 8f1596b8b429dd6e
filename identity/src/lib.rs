//! Mesh identity for meshgw: who a gateway or sidecar is, and who it lets in.
//!
//! Every gateway and sidecar holds an X.509 certificate whose URI SAN is a
//! SPIFFE ID (`spiffe://<trust-domain>/cluster/<cluster>/gateway` for a
//! gateway, `spiffe://<trust-domain>/ns/<namespace>/sa/<service>` for a
//! workload). This crate provides:
//!
//! - [`pki`]: the development PKI behind `meshgw ca` ([`init_root`],
//!   [`issue_cluster_ca`], [`issue_gateway`], [`issue_workload`]);
//! - [`load`]: reading chains and keys from PEM files ([`Identity::load`],
//!   refusing keys others may read), [`spiffe_id_of`] and
//!   [`issuing_cluster_of`];
//! - [`verify`]: rustls verifiers that validate a chain against a trust bundle
//!   and then check the SPIFFE ID: [`SpiffeServerVerifier`] for the
//!   connecting side, [`SpiffeClientVerifier`] with its [`TrustEntry`] list
//!   and [`SpiffeMatch`] for the accepting side;
//! - [`server_config`] and [`client_config`]: TLS 1.3, ring-provider rustls
//!   configurations wired to those verifiers (usable for QUIC as well), and
//!   [`rotating_server_config`] and [`rotating_client_config`], which present
//!   whatever a [`RotatingCert`] holds at each handshake.
//!
//! Clusters with different trust domains federate by putting each other's
//! root in their trust bundles; the verifiers never look at DNS names.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod load;
pub mod pki;
pub mod rotating;
pub mod spiffe;
pub mod tls;
pub mod verify;

pub use error::{IdentityError, PkiError};
pub use load::{Identity, issuing_cluster_of, load_certs, load_key, spiffe_id_of};
pub use pki::{IssuedCert, init_root, issue_cluster_ca, issue_gateway, issue_workload};
pub use rotating::RotatingCert;
pub use spiffe::SpiffeMatch;
pub use tls::{client_config, rotating_client_config, rotating_server_config, server_config};
pub use verify::{
    PeerRejected, SpiffeClientVerifier, SpiffeServerVerifier, TrustEntry, peer_cluster,
    peer_spiffe_id,
};
