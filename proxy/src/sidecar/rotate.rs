//! Certificate rotation: the workload's certificate, key and bundle files
//! are watched, and new ones are served and dialled with without a restart
//! (as Istio and Linkerd rotate workload certificates under running proxies).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::tls::WorkloadTls;

/// How often the files' modification times and lengths are compared.
pub const POLL: Duration = Duration::from_secs(2);

/// Reloads `tls` whenever its files change, until `stop` turns true. A
/// change that does not load (a half-written pair, another workload's
/// certificate) is logged and the current certificate stays in use; the
/// next change is tried again.
pub async fn run(tls: Arc<WorkloadTls>, mut stop: watch::Receiver<bool>) {
    let mut seen = tls.files_stamp();
    if seen.is_none() {
        return;
    }
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
            () = tokio::time::sleep(POLL) => {}
        }
        let now = tls.files_stamp();
        if now == seen {
            continue;
        }
        seen = now;
        match tls.reload() {
            Ok(true) => tracing::info!(
                id = %tls.spiffe_id(),
                "workload certificate files changed: new connections use the new certificate"
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!(
                error = %e,
                "workload certificate files changed but do not load; still using the previous certificate"
            ),
        }
    }
}
