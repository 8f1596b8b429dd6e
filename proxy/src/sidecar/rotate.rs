//! Certificate rotation: certificate, key and bundle files are watched, and
//! new ones are served and dialled with without a restart (as Istio and
//! Linkerd rotate workload certificates under running proxies). [`watch`]
//! is the file watch; the sidecar ([`run`]) and the gateway both use it.

use std::fmt::Display;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::tls::WorkloadTls;

/// How often the files' modification times and lengths are compared.
pub const POLL: Duration = Duration::from_secs(2);

/// The modification time and length of each of `paths` (`None` for one
/// that cannot be read).
fn stamps(paths: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    paths
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}

/// Calls `reload` whenever one of `files` changes (compared every
/// [`POLL`]) until `stop` completes, and logs the outcome: `what` names the
/// files, `users` what uses them, `new` what they hold ("certificate",
/// "bundles"). A change that does not load (a pair written one file at a
/// time, another identity's certificate, a bundle that does not parse) is
/// logged and the current one stays in use; the next change is tried again.
pub async fn watch<E: Display>(
    files: Vec<PathBuf>,
    stop: impl Future<Output = ()>,
    what: &str,
    users: &str,
    new: &str,
    mut reload: impl FnMut() -> Result<bool, E>,
) {
    if files.is_empty() {
        return;
    }
    tokio::pin!(stop);
    let mut seen = stamps(&files);
    loop {
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(POLL) => {}
        }
        let now = stamps(&files);
        if now == seen {
            continue;
        }
        seen = now;
        match reload() {
            Ok(true) => {
                tracing::info!("{what} files changed: {users} use the new {new}")
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(
                error = %e,
                "{what} files changed but do not load; still using the previous {new}"
            ),
        }
    }
}

/// Reloads the sidecar's `tls` whenever its certificate, key or bundle file
/// changes, until `stop` turns true.
pub async fn run(tls: Arc<WorkloadTls>, mut stop: watch::Receiver<bool>) {
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    watch(
        tls.files(),
        stopped,
        "workload certificate",
        "new connections",
        "certificate",
        || tls.reload(),
    )
    .await;
}
