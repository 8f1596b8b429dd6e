//! Free loopback ports for tests, reserved across the test processes that
//! run in parallel.
//!
//! A port found by binding port 0 and letting go can be taken again before
//! a gateway binds it: by another test process, or by any outgoing
//! connection, whose source port comes from the same ephemeral range. So
//! ports come from outside that range (`ip_local_port_range`), and each one
//! is reserved for this process by an exclusive lock on a file named after
//! it under the temp dir; the kernel drops the lock when the process exits,
//! so nothing goes stale. The files (empty, one per port ever used, under
//! `$TMPDIR/meshgw-test-ports/`) stay: deleting one could let two processes
//! lock two different files of the same name.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use rustix::fs::{FlockOperation, flock};

/// Lock files of the ports this process holds (kept open until it exits).
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());
/// Where the next search starts, as an offset into the pool.
static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);

/// The pool: 20000-32767 when the ephemeral range starts above it (Linux's
/// default 32768-60999), else the ports above the ephemeral range.
fn pool() -> (u16, u16) {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|v| v.parse::<u32>().ok());
            Some((it.next()??, it.next()??))
        });
    match range {
        Some((lo, _)) if lo > 21_000 => (20_000, (lo - 1).min(32_767) as u16),
        Some((_, hi)) if hi < 64_000 => ((hi + 1) as u16, 65_000),
        _ => (20_000, 32_767),
    }
}

/// The directory of the lock files, created once per process.
fn lock_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join("meshgw-test-ports");
        let _ = std::fs::create_dir_all(&dir);
        dir
    })
}

/// Locks the file of `port` for this process; false if another process holds it.
fn reserve(port: u16) -> bool {
    let Ok(f) = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_dir().join(port.to_string()))
    else {
        return false;
    };
    if flock(&f, FlockOperation::NonBlockingLockExclusive).is_err() {
        return false;
    }
    HELD.lock().unwrap().push(f);
    true
}

fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok() && UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

/// Returns the first of `n` consecutive ports, reserved for this process and
/// free for both TCP and UDP on 127.0.0.1 right now.
pub fn range(n: u16) -> u16 {
    let (lo, hi) = pool();
    let size = u32::from(hi - lo) + 1;
    // Each process starts somewhere else in the pool.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(2_654_435_761) % size,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..size {
        let start = NEXT.fetch_add(u32::from(n), Ordering::Relaxed) % size;
        if start + u32::from(n) > size {
            continue;
        }
        let base = lo + start as u16;
        if (base..base + n).all(|p| reserve(p) && bindable(p)) {
            return base;
        }
    }
    panic!("no {n} consecutive free loopback ports in {lo}-{hi}");
}

/// Returns a TCP port on 127.0.0.1, reserved for this process and free now.
pub fn tcp() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], range(1)))
}

/// Returns a UDP port on 127.0.0.1, reserved for this process and free now.
pub fn udp() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], range(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_outside_the_ephemeral_range_distinct_and_free() {
        let (lo, hi) = pool();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let p = tcp().port();
            assert!((lo..=hi).contains(&p), "{p} outside {lo}-{hi}");
            assert!(seen.insert(p), "{p} handed out twice");
            assert!(TcpListener::bind(("127.0.0.1", p)).is_ok());
        }
        let base = range(4);
        assert!((base..base + 4).all(|p| !seen.contains(&p)));
    }
}
