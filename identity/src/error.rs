//! Error types of the identity crate.
//!
//! [`PkiError`] comes from the development PKI (`meshgw ca`), [`IdentityError`]
//! from loading certificates and keys and building TLS configurations. Every
//! message names the file or name at fault and, where there is one, the
//! command that fixes it.

use std::path::PathBuf;

/// Errors from loading identities and building verifiers and TLS configs.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A file is not valid PEM.
    #[error(
        "{path} is not valid PEM ({source}): expected -----BEGIN ...----- blocks as written by `meshgw ca`"
    )]
    Pem {
        /// The file at fault.
        path: PathBuf,
        /// The PEM decoder's error.
        #[source]
        source: rustls_pki_types::pem::Error,
    },

    /// A certificate file holds no certificate.
    #[error(
        "no certificate found in {path}: expected one or more -----BEGIN CERTIFICATE----- blocks"
    )]
    NoCertificates {
        /// The file at fault.
        path: PathBuf,
    },

    /// A key file holds no private key.
    #[error(
        "no private key found in {path}: expected a -----BEGIN PRIVATE KEY----- block (PKCS#8, SEC1 or PKCS#1)"
    )]
    NoPrivateKey {
        /// The file at fault.
        path: PathBuf,
    },

    /// A private key file may be read by users other than its owner.
    #[error(
        "private key {path} is readable by its group or others (mode {mode:04o}); run: chmod 600 {path}"
    )]
    KeyReadableByOthers {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// A certificate carries no `spiffe://` URI SAN.
    #[error(
        "the certificate in {path} has no spiffe:// URI SAN: issue mesh certificates with `meshgw ca`"
    )]
    NoSpiffeId {
        /// The certificate file.
        path: PathBuf,
    },

    /// A trust bundle is empty.
    #[error("the trust bundle for {name} is empty: configure at least one root certificate for it")]
    EmptyBundle {
        /// Whose bundle (a peer name or `local`).
        name: String,
    },

    /// A certificate in a trust bundle cannot be used as a trust anchor.
    #[error(
        "a certificate in the trust bundle for {name} cannot be used as a trust anchor: {reason:?}"
    )]
    BadTrustAnchor {
        /// Whose bundle (a peer name or `local`).
        name: String,
        /// The webpki error.
        reason: webpki::Error,
    },

    /// An expected SPIFFE ID or trust domain is malformed.
    #[error("invalid SPIFFE ID or trust domain {value:?}: {reason}")]
    InvalidSpiffeId {
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A replacement certificate names another SPIFFE ID than the one a
    /// running process serves.
    #[error(
        "the new certificate is for {found}, not {expected}: a running process keeps its identity; put its own certificate there, or restart it for another"
    )]
    OtherSpiffeId {
        /// The SPIFFE ID in the new certificate.
        found: String,
        /// The one served.
        expected: String,
    },

    /// rustls refused the certificate, key or protocol settings.
    #[error(
        "cannot build the TLS configuration: {source} (does the private key belong to the certificate?)"
    )]
    Tls {
        /// The rustls error.
        #[from]
        source: rustls::Error,
    },
}

/// Errors from the development PKI (`meshgw ca`).
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// `init_root` found an existing root and `force` was not set.
    #[error(
        "a mesh root already exists in {dir}: keep it, or pass --force to replace it (certificates issued from the old root will no longer be trusted)"
    )]
    RootExists {
        /// The PKI directory.
        dir: PathBuf,
    },

    /// The PKI directory has no root yet.
    #[error("no mesh root in {dir}: run `meshgw ca init --dir {dir} --trust-domain ...` first")]
    NoRoot {
        /// The PKI directory.
        dir: PathBuf,
    },

    /// The cluster has no intermediate CA yet.
    #[error(
        "no CA for cluster {cluster} in {dir}: run `meshgw ca cluster --dir {dir} --name {cluster}` first"
    )]
    NoClusterCa {
        /// The PKI directory.
        dir: PathBuf,
        /// The cluster name.
        cluster: String,
    },

    /// A trust domain, cluster, namespace or service name is not usable.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// Which name (e.g. "cluster name").
        what: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it and what is allowed.
        reason: String,
    },

    /// A file or directory could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The path being written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// rcgen could not generate a key or certificate.
    #[error("cannot generate {what}: {source}")]
    Generate {
        /// What was being generated.
        what: String,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },

    /// A CA certificate or key on disk cannot be used for signing.
    #[error("cannot use the CA in {path} for signing: {reason}; re-create it with `meshgw ca`")]
    BadCa {
        /// The CA certificate or key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// Loading an existing file failed.
    #[error(transparent)]
    Load(#[from] IdentityError),
}
