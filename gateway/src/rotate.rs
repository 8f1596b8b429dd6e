//! Gateway certificate rotation: `tls.cert` and `tls.key` are watched
//! ([`meshgw_proxy::sidecar::rotate::watch`]), and a new pair is presented
//! from the next handshake on by the tunnel (both ways), the forward
//! listener and the catalog API, without a restart. Connections already
//! open keep their session. Trust bundles are reloaded the same way
//! ([`crate::trust`]).

use std::sync::Arc;

use meshgw_config::GatewayConfig;
use meshgw_identity::{Identity, RotatingCert};
use meshgw_proxy::sidecar::rotate::watch;

/// Replaces `cert` whenever the certificate or key file changes, for as
/// long as the gateway runs. A pair that does not load (written one file
/// at a time, a key that does not match, another SPIFFE ID) is logged and
/// the current certificate stays.
pub async fn run(cfg: Arc<GatewayConfig>, cert: Arc<RotatingCert>) {
    watch(
        vec![cfg.tls.cert.clone(), cfg.tls.key.clone()],
        std::future::pending(),
        "gateway certificate",
        "new tunnel, forward and API connections",
        "certificate",
        || Identity::load(&cfg.tls.cert, &cfg.tls.key).and_then(|id| cert.replace(&id)),
    )
    .await;
}
