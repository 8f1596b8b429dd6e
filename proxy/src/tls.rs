//! Workload mTLS: the sidecar's identity and the rustls configurations it
//! serves and dials with. Every peer is verified by chain (to the mesh
//! bundle) and SPIFFE ID, never by DNS name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use meshgw_config::SidecarConfig;
use meshgw_identity::{
    Identity, IdentityError, SpiffeClientVerifier, SpiffeMatch, SpiffeServerVerifier, TrustEntry,
    client_config, load_certs, server_config,
};
use rustls::pki_types::CertificateDer;

/// ALPN of HTTP/2 between sidecars (HTTP and gRPC services).
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN of an opaque TCP stream between sidecars.
pub const ALPN_TCP: &[u8] = b"meshgw-tcp";

/// Returns the SPIFFE ID of workload `name` in namespace `ns`:
/// `spiffe://{td}/ns/{ns}/sa/{name}`.
pub fn service_spiffe_id(td: &str, ns: &str, name: &str) -> String {
    meshgw_identity::spiffe::workload_id(td, ns, name)
}

/// A TLS setup failed: the files, or a certificate that does not suit.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or checking the workload's identity or the bundle failed.
    #[error(
        "workload TLS: {0}; check [tls] in the sidecar config (issue files with `meshgw ca workload`)"
    )]
    Identity(#[from] IdentityError),
}

/// Client configs by (expected server ID, ALPN list).
type ClientCache = HashMap<(String, Vec<Vec<u8>>), Arc<rustls::ClientConfig>>;

/// The sidecar's identity and trust, with the configs built from them.
pub struct WorkloadTls {
    id: Identity,
    bundle: Vec<CertificateDer<'static>>,
    server: Arc<rustls::ServerConfig>,
    clients: Mutex<ClientCache>,
}

impl std::fmt::Debug for WorkloadTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadTls")
            .field("spiffe_id", &self.id.spiffe_id)
            .finish_non_exhaustive()
    }
}

impl WorkloadTls {
    /// Loads `cfg.tls` (certificate chain, key, and the mesh bundle `ca`)
    /// and builds the server config, which accepts any client of the
    /// configured trust domain.
    pub fn from_config(cfg: &SidecarConfig) -> Result<Self, TlsError> {
        let id = Identity::load(&cfg.tls.cert, &cfg.tls.key)?;
        let bundle = load_certs(&cfg.tls.ca)?;
        Self::new(id, bundle, &cfg.mesh.trust_domain)
    }

    /// Builds from an identity, a trust bundle and the trust domain callers
    /// must belong to.
    pub fn new(
        id: Identity,
        bundle: Vec<CertificateDer<'static>>,
        trust_domain: &str,
    ) -> Result<Self, TlsError> {
        let verifier = SpiffeClientVerifier::new(vec![TrustEntry {
            name: "mesh".into(),
            bundle: bundle.clone(),
            allowed: SpiffeMatch::TrustDomain(trust_domain.to_string()),
        }])?;
        let server = server_config(&id, Arc::new(verifier), &[ALPN_H2, ALPN_TCP])?;
        Ok(Self {
            id,
            bundle,
            server: Arc::new(server),
            clients: Mutex::default(),
        })
    }

    /// Returns this workload's SPIFFE ID.
    pub fn spiffe_id(&self) -> &str {
        &self.id.spiffe_id
    }

    /// Returns the config of the inbound listener: client certificates are
    /// required, ALPN `h2` and `meshgw-tcp`.
    pub fn server(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }

    /// Returns a client config presenting this workload and accepting only a
    /// server with exactly `expected_spiffe_id` chaining to the bundle,
    /// offering `alpn`. Configs are cached per (ID, ALPN), so TLS session
    /// resumption works across connections.
    pub fn client_for(
        &self,
        expected_spiffe_id: &str,
        alpn: &[&[u8]],
    ) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let key = (
            expected_spiffe_id.to_string(),
            alpn.iter().map(|p| p.to_vec()).collect::<Vec<_>>(),
        );
        let mut cache = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let verifier =
            SpiffeServerVerifier::new(expected_spiffe_id, self.bundle.clone(), expected_spiffe_id)?;
        let config = Arc::new(client_config(&self.id, Arc::new(verifier), alpn)?);
        cache.insert(key, config.clone());
        Ok(config)
    }
}
