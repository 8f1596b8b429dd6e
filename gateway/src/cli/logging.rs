//! Logging set-up: `RUST_LOG` filters (default `info`; `error` for `meshgw status`), `MESHGW_LOG_FORMAT=json` for JSON lines;
//! colours only when stderr is a terminal (not in log files).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber at `default_level` unless `RUST_LOG` says
/// otherwise; logs go to stderr.
pub fn init(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if std::env::var("MESHGW_LOG_FORMAT").is_ok_and(|v| v == "json") {
        b.json().init();
    } else {
        b.init();
    }
}
