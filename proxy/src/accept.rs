//! What every accept loop does when `accept` fails.
//!
//! Most accept errors are about one connection (it was reset before we took
//! it) and the next call succeeds. Running out of file descriptors
//! (`EMFILE`, `ENFILE`) or memory is not: the listener stays readable, so a
//! loop that retries at once spins on a core and floods the log. We log and
//! pause, longer when the process is out of a resource, so that connections
//! in flight can finish and free theirs.

use std::time::Duration;

/// Pause after a per-connection error.
const SHORT: Duration = Duration::from_millis(10);
/// Pause when the process or the system is out of descriptors or memory.
const LONG: Duration = Duration::from_millis(200);

/// Returns how long to wait before the next `accept` after `e`.
pub fn pause_for(e: &std::io::Error) -> Duration {
    // EMFILE 24, ENFILE 23, ENOBUFS 105, ENOMEM 12 on Linux.
    match e.raw_os_error() {
        Some(24 | 23 | 105 | 12) => LONG,
        _ => SHORT,
    }
}

/// Logs a failed `accept` on the listener named `what` and waits before the
/// caller accepts again.
pub async fn failed(what: &str, e: &std::io::Error) {
    let pause = pause_for(e);
    if pause == LONG {
        tracing::warn!(listener = what, error = %e, ?pause, "cannot accept connections: out of file descriptors or memory; raise the limit (`ulimit -n`, LimitNOFILE=) or lower the load");
    } else {
        tracing::debug!(listener = what, error = %e, "accept failed; retrying");
    }
    tokio::time::sleep(pause).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_descriptors_pauses_longer_than_a_reset() {
        let emfile = std::io::Error::from_raw_os_error(24);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionAborted);
        assert_eq!(pause_for(&emfile), LONG);
        assert_eq!(pause_for(&reset), SHORT);
    }
}
