//! The gateway's trust bundles: `tls.ca` (whom the API and the forward
//! listener accept: workloads of this mesh) and each peer's `trust_bundle`
//! (whom the tunnel accepts and dials). One verifier per use is shared by
//! every configuration built on it, and [`run`] reloads the bundles when
//! their files change, so a CA rotation (add the new root to the bundles,
//! reissue, drop the old root) needs no gateway restart. Connections
//! already open keep their session.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use meshgw_config::GatewayConfig;
use meshgw_identity::{
    SpiffeClientVerifier, SpiffeMatch, SpiffeServerVerifier, TrustEntry, load_certs,
};
use meshgw_proxy::sidecar::rotate::watch;

/// The verifiers every gateway listener and dialer uses.
#[derive(Debug)]
pub struct Trust {
    /// Accepts local workloads (API, forward listener): `tls.ca`, any
    /// SPIFFE ID of the trust domain.
    pub local: Arc<SpiffeClientVerifier>,
    /// Accepts peer gateways on the tunnel: each peer's bundle and ID.
    pub tunnel_in: Arc<SpiffeClientVerifier>,
    /// Checks each peer gateway the tunnel dials, by peer name.
    pub tunnel_out: HashMap<String, Arc<SpiffeServerVerifier>>,
}

/// Every bundle read from its file: the local entry, one entry per peer.
struct Bundles {
    local: Vec<TrustEntry>,
    peers: Vec<TrustEntry>,
}

fn read(cfg: &GatewayConfig) -> Result<Bundles> {
    let local = vec![TrustEntry {
        name: "local".into(),
        bundle: load_certs(&cfg.tls.ca).context("loading tls.ca")?,
        allowed: SpiffeMatch::TrustDomain(cfg.mesh.trust_domain.clone()),
    }];
    let peers = cfg
        .peers
        .iter()
        .map(|p| {
            Ok(TrustEntry {
                name: p.name.clone(),
                bundle: load_certs(&p.trust_bundle)
                    .with_context(|| format!("trust bundle of peer {}", p.name))?,
                allowed: SpiffeMatch::Exact(p.spiffe_id.clone()),
            })
        })
        .collect::<Result<_>>()?;
    Ok(Bundles { local, peers })
}

impl Trust {
    /// Reads `tls.ca` and the peers' trust bundles and builds the verifiers.
    pub fn load(cfg: &GatewayConfig) -> Result<Self> {
        let b = read(cfg)?;
        let tunnel_out = cfg
            .peers
            .iter()
            .zip(&b.peers)
            .map(|(p, e)| {
                let v = SpiffeServerVerifier::new(&p.name, e.bundle.clone(), &p.spiffe_id)?;
                Ok((p.name.clone(), Arc::new(v)))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            local: Arc::new(SpiffeClientVerifier::new(b.local)?),
            tunnel_in: Arc::new(SpiffeClientVerifier::new(b.peers)?),
            tunnel_out,
        })
    }

    /// Reads the bundle files again and trusts what they hold from the next
    /// handshake on. Returns whether anything changed; fails, changing
    /// nothing, when a file does not load.
    pub fn reload(&self, cfg: &GatewayConfig) -> Result<bool> {
        let b = read(cfg)?;
        // Parse everything before replacing anything.
        SpiffeClientVerifier::new(b.local.clone())?;
        SpiffeClientVerifier::new(b.peers.clone())?;
        let mut changed = self.local.replace(b.local)?;
        changed |= self.tunnel_in.replace(b.peers.clone())?;
        for e in b.peers {
            if let Some(v) = self.tunnel_out.get(&e.name) {
                changed |= v.replace_bundle(e.bundle)?;
            }
        }
        Ok(changed)
    }
}

/// The bundle files, each once.
fn files(cfg: &GatewayConfig) -> Vec<PathBuf> {
    let mut files = vec![cfg.tls.ca.clone()];
    for p in &cfg.peers {
        if !files.contains(&p.trust_bundle) {
            files.push(p.trust_bundle.clone());
        }
    }
    files
}

/// Reloads `trust` whenever a bundle file changes, for as long as the
/// gateway runs. A bundle that does not load (empty, not PEM, written
/// halfway) is logged and the current ones stay in force.
pub async fn run(cfg: Arc<GatewayConfig>, trust: Arc<Trust>) {
    watch(
        files(&cfg),
        std::future::pending(),
        "gateway trust bundle (tls.ca, peers' trust_bundle)",
        "new tunnel, forward and API connections",
        "bundles",
        || trust.reload(&cfg).map_err(|e| format!("{e:#}")),
    )
    .await;
}
