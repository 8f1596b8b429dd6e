//! A real tonic client of a gateway's catalog API, authenticated with a
//! workload certificate of the mesh, as a sidecar would be.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use meshgw_federation::api::CatalogClient;
use meshgw_federation::api::client;
use meshgw_federation::api::pb::{
    self, ClusterView, DeregisterRequest, KeepAliveRequest, ListServicesRequest, RegisterRequest,
    SetHealthRequest,
};
use meshgw_identity::{Identity, SpiffeServerVerifier, client_config, load_certs};
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use crate::gateway::GatewayProc;
use crate::mesh::Mesh;
use crate::pki::Pki;

/// A client of one gateway's API.
#[derive(Clone)]
pub struct Api {
    c: CatalogClient<Channel>,
    /// The gateway's API address.
    pub addr: String,
}

/// Keeps a lease alive in the background until dropped.
pub struct KeepAlive(JoinHandle<()>);

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn split(svc: &str) -> (String, String) {
    let (ns, name) = svc.split_once('/').expect("service as ns/name");
    (ns.to_string(), name.to_string())
}

impl Api {
    /// Connects to `gw` with a workload certificate of its cluster, as
    /// `default/e2e-client` (an `[api] admins` of the harness's gateways).
    pub async fn connect_to(gw: &GatewayProc, pki: &Pki) -> Result<Self> {
        Self::connect_as(gw, pki, "default", "e2e-client").await
    }

    /// Connects to `gw` as workload `ns/name` of its cluster.
    pub async fn connect_as(gw: &GatewayProc, pki: &Pki, ns: &str, name: &str) -> Result<Self> {
        let cluster = &gw.spec.cluster;
        let base = pki.dir.join(cluster);
        let (cert, key) = (
            base.join(format!("{ns}.{name}.pem")),
            base.join(format!("{ns}.{name}.key")),
        );
        let (cert, key) = if cert.exists() {
            (cert, key)
        } else {
            pki.workload(cluster, ns, name)?
        };
        let id = Identity::load(&cert, &key)?;
        let verifier = SpiffeServerVerifier::new(
            cluster.clone(),
            load_certs(&pki.root())?,
            gw.spec.spiffe_id(),
        )?;
        let tls = client_config(&id, Arc::new(verifier), &[b"h2"])?;
        let addr = gw.spec.api.to_string();
        let c = client::connect(&addr, Some(tls))
            .await
            .with_context(|| format!("connecting to the API of {cluster} at {addr}"))?;
        Ok(Self { c, addr })
    }

    /// Connects to cluster `name`'s first gateway.
    pub async fn connect(m: &Mesh, name: &str) -> Result<Self> {
        Self::connect_replica(m, name, 0).await
    }

    /// Connects to cluster `name`'s gateway replica `i`.
    pub async fn connect_replica(m: &Mesh, name: &str, i: usize) -> Result<Self> {
        Self::connect_to(&m.clusters[name].gateways[i], &m.pki).await
    }

    /// Connects to every replica of cluster `name`.
    pub async fn connect_all(m: &Mesh, name: &str) -> Result<Vec<Self>> {
        let mut v = Vec::new();
        for i in 0..m.clusters[name].gateways.len() {
            v.push(Self::connect_replica(m, name, i).await?);
        }
        Ok(v)
    }

    /// Returns the underlying tonic client.
    pub fn raw(&self) -> CatalogClient<Channel> {
        self.c.clone()
    }

    /// Registers instance `id` of `svc` (`ns/name`) with a lease of `ttl` seconds; returns the lease.
    pub async fn register(&mut self, svc: &str, id: &str, ttl: u32) -> Result<i64> {
        self.register_at(svc, id, "127.0.0.1", 9443, ttl).await
    }

    /// Registers instance `id` of `svc` reachable at `address:port`; returns the lease.
    pub async fn register_at(
        &mut self,
        svc: &str,
        id: &str,
        address: &str,
        port: u16,
        ttl: u32,
    ) -> Result<i64> {
        let (namespace, name) = split(svc);
        let inst = pb::Instance {
            id: id.into(),
            service: Some(pb::ServiceName { namespace, name }),
            address: address.into(),
            port: u32::from(port),
            protocol: pb::Protocol::Http as i32,
            labels: [("version".to_string(), "v1".to_string())].into(),
            ..Default::default()
        };
        let r = self
            .c
            .register(RegisterRequest {
                instance: Some(inst),
                ttl_seconds: ttl,
            })
            .await
            .with_context(|| format!("registering {svc}/{id} at {}", self.addr))?;
        Ok(r.into_inner().lease_id)
    }

    /// Registers, then keeps the lease alive through this gateway.
    pub async fn register_kept(
        &mut self,
        svc: &str,
        id: &str,
        ttl: u32,
    ) -> Result<(i64, KeepAlive)> {
        let me = vec![self.clone()];
        self.register_kept_via(svc, id, ttl, &me).await
    }

    /// Renews `lease` once over a KeepAlive stream; returns the granted TTL
    /// in seconds, or the stream's error status.
    pub async fn keep_alive_once(&mut self, lease: i64) -> Result<u32, tonic::Status> {
        let req = tokio_stream::iter([KeepAliveRequest { lease_id: lease }]);
        let mut responses = self.c.keep_alive(req).await?.into_inner();
        match responses.message().await? {
            Some(r) => Ok(r.ttl_seconds),
            None => Err(tonic::Status::unknown(
                "the KeepAlive stream ended without an answer",
            )),
        }
    }

    /// Registers, then keeps the lease alive through `via`, moving to the
    /// next gateway when one stops answering (as a sidecar fails over between replicas).
    pub async fn register_kept_via(
        &mut self,
        svc: &str,
        id: &str,
        ttl: u32,
        via: &[Api],
    ) -> Result<(i64, KeepAlive)> {
        let lease = self.register(svc, id, ttl).await?;
        let via: Vec<Api> = via.to_vec();
        let every = Duration::from_millis(u64::from(ttl) * 1000 / 4);
        let task = tokio::spawn(async move {
            let mut i = 0;
            loop {
                let mut api = via[i % via.len()].clone();
                i += 1;
                // The request stream is fed from this task, so aborting the
                // task ends the stream and the keep-alives really stop.
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                let feed = async move {
                    while tx.send(KeepAliveRequest { lease_id: lease }).await.is_ok() {
                        tokio::time::sleep(every).await;
                    }
                };
                let call = async move {
                    if let Ok(resp) = api
                        .c
                        .keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
                        .await
                    {
                        let mut s = resp.into_inner();
                        while let Some(Ok(_)) = s.next().await {}
                    }
                };
                tokio::select! {
                    _ = feed => {}
                    _ = call => {}
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Ok((lease, KeepAlive(task)))
    }

    /// Sets an instance's health.
    pub async fn set_health(&mut self, svc: &str, id: &str, healthy: bool) -> Result<()> {
        let (namespace, service) = split(svc);
        self.c
            .set_health(SetHealthRequest {
                namespace,
                service,
                instance_id: id.into(),
                healthy,
            })
            .await?;
        Ok(())
    }

    /// Deregisters an instance (revoking `lease` if non-zero).
    pub async fn deregister(&mut self, svc: &str, id: &str, lease: i64) -> Result<()> {
        let (namespace, service) = split(svc);
        self.c
            .deregister(DeregisterRequest {
                namespace,
                service,
                instance_id: id.into(),
                lease_id: lease,
            })
            .await?;
        Ok(())
    }

    /// Returns how this gateway sees `svc` in cluster `cluster`, if at all.
    pub async fn cluster_view(&mut self, svc: &str, cluster: &str) -> Result<Option<ClusterView>> {
        let (ns, name) = split(svc);
        let r = self
            .c
            .list_services(ListServicesRequest {})
            .await?
            .into_inner();
        Ok(r.services
            .into_iter()
            .find(|s| s.namespace == ns && s.name == name)
            .and_then(|s| s.clusters.into_iter().find(|c| c.cluster == cluster)))
    }
}
