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
    runtime(cfg.workers)?.block_on(crate::app::run(cfg))
}

/// `meshgw sidecar --config FILE`.
pub fn sidecar(config: &Path) -> Result<()> {
    let cfg = SidecarConfig::load(config).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    runtime(Some(cfg.workers))?.block_on(meshgw_proxy::sidecar::run(cfg))?;
    Ok(())
}

/// Returns the runtime for `[runtime] workers`: one worker is a
/// current-thread runtime, so a request's tasks hand over to each other
/// without waking another thread; `None` is one worker per core.
fn runtime(workers: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = n {
                b.worker_threads(n);
            }
            b.enable_all().build()
        }
    }
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
            let authz = match &cfg.authz {
                None => "no [authz]: every caller of the mesh".to_string(),
                Some(a) => format!(
                    "[authz]: {} caller pattern(s) allowed everything, {} rule(s)",
                    a.allow.len(),
                    a.rules.len()
                ),
            };
            println!(
                "{}: ok (sidecar of {}/{} in cluster {}, {} upstream(s), {authz})",
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
