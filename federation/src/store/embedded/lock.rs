//! The exclusive lock on a data dir, so two processes never share one store.
//!
//! `LOCK` is held with `flock(2)`, which the kernel releases when the holder
//! exits or crashes, so a stale file left by a dead process never blocks a
//! restart; the pid written into it only names the holder in the error.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use rustix::fs::{FlockOperation, flock};

use crate::store::StoreError;

/// Holds the lock until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

/// How long to wait for a store of this same process to release the lock:
/// a dropped store lets go once its lease task's last step has finished.
const SAME_PROCESS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Takes the lock on `dir`, or says which process holds it. When the holder
/// is this process (a store just dropped, still finishing a background
/// step), waits up to [`SAME_PROCESS_WAIT`] for it to let go. Blocking.
pub(crate) fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
    let deadline = std::time::Instant::now() + SAME_PROCESS_WAIT;
    loop {
        match try_acquire(dir)? {
            Attempt::Locked(lock) => return Ok(lock),
            Attempt::Held(holder)
                if holder == std::process::id().to_string()
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Attempt::Held(holder) => {
                let holder = if holder.is_empty() {
                    "unknown pid".to_string()
                } else {
                    format!("pid {holder}")
                };
                return Err(StoreError::Other(format!(
                    "data dir {} is in use by another meshgw process ({holder}, per {}); \
                     stop that process, or give this one its own store data dir",
                    dir.display(),
                    dir.join("LOCK").display()
                )));
            }
        }
    }
}

/// The outcome of one try at the lock.
enum Attempt {
    Locked(DirLock),
    /// Held by the process whose pid `LOCK` names (empty if unreadable).
    Held(String),
}

fn try_acquire(dir: &Path) -> Result<Attempt, StoreError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("LOCK"))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            file.set_len(0)?;
            file.rewind()?;
            writeln!(file, "{}", std::process::id())?;
            file.flush()?;
            Ok(Attempt::Locked(DirLock { _file: file }))
        }
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            Ok(Attempt::Held(holder.trim().to_string()))
        }
        Err(e) => Err(StoreError::Io(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_named_after_another_process_is_refused_with_its_pid() {
        let dir = tempfile::tempdir().unwrap();
        let held = acquire(dir.path()).unwrap();
        // Make LOCK name another process, as a second gateway would see it.
        std::fs::write(dir.path().join("LOCK"), "4242\n").unwrap();
        let started = std::time::Instant::now();
        let err = acquire(dir.path()).unwrap_err().to_string();
        assert!(
            started.elapsed() < SAME_PROCESS_WAIT,
            "it waited for another process"
        );
        assert!(
            err.contains("in use by another meshgw process (pid 4242"),
            "{err}"
        );
        assert!(
            err.contains("give this one its own store data dir"),
            "{err}"
        );
        drop(held);
    }

    #[test]
    fn a_lock_this_process_is_releasing_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let held = acquire(dir.path()).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            drop(held);
        });
        assert!(acquire(dir.path()).is_ok());
        release.join().unwrap();
    }
}
