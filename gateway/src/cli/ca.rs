//! `meshgw ca`: the development PKI.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use meshgw_identity::pki;

/// PKI subcommands. Files land under `--dir` (see identity/README or `meshgw ca --help`).
#[derive(Subcommand)]
pub enum CaCommand {
    /// Creates the mesh root CA: DIR/root.pem and DIR/root.key (0600).
    Init {
        /// PKI directory.
        #[arg(long)]
        dir: PathBuf,
        /// SPIFFE trust domain, e.g. mesh.example.
        #[arg(long)]
        trust_domain: String,
        /// Overwrite an existing root (every certificate issued from it stops being trusted).
        #[arg(long)]
        force: bool,
    },
    /// Creates a cluster's intermediate CA: DIR/CLUSTER/ca.pem and ca.key.
    Cluster {
        /// PKI directory.
        #[arg(long)]
        dir: PathBuf,
        /// Cluster name.
        #[arg(long)]
        name: String,
    },
    /// Issues a gateway certificate: DIR/CLUSTER/gateway.pem (chain) and gateway.key,
    /// SPIFFE ID spiffe://TD/cluster/CLUSTER/gateway.
    Gateway {
        /// PKI directory.
        #[arg(long)]
        dir: PathBuf,
        /// Cluster name.
        #[arg(long)]
        cluster: String,
    },
    /// Issues a workload certificate: DIR/CLUSTER/NS.SERVICE.pem and .key,
    /// SPIFFE ID spiffe://TD/ns/NS/sa/SERVICE.
    Workload {
        /// PKI directory.
        #[arg(long)]
        dir: PathBuf,
        /// Cluster name.
        #[arg(long)]
        cluster: String,
        /// Namespace.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// Service (service account) name.
        #[arg(long)]
        service: String,
    },
}

/// Runs a `meshgw ca` subcommand.
pub fn run(cmd: CaCommand) -> Result<()> {
    match cmd {
        CaCommand::Init {
            dir,
            trust_domain,
            force,
        } => {
            let p = pki::init_root(&dir, &trust_domain, force)?;
            println!("mesh root for trust domain {trust_domain}: {}", p.display());
        }
        CaCommand::Cluster { dir, name } => {
            let p = pki::issue_cluster_ca(&dir, &name)?;
            println!("intermediate CA of cluster {name}: {}", p.display());
        }
        CaCommand::Gateway { dir, cluster } => {
            let c = pki::issue_gateway(&dir, &cluster)?;
            println!(
                "{}\n  cert {}\n  key  {}",
                c.spiffe_id,
                c.cert.display(),
                c.key.display()
            );
        }
        CaCommand::Workload {
            dir,
            cluster,
            namespace,
            service,
        } => {
            let c = pki::issue_workload(&dir, &cluster, &namespace, &service)?;
            println!(
                "{}\n  cert {}\n  key  {}",
                c.spiffe_id,
                c.cert.display(),
                c.key.display()
            );
        }
    }
    Ok(())
}
