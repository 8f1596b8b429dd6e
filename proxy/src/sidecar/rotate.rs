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

/// What tells a file's versions apart: its inode (a file replaced by a
/// rename, as Kubernetes swaps a ConfigMap's files), modification and
/// change times (a copy that kept the old modification time still changes
/// the change time) and length.
type Stamp = (u64, SystemTime, i64, i64, u64);

/// The [`Stamp`] of each of `paths` (`None` for one that cannot be read).
fn stamps(paths: &[PathBuf]) -> Vec<Option<Stamp>> {
    use std::os::unix::fs::MetadataExt;
    paths
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((
                m.ino(),
                m.modified().ok()?,
                m.ctime(),
                m.ctime_nsec(),
                m.len(),
            ))
        })
        .collect()
}

/// Calls `reload` whenever one of `files` changes (compared every
/// [`POLL`]) until `stop` completes, and logs the outcome: `what` names the
/// files, `users` what uses them, `new` what they hold ("certificate",
/// "bundles"). A change that does not load (a pair written one file at a
/// time, another identity's certificate, a bundle that does not parse) is
/// logged once and the current one stays in use; it is tried again at every
/// poll until it loads or the files change (a pair written one file at a
/// time loads on the poll after the second file, a certificate checked
/// while another file is being swapped loads once that is done).
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
    // The error of the last change that did not load, while it does not.
    let mut failing: Option<String> = None;
    loop {
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(POLL) => {}
        }
        let now = stamps(&files);
        if now == seen && failing.is_none() {
            continue;
        }
        seen = now;
        match reload() {
            Ok(true) => {
                tracing::info!("{what} files changed: {users} use the new {new}")
            }
            Ok(false) => {}
            Err(e) => {
                let text = e.to_string();
                if failing.as_deref() != Some(text.as_str()) {
                    tracing::warn!(
                        error = %text,
                        "{what} files changed but do not load; still using the previous {new} (tried again every {POLL:?})"
                    );
                }
                failing = Some(text);
                continue;
            }
        }
        failing = None;
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_change_that_does_not_load_is_tried_again_until_it_does() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "one").unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let counted = calls.clone();
        let task = tokio::spawn(watch(
            vec![file.clone()],
            async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            },
            "test",
            "tests",
            "file",
            move || {
                // Fails twice (a half-written change), then loads.
                match counted.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err("not yet"),
                    _ => Ok(true),
                }
            },
        ));
        let polls = |n: u32| tokio::time::sleep(POLL * n + Duration::from_millis(10));
        polls(2).await;
        assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing changed yet");
        std::fs::write(&file, "two, longer").unwrap();
        polls(1).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the change is tried");
        polls(3).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "tried again until it loads, then left alone"
        );
        // The same length and a new inode (a rename over it) is a change too.
        let next = dir.path().join("next.toml");
        std::fs::write(&next, "two, LONGER").unwrap();
        std::fs::rename(&next, &file).unwrap();
        polls(1).await;
        assert_eq!(calls.load(Ordering::SeqCst), 4, "a file replaced by rename");
        stop_tx.send(true).unwrap();
        task.await.unwrap();
    }
}
