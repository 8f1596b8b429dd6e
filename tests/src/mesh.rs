//! Several clusters wired as full-mesh peers, each with its own store, every
//! gateway a real process.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use tempfile::TempDir;

use crate::EtcdCluster;
use crate::gateway::{GatewayProc, GatewaySpec, PeerSpec, StoreSpec};
use crate::pki::Pki;

/// The store a test cluster uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// One embedded store per gateway.
    Embedded,
    /// A real etcd cluster of this many members, shared by the cluster's gateways.
    Etcd(usize),
}

/// One cluster of a [`Mesh`].
pub struct MeshCluster {
    /// Its gateway replicas (declared first: stopped before etcd).
    pub gateways: Vec<GatewayProc>,
    /// Its etcd, if it uses etcd.
    pub etcd: Option<EtcdCluster>,
}

/// A running mesh.
pub struct Mesh {
    /// Clusters by name.
    pub clusters: BTreeMap<String, MeshCluster>,
    /// The PKI.
    pub pki: Pki,
    /// Everything on disk (configs, logs, PKI, embedded stores). Declared last:
    /// processes are killed before it is removed.
    pub dir: TempDir,
}

/// Builds a [`Mesh`].
pub struct MeshBuilder {
    clusters: Vec<(String, Backend, usize)>,
    exports: Vec<(String, String, Vec<String>)>,
    sync: Vec<(String, String)>,
    timeouts: Vec<(String, String)>,
    workers: Option<u32>,
    unreachable: Vec<String>,
}

impl Default for MeshBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl MeshBuilder {
    /// Starts an empty description.
    pub fn new() -> Self {
        Self {
            clusters: vec![],
            exports: vec![],
            sync: vec![],
            timeouts: vec![],
            workers: None,
            unreachable: vec![],
        }
    }

    /// The mesh most tests use: clusters `a` and `b`, one gateway each on
    /// an embedded store, `exporter` exporting every `default/` service to
    /// the other.
    pub fn two_clusters(exporter: &str) -> Self {
        Self::new()
            .cluster("a", Backend::Embedded, 1)
            .cluster("b", Backend::Embedded, 1)
            .export(exporter, "default/*", &["*"])
    }

    /// Adds a cluster with `replicas` gateways.
    pub fn cluster(mut self, name: &str, backend: Backend, replicas: usize) -> Self {
        self.clusters.push((name.into(), backend, replicas));
        self
    }

    /// Makes `cluster` export `service` (`ns/name` or `ns/*`) to `to` (peer names or `*`).
    pub fn export(mut self, cluster: &str, service: &str, to: &[&str]) -> Self {
        self.exports.push((
            cluster.into(),
            service.into(),
            to.iter().map(|s| s.to_string()).collect(),
        ));
        self
    }

    /// Gives no peer an address for `cluster`, as for a gateway behind NAT:
    /// it federates only over the connections it dials itself.
    pub fn unreachable(mut self, cluster: &str) -> Self {
        self.unreachable.push(cluster.into());
        self
    }

    /// Overrides one `[sync]` setting on every gateway.
    pub fn sync(mut self, key: &str, value: &str) -> Self {
        self.sync.push((key.into(), value.into()));
        self
    }

    /// Sets one `[timeouts]` key (forwarded connections) on every gateway.
    pub fn timeout(mut self, key: &str, value: &str) -> Self {
        self.timeouts.push((key.into(), value.into()));
        self
    }

    /// Sets `[runtime] workers` on every gateway.
    pub fn workers(mut self, n: u32) -> Self {
        self.workers = Some(n);
        self
    }

    /// Creates the PKI, stores and configs, and starts every gateway.
    pub async fn start(self) -> Result<Mesh> {
        let dir = tempfile::Builder::new().prefix("meshgw-e2e-").tempdir()?;
        let pki = Pki::init(&dir.path().join("pki"), "mesh.test")?;
        let mut specs: BTreeMap<String, Vec<GatewaySpec>> = BTreeMap::new();
        let mut etcds = BTreeMap::new();
        for (name, backend, replicas) in &self.clusters {
            pki.cluster(name)?;
            let (cert, key) = pki.gateway(name);
            let etcd = match backend {
                Backend::Etcd(members) => Some(
                    EtcdCluster::start(*members)
                        .await
                        .context("starting etcd")?,
                ),
                Backend::Embedded => None,
            };
            let mut v = Vec::new();
            for r in 0..*replicas {
                let store = match &etcd {
                    Some(e) => StoreSpec::Etcd(e.endpoints()),
                    None => StoreSpec::Embedded(dir.path().join(format!("{name}-{r}-data"))),
                };
                let mut s = GatewaySpec::new(
                    &pki.trust_domain,
                    name,
                    store,
                    cert.clone(),
                    key.clone(),
                    pki.root(),
                );
                for (k, val) in &self.sync {
                    s.sync.retain(|(kk, _)| kk != k);
                    s.sync.push((k.clone(), val.clone()));
                }
                s.timeouts.clone_from(&self.timeouts);
                s.workers = self.workers;
                s.exports = self
                    .exports
                    .iter()
                    .filter(|(c, _, _)| c == name)
                    .map(|(_, svc, to)| (svc.clone(), to.clone()))
                    .collect();
                v.push(s);
            }
            specs.insert(name.clone(), v);
            etcds.insert(name.clone(), etcd);
        }
        let addrs: BTreeMap<String, Vec<_>> = specs
            .iter()
            .map(|(n, v)| (n.clone(), v.iter().map(|s| s.tunnel).collect()))
            .collect();
        for (name, v) in specs.iter_mut() {
            for s in v.iter_mut() {
                s.peers = addrs
                    .iter()
                    .filter(|(n, _)| *n != name)
                    .map(|(n, a)| PeerSpec {
                        name: n.clone(),
                        addresses: if self.unreachable.contains(n) {
                            vec![]
                        } else {
                            a.clone()
                        },
                        spiffe_id: pki.gateway_id(n),
                        bundle: pki.root(),
                    })
                    .collect();
            }
        }
        let mut clusters = BTreeMap::new();
        for (name, v) in specs {
            let mut gateways = Vec::new();
            for s in v {
                gateways.push(GatewayProc::start(s, dir.path()).await?);
            }
            clusters.insert(
                name.clone(),
                MeshCluster {
                    gateways,
                    etcd: etcds.remove(&name).flatten(),
                },
            );
        }
        Ok(Mesh { clusters, pki, dir })
    }
}

impl Mesh {
    /// Waits (up to 20 s) until cluster `viewer`'s catalog shows `svc`
    /// (`ns/name`) in cluster `src` not stale, with `healthy` healthy
    /// instances and, when given, `total` instances in all.
    pub async fn sees(
        &self,
        viewer: &str,
        svc: &str,
        src: &str,
        healthy: u32,
        total: Option<u32>,
    ) -> Result<()> {
        let api = crate::client::Api::connect(self, viewer).await?;
        crate::wait::until(
            &format!("{viewer} sees {svc} in {src} with {healthy} healthy of {total:?}"),
            std::time::Duration::from_secs(20),
            || {
                let mut api = api.clone();
                async move {
                    Ok(api
                        .cluster_view(svc, src)
                        .await?
                        .filter(|v| {
                            v.healthy == healthy && !v.stale && total.is_none_or(|t| v.total == t)
                        })
                        .map(|_| ()))
                }
            },
        )
        .await
    }

    /// Returns the connections cluster `cluster`'s first gateway forwarded
    /// (`meshgw_forwarded_connections_total`, every series).
    pub fn forwarded(&self, cluster: &str) -> Result<u64> {
        let (_, body) = self.clusters[cluster].gateways[0].admin_get("/metrics")?;
        Ok(crate::metrics::sum(
            &body,
            "meshgw_forwarded_connections_total",
            &[],
        ))
    }

    /// Returns cluster `name`'s first gateway.
    pub fn gw(&mut self, name: &str) -> &mut GatewayProc {
        &mut self.clusters.get_mut(name).expect("cluster").gateways[0]
    }

    /// Returns every gateway log, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for (n, c) in &self.clusters {
            for (i, g) in c.gateways.iter().enumerate() {
                s += &format!("\n===== {n}[{i}] =====\n{}", tail(&g.log_text(), 60));
            }
        }
        s
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
