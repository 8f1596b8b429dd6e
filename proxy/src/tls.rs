//! Workload mTLS: the sidecar's identity and the rustls configurations it
//! serves and dials with. Every peer is verified by chain (to the mesh
//! bundle) and SPIFFE ID, never by DNS name.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

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
    /// A rotated certificate names another workload.
    #[error(
        "workload TLS: {path} now holds a certificate for {found}, not {expected}; a running sidecar keeps its identity: put this workload's certificate there, or restart the sidecar for another service"
    )]
    OtherId {
        /// The certificate file.
        path: PathBuf,
        /// The SPIFFE ID in it.
        found: String,
        /// The sidecar's.
        expected: String,
    },
}

/// Client configs by (expected server ID, ALPN list).
type ClientCache = HashMap<(String, Vec<Vec<u8>>), Arc<rustls::ClientConfig>>;

/// One generation of the workload's certificate and trust, with the configs
/// built from them.
struct Material {
    id: Identity,
    bundle: Vec<CertificateDer<'static>>,
    server: Arc<rustls::ServerConfig>,
    clients: Mutex<ClientCache>,
}

/// The files the material was read from, for [`WorkloadTls::reload`].
#[derive(Debug, Clone)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

/// The sidecar's identity and trust, with the configs built from them.
/// The certificate, key and bundle can be replaced while the sidecar runs
/// ([`reload`](Self::reload)); the SPIFFE ID cannot change.
pub struct WorkloadTls {
    spiffe_id: String,
    trust_domain: String,
    files: Option<Files>,
    current: RwLock<Arc<Material>>,
}

impl std::fmt::Debug for WorkloadTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadTls")
            .field("spiffe_id", &self.spiffe_id)
            .finish_non_exhaustive()
    }
}

impl WorkloadTls {
    /// Loads `cfg.tls` (certificate chain, key, and the mesh bundle `ca`)
    /// and builds the server config, which accepts any client of the
    /// configured trust domain.
    pub fn from_config(cfg: &SidecarConfig) -> Result<Self, TlsError> {
        let files = Files {
            cert: cfg.tls.cert.clone(),
            key: cfg.tls.key.clone(),
            ca: cfg.tls.ca.clone(),
        };
        let (id, bundle) = files.load()?;
        let mut tls = Self::new(id, bundle, &cfg.mesh.trust_domain)?;
        tls.files = Some(files);
        Ok(tls)
    }

    /// Builds from an identity, a trust bundle and the trust domain callers
    /// must belong to.
    pub fn new(
        id: Identity,
        bundle: Vec<CertificateDer<'static>>,
        trust_domain: &str,
    ) -> Result<Self, TlsError> {
        let spiffe_id = id.spiffe_id.clone();
        let material = Material::build(id, bundle, trust_domain)?;
        Ok(Self {
            spiffe_id,
            trust_domain: trust_domain.to_string(),
            files: None,
            current: RwLock::new(Arc::new(material)),
        })
    }

    /// Returns this workload's SPIFFE ID.
    pub fn spiffe_id(&self) -> &str {
        &self.spiffe_id
    }

    fn material(&self) -> Arc<Material> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Returns the config of the inbound listener: client certificates are
    /// required, ALPN `h2` and `meshgw-tcp`.
    pub fn server(&self) -> Arc<rustls::ServerConfig> {
        self.material().server.clone()
    }

    /// Reads the certificate, key and bundle files again and, if they
    /// changed, serves and dials with them from now on (connections already
    /// open keep their session). Returns whether anything changed. On an
    /// error (a file half written, a key that does not match, another
    /// SPIFFE ID) the current material stays in use.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let Some(files) = &self.files else {
            return Ok(false);
        };
        let (id, bundle) = files.load()?;
        let now = self.material();
        if id.chain == now.id.chain
            && bundle == now.bundle
            && id.key.secret_der() == now.id.key.secret_der()
        {
            return Ok(false);
        }
        if id.spiffe_id != self.spiffe_id {
            return Err(TlsError::OtherId {
                path: files.cert.clone(),
                found: id.spiffe_id,
                expected: self.spiffe_id.clone(),
            });
        }
        let material = Material::build(id, bundle, &self.trust_domain)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(material);
        Ok(true)
    }

    /// The certificate, key and bundle files it was loaded from, to watch
    /// for a rotation; none for a workload built from memory.
    pub fn files(&self) -> Vec<PathBuf> {
        self.files
            .iter()
            .flat_map(|f| [f.cert.clone(), f.key.clone(), f.ca.clone()])
            .collect()
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
        let m = self.material();
        let mut cache = m.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let verifier =
            SpiffeServerVerifier::new(expected_spiffe_id, m.bundle.clone(), expected_spiffe_id)?;
        let config = Arc::new(client_config(&m.id, Arc::new(verifier), alpn)?);
        cache.insert(key, config.clone());
        Ok(config)
    }
}

impl Files {
    fn load(&self) -> Result<(Identity, Vec<CertificateDer<'static>>), TlsError> {
        let id = Identity::load(&self.cert, &self.key)?;
        let bundle = load_certs(&self.ca)?;
        Ok((id, bundle))
    }
}

impl Material {
    fn build(
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
}
