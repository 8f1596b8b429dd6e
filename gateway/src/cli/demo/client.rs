//! The demo's catalog API clients: register sample instances, keep their
//! leases alive, change their health, and read what each cluster sees.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use meshgw_federation::api::pb::{
    self, KeepAliveRequest, ListServicesRequest, RegisterRequest, SetHealthRequest,
};
use meshgw_federation::api::{CatalogClient, client};
use meshgw_identity::{Identity, SpiffeServerVerifier, client_config, load_certs, pki};
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// A client of one demo gateway.
#[derive(Clone)]
pub struct Api {
    c: CatalogClient<Channel>,
}

/// Keeps a lease alive until dropped.
pub struct Lease(JoinHandle<()>);

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.abort();
    }
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

    /// Registers an instance and keeps its lease alive.
    pub async fn register(
        &self,
        svc: &str,
        id: &str,
        port: u16,
        proto: pb::Protocol,
        version: &str,
    ) -> Result<Lease> {
        let inst = pb::Instance {
            id: id.into(),
            service: Some(pb::ServiceName {
                namespace: "default".into(),
                name: svc.into(),
            }),
            address: "127.0.0.1".into(),
            port: u32::from(port),
            protocol: proto as i32,
            labels: [("version".to_string(), version.to_string())].into(),
            ..Default::default()
        };
        let mut c = self.c.clone();
        let lease = c
            .register(RegisterRequest {
                instance: Some(inst),
                ttl_seconds: 10,
            })
            .await?
            .into_inner()
            .lease_id;
        let api = self.clone();
        Ok(Lease(tokio::spawn(async move {
            loop {
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                let feed = async move {
                    while tx.send(KeepAliveRequest { lease_id: lease }).await.is_ok() {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                };
                let mut c = api.c.clone();
                let call = async move {
                    if let Ok(r) = c
                        .keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
                        .await
                    {
                        let mut s = r.into_inner();
                        while let Some(Ok(_)) = s.next().await {}
                    }
                };
                tokio::select! { _ = feed => {}, _ = call => {} }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })))
    }

    /// Sets an instance's health.
    pub async fn set_health(&self, svc: &str, id: &str, healthy: bool) -> Result<()> {
        let req = SetHealthRequest {
            namespace: "default".into(),
            service: svc.into(),
            instance_id: id.into(),
            healthy,
        };
        self.c.clone().set_health(req).await?;
        Ok(())
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
