//! Gateway certificate rotation: `tls.cert` and `tls.key` are watched, and
//! a new pair is presented from the next handshake on by the tunnel (both
//! ways), the forward listener and the catalog API, without a restart.
//! Connections already open keep their session. Trust bundles (`tls.ca`,
//! the peers' `trust_bundle`) are read at start.

use std::sync::Arc;
use std::time::Duration;

use meshgw_config::GatewayConfig;
use meshgw_identity::{Identity, RotatingCert, file_stamps};

/// How often the files' modification times and lengths are compared.
pub const POLL: Duration = Duration::from_secs(2);

/// Replaces `cert` whenever the certificate or key file changes, for as
/// long as the gateway runs. A pair that does not load (written one file
/// at a time, a key that does not match, another SPIFFE ID) is logged and
/// the current certificate stays; the next change is tried again.
pub async fn run(cfg: Arc<GatewayConfig>, cert: Arc<RotatingCert>) {
    let stamps = || file_stamps(&[&cfg.tls.cert, &cfg.tls.key]);
    let mut seen = stamps();
    loop {
        tokio::time::sleep(POLL).await;
        let now = stamps();
        if now == seen {
            continue;
        }
        seen = now;
        let loaded = Identity::load(&cfg.tls.cert, &cfg.tls.key).and_then(|id| cert.replace(&id));
        match loaded {
            Ok(true) => tracing::info!(
                id = %cert.spiffe_id(),
                "gateway certificate files changed: new tunnel, forward and API connections use the new certificate"
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!(
                error = %e,
                "gateway certificate files changed but do not load (tls.cert, tls.key); still using the previous certificate"
            ),
        }
    }
}
