//! The `meshgw` subcommands.

pub mod ca;
pub mod demo;
pub mod logging;
pub mod status;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use meshgw_config::GatewayConfig;

/// `meshgw gateway --config FILE`.
pub fn gateway(config: &Path) -> Result<()> {
    let cfg = GatewayConfig::load(config).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(crate::app::run(cfg))
}

/// `meshgw check --config FILE`: prints every error, exits 1 if there is any.
pub fn check(config: &Path) -> ExitCode {
    match GatewayConfig::load(config) {
        Ok(cfg) => {
            println!(
                "{}: ok (cluster {}, {} peer(s), {} export rule(s))",
                config.display(),
                cfg.cluster.name,
                cfg.peers.len(),
                cfg.exports.len()
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
