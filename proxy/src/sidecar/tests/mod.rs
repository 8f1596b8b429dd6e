//! Tests of the sidecar core against real sockets and real certificates.

mod app_pool;
mod catalog;
mod inbound;
mod run;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use meshgw_config::SidecarConfig;
use meshgw_identity::{Identity, init_root, issue_cluster_ca, issue_workload, load_certs};

use crate::tls::WorkloadTls;

/// A development PKI in a temp directory: the mesh root and cluster `a`.
pub(super) struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new(td: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        init_root(dir.path(), td, false).unwrap();
        issue_cluster_ca(dir.path(), "a").unwrap();
        Self { dir }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root.pem")
    }

    /// Issues `default/<service>` and returns its (cert, key) paths.
    pub fn workload(&self, service: &str) -> (PathBuf, PathBuf) {
        let c = issue_workload(self.dir.path(), "a", "default", service).unwrap();
        (c.cert, c.key)
    }

    /// Returns the workload TLS of `default/<service>`.
    pub fn tls(&self, service: &str) -> WorkloadTls {
        let (cert, key) = self.workload(service);
        let id = Identity::load(&cert, &key).unwrap();
        WorkloadTls::new(id, load_certs(&self.root()).unwrap(), "mesh.test").unwrap()
    }
}

/// Writes and loads a sidecar config for `default/payments` (certificates
/// from `pki`) whose app is at `app`, with `protocol`.
pub(super) fn config(pki: &Pki, app: SocketAddr, protocol: &str) -> SidecarConfig {
    let (cert, key) = pki.workload("payments");
    let text = format!(
        r#"
[mesh]
trust_domain = "mesh.test"
[locality]
cluster = "a"
region = "a-region"
zone = "a-zone-a"
[gateway]
api = "127.0.0.1:1"
forward = "127.0.0.1:2"
spiffe_id = "spiffe://mesh.test/cluster/a/gateway"
[service]
namespace = "default"
name = "payments"
protocol = "{protocol}"
app = "{app}"
[inbound]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[tls]
ca = "{}"
cert = "{}"
key = "{}"
[timeouts]
drain = "1s"
"#,
        pki.root().display(),
        cert.display(),
        key.display()
    );
    let path = pki
        .dir
        .path()
        .join(format!("sidecar-{protocol}-{}.toml", app.port()));
    std::fs::write(&path, text).unwrap();
    SidecarConfig::load(Path::new(&path)).unwrap_or_else(|e| panic!("{e}"))
}

/// Polls `f` every 20 ms until it holds, failing after 10 s.
pub(super) async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Returns an address nothing listens on.
pub(super) async fn closed_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}
