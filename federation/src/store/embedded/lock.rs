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

/// Takes the lock on `dir`, or says which process holds it.
pub(crate) fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
    let path = dir.join("LOCK");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            file.set_len(0)?;
            file.rewind()?;
            writeln!(file, "{}", std::process::id())?;
            file.flush()?;
            Ok(DirLock { _file: file })
        }
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "unknown pid".to_string(),
                pid => format!("pid {pid}"),
            };
            Err(StoreError::Other(format!(
                "data dir {} is in use by another meshgw process ({holder}, per {}); \
                 stop that process, or give this one its own store data dir",
                dir.display(),
                path.display()
            )))
        }
        Err(e) => Err(StoreError::Io(e.into())),
    }
}
