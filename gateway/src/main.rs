//! `meshgw`: the multi-cluster service-mesh gateway binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use meshgw_gateway::cli;

/// mimalloc: the proxies allocate and free many small buffers per request;
/// glibc's malloc spent a tenth of a sidecar's user time on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// meshgw connects services across clusters and clouds: edge gateways
/// federate service catalogs over mutually authenticated QUIC tunnels.
#[derive(Parser)]
#[command(
    name = "meshgw",
    version,
    about = "meshgw connects services across clusters and clouds: edge gateways federate service catalogs over mutually authenticated QUIC tunnels, and sidecars route calls by name.",
    after_help = "Start with `meshgw demo` (a three-cluster mesh on this machine). Config keys: docs/config.md.",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs an edge gateway.
    Gateway {
        /// Gateway config file (TOML; see docs/config.md).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Runs a sidecar next to one workload: registers it with the local
    /// gateway and proxies its traffic.
    Sidecar {
        /// Sidecar config file (TOML; see docs/config.md, "Sidecar config").
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Development PKI: a mesh root, per-cluster intermediates, and gateway and
    /// workload certificates with SPIFFE IDs.
    #[command(subcommand)]
    Ca(cli::ca::CaCommand),
    /// Validates a config file; prints every error with file, line and key.
    Check {
        /// Gateway or sidecar config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Shows the mesh as a gateway sees it: peers, tunnels and services.
    Status(cli::status::StatusArgs),
    /// Runs a three-cluster mesh on this machine: federation, traffic through sidecars, failover.
    Demo(cli::demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `status` reports what went wrong itself; its libraries' log lines
    // (e.g. the verifier's) would only repeat it.
    let default_level = match cli.command {
        Command::Status(_) => "error",
        _ => "info",
    };
    cli::logging::init(default_level);
    let result = match cli.command {
        Command::Gateway { config } => cli::gateway(&config),
        Command::Sidecar { config } => cli::sidecar(&config),
        Command::Ca(c) => cli::ca::run(c),
        Command::Check { config } => return cli::check(&config),
        Command::Status(a) => cli::status::run(a),
        Command::Demo(a) => cli::demo::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text an
/// outer message already quotes (many errors here name their source).
fn message(e: &anyhow::Error) -> String {
    let e: &(dyn std::error::Error + 'static) = e.as_ref();
    meshgw_federation::error_text::chain(e)
}
