//! The demo's catalog API clients: read what each cluster sees.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use meshgw_federation::api::pb::ListServicesRequest;
use meshgw_federation::api::{CatalogClient, client};
use meshgw_identity::{Identity, SpiffeServerVerifier, client_config, load_certs, pki};
use tonic::transport::Channel;

/// A client of one demo gateway.
#[derive(Clone)]
pub struct Api {
    c: CatalogClient<Channel>,
}

impl Api {
    /// Connects to cluster `cluster`'s gateway at `addr` with a workload certificate.
    pub async fn connect(dir: &Path, td: &str, cluster: &str, addr: &str) -> Result<Self> {
        let w = pki::issue_workload(dir, cluster, "default", "demo-registrar")?;
        let id = Identity::load(&w.cert, &w.key)?;
        let gw = format!("spiffe://{td}/cluster/{cluster}/gateway");
        let v = SpiffeServerVerifier::new(cluster, load_certs(&dir.join("root.pem"))?, gw)?;
        let tls = client_config(&id, Arc::new(v), &[b"h2"])?;
        let c = client::connect(addr, Some(tls))
            .await
            .with_context(|| format!("connecting to the API of {cluster}"))?;
        Ok(Self { c })
    }

    /// Returns (service, cluster, healthy, total, stale) for every service this gateway sees.
    pub async fn view(&self) -> Result<Vec<(String, String, u32, u32, bool)>> {
        let r = self
            .c
            .clone()
            .list_services(ListServicesRequest {})
            .await?
            .into_inner();
        let mut out = Vec::new();
        for s in r.services {
            for c in s.clusters {
                out.push((s.name.clone(), c.cluster, c.healthy, c.total, c.stale));
            }
        }
        Ok(out)
    }
}
