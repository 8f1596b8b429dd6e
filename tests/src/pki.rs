//! A development PKI made with the real `meshgw ca` commands.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::bin::run_ok;

/// A PKI directory with a root for one trust domain.
pub struct Pki {
    /// The directory.
    pub dir: PathBuf,
    /// The trust domain.
    pub trust_domain: String,
}

impl Pki {
    /// Creates a root under `dir`.
    pub fn init(dir: &Path, trust_domain: &str) -> Result<Self> {
        let d = dir.to_str().expect("utf-8 path");
        run_ok(&["ca", "init", "--dir", d, "--trust-domain", trust_domain])?;
        Ok(Self {
            dir: dir.to_path_buf(),
            trust_domain: trust_domain.to_string(),
        })
    }

    /// Issues a cluster's intermediate and its gateway certificate.
    pub fn cluster(&self, name: &str) -> Result<()> {
        let d = self.dir.to_str().expect("utf-8 path");
        run_ok(&["ca", "cluster", "--dir", d, "--name", name])?;
        run_ok(&["ca", "gateway", "--dir", d, "--cluster", name])?;
        Ok(())
    }

    /// Issues a cluster's gateway certificate again (a rotation), in place.
    pub fn reissue_gateway(&self, cluster: &str) -> Result<()> {
        let d = self.dir.to_str().expect("utf-8 path");
        run_ok(&["ca", "gateway", "--dir", d, "--cluster", cluster])?;
        Ok(())
    }

    /// Issues a workload certificate; returns (cert, key).
    pub fn workload(&self, cluster: &str, ns: &str, service: &str) -> Result<(PathBuf, PathBuf)> {
        let d = self.dir.to_str().expect("utf-8 path");
        run_ok(&[
            "ca",
            "workload",
            "--dir",
            d,
            "--cluster",
            cluster,
            "--namespace",
            ns,
            "--service",
            service,
        ])?;
        let base = self.dir.join(cluster);
        Ok((
            base.join(format!("{ns}.{service}.pem")),
            base.join(format!("{ns}.{service}.key")),
        ))
    }

    /// Returns the root certificate (the trust bundle).
    pub fn root(&self) -> PathBuf {
        self.dir.join("root.pem")
    }

    /// Returns a cluster's gateway (cert, key).
    pub fn gateway(&self, cluster: &str) -> (PathBuf, PathBuf) {
        let base = self.dir.join(cluster);
        (base.join("gateway.pem"), base.join("gateway.key"))
    }

    /// Returns a cluster gateway's SPIFFE ID.
    pub fn gateway_id(&self, cluster: &str) -> String {
        format!("spiffe://{}/cluster/{cluster}/gateway", self.trust_domain)
    }
}
