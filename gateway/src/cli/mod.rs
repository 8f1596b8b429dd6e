//! The `meshgw` subcommands.

pub mod ca;
pub mod demo;
pub mod logging;
pub mod status;
pub mod status_error;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use meshgw_config::{AnyConfig, GatewayConfig, SidecarConfig, load_any};

/// `meshgw gateway --config FILE`.
pub fn gateway(config: &Path) -> Result<()> {
    let cfg = GatewayConfig::load(config).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    // One worker: a current-thread runtime, as for a sidecar; otherwise one
    // worker per core unless the config says how many.
    let rt = match cfg.workers {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = n {
                b.worker_threads(n);
            }
            b.enable_all().build()?
        }
    };
    rt.block_on(crate::app::run(cfg))
}

/// `meshgw sidecar --config FILE`.
pub fn sidecar(config: &Path) -> Result<()> {
    let cfg = SidecarConfig::load(config).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    // One worker (the default): a current-thread runtime, so a request's
    // tasks hand over to each other without waking another thread.
    let rt = match cfg.workers {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    rt.block_on(meshgw_proxy::sidecar::run(cfg))?;
    Ok(())
}

/// `meshgw check --config FILE` (gateway or sidecar config): prints every
/// error, exits 1 if there is any.
pub fn check(config: &Path) -> ExitCode {
    match load_any(config) {
        Ok(AnyConfig::Gateway(cfg)) => {
            println!(
                "{}: ok (gateway of cluster {}, {} peer(s), {} export rule(s))",
                config.display(),
                cfg.cluster.name,
                cfg.peers.len(),
                cfg.exports.len()
            );
            ExitCode::SUCCESS
        }
        Ok(AnyConfig::Sidecar(cfg)) => {
            println!(
                "{}: ok (sidecar of {}/{} in cluster {}, {} upstream(s))",
                config.display(),
                cfg.service.namespace,
                cfg.service.name,
                cfg.locality.cluster,
                cfg.upstreams.len()
            );
            ExitCode::SUCCESS
        }
        Err(errs) => {
            eprintln!("{errs}");
            eprintln!("{}: {} error(s)", config.display(), errs.0.len());
            ExitCode::FAILURE
        }
    }
}
